"""``python -m federation COMMAND``: one module per command, each with add_arguments and run."""

from __future__ import annotations

import argparse
import sys

import federation

from . import affected, diff, operate, verify

COMMANDS = {
    "diff": (diff, "the Kubernetes objects each stack's Release would change (exit 0 none, 2 changes, 1 error)"),
    "affected": (affected, "the stacks a change touches, as a JSON list"),
    "up": (operate.UP, "deploy the primary, then the secondaries in parallel (exit 0 ok, 1 failed, 2 refused)"),
    "preview": (operate.PREVIEW, "preview every stack in parallel, with the diff (exit 0 ok, 1 failed, 2 refused)"),
    "destroy": (operate.DESTROY, "destroy the secondaries, then the primary (exit 0 ok, 1 failed, 2 refused)"),
    "verify": (verify, "check the federation per datacenter (exit 0 only when everything checked holds)"),
}


class _Parser(argparse.ArgumentParser):
    """Usage errors exit 1: exit 2 means "changes" to `diff`, and must mean nothing else."""

    def error(self, message: str) -> None:
        self.print_usage(sys.stderr)
        self.exit(1, f"{self.prog}: error: {message}\n")


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="python -m federation", description=federation.__doc__)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name, (module, help_text) in COMMANDS.items():
        sub = commands.add_parser(name, help=help_text, description=module.__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())

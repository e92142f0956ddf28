"""``python -m federation COMMAND``: one module per command, each with add_arguments and run."""

from __future__ import annotations

import argparse
import sys

import importlib

# name: (module, attribute of the command in it or None for the module itself, help). A command's
# module is imported only when that command runs: `affected` runs in the pull request workflow
# with PyYAML alone, and the others import pulumi, kubernetes and the program.
COMMANDS = {
    "diff": ("diff", None, "the Kubernetes objects each stack's Release would change (exit 0 none, 2 changes, 1 error)"),
    "affected": ("affected", None, "the stacks a change touches, as a JSON list"),
    "up": ("rollout", "UP", "deploy the primary, then the secondaries, checking the federation after each stage "
                            "(exit 0 ok, 1 failed or unhealthy, 2 refused)"),
    "preview": ("operate", "PREVIEW", "preview every stack in parallel, with the diff (exit 0 ok, 1 failed, 2 refused)"),
    "destroy": ("operate", "DESTROY", "destroy the secondaries, then the primary (exit 0 ok, 1 failed, 2 refused)"),
    "rotate-gossip-key": ("gossip_rotation", None, "a new gossip key in every datacenter, in Consul's order; run "
                                                   "again to finish an interrupted rotation (exit 0 rotated, 1 "
                                                   "stopped, 2 refused)"),
    "rotate-tls-ca": ("tls_ca_rotation", None, "a new TLS CA in every datacenter: trusted first, then signing, then "
                                               "alone; run again to finish an interrupted rotation (exit 0 rotated, "
                                               "1 stopped, 2 refused)"),
    "validate": ("validate", None, "check every stack file offline, as pulumi preview would (no backend, no cluster; "
                                   "exit 0 valid, 1 not, 2 refused)"),
    "verify": ("verify", None, "check the federation per datacenter (exit 0 only when everything checked holds)"),
}


DESCRIPTION = """\
Operate the Consul federation of this project's stacks (its Pulumi.<stack>.yaml files: one
primary datacenter and its secondaries), all at once and in the right order.

What the commands need:
  up, preview, destroy, verify, rotate-gossip-key, rotate-tls-ca
      the Pulumi backend (PULUMI_BACKEND_URL, or pulumi login --local), the stacks'
      PULUMI_CONFIG_PASSPHRASE, the pulumi CLI on PATH, and each stack's cluster (its
      kubeContext in the kubeconfig)
  diff
      git and helm, and the charts (fetched, or --chart VERSION=DIR offline); no backend,
      no cluster
  validate
      the stack files only (and a chartPath's chart); no backend, no cluster
  affected
      git only

python -m federation COMMAND --help shows a command's options.
"""


def command(name: str):
    module_name, attribute, _ = COMMANDS[name]
    module = importlib.import_module(f"federation.{module_name}")
    return getattr(module, attribute) if attribute else module


class _Parser(argparse.ArgumentParser):
    """Usage errors exit 1: exit 2 means "changes" to `diff`, and must mean nothing else."""

    def error(self, message: str) -> None:
        self.print_usage(sys.stderr)
        self.exit(1, f"{self.prog}: error: {message}\n")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = _Parser(prog="python -m federation", description=DESCRIPTION,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    chosen = next((arg for arg in argv if not arg.startswith("-")), None)
    for name, (_, _, help_text) in COMMANDS.items():
        if name != chosen:
            commands.add_parser(name, help=help_text)
            continue
        module = command(name)
        sub = commands.add_parser(name, help=help_text, description=module.__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())

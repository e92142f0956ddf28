"""Reading a container's command the way its pod would run it (pure functions, no cluster).

The exec form is one argv. A ``sh -c``/``-ec`` script is read statement by statement: line
continuations joined, comments dropped, ``;``/``&&``/``||``/``|`` separated; statements made
only of ``NAME=value`` words (or ``export``) set shell variables later statements see;
``$(VAR)`` (kubelet) and ``$VAR``/``${VAR}`` (shell) are expanded from the container's env;
``$(command)`` substitutions stay as they are (nothing runs here). Shell keywords
(``if``/``then``/``else``/``fi``/``!``) and ``exec`` are stripped from the front of a statement,
and an image entrypoint wrapper (``docker-entrypoint.sh``) is looked through, so what is left
is the program the statement runs.

Both branches of an ``if`` are read, in order: good enough for the charts' scripts (the only
``if`` picks the IPv6 form of the API host, which the harness does not use).
"""

from __future__ import annotations

import os
import re
import shlex
from typing import Callable, Mapping, Optional

from .chart_table import CONTROL_PLANE, ChartLine, Command, chart_line_of

__all__ = ["run_script", "argvs", "command_of", "parse_flags", "check_invocation", "plan_pod",
           "parse_control_plane_invocations",
           "expand_k8s", "flag", "flag_bool"]

_K8S_VAR = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")
_SHELL_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\??\}|\$([A-Za-z_][A-Za-z0-9_]*)")
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_SHELLS = ("sh", "bash", "ash", "dash")
_KEYWORDS = ("if", "then", "else", "elif", "fi", "!", "exec")
_WRAPPERS = ("docker-entrypoint.sh",)


def expand_k8s(text: str, env: dict[str, str]) -> str:
    """Kubelet's $(VAR) expansion in command/args/env values (undefined ones stay as is)."""
    return _K8S_VAR.sub(lambda m: env.get(m.group(1), m.group(0)), text)


def _expand_shell(text: str, env: dict[str, str]) -> str:
    return _SHELL_VAR.sub(lambda m: env.get(m.group(1) or m.group(2), ""), text)


def _split_statements(script: str) -> list[str]:
    script = script.replace("\\\r\n", " ").replace("\\\n", " ")
    out: list[str] = []
    for line in script.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        lex = shlex.shlex(stripped, posix=True, punctuation_chars=";&|")
        lex.whitespace_split = True
        lex.commenters = ""
        try:
            tokens = list(lex)
        except ValueError:  # unbalanced quotes: keep the line whole
            out.append(stripped)
            continue
        current: list[str] = []
        for tok in tokens:
            if tok in (";", "&&", "||", "&", "|", ";;"):
                if current:
                    out.append(shlex.join(current))
                current = []
            else:
                current.append(tok)
        if current:
            out.append(shlex.join(current))
    return out


def _strip(words: list[str]) -> list[str]:
    while words and words[0] in _KEYWORDS:
        words = words[1:]
    while words and os.path.basename(words[0]) in _WRAPPERS:
        words = words[1:]
    return words


def run_script(container: dict, env: dict[str, str]) -> tuple[list[list[str]], dict[str, str]]:
    """The argument vectors a container runs (see the module docstring), and its shell
    variables at the end."""
    env = dict(env)
    argv = [expand_k8s(a, env) for a in (container.get("command") or [])]
    argv += [expand_k8s(a, env) for a in (container.get("args") or [])]
    if not argv:
        return [], env
    if os.path.basename(argv[0]) in _SHELLS:
        for i, a in enumerate(argv[1:], start=1):
            if a.startswith("-") and "c" in a[1:] and i + 1 < len(argv):
                result = []
                for stmt in _split_statements(argv[i + 1]):
                    try:
                        words = shlex.split(stmt)
                    except ValueError:
                        words = stmt.split()
                    words = _strip([_expand_shell(w, env) for w in words])
                    if words and words[0] == "export":
                        words = words[1:]
                    if words and all(_ASSIGNMENT.match(w) for w in words):
                        for w in words:
                            k, _, v = w.partition("=")
                            env[k] = v
                        continue
                    if words:
                        result.append(words)
                return result, env
    return [_strip(argv)], env


def argvs(container: dict, env: dict[str, str]) -> list[list[str]]:
    return run_script(container, env)[0]


def command_of(argv: list[str]) -> str:
    """The table key of what an argv runs: ``consul-k8s-control-plane <subcommand>``,
    ``consul <subcommand>`` or the program's base name."""
    prog = os.path.basename(argv[0])
    if prog in (CONTROL_PLANE, "consul") and len(argv) > 1:
        return f"{prog} {argv[1]}"
    return prog


def parse_flags(args: list[str], interleaved: bool = False
                ) -> tuple[dict[str, list[str]], list[str]]:
    """Go ``flag`` syntax (``-f=v``, ``-f v``, ``--f=v``, bare booleans) up to the first
    positional argument (or, ``interleaved``, options anywhere as curl reads them):
    ({flag: [values]}, positionals). ``-f v`` is read as a value when ``v`` does not start
    with ``-`` (every such flag the charts pass takes a value)."""
    flags: dict[str, list[str]] = {}
    positionals: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            return flags, positionals + args[i + 1:]
        if not a.startswith("-") or len(a) == 1:
            if not interleaved:
                return flags, args[i:]
            positionals.append(a)
            i += 1
            continue
        name = a.lstrip("-")
        if "=" in name:
            name, value = name.split("=", 1)
        elif i + 1 < len(args) and not args[i + 1].startswith("-"):
            value = args[i + 1]
            i += 1
        else:
            value = "true"
        flags.setdefault(name, []).append(value)
        i += 1
    return flags, positionals


def check_invocation(cmd: str, spec: Command, argv: list[str]
                     ) -> tuple[dict[str, list[str]], list[str]]:
    """Flags and positionals of ``argv`` for table entry ``spec``; ValueError naming the first
    flag or positional the command does not accept."""
    skip = len(cmd.split())  # "consul-k8s-control-plane tls-init", "consul agent", "curl"
    flags, positionals = parse_flags(argv[skip:], spec.interleaved)
    unknown = sorted(set(flags) - spec.flags)
    if unknown:
        raise ValueError(f"{cmd}: unknown flag -{unknown[0]} (accepted: "
                         f"{', '.join('-' + f for f in sorted(spec.flags))})")
    if len(positionals) != spec.positionals:
        raise ValueError(f"{cmd}: expected {spec.positionals} positional argument(s), got "
                         f"{positionals}")
    return flags, positionals


def plan_pod(pod_spec: dict, commands: Callable[[ChartLine], Mapping[str, Command]],
             harmless: Callable[[ChartLine], frozenset[str]]
             ) -> tuple[ChartLine, list[tuple[dict, str, list[str]]]]:
    """(chart line, [(container, command, argv)]) of every statement every container of the
    pod runs that is one of the line's ``commands`` (flags and positionals checked); a
    statement of ``harmless`` is skipped; anything else (an unknown image, command, flag, or
    an image's own entrypoint) is a ValueError naming it. Jobs and workloads read alike."""
    line, images = chart_line_of(pod_spec)
    if line is None:
        raise ValueError(f"images {images} are of no chart line the harness knows")
    known, plan = commands(line), []
    for c in (pod_spec.get("initContainers") or []) + pod_spec["containers"]:
        runs = argvs(c, {})
        if not runs:
            raise ValueError(f"container {c['name']} runs its image's entrypoint "
                             f"({c.get('image')}), unknown to chart line {line.version}")
        for argv in runs:
            cmd = command_of(argv)
            if cmd in harmless(line):
                continue
            if cmd not in known:
                raise ValueError(f"container {c['name']} runs unknown command "
                                 f"{shlex.join(argv)!r} (chart line {line.version})")
            try:
                check_invocation(cmd, known[cmd], argv)
            except ValueError as e:
                raise ValueError(f"container {c['name']}: {e} in {shlex.join(argv)!r}") \
                    from None
            plan.append((c, cmd, argv))
    return line, plan


def parse_control_plane_invocations(container: dict, env: dict[str, str]
                                    ) -> list[tuple[str, dict[str, list[str]]]]:
    """``[(subcommand, {flag: [values]})]`` for each ``consul-k8s-control-plane`` invocation
    in the container; positionals are under the key ``""``."""
    found = []
    for argv in argvs(container, env):
        if len(argv) < 2 or os.path.basename(argv[0]) != CONTROL_PLANE:
            continue
        flags, positionals = parse_flags(argv[2:])
        if positionals:
            flags[""] = positionals
        found.append((argv[1], flags))
    return found


def flag(flags: dict[str, list[str]], name: str, default: Optional[str] = None) -> Optional[str]:
    values = flags.get(name)
    return values[-1] if values else default


def flag_bool(flags: dict[str, list[str]], name: str) -> bool:
    return (flag(flags, name, "false") or "").lower() in ("1", "t", "true")

"""Print the import graph of each package of the project (components/, federation/; every
import, TYPE_CHECKING ones too) in layer order, leaves first, and exit 1 if a package has a cycle
or components/ imports federation/ (the program must run without the operator commands).

    python3 tools/import_graph.py
"""

from __future__ import annotations

import ast
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("components", "federation")
FORBIDDEN = {"components": "federation"}  # package -> the package it must not import


def imports_of(path: str, package: str) -> tuple[set[str], set[str]]:
    """(modules of `package` that `path` imports, other project packages it imports)."""
    found, packages = set(), set()

    def absolute(name: str, names: list[str]) -> None:
        head, _, rest = name.partition(".")
        if head == package:
            found.update([rest.split(".")[0]] if rest else names)
        elif head in PACKAGES:
            packages.add(head)

    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read(), path)):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            absolute(node.module, [alias.name for alias in node.names])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                absolute(alias.name, [])
    return found, packages


def graph(package: str) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(module -> modules of the package it imports, module -> other project packages it imports)."""
    directory = os.path.join(ROOT, package)
    modules = sorted(f[:-3] for f in os.listdir(directory) if f.endswith(".py"))
    edges, outside = {}, {}
    for module in modules:
        inside, others = imports_of(os.path.join(directory, f"{module}.py"), package)
        edges[module], outside[module] = inside & set(modules), others
    return edges, outside


def layers(edges: dict[str, set[str]]) -> tuple[list[list[str]], set[str]]:
    """Modules by layer (a layer imports only lower ones), and the modules left in a cycle."""
    placed: set[str] = set()
    result = []
    while True:
        layer = sorted(m for m, deps in edges.items() if m not in placed and deps <= placed)
        if not layer:
            return result, set(edges) - placed
        result.append(layer)
        placed.update(layer)


def main() -> int:
    failed = False
    for package in PACKAGES:
        edges, outside = graph(package)
        ordered, cyclic = layers(edges)
        print(f"{package}/")
        for number, layer in enumerate(ordered):
            for module in layer:
                deps = ", ".join(sorted(edges[module]) + [f"{p}/" for p in sorted(outside[module])]) or "-"
                print(f"  layer {number}: {module:18} imports {deps}")
        if cyclic:
            print(f"CYCLE in {package}/ among: " + ", ".join(sorted(cyclic)), file=sys.stderr)
            failed = True
        offenders = sorted(m for m, others in outside.items() if FORBIDDEN.get(package) in others)
        if offenders:
            print(f"{package}/ must not import {FORBIDDEN[package]}/: " + ", ".join(offenders), file=sys.stderr)
            failed = True
    if failed:
        return 1
    print("no cycle")
    return 0


if __name__ == "__main__":
    sys.exit(main())

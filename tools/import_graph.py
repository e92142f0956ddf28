"""Print the import graph of the components package (every import, TYPE_CHECKING ones too) in
layer order, leaves first, and exit 1 if it has a cycle.

    python3 tools/import_graph.py
"""

from __future__ import annotations

import ast
import os
import sys

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "components")


def imports_of(path: str) -> set[str]:
    """Modules of the package that `path` imports (relative `from . import x` / `from .x import`)."""
    found = set()
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read(), path)):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("components."):
            found.add(node.module.split(".")[1])
    return found


def graph() -> dict[str, set[str]]:
    modules = sorted(f[:-3] for f in os.listdir(PACKAGE) if f.endswith(".py"))
    return {m: imports_of(os.path.join(PACKAGE, f"{m}.py")) & set(modules) for m in modules}


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
    edges = graph()
    ordered, cyclic = layers(edges)
    for number, layer in enumerate(ordered):
        for module in layer:
            deps = ", ".join(sorted(edges[module])) or "-"
            print(f"layer {number}: {module:18} imports {deps}")
    if cyclic:
        print("CYCLE among: " + ", ".join(sorted(cyclic)), file=sys.stderr)
        return 1
    print("no cycle")
    return 0


if __name__ == "__main__":
    sys.exit(main())

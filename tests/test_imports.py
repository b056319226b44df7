"""The import graph of the qdff package, read statically (nothing is imported).

Every ``qdff/**/*.py`` is parsed; every ``import qdff...`` and ``from ... import ...`` that
names a qdff module, at module level or inside a function, is an edge from the importing
module to the imported one (``from pkg import sub`` to the submodule ``pkg.sub`` when it is
one, else to ``pkg``). Dynamic imports (``importlib.import_module``) are not seen.

Two rules: no import cycle (a strongly connected component of more than one module), and no
module takes an underscore-prefixed name (``_device``, ``_compat``) from a module of another
qdff package, neither by ``from m import _name`` nor as ``m._name`` on an imported module.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "qdff"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def package_of(name: str, path: Path) -> str:
    """The package a module belongs to: itself for a package's ``__init__``."""
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def _known(name: str, known) -> str | None:
    """``name`` or its longest prefix that is a qdff module (``qdff.a.b.f`` -> ``qdff.a.b``)."""
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


def imports(name: str, path: Path, known) -> list[tuple[str, str | None, int]]:
    """(imported module, name taken from it or None, line) of every qdff import in ``path``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    here = package_of(name, path)
    out = []
    aliases: dict[str, str] = {}  # local name -> qdff module bound to it
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name == "qdff" or a.name.startswith("qdff."):
                    target = _known(a.name, known)
                    out.append((target, None, node.lineno))
                    aliases[a.asname or a.name.partition(".")[0]] = target if a.asname else "qdff"
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.split(".")
                base = base[: len(base) - (node.level - 1)]
                base = ".".join(base + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if not (base == "qdff" or base.startswith("qdff.")):
                continue
            for a in node.names:
                sub = f"{base}.{a.name}"
                if sub in known:
                    out.append((sub, None, node.lineno))
                    aliases[a.asname or a.name] = sub
                else:
                    out.append((_known(base, known), a.name, node.lineno))
    # m._name on a module bound by an import
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ):
            out.append((aliases[node.value.id], node.attr, node.lineno))
    return out


def graph() -> dict[str, set[str]]:
    known = modules()
    edges: dict[str, set[str]] = defaultdict(set)
    for name, path in known.items():
        edges[name]
        for target, _, _ in imports(name, path, known):
            if target and target != name:
                edges[name].add(target)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return sorted(found)


def test_the_graph_sees_imports_inside_functions_and_relative_ones():
    edges = graph()
    assert "qdff.training.backends.common" in edges["qdff.training.backends.deepmd"]  # from .common import ...
    assert "qdff.training.backends" in edges["qdff.training.models"]  # inside calculator_from_meta
    assert "qdff.structure.sites" in edges["qdff.validation.evaluate"]  # inside breakdown


def test_no_import_cycles():
    assert cycles(graph()) == []


def test_a_cycle_is_found():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_private_name_is_imported_from_another_package():
    known = modules()
    bad = []
    for name, path in known.items():
        for target, taken, line in imports(name, path, known):
            if (
                taken
                and taken.startswith("_")
                and not taken.startswith("__")
                and target
                and package_of(target, known[target]) != package_of(name, path)
            ):
                bad.append(f"{path.relative_to(ROOT)}:{line}: {target}.{taken}")
    assert bad == []

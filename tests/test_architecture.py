"""The shape of lib/tally: its modules import each other without a cycle, the numpy core
never imports pyspark, and imports sit at the top of modules.

Every ``import`` is read with :mod:`ast`: at module level, inside functions and under
``if TYPE_CHECKING:`` alike (each can close a loop). An import of ``tally.a.b`` is an edge
to that module (not to its parent packages, whose ``__init__`` Python also runs).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

LIB = Path(__file__).resolve().parents[1] / "lib"
PACKAGE = LIB / "tally"

#: Modules that must run without Spark (numpy, pyarrow, pandas at most), and so must
#: never import pyspark, themselves or through another module.
PYSPARK_FREE = ("tally.kernels", "tally.tasks", "tally.plan", "tally.counts",
                "tally.counts_multi", "tally.metrics")  # fmt: skip

#: Modules allowed to import Tally modules inside functions, and why.
LAZY_IMPORTS = {
    # `tally --help`, config errors and `tally demo-data` answer without importing pyspark
    "tally.cli": "the CLI imports Spark code only in the subcommands that run Spark",
    # `import tally` stays light: tally.evaluate imports the Spark side on first use
    "tally": "tally.evaluate is a lazy attribute (module __getattr__)",
    # the benchmark's floors run in processes that never start Spark
    "tally.bench.methods": "Spark methods import Spark code when they run",
    "tally.bench.run": "Spark is started only for the Spark methods",
}


def module_name(path: Path) -> str:
    parts = path.relative_to(LIB).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def resolve(name: str) -> str | None:
    """The Tally module an import names: ``name`` itself, or its package."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports(module: str) -> list[tuple[str, ast.stmt, bool]]:
    """(imported name, the statement, whether it sits inside a function) for every import."""
    tree = ast.parse(MODULES[module].read_text(), filename=str(MODULES[module]))
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[str, ast.stmt, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, ast.Import):
                found.extend((a.name, child, in_function) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.rsplit(".", child.level - 1)[0] if child.level > 1 else package
                    base = f"{anchor}.{base}" if base else anchor
                found.append((base, child, in_function))
                found.extend((f"{base}.{a.name}", child, in_function) for a in child.names)
            visit(child, inner)

    visit(tree, False)
    return found


def graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {m: set() for m in MODULES}
    for module in MODULES:
        for name, _, _ in imports(module):
            if name == "tally" or name.startswith("tally."):
                target = resolve(name)
                if target and target != module:
                    edges[module].add(target)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            strong(v)
    return found


def test_the_parser_sees_every_kind_of_import():
    """Imports at the top, under ``if TYPE_CHECKING:`` and inside functions are all read."""
    run = {(name, inside) for name, _, inside in imports("tally.spark.readers.arrow.run")}
    assert ("tally.kernels.binary", False) in run  # from tally.kernels import binary
    assert ("pyspark.RDD", False) in run
    assert ("pyspark.Broadcast", False) in run  # only under TYPE_CHECKING
    cli = {name for name, _, inside in imports("tally.cli") if inside}
    assert "tally.job" in cli


def test_no_module_imports_one_that_imports_it_back():
    assert cycles(graph()) == []


def test_a_cycle_would_be_found():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def reachable(start: str, edges: dict[str, set[str]]) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo += edges[m]
    return seen


@pytest.mark.parametrize("root", PYSPARK_FREE)
def test_the_numpy_core_never_imports_pyspark(root):
    edges = graph()
    core = [m for m in MODULES if m == root or m.startswith(root + ".")]
    assert core, root
    for module in core:
        for reached in reachable(module, edges):
            spark = [n for n, _, _ in imports(reached) if n.split(".")[0] == "pyspark"]
            assert not spark, f"{module} imports {reached}, which imports {spark[0]}"


def test_tally_modules_are_imported_at_the_top():
    lazy = sorted(
        f"{module}:{stmt.lineno} {name}"
        for module in MODULES
        if module not in LAZY_IMPORTS
        for name, stmt, inside in imports(module)
        if inside and (name == "tally" or name.startswith("tally."))
    )
    assert lazy == []

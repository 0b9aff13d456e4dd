"""The house rules that a test can check: dependency minimums that match the APIs the code uses."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]
SOURCES = {p: p.read_text() for p in sorted((ROOT / "dfdlib").glob("*.py"))}

# API the code calls → (distribution, first release that has it).
NEEDS = {
    "torch.OutOfMemoryError": ("torch", (2, 5)),
    'torch.amp.GradScaler("cuda"': ("torch", (2, 3)),
    "v2.JPEG(": ("torchvision", (0, 19)),
}


def _minimums() -> dict[str, tuple[int, ...]]:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    out = {}
    for dep in deps:
        m = re.match(r"([A-Za-z0-9_.-]+)\s*>=\s*([0-9.]+)", dep)
        if m:
            out[m[1].lower()] = tuple(int(x) for x in m[2].split("."))
    return out


@pytest.mark.parametrize("api", sorted(NEEDS))
def test_pyproject_minimums_are_at_least_what_the_code_uses(api):
    dist, first = NEEDS[api]
    users = [p.name for p, text in SOURCES.items() if api.replace('"cuda"', "") in text]
    assert users, f"{api} is no longer used: drop it from NEEDS"
    declared = _minimums()[dist]
    assert declared >= first, (f"{', '.join(users)} use {api}, which needs {dist} >= "
                               f"{'.'.join(map(str, first))}, but pyproject.toml allows {dist} >= "
                               f"{'.'.join(map(str, declared))}: older installs would fail at run time")


def test_the_installed_torch_has_the_apis_the_minimums_promise():
    import torch
    from torchvision.transforms import v2

    assert issubclass(torch.OutOfMemoryError, RuntimeError)
    assert torch.amp.GradScaler("cpu", enabled=False) is not None and hasattr(v2, "JPEG")


# ---------------------------------------------------------------- the import graph of dfdlib/
MAX_LINES = 400


def _imports(path: Path) -> list[tuple[str, list[str], int]]:
    """(imported dfdlib module, names taken from it, line) for every relative import in `path`, at any
    depth (a function-level import is a dependency too)."""
    import ast

    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                out.append((node.module.split(".")[0], [a.name for a in node.names], node.lineno))
            else:  # from . import x, y
                out.extend((a.name, [], node.lineno) for a in node.names)
    return out


def _graph() -> dict[str, set[str]]:
    return {p.stem: {m for m, _, _ in _imports(p)} - {p.stem} for p in SOURCES}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_cycle_finder_finds_cycles():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_in_dfdlib():
    """The data path goes one way: a module never imports (at any depth) one that imports it back.
    `__init__` (the flat API, served lazily) is the one module allowed to name everything."""
    graph = {m: deps - {"__init__"} for m, deps in _graph().items() if m != "__init__"}
    assert _cycles(graph) == []


def test_no_private_name_imported_across_modules():
    leaks = [f"{p.name}:{line} imports {name} from .{mod}" for p in SOURCES for mod, names, line in _imports(p)
             for name in names if name.startswith("_") and not name.startswith("__")]
    assert leaks == [], "make the helper public where it belongs (or move it to its one user):\n" + "\n".join(leaks)


def test_no_module_over_the_line_limit():
    long = {p.name: n for p, text in SOURCES.items() if (n := text.count("\n")) > MAX_LINES}
    assert long == {}, f"split these modules (> {MAX_LINES} lines): {long}"

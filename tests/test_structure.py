"""The house rules that a test can check: dependency minimums that match the APIs the code uses, and the shape
of the package: a small core at the top of dfdlib/, one subpackage per stage, imports that go one way."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "dfdlib"
SOURCES = {p: p.read_text() for p in sorted(PKG.rglob("*.py"))}

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
    users = [str(p.relative_to(PKG)) for p, text in SOURCES.items() if api.replace('"cuda"', "") in text]
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
MAX_TOP_MODULES = 16
MIN_STAGES = 4
# stage package -> stage packages it must never import (the data flows forward: videos -> faces -> labels ->
# model -> verdict). The core (modules at the top of dfdlib/) imports no stage at all.
FORBIDDEN = {
    "preprocess": {"labels", "training", "predict", "app"},
    "labels": {"training", "predict", "app"},
    "training": {"predict", "app"},
    "datasets": {"preprocess", "labels", "training", "predict", "app", "sample"},
}


def _name(path: Path) -> str:
    """dfdlib/preprocess/faces.py -> 'preprocess.faces'; dfdlib/labels/__init__.py -> 'labels'."""
    parts = list(path.relative_to(PKG).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


MODULES = {_name(p): p for p in SOURCES}
STAGES = sorted(p.name for p in PKG.iterdir() if (p / "__init__.py").is_file())


def _resolve(path: Path, node) -> str | None:
    """The dfdlib module (dotted, without 'dfdlib.') an ImportFrom/Import node names, or None if outside."""
    import ast

    if isinstance(node, ast.ImportFrom):
        if node.level:
            base = _name(path).split(".") if path.name == "__init__.py" else _name(path).split(".")[:-1]
            base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
            if _name(path) == "__init__":
                base = []
            return ".".join(base + ([node.module] if node.module else []))
        if node.module == "dfdlib" or (node.module or "").startswith("dfdlib."):
            return node.module[len("dfdlib."):] if node.module != "dfdlib" else ""
    return None


def _imports(path: Path) -> list[tuple[str, list[str], int]]:
    """(imported dfdlib module, names taken from it, line) for every import of dfdlib in `path`, at any depth
    (a function-level import is a dependency too). `from dfdlib.x import y` where y is itself a module counts
    as importing x.y."""
    import ast

    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.extend((a.name[len("dfdlib."):], [], node.lineno) for a in node.names if a.name.startswith("dfdlib."))
        mod = _resolve(path, node)
        if mod is None:
            continue
        names = [a.name for a in node.names]
        subs = [n for n in names if (f"{mod}.{n}" if mod else n) in MODULES]
        if subs:
            out.extend(((f"{mod}.{n}" if mod else n), [], node.lineno) for n in subs)
            names = [n for n in names if n not in subs]
        if names or not subs:
            out.append((mod or "__init__", names, node.lineno))
    return out


def _graph() -> dict[str, set[str]]:
    return {m: {d for d, _, _ in _imports(p)} - {m} for m, p in MODULES.items()}


def _stage(module: str) -> str | None:
    """The stage package a module belongs to, or None for the core."""
    head = module.split(".")[0]
    return head if head in STAGES else None


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


def test_the_import_reader_resolves_absolute_relative_and_module_imports(tmp_path):
    assert _name(PKG / "preprocess" / "faces.py") == "preprocess.faces"
    assert _name(PKG / "labels" / "__init__.py") == "labels"
    assert _stage("preprocess.faces") == "preprocess" and _stage("video") is None


def test_every_import_of_dfdlib_names_a_module_that_exists():
    missing = [f"{_name(p)}:{line} imports dfdlib.{mod}" for p in SOURCES for mod, _, line in _imports(p)
               if mod not in MODULES]
    assert missing == []


def test_no_import_cycle_in_dfdlib():
    """The data path goes one way: a module never imports (at any depth) one that imports it back.
    `__init__` (the flat API, served lazily) is the one module allowed to name everything."""
    graph = {m: deps - {"__init__"} for m, deps in _graph().items() if m != "__init__"}
    assert _cycles(graph) == []


def test_the_stages_import_only_forward():
    """preprocess never imports labels, training or predict; labels never imports training or predict;
    training never imports predict or app; the core (the top of dfdlib/) imports no stage."""
    bad = []
    for p in SOURCES:
        me = _name(p)
        if me in ("__init__", "__main__", "cli"):  # the flat API and the CLI table name every stage (lazily)
            continue
        for mod, _, line in _imports(p):
            theirs, mine = _stage(mod), _stage(me)
            if theirs is None or theirs == mine:
                continue
            if mine is None:
                bad.append(f"{me}:{line} (core) imports {mod} (stage {theirs})")
            elif theirs in FORBIDDEN.get(mine, ()):
                bad.append(f"{me}:{line} ({mine}) imports {mod} ({theirs})")
    assert bad == [], "move what they share down into the core:\n" + "\n".join(bad)


def test_no_private_name_imported_across_modules():
    leaks = [f"{_name(p)}:{line} imports {name} from {mod}" for p in SOURCES for mod, names, line in _imports(p)
             for name in names if name.startswith("_") and not name.startswith("__")]
    assert leaks == [], "make the helper public where it belongs (or move it to its one user):\n" + "\n".join(leaks)


def test_no_module_over_the_line_limit():
    long = {_name(p): n for p, text in SOURCES.items() if (n := text.count("\n")) > MAX_LINES}
    assert long == {}, f"split these modules (> {MAX_LINES} lines): {long}"


def test_a_small_core_and_one_package_per_stage():
    top = sorted(p.name for p in PKG.glob("*.py"))
    assert len(top) <= MAX_TOP_MODULES, f"{len(top)} modules at the top of dfdlib/ (move stage code down): {top}"
    assert len(STAGES) >= MIN_STAGES, f"stage packages: {STAGES}"
    stray = sorted(str(p.relative_to(PKG)) for p in PKG.glob("*/**/*.py") if not (p.parent / "__init__.py").is_file())
    assert stray == [], f"folders without __init__.py: {stray}"


# Each file format has one reader: the labels CSV is parsed in the labels package only (labels.io reads and
# checks it); the core and the later stages take the table it returns. Modules outside labels/ that read
# another CSV with pandas, and what they read:
OTHER_CSV_READERS = {"metrics": "history.csv", "preprocess.shards": "the shard reports"}


def _read_csv_calls(path: Path) -> list[int]:
    """Lines of `path` that call pandas' read_csv (`pd.read_csv(...)`, or `read_csv(...)` imported by name)."""
    import ast

    return [node.lineno for node in ast.walk(ast.parse(path.read_text(), str(path))) if isinstance(node, ast.Call)
            and (getattr(node.func, "attr", None) == "read_csv" or getattr(node.func, "id", None) == "read_csv")]


def test_the_labels_csv_is_read_only_in_the_labels_package():
    readers = {_name(p): lines for p in SOURCES if (lines := _read_csv_calls(p))}
    outside = [f"{m}:{line}" for m, lines in readers.items() for line in lines
               if _stage(m) != "labels" and m not in OTHER_CSV_READERS]
    assert outside == [], ("read a labels CSV with dfdlib.labels.io.read_labels / validate_labels and pass the "
                           "table on (a CSV of another format: add its module to OTHER_CSV_READERS):\n"
                           + "\n".join(outside))
    assert set(OTHER_CSV_READERS) <= set(readers), "OTHER_CSV_READERS names a module that reads no CSV any more"


def test_the_read_csv_finder_finds_calls(tmp_path):
    src = tmp_path / "m.py"
    src.write_text("import pandas as pd\nfrom pandas import read_csv\n\ndf = pd.read_csv('a')\nb = read_csv('b')\n")
    assert _read_csv_calls(src) == [4, 5]

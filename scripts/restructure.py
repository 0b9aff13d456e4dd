"""Issue 23: move the flat dfdlib/ into stage subpackages over a small core, and rewrite every reference.

Run from the repository root of a FLAT checkout (e.g. main after the other branches are merged):

    python scripts/restructure.py            # does the move (git mv + edits), then ruff --fix for import order
    python scripts/restructure.py --dry-run  # only checks MAPPING against dfdlib/*.py and prints the plan

It stops, changing nothing, when a dfdlib module is missing from MAPPING (add it and rerun) or when the tree
is half-moved. On an already restructured tree it says so and exits 0 (idempotent). The prepared files it
copies (the new tests/test_structure.py, stage __init__ files) live in scripts/restructure_files/.
Throwaway: delete this script and scripts/restructure_files/ before the final commit.
"""
from __future__ import annotations

import argparse
import ast
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "dfdlib"
FILES = Path(__file__).resolve().parent / "restructure_files"

# old flat module -> new dotted path under dfdlib ("" prefix = stays in the core at the top).
# `train/` is spelled `training/`: `dfdlib.train` is the public train() function, and a subpackage of that name
# would replace it on the package the moment it is imported.
MAPPING = {
    # core (top of dfdlib/): shared by several stages, imports no stage
    "__init__": "__init__", "__main__": "__main__", "_lazy": "_lazy", "cli": "cli", "config": "config",
    "utils": "utils", "video": "video", "data": "data", "clipstore": "clipstore", "model": "model",
    "backbones": "backbones", "blend": "blend", "metrics": "metrics",
    # datasets/: folder layouts of public datasets (read by preprocess and labels)
    "layout_scan": "datasets.scan", "layouts": "datasets.layouts",
    # preprocess/: videos -> face crops
    "preprocess_config": "preprocess.config", "faces": "preprocess.faces", "tracks": "preprocess.tracks",
    "keyframes": "preprocess.keyframes", "reuse": "preprocess.reuse", "preprocess": "preprocess.run",
    "preprocess_cli": "preprocess.cli", "detector": "preprocess.detector", "mtcnn_torch": "preprocess.mtcnn_torch",
    "preprocess_ray": "preprocess.on_ray", "preprocess_merge": "preprocess.shards",
    "preprocess_report": "preprocess.report", "crop_grid": "preprocess.crop_grid",
    # labels/: face folders -> labels CSV
    "labels_table": "labels.schema", "labels": "labels.io", "importers": "labels.metadata",
    "label_sources": "labels.sources", "splits": "labels.splits", "originals": "labels.originals",
    "labels_cli": "labels.cli",
    # training/: labels + faces -> model
    "trainer": "training.loop", "train_setup": "training.setup", "checkpoint": "training.checkpoint",
    "amp": "training.amp", "selfblend": "training.selfblend", "sweep": "training.sweep", "train_cli": "training.cli",
    # predict/: model + video -> verdict
    "predict": "predict.verdict", "evaluate": "predict.evaluate", "ensemble": "predict.ensemble",
    "registry": "predict.registry", "explain": "predict.explain",
    # app/: the web app (extra dfdlib[app])
    "app": "app.web", "app_core": "app.core",
    # sample/: generated footage, the sample set, the demo
    "footage": "sample.footage", "sample": "sample.dataset", "scenes": "sample.scenes", "demo": "sample.demo",
}

# Modules that `dfdlib` itself serves by their old name (lazily), so the notebooks keep `from dfdlib import demo`
# (notebooks import only from dfdlib).
FLAT_MODULES = {"demo": "sample.demo"}

# Top-level names moved into new core modules: (old module, names, new core module, docstring of a new module).
# Box geometry is used by preprocess, labels and training; it lived in preprocess.
MOVES = [
    ("tracks", ["iou"], "boxes", "Box geometry shared by the stages: overlap and the square crop around a face."),
    ("faces", ["square_box"], "boxes", None),
]

# Text files outside dfdlib/ whose references follow the move.
TEXT_GLOBS = ["tests/**/*.py", "tests/*.cfg", "benchmarks/**/*.py", "benchmarks/*.sh", "benchmarks/*.md",
              "scripts/*.py", "notebooks/*.ipynb", "notebooks/*.py", "notebooks/*.md", "docs/*.md", "README.md",
              "pyproject.toml", "Makefile", "data/README.md", "labels/README.md"]


def die(msg: str) -> None:
    print(f"restructure: {msg}", file=sys.stderr)
    sys.exit(1)


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True, text=True).stdout


def new_path(new: str) -> Path:
    return PKG / (new.replace(".", "/") + ".py")


def state() -> str:
    flat = {p.stem for p in PKG.glob("*.py")}
    moved = [o for o, n in MAPPING.items() if o != n]
    if not any((PKG / f"{o}.py").exists() for o in moved) and all(new_path(MAPPING[o]).exists() for o in moved):
        return "done"
    unknown = sorted(flat - set(MAPPING))
    if unknown:
        die("these dfdlib modules are not in MAPPING (add each with its new dotted path, then rerun):\n  "
            + "\n  ".join(f"{u}.py ({(PKG / f'{u}.py').read_text().count(chr(10))} lines)" for u in unknown))
    missing = [o for o in MAPPING if not (PKG / f"{o}.py").exists()]
    if missing:
        die(f"MAPPING names modules that dfdlib/ lacks (a half-moved tree? `git checkout -- . && git clean -fd dfdlib`,"
            f" or drop them from MAPPING): {', '.join(missing)}")
    return "flat"


# ------------------------------------------------------------------------------------------- text rewrites
OLD = sorted(MAPPING, key=len, reverse=True)
DOTTED = re.compile(r"\bdfdlib\.(" + "|".join(map(re.escape, OLD)) + r")\b(?!\.py)")
SLASHED = re.compile(r"\bdfdlib/(" + "|".join(map(re.escape, OLD)) + r")\.py\b")
FROM_PKG = re.compile(r"^(?P<ind>[ \t]*(?:\"|)?)from dfdlib import (?P<names>[\w ,]+?)(?P<tail>\s*(?:#[^\n\"]*)?(?:\\n)?\"?,?)$",
                      re.M)


def dotted(old: str) -> str:
    return MAPPING[old]


def rewrite_from_pkg(m: re.Match) -> str:
    """`from dfdlib import faces, x as y` -> one statement per new package (modules) plus the flat names."""
    parts = [p.strip() for p in m["names"].split(",") if p.strip()]
    groups: dict[str, list[str]] = {}
    for part in parts:
        name, _, alias = part.partition(" as ")
        name = name.strip()
        if name in MAPPING and "." in MAPPING[name] and name not in FLAT_MODULES:
            pkg, _, mod = MAPPING[name].rpartition(".")
            groups.setdefault(f"dfdlib.{pkg}", []).append(f"{mod} as {alias.strip() or name}"
                                                           if mod != name or alias else mod)
        else:
            groups.setdefault("dfdlib", []).append(part)
    if list(groups) == ["dfdlib"]:
        return m[0]
    ind = m["ind"]
    is_json = ind.strip().startswith('"')
    sep = "\\n\",\n" + ind if is_json else "\n" + ind
    stmts = [f"from {mod} import {', '.join(names)}" for mod, names in groups.items()]
    return ind + sep.join(stmts) + m["tail"]


PROSE = re.compile(r"(?<![\w/.])(" + "|".join(map(re.escape, OLD)) + r")\.py\b")


def prose_py(text: str, own_pkg: str | None = None) -> str:
    """`faces.py` in comments and prose -> `preprocess/faces.py` (just `faces.py` inside dfdlib/preprocess/)."""
    def sub(m):
        pkg, _, mod = dotted(m[1]).rpartition(".")
        return f"{mod}.py" if pkg == (own_pkg or "") and own_pkg is not None else \
            new_path(dotted(m[1])).relative_to(PKG).as_posix()
    return PROSE.sub(sub, text)


def rewrite_text(text: str) -> str:
    text = DOTTED.sub(lambda m: "dfdlib." + dotted(m[1]), text)
    text = SLASHED.sub(lambda m: "dfdlib/" + new_path(dotted(m[1])).relative_to(PKG).as_posix(), text)
    return FROM_PKG.sub(rewrite_from_pkg, text)


REL = re.compile(r"^(?P<ind>[ \t]*)from \.(?P<mod>\w*) import ", re.M)


def absolute_imports(text: str) -> str:
    """Flat-tree relative imports -> absolute `dfdlib.` ones (so the module depth no longer matters)."""
    return REL.sub(lambda m: f"{m['ind']}from dfdlib{'.' + m['mod'] if m['mod'] else ''} import ", text)


def rewrite_tables(path: Path, text: str) -> str:
    """String module names: the flat API table in __init__ and the CLI's stage list."""
    if path.name == "__init__.py" and path.parent == PKG:
        text = re.sub(r'(:\s*)"(\w+)"', lambda m: f'{m[1]}"{MAPPING.get(m[2], m[2])}"', text)
    if path.name == "cli.py" and path.parent == PKG:
        def stage_list(m):
            return re.sub(r'"(\w+)"', lambda n: f'"{MAPPING.get(n[1], n[1])}"', m[0])
        text = re.sub(r"_STAGE_MODULES = \[.*?\]", stage_list, text, flags=re.S)
    return text


def insert_import(text: str, stmt: str) -> str:
    """`stmt` as the first import after the docstring and `from __future__` (ruff's isort sorts it later)."""
    fut = re.search(r"^from __future__ import [^\n]*\n", text, re.M)
    at = fut.end() if fut else re.search(r"^(from|import) ", text, re.M).start()
    return text[:at] + stmt.rstrip("\n") + "\n" + text[at:]


# ------------------------------------------------------------------------------------------- moving names
def move_names(old_mod: str, names: list[str], core: str, doc: str | None) -> None:
    """Cut the top-level definitions `names` out of the (already moved) module and append them to dfdlib/<core>.py;
    every `from dfdlib.<old> import ...` of them, anywhere, then imports them from dfdlib.<core>."""
    src = new_path(MAPPING[old_mod])
    dst = PKG / f"{core}.py"
    lines = src.read_text().splitlines(keepends=True)
    tree = ast.parse("".join(lines))
    cut: list[tuple[int, int]] = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name in names:
            start = min([node.lineno] + [d.lineno for d in node.decorator_list]) - 1
            cut.append((start, node.end_lineno))
    if len(cut) != len(names):
        die(f"move_names: {names} not all found in {src}")
    body = []
    for a, b in sorted(cut, reverse=True):
        body.insert(0, "".join(lines[a:b]).rstrip() + "\n")
        while b < len(lines) and not lines[b].strip():
            b += 1
        del lines[a:b]
    src.write_text("".join(lines))
    if not dst.exists():
        dst.write_text(f'"""{doc}"""\nfrom __future__ import annotations\n')
        git("add", str(dst))
    dst.write_text(dst.read_text().rstrip() + "\n\n\n" + "\n\n".join(body))
    # the module that lost them still uses them -> import them back from the core
    still = [n for n in names if re.search(rf"\b{n}\b", src.read_text())]
    if still:
        src.write_text(insert_import(src.read_text(), f"from dfdlib.{core} import {', '.join(still)}"))
    for path in python_files():
        text = path.read_text()
        # from the module that defined them or any that passed them through
        new = retarget_imports(text, rf"dfdlib\.(?!{core}\b)[\w.]+", names, f"dfdlib.{core}")
        if new != text:
            path.write_text(new)


def retarget_imports(text: str, module: str, names: list[str], target: str) -> str:
    """In `from <module> import a, b ...` statements (`module` a regex), names in `names` are imported from
    `target` instead."""
    pat = re.compile(rf"^(?P<ind>[ \t]*)from (?P<mod>{module}) import (?P<body>\([^)]*\)|[^\n#]*?)(?P<tail>\s*(?:#[^\n]*)?)$", re.M)

    def sub(m):
        items = [p.strip() for p in m["body"].strip("()").replace("\n", " ").split(",") if p.strip()]
        moved = [i for i in items if i.split(" as ")[0].strip() in names]
        if not moved:
            return m[0]
        kept = [i for i in items if i not in moved]
        tail = "" if "F401" in m["tail"] else m["tail"]  # a pass-through of a moved name is not kept
        out = [f"{m['ind']}from {target} import {', '.join(moved)}{tail}"]
        if kept:
            out.append(f"{m['ind']}from {m['mod']} import {', '.join(kept)}{m['tail']}")
        return "\n".join(out)

    return pat.sub(sub, text)


# ------------------------------------------------------------------------------------------- small patches
def patch(path: Path, old: str, new: str, count: int = 1) -> None:
    text = path.read_text()
    if text.count(old) < 1:
        die(f"patch: {path.relative_to(ROOT)} no longer contains {old!r}: update the PATCHES in this script")
    path.write_text(text.replace(old, new, count if count else -1))


def patches() -> None:
    """Small edits a plain move cannot do, written against main's text so they fail loudly if it changed."""
    # one number for the people scored per video: the app uses predict's
    core = new_path("app.core")
    patch(core, "MAX_FACES = 4                         # faces scored per video (most prominent first)\n",
          "MAX_FACES = SCORED_FACES              # faces scored per video (most prominent first): predict's default\n")
    core.write_text(insert_import(core.read_text(), "from dfdlib.predict.verdict import SCORED_FACES"))
    # `from dfdlib import demo` keeps working: the flat API serves whole modules too
    lazy = new_path("_lazy")
    patch(lazy, "def lazy_getattr(module_name: str, sources: dict[str, str]):",
          "def lazy_getattr(module_name: str, sources: dict[str, str], modules: dict[str, str] | None = None):")
    patch(lazy, "from that sibling, imported on first use and then cached on the module. Other names raise AttributeError.",
          "from that sibling, imported on first use and then cached on the module, and each name in `modules`\n"
          "    ({name: submodule}) as that submodule itself. Other names raise AttributeError.")
    patch(lazy, """        if name in sources:
            value = getattr(importlib.import_module(f".{sources[name]}", module.__package__), name)
""", """        if name in sources or name in (modules or {}):
            if name in sources:
                value = getattr(importlib.import_module(f".{sources[name]}", module.__package__), name)
            else:
                value = importlib.import_module(f".{modules[name]}", module.__package__)
""")
    init = new_path("__init__")
    modules = ", ".join(f'"{k}": "{v}"' for k, v in FLAT_MODULES.items())
    patch(init, "__all__ = sorted(_API)",
          f"# modules served whole: the notebooks' helpers (`from dfdlib import demo`)\n_MODULES = {{{modules}}}\n\n"
          "__all__ = sorted(_API)")
    patch(init, "__getattr__ = lazy_getattr(__name__, _API)", "__getattr__ = lazy_getattr(__name__, _API, _MODULES)")
    wrap_api_table(init)
    # re-export lines that only passed names through: faces (tracks' names), train_setup (amp's, for the trainer)
    patch(new_path("preprocess.faces"), "seen_summary, track_main_face  # noqa: F401\n", "seen_summary, track_main_face\n")
    patch(new_path("training.setup"),
          "from dfdlib.training.amp import choose_amp, cpu_has_native_bf16  # noqa: F401 - re-exported for the trainer\n", "")
    loop = new_path("training.loop")
    patch(loop, "ts.choose_amp(cfg.amp, device.type)", "choose_amp(cfg.amp, device.type)")
    loop.write_text(insert_import(loop.read_text(), "from dfdlib.training.amp import choose_amp"))
    for path in python_files():  # who imported tracks' names through faces imports them from tracks
        text = path.read_text()
        new = retarget_imports(text, r"dfdlib\.preprocess\.faces", ["appearance", "build_tracks", "fill_missing",
                               "rank_tracks", "seen_summary", "track_main_face"], "dfdlib.preprocess.tracks")
        if new != text:
            path.write_text(new)
    # dead names: layout_scan.list_videos only passed video.find_videos through (with recursive=False)
    scan = new_path("datasets.scan")
    patch(scan, '''def list_videos(folder: Path, recursive: bool = False) -> list[Path]:
    """Videos in `folder` (video.find_videos: by extension, sorted, hidden skipped, broken links kept)."""
    return find_videos(folder, recursive)


''', "")
    text = re.sub(r"list_videos\((\w+), recursive=True\)", r"find_videos(\1)", scan.read_text())
    scan.write_text(re.sub(r"list_videos\((\w+)\)", r"find_videos(\1, recursive=False)", text))
    patch(new_path("utils"), 'IMAGE_EXT = (".jpg", ".jpeg", ".png")\n', "")
    # tests that read dfdlib/*.py read the tree
    patch(ROOT / "tests/test_faults.py", 'parent.glob("*.py")', 'parent.rglob("*.py")')


STAGE_DOCS = {
    "datasets": "Dataset folder layouts (real/fake, FF++, DFD, Celeb-DF, DFDC, manifest): read by preprocess and labels.",
    "preprocess": "Stage 1, videos -> faces: detection, tracks, square crops, the dataset run and `dfd preprocess`.",
    "labels": "Stage 2, faces -> labels CSV: the schema, the CSV file, splits, importers and `dfd labels`.",
    "training": ("Stage 3, labels + faces -> model: `train()`, its setup and checkpoints, self-blend, sweeps and "
                 "`dfd train`.\n\n(Named `training`, not `train`: `dfdlib.train` is the public train() function.)"),
    "predict": "Stage 4, model + video -> verdict: predict, evaluate, ensembles, the models folder, Grad-CAM.",
    "app": "The web app (`dfd app`, extra `dfdlib[app]`): Gradio is imported only when the app is built.",
    "sample": "The sample data: generated footage, the labelled sample set, the demo and the notebook helpers.",
}
ORDER = ["", "datasets", "preprocess", "labels", "training", "predict", "app", "sample"]


def first_line(path: Path) -> str:
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    para = doc.strip().split("\n\n")[0].replace("\n", " ")
    return re.split(r"(?<=\.)\s", para)[0].rstrip(".").replace("|", "\\|")


def module_table() -> str:
    """The Modules section of docs/design.md, drawn from the tree."""
    rows = ["| folder | module | lines | what it holds |", "|---|---|---|---|"]
    for pkg in ORDER:
        folder = PKG / pkg if pkg else PKG
        label = f"`dfdlib/{pkg}/`" if pkg else "`dfdlib/` (core)"
        for i, p in enumerate(sorted(folder.glob("*.py"))):
            if pkg and p.name == "__init__.py":
                continue
            rows.append(f"| {label if i <= 1 else ''} | `{p.name}` | {p.read_text().count(chr(10))} | {first_line(p)} |")
            label = ""
    return "\n".join(rows)


DESIGN_INTRO = """## Modules: a small core and one subpackage per stage

The folders show the pipeline. The core at the top of `dfdlib/` (video, data, clip store, model, backbones,
blend, box geometry, metrics, config, utils, the `dfd` entry point) is shared by several stages and imports no
stage. Each stage has its subpackage with its `cli.py` or `add_cli`: `preprocess/`, `labels/`, `training/`,
`predict/`, `app/`, plus `datasets/` (layouts read by preprocess and labels) and `sample/` (generated data and
the demo). Imports go one way: preprocess never imports labels, training or predict; labels never imports
training or predict; training never imports predict or app (`tests/test_structure.py`, which also fails on an
import circle, a private name imported across modules, a module over 400 lines, more than 16 modules at the
top). `__init__` serves the flat API lazily (`_lazy.py`), so `import dfdlib` starts neither torch nor
TensorFlow; imports between dfdlib modules are absolute (`from dfdlib.preprocess.faces import ...`).

"""


def redraw_docs() -> None:
    design = ROOT / "docs/design.md"
    text = design.read_text()
    start = text.index("## Modules")
    end = text.index("| stage | module | owns | public names |")
    text = text[:start] + DESIGN_INTRO + module_table() + "\n\n" + text[end:]
    design.write_text(text)
    readme = ROOT / "README.md"
    core = " ".join(p.stem for p in sorted(PKG.glob("*.py")) if not p.stem.startswith("_"))
    stages = " ".join(f"{s}/" for s in ORDER if s)
    patch(readme, readme.read_text()[readme.read_text().index("`dfdlib/` (one module per stage:"):
                                     readme.read_text().index("`), `notebooks/`") + 2],
          f"`dfdlib/` (a small core: `{core}`; one subpackage per stage: `{stages}`)")


# ------------------------------------------------------------------------------------------- one CLI per stage
# Each stage's cli.py registers its commands (in the order `dfd --help` lists them); the core cli.py lists them.
STAGE_CLIS = {
    "sample": ("`dfd sample`, `dfd demo`: the sample set and the whole pipeline on it.", ["dataset", "demo"]),
    "predict": ("`dfd predict`, `dfd evaluate`, `dfd models`: verdicts, metrics on a labelled split, the models folder.",
                ["verdict", "evaluate", "registry"]),
    "app": ("`dfd app`: the web app (Gradio is imported when the app is built, not here).", ["web"]),
}


def stage_clis() -> None:
    for pkg, (doc, modules) in STAGE_CLIS.items():
        path = PKG / pkg / "cli.py"
        path.write_text(f'"""{doc}"""\nfrom __future__ import annotations\n\n'
                        f"from dfdlib.{pkg} import {', '.join(modules)}\n\n\n"
                        "def add_cli(subparsers) -> None:\n"
                        f'    """Register this stage\'s sub-commands."""\n'
                        f"    for module in ({', '.join(modules)}{',' if len(modules) == 1 else ''}):\n"
                        "        module.add_cli(subparsers)\n")
        git("add", str(path.relative_to(ROOT)))
    train_cli = new_path("training.cli")
    patch(train_cli, "    p.set_defaults(func=_cli)\n", "    p.set_defaults(func=_cli)\n    sweep.add_cli(subparsers)\n")
    patch(train_cli, "from dfdlib.config import", "from dfdlib.training import sweep\nfrom dfdlib.config import")
    patch(train_cli, '"""`dfd train`:', '"""`dfd train` and `dfd sweep`. `dfd train`:')
    cli = new_path("cli")
    text = cli.read_text()
    stages = ", ".join(f'"{p}.cli"' for p in ["sample", "preprocess", "labels", "training", "predict", "app"])
    text, n = re.subn(r"_STAGE_MODULES = \[.*?\]", f"_STAGE_MODULES = [{stages}]", text, flags=re.S)
    if n != 1:
        die("cli.py: no _STAGE_MODULES list")
    cli.write_text(text.replace("# (module, ...) whose add_cli() registers sub-commands",
                                "# each stage's cli module, whose add_cli() registers its sub-commands,"))


# ------------------------------------------------------------------------------------------- imports at the top
HEAVY = {"torch", "torchvision", "tensorflow", "gradio", "mtcnn", "matplotlib", "sklearn", "papermill", "nbformat"}


def _dotted(path: Path) -> str:
    parts = list(path.relative_to(PKG).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def hoist_imports() -> list[str]:
    """Move function-level `from dfdlib.x import ...` lines to the top of the module, where x starts no heavy
    library (torch, TensorFlow, Gradio, ...) at import, no import circle results, and the tests do not
    monkeypatch one of the names (a local import reads the patched attribute at call time). Returns what moved."""
    paths = {_dotted(p): p for p in PKG.rglob("*.py")}
    top: dict[str, set[str]] = {}
    heavy_here: dict[str, bool] = {}
    for name, path in paths.items():
        tree = ast.parse(path.read_text())
        deps, heavy = set(), False
        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("dfdlib."):
                deps.add(node.module[len("dfdlib."):])
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                heavy |= node.module.split(".")[0] in HEAVY
            elif isinstance(node, ast.Import):
                heavy |= any(a.name.split(".")[0] in HEAVY for a in node.names)
        top[name], heavy_here[name] = deps & set(paths), heavy

    def reach(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            m = todo.pop()
            if m not in seen:
                seen.add(m)
                todo += list(top.get(m, ()))
        return seen

    tests = "\n".join(p.read_text() for p in ROOT.glob("tests/*.py"))
    patched = set(re.findall(r'setattr\(\s*[\w.]+\s*,\s*"(\w+)"', tests))
    patched |= set(re.findall(r'setattr\(\s*"dfdlib\.[\w.]+\.(\w+)"', tests))
    patched |= set(re.findall(r'patch\(\s*"dfdlib\.[\w.]+\.(\w+)"', tests))
    moved = []
    for name, path in sorted(paths.items()):
        if name in ("__init__", "__main__", "cli", "_lazy") or name.startswith("app.web"):
            continue
        lines = path.read_text().splitlines(keepends=True)
        tree = ast.parse("".join(lines))
        top_nodes = set(map(id, tree.body))
        hoisted, drop = [], []
        for node in ast.walk(tree):
            if not (isinstance(node, ast.ImportFrom) and id(node) not in top_nodes and not node.level
                    and (node.module or "").startswith("dfdlib.") and node.lineno == node.end_lineno):
                continue
            dep = node.module[len("dfdlib."):]
            names = [a.asname or a.name for a in node.names]
            deps = [f"{dep}.{a.name}" for a in node.names if f"{dep}.{a.name}" in paths] or [dep]  # pkg import mod
            if any(d not in paths or any(heavy_here[m] for m in reach(d)) or name in reach(d) for d in deps) \
                    or any(a.name in patched for a in node.names):
                continue
            stmt = lines[node.lineno - 1].strip().split("  #")[0]
            if stmt != ast.unparse(node):
                continue
            if any(re.search(rf"^\s+{re.escape(n)}\s*=", "".join(lines), re.M) for n in names):
                continue  # the local name is also assigned in a function: keep it local
            hoisted.append(stmt)
            drop.append(node.lineno - 1)
            top[name].update(deps)
            moved.append(f"{name}: {stmt}")
        if not hoisted:
            continue
        for i in sorted(drop, reverse=True):
            body_after = lines[i + 1] if i + 1 < len(lines) else ""
            del lines[i]
            if i < len(lines) and not body_after.strip() and lines[i - 1].strip() == "":
                pass
        path.write_text(insert_import("".join(lines), "".join(s + "\n" for s in dict.fromkeys(hoisted))))
    return moved


def wrap_api_table(init: Path) -> None:
    """Re-wrap the flat API table's lines (longer now that they name subpackages) at 110 columns."""
    out = []
    for line in init.read_text().splitlines():
        if len(line) > 110 and re.fullmatch(r'    ("\w+": "[\w.]+",\s*)+', line):
            cur = "   "
            for pair in re.findall(r'"\w+": "[\w.]+",', line):
                if len(cur) + 1 + len(pair) > 110:
                    out.append(cur)
                    cur = "   "
                cur += " " + pair
            out.append(cur)
        else:
            out.append(line)
    init.write_text("\n".join(out) + "\n")


def python_files() -> list[Path]:
    out = [p for p in PKG.rglob("*.py")]
    for g in ("tests/**/*.py", "benchmarks/**/*.py", "scripts/*.py", "notebooks/*.py"):
        out += [p for p in ROOT.glob(g) if p.resolve() != Path(__file__).resolve()]
    return out


def text_files() -> list[Path]:
    out = []
    for g in TEXT_GLOBS:
        out += [p for p in ROOT.glob(g) if p.is_file() and p.resolve() != Path(__file__).resolve()
                and "restructure_files" not in p.parts]
    return sorted(set(out))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dry-run", action="store_true", help="check MAPPING and print the plan; change nothing")
    ap.add_argument("--no-ruff", action="store_true", help="skip `ruff check --fix --select I` at the end")
    args = ap.parse_args()
    if state() == "done":
        print("restructure: dfdlib/ is already restructured; nothing to do")
        return 0
    if args.dry_run:
        for o, n in MAPPING.items():
            print(f"dfdlib/{o}.py -> {new_path(n).relative_to(ROOT)}")
        return 0
    # 1. references, while the tree is still flat
    for path in PKG.glob("*.py"):
        text = path.read_text()
        new = rewrite_tables(path, rewrite_text(absolute_imports(text)))
        new = prose_py(new, MAPPING[path.stem].rpartition(".")[0])
        if new != text:
            path.write_text(new)
    for path in text_files():
        text = path.read_text()
        new = rewrite_text(text)
        new = prose_py(new)  # `faces.py` in prose -> `preprocess/faces.py`
        if new != text:
            path.write_text(new)
    # 2. the move
    packages = sorted({n.rpartition(".")[0] for n in MAPPING.values() if "." in n})
    for pkg in packages:
        (PKG / pkg).mkdir(exist_ok=True)
    for o, n in MAPPING.items():
        if o != n:
            git("mv", f"dfdlib/{o}.py", str(new_path(n).relative_to(ROOT)))
    for pkg in packages:
        init = PKG / pkg / "__init__.py"
        init.write_text(f'"""{STAGE_DOCS.get(pkg, f"dfdlib.{pkg}.")}\n\nThe public names are served flat by `dfdlib` (`dfdlib.<name>`).\n"""\n')
        git("add", str(init.relative_to(ROOT)))
    # 3. shared helpers down into the core, then the small patches
    for old_mod, names, core, doc in MOVES:
        move_names(old_mod, names, core, doc)
    patches()
    stage_clis()
    for line in hoist_imports():
        print(f"restructure: to the top: {line}")
    # 4. prepared files
    for src in (FILES / "copy").rglob("*"):
        if src.is_file():
            dst = ROOT / src.relative_to(FILES / "copy")
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
            git("add", str(dst.relative_to(ROOT)))
    redraw_docs()
    # 5. import order (absolute imports sort differently from relative ones)
    if not args.no_ruff:
        ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
        subprocess.run([ruff, "check", "--fix", "--select", "I,F401", "--quiet", "dfdlib", "tests", "benchmarks",
                        "scripts", "notebooks"], cwd=ROOT)
        for nb in ROOT.glob("notebooks/*.ipynb"):
            json.loads(nb.read_text())  # still valid JSON
    print(f"restructure: moved {sum(o != n for o, n in MAPPING.items())} modules into {', '.join(packages)}; "
          "now run: pytest tests/test_structure.py, ruff check, scripts/sync_notebooks.py --check")
    return 0


if __name__ == "__main__":
    sys.exit(main())

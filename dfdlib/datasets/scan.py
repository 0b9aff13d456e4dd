"""Dataset layouts, the scanners: one function per public layout that lists its videos as `Sample`s.

Each scanner reads the folder tree (and the dataset's own metadata files) only, never a video. It
returns samples with `links`: keys shared by samples that show the same footage (`strong`) or the same
person (`weak`); layouts.py joins them into groups. A bad item (an empty method folder, a metadata
entry without its file, a manifest row with an unknown label) is added to `problems` and skipped:
the rest of the dataset goes on. Trees: FaceForensics++ (Rössler et al., ICCV 2019), Celeb-DF (Li et
al., CVPR 2020), DFDC (Dolhansky et al., 2020); see /work/shared/DATASETS.md and the README.
"""
from __future__ import annotations

import csv
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from dfdlib.utils import parse_label
from dfdlib.video import find_videos

CLASSES = ("real", "fake")  # label 0, label 1 (utils.parse_label reads a label cell)


class LayoutError(ValueError):
    """The folder tree matches no known layout, or a layout's essential file is unusable."""


@dataclass
class Sample:
    """One video of a dataset, as a layout scanner found it."""
    path: str                 # absolute path of the video
    video: str                # path relative to the dataset root (posix), as written in the report
    label: str                # "real" | "fake"
    name: str                 # output folder under OUT/<label>/ (may contain '/'; unique per label)
    method: str = ""          # manipulation method / source: FF++ method, Celeb-synthesis, DFDC, real
    group: str = ""           # leakage group (set by layouts.find_samples from the links)
    original: str | None = None  # absolute path of the real video a fake was made from, if known
    split: str | None = None  # official split (train/val/test) or None
    note: str = ""            # said in the report's reason column
    strong: tuple[str, ...] = field(default=(), repr=False)  # footage keys: always joined
    weak: tuple[str, ...] = field(default=(), repr=False)    # identity keys: joined unless they merge most


def _class_of(text) -> str | None:
    """A label cell (REAL/FAKE in any case, 0/1) → "real"/"fake", None when it is neither."""
    label = parse_label(text)[0]
    return None if label is None else CLASSES[label]


def _abs(p: Path) -> str:
    try:
        return str(p.resolve())
    except (OSError, RuntimeError):  # a link loop: reported as unreadable by the preprocess stage
        return os.path.abspath(p)


def _sample(root: Path, p: Path, label: str, name: str, **kw) -> Sample:
    return Sample(_abs(p) if p.exists() else os.path.abspath(p), p.relative_to(root).as_posix(), label, name, **kw)


def _dirs(folder: Path) -> list[Path]:
    return sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))


def class_dirs(root: Path) -> dict[str, Path]:
    """`real`/`fake` folders of `root`, matched case-insensitively."""
    return {d.name.lower(): d for d in _dirs(root) if d.name.lower() in CLASSES}


# ---------------------------------------------------------------- real/ + fake/ (recursive)
def scan_real_fake(root: Path, problems: list[str]) -> list[Sample]:
    """`real/**` and `fake/**`: the name keeps subfolders (`fake/Deepfakes/000_003` → `Deepfakes/000_003`);
    the method of a fake is its first subfolder (or `fake`)."""
    out = []
    for label, d in class_dirs(root).items():
        vids = find_videos(d)
        if not vids:
            problems.append(f"{d} holds no videos; put the {label} videos there (subfolders are fine)")
        for p in vids:
            rel = p.relative_to(d)
            name = rel.with_suffix("").as_posix()
            method = rel.parts[0] if label == "fake" and len(rel.parts) > 1 else label
            out.append(_sample(root, p, label, name, method=method, strong=(f"{label}/{name}",)))
    return out


# ---------------------------------------------------------------- FaceForensics++
_FF_FAKE = re.compile(r"(\d+)_(\d+)")                     # 000_003: footage 000, face of 003
_DFD_REAL = re.compile(r"(\d+)__(.+)")                    # 01__exit_phone_room
_DFD_FAKE = re.compile(r"(\d+)_(\d+)__(.+?)__[A-Za-z0-9]+")  # 01_02__exit_phone_room__YVGY8LOK


def scan_ffpp(root: Path, problems: list[str]) -> list[Sample]:
    """`original_sequences/<source>/<compression>/videos/*` (real) and
    `manipulated_sequences/<Method>/<compression>/videos/*` (fake); `masks/` folders are not samples."""
    out, reals = [], {}
    for kind, label in (("original_sequences", "real"), ("manipulated_sequences", "fake")):
        base = root / kind
        if not base.is_dir():
            continue
        for src in _dirs(base):
            comps = [c for c in _dirs(src) if c.name != "masks"]
            if not comps:
                problems.append(f"{src} has no compression folder (raw/, c23/ or c40/ with videos/ inside); "
                                "download that method's videos or remove the folder")
            for comp in comps:
                vdir = comp / "videos"
                vids = find_videos(vdir, recursive=False) if vdir.is_dir() else []
                if not vids:
                    problems.append(f"{vdir} has no videos: {src.name} {comp.name} is left out; download "
                                    "its videos or remove the folder")
                for p in vids:
                    name = f"{src.name}/{comp.name}/{p.stem}"
                    s = _sample(root, p, label, name, method="real" if label == "real" else src.name)
                    _ffpp_links(s, p.stem, comp.name, reals)
                    out.append(s)
    for s in out:  # each fake's original: the real with its footage, same compression if there
        if s.label == "fake" and s.strong:
            orig = reals.get((s.strong[0], s.name.split("/")[1])) or reals.get(s.strong[0])
            s.original = orig.path if orig else None
    return out


def _ffpp_links(s: Sample, stem: str, comp: str, reals: dict) -> None:
    if s.label == "real":
        m = _DFD_REAL.fullmatch(stem)
        if m:  # DeepFakeDetection actor: footage = actor + scene, identity = actor
            s.strong, s.weak = (f"dfd:{m[1]}__{m[2]}",), (f"dfd-actor:{m[1]}",)
        else:  # YouTube id: footage and identity are one
            s.strong = (f"ff:{stem}",)
        reals.setdefault(s.strong[0], s)
        reals[(s.strong[0], comp)] = s
        return
    m = _DFD_FAKE.fullmatch(stem)
    if m:
        s.strong, s.weak = (f"dfd:{m[1]}__{m[3]}",), (f"dfd-actor:{m[1]}", f"dfd-actor:{m[2]}")
        return
    m = _FF_FAKE.fullmatch(stem)
    # A_B: footage of A, face (or expressions) of B, and the same pair in every method: all are one group.
    s.strong = (f"ff:{m[1]}", f"ff:{m[2]}") if m else (f"fake/{s.name}",)


# ---------------------------------------------------------------- Celeb-DF v1/v2
_CDF_REAL = re.compile(r"(id\d+)_(\d+)")
_CDF_FAKE = re.compile(r"(id\d+)_(id\d+)_(\d+)")
CELEB_DIRS = ("Celeb-real", "YouTube-real", "Celeb-synthesis")


def name_links(stem: str, label: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(footage keys, identity keys) that a video's own name implies, for trees that lost their dataset's
    folders (a face-frame copy, a processed tree without samples.csv): FF++ `A_B` / `A`, DeepFakeDetection
    actors, Celeb-DF `idX_idY_NNNN` / `idX_NNNN`. ((), ()) when the name follows none of them."""
    if label == "fake":
        if m := _DFD_FAKE.fullmatch(stem):
            return (f"dfd:{m[1]}__{m[3]}",), (f"dfd-actor:{m[1]}", f"dfd-actor:{m[2]}")
        if m := _CDF_FAKE.fullmatch(stem):
            return (f"cdf:{m[1]}_{m[3]}",), (f"cdf-id:{m[1]}", f"cdf-id:{m[2]}")
        if m := _FF_FAKE.fullmatch(stem):
            return (f"ff:{m[1]}", f"ff:{m[2]}"), ()
        return (), ()
    if m := _DFD_REAL.fullmatch(stem):
        return (f"dfd:{m[1]}__{m[2]}",), (f"dfd-actor:{m[1]}",)
    if m := _CDF_REAL.fullmatch(stem):
        return (f"cdf:{m[1]}_{m[2]}",), (f"cdf-id:{m[1]}",)
    return ((f"ff:{stem}",), ()) if stem.isdigit() else ((), ())


def scan_celebdf(root: Path, problems: list[str]) -> list[Sample]:
    """`Celeb-real/idX_NNNN`, `YouTube-real/NNNNN` (real) and `Celeb-synthesis/idX_idY_NNNN` (fake of the
    footage idX_NNNN with the face of idY)."""
    out = []
    for sub in CELEB_DIRS:
        d = root / sub
        if not d.is_dir():
            continue
        vids = find_videos(d, recursive=False)
        if not vids:
            problems.append(f"{d} has no videos; download them or remove the folder")
        label = "fake" if sub == "Celeb-synthesis" else "real"
        for p in vids:
            s = _sample(root, p, label, f"{sub}/{p.stem}", method=sub if label == "fake" else "real")
            m = (_CDF_FAKE if label == "fake" else _CDF_REAL).fullmatch(p.stem)
            if sub == "YouTube-real" or not m:
                s.strong = (f"{sub}/{p.stem}",)
            elif label == "real":
                s.strong, s.weak = (f"cdf:{m[1]}_{m[2]}",), (f"cdf-id:{m[1]}",)
            else:
                s.strong, s.weak = (f"cdf:{m[1]}_{m[3]}",), (f"cdf-id:{m[1]}", f"cdf-id:{m[2]}")
                orig = root / "Celeb-real" / f"{m[1]}_{m[3]}{p.suffix}"
                s.original = _abs(orig) if orig.exists() else None
            out.append(s)
    return out


# ---------------------------------------------------------------- DFDC
def dfdc_folders(root: Path) -> list[Path]:
    """Folders (root and two levels below) holding a DFDC `metadata.json` or a test-set `labels.csv`."""
    found = []
    for d in [root] + _dirs(root) + [g for c in _dirs(root) for g in _dirs(c)]:
        if (d / "metadata.json").is_file() or _csv_header(d / "labels.csv") >= {"filename", "label"}:
            found.append(d)
    return found


def _csv_header(path: Path) -> set[str]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            return {h.strip().lower() for h in next(csv.reader(f), [])}
    except (OSError, UnicodeDecodeError, csv.Error):
        return set()


def scan_dfdc(root: Path, problems: list[str]) -> list[Sample]:
    """Every `metadata.json` folder (`{"x.mp4": {"label": "FAKE", "original": "y.mp4"}}`) and test-set
    `labels.csv` (`filename,label`, 1 = fake; videos beside it or in `videos/`)."""
    out = []
    for d in dfdc_folders(root):
        rel = "" if d == root else d.relative_to(root).as_posix() + "/"
        if (d / "metadata.json").is_file():
            entries = _dfdc_metadata(d / "metadata.json", problems)
            vdir = d
        else:
            entries = _dfdc_labels_csv(d / "labels.csv", problems)
            vdir = d / "videos" if (d / "videos").is_dir() else d
        present = {p.name: p for p in find_videos(vdir, recursive=False)}
        missing = sorted(set(entries) - set(present))
        if missing:
            problems.append(f"{d}: {len(missing)} video(s) named in its metadata are not in {vdir} (a partial "
                            f"download?) and are left out: {', '.join(missing[:10])}" + (" …" if len(missing) > 10 else ""))
        extra = sorted(set(present) - set(entries))
        if extra:
            problems.append(f"{d}: {len(extra)} video(s) in {vdir} have no label in its metadata and are left out: "
                            f"{', '.join(extra[:10])}; add them to the metadata or use a manifest CSV")
        for fname, (label, orig) in entries.items():
            if fname not in present:
                continue
            p = present[fname]
            s = _sample(root, p, label, rel + p.stem, method="DFDC" if label == "fake" else "real")
            s.strong = (f"dfdc:{Path(orig).stem if orig else p.stem}",)
            s.original = orig  # a file name for now; find_samples resolves it over all folders
            out.append(s)
    by_name = {Path(s.path).name: s.path for s in out if s.label == "real"}
    for s in out:
        s.original = by_name.get(s.original) if s.original else None
    return out


def _dfdc_metadata(path: Path, problems: list[str]) -> dict[str, tuple[str, str | None]]:
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(meta, dict):
            raise ValueError("the top level is not an object")
    except (OSError, ValueError) as e:
        problems.append(f"{path} is not a readable DFDC metadata.json ({e}); that folder is left out. Expected "
                        '{"video.mp4": {"label": "FAKE", "original": "other.mp4"}, …}')
        return {}
    entries = {}
    for fname, info in meta.items():
        label = _class_of(info.get("label")) if isinstance(info, dict) else None
        if label is None:
            problems.append(f"{path}: entry {fname!r} has no label REAL or FAKE; left out")
            continue
        entries[fname] = (label, info.get("original") or None)
    return entries


def _dfdc_labels_csv(path: Path, problems: list[str]) -> dict[str, tuple[str, None]]:
    entries = {}
    with open(path, newline="", encoding="utf-8-sig") as f:
        for line, row in enumerate(csv.DictReader(f), start=2):
            row = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
            label = _class_of(row.get("label"))
            if label is None:
                problems.append(f"{path} line {line}: label {row.get('label')!r} is not 0/1 (1 = fake); left out")
                continue
            entries[row["filename"]] = (label, None)
    return entries


# ---------------------------------------------------------------- manifest CSV
def manifest_file(root: Path) -> Path | None:
    """`root` itself if it is a CSV, else the first top-level CSV with `path` and `label` columns."""
    if root.is_file():
        return root
    for p in sorted(root.glob("*.csv")):
        if _csv_header(p) >= {"path", "label"}:
            return p
    return None


def scan_manifest(root: Path, problems: list[str], csv_path: Path | None = None) -> list[Sample]:
    """Rows `path,label[,group][,method]` of a manifest CSV; paths relative to the dataset root (the CSV's
    folder) and inside it; label real/fake or 0/1."""
    csv_path = csv_path or manifest_file(root)
    if csv_path is None or not csv_path.is_file():
        raise LayoutError(f"no manifest CSV (columns path,label[,group][,method]) in {root}")
    base = csv_path.parent.resolve()
    out, seen = [], set()
    with open(csv_path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        cols = {(c or "").strip().lower() for c in reader.fieldnames or []}
        if not cols >= {"path", "label"}:
            raise LayoutError(f"{csv_path}: a manifest needs the columns path,label[,group][,method]; it has "
                              f"{', '.join(sorted(cols)) or 'none'}")
        for line, row in enumerate(reader, start=2):
            row = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
            label = _class_of(row["label"])
            p = Path(row["path"]) if Path(row["path"]).is_absolute() else base / row["path"]
            p = Path(os.path.normpath(p))
            where = f"{csv_path} line {line}"
            if label is None:
                problems.append(f"{where}: label {row['label']!r} is not real/fake or 0/1; row left out, fix it")
            elif not row["path"] or not p.is_relative_to(base):
                problems.append(f"{where}: path {row['path']!r} is outside the dataset root {base}; row left out "
                                "(give paths relative to the CSV's folder)")
            elif not p.is_file():
                problems.append(f"{where}: {p} does not exist; row left out")
            elif p in seen:
                problems.append(f"{where}: {row['path']} is listed twice; the later row is left out")
            else:
                seen.add(p)
                name = p.relative_to(base).with_suffix("").as_posix()
                s = Sample(_abs(p), p.relative_to(base).as_posix(), label, name,
                           method=row.get("method") or label)
                s.strong = (f"group:{row['group']}",) if row.get("group") else (f"{label}/{name}",)
                out.append(s)
    return out

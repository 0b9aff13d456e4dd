"""Dataset layouts: which public dataset a folder tree is, its samples, their leakage groups and official split.

`find_samples(root)` detects the layout from the tree alone (or takes `layout=`), lists every video as a
`Sample` (label, unique output name, method/source, group, original, official split) and returns the
problems it skipped. Groups are connected components (union-find) of the keys the scanners give: FF++
`A_B` joins `A` and `B`; Celeb-DF `idX_idY_NNNN` joins `idX_NNNN` and identities idX, idY; a DFDC fake
joins its original. Identity keys are dropped (with a warning) when they would put most of a dataset in one
group, so a group-aware split stays possible (footage is still never shared). Official splits: FF++
`train.json/val.json/test.json` (lists of id pairs), Celeb-DF `List_of_testing_videos.txt`.
"""
from __future__ import annotations

import json
import os
import warnings
from collections import Counter
from pathlib import Path

from dfdlib.datasets.scan import (
    CELEB_DIRS,
    LayoutError,
    Sample,
    class_dirs,
    dfdc_folders,
    manifest_file,
    scan_celebdf,
    scan_dfdc,
    scan_ffpp,
    scan_manifest,
    scan_real_fake,
)
from dfdlib.utils import UnionFind

# name → (expected tree shown in errors, scanner). Detection tries them in this order.
LAYOUTS = {
    "ffpp": ("FaceForensics++:  ROOT/original_sequences/youtube/c23/videos/000.mp4\n"
             "                  ROOT/manipulated_sequences/Deepfakes/c23/videos/000_003.mp4  (any methods/compressions)\n"
             "                  [ROOT/splits/{train,val,test}.json]", scan_ffpp),
    "celebdf": ("Celeb-DF:         ROOT/Celeb-real/id0_0000.mp4  ROOT/YouTube-real/00000.mp4\n"
                "                  ROOT/Celeb-synthesis/id0_id1_0000.mp4  [ROOT/List_of_testing_videos.txt]", scan_celebdf),
    "dfdc": ("DFDC:             ROOT/dfdc_train_part_0/{*.mp4,metadata.json} …  or  ROOT/test/{videos/*.mp4,labels.csv}",
             scan_dfdc),
    "manifest": ("manifest:         ROOT/manifest.csv (path,label[,group][,method]; paths inside ROOT)", scan_manifest),
    "real_fake": ("real/fake:        ROOT/real/**/*.mp4  ROOT/fake/**/*.mp4  (subfolders kept in the name)",
                  scan_real_fake),
}
GIANT_GROUP = 0.5  # identity links are dropped when one group would hold more than this share of the samples


def _matches(root: Path) -> list[str]:
    if root.is_file():
        return ["manifest"] if root.suffix.lower() == ".csv" else []
    found = []
    if (root / "original_sequences").is_dir() or (root / "manipulated_sequences").is_dir():
        found.append("ffpp")
    if any((root / d).is_dir() for d in CELEB_DIRS):
        found.append("celebdf")
    if dfdc_folders(root):
        found.append("dfdc")
    if manifest_file(root):
        found.append("manifest")
    if class_dirs(root):
        found.append("real_fake")
    return found


def expected_trees() -> str:
    return "\n".join(f"  {name:<10} {tree}" for name, (tree, _) in LAYOUTS.items())


def detect_layout(root: str | os.PathLike) -> str:
    """The layout name of a dataset root, from its folder tree alone (the first of LAYOUTS that matches).
    Raises FileNotFoundError (no such folder) or LayoutError naming the layouts and their trees."""
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"dataset folder {root} does not exist (or is not a folder)")
    found = _matches(root)
    if not found:
        seen = sorted(d.name for d in root.iterdir() if not d.name.startswith("."))[:8] if root.is_dir() else []
        raise LayoutError(
            f"{root} matches no dataset layout: no real/ or fake/ folder (it contains: "
            f"{', '.join(seen) or 'nothing'}). Known layouts (--layout NAME) and the trees they expect:\n"
            f"{expected_trees()}\nArrange the videos like one of these, or list them in a manifest CSV.")
    return found[0]


def find_samples(root: str | os.PathLike, layout: str | None = None, split_file: str | os.PathLike | None = None
                 ) -> tuple[str, list[Sample], list[str]]:
    """Detect (or take) the layout of `root` and list its samples.

    Takes the dataset root (a manifest CSV file is accepted too), an optional layout name (LAYOUTS) and an
    optional official split file (FF++ `train.json`/`val.json`/`test.json` or a folder with them, Celeb-DF
    `List_of_testing_videos.txt`; found in the tree when not given). Returns (layout, samples sorted by
    label then video with unique names per label and groups set, problems: the skipped items, each naming
    its file and what to do). Raises FileNotFoundError, LayoutError (unknown tree or layout, no samples).
    """
    root = Path(root)
    name = layout or detect_layout(root)
    if name not in LAYOUTS:
        raise LayoutError(f"unknown layout {name!r}; choose one of {', '.join(LAYOUTS)}:\n{expected_trees()}")
    if not root.exists():
        raise FileNotFoundError(f"dataset folder {root} does not exist (or is not a folder)")
    problems: list[str] = []
    if name == "manifest":
        csv_path = manifest_file(root)
        samples = scan_manifest(root.parent if root.is_file() else root, problems, csv_path)
    else:
        samples = LAYOUTS[name][1](root, problems)
    if not samples:
        detail = "".join(f"\n  {p}" for p in problems[:10])
        raise LayoutError(f"{root}: no videos found for layout {name!r}{detail}\nExpected:\n{expected_trees()}")
    samples.sort(key=lambda s: (s.label != "real", s.video))
    _unique_names(samples)
    assign_groups(samples, problems)
    _official_split(root, name, samples, split_file, problems)
    for p in problems:
        warnings.warn(p, UserWarning, stacklevel=2)
    return name, samples, problems


def _unique_names(samples: list[Sample]) -> None:
    """Two videos with one output name under a label (a.avi, a.mp4): the first keeps it, the next keeps its
    extension (`a.mp4`, then `a.mp4-2` …) and says so in its note."""
    taken: dict[tuple[str, str], str] = {}
    for s in samples:
        name = s.name
        if (s.label, name) in taken:
            k, name = 2, s.name + Path(s.path).suffix
            while (s.label, name) in taken:
                name, k = f"{s.name}{Path(s.path).suffix}-{k}", k + 1
            s.note = f"output folder {s.label}/{name} because {s.label}/{s.name} is taken by " \
                     f"{Path(taken[(s.label, s.name)]).name}"
            s.name = name
        taken[(s.label, name)] = s.video


def assign_groups(samples: list[Sample], problems: list[str] | None = None) -> None:
    """Set each sample's `group` to its connected component over the strong (and weak) keys (union-find).
    Weak (identity) keys are ignored when they would join more than GIANT_GROUP of the samples."""
    def components(use_weak: bool) -> list[str]:
        sets = UnionFind()  # the smallest key names the group: stable across runs
        for s in samples:
            keys = list(s.strong) + (list(s.weak) if use_weak else []) or [f"{s.label}/{s.name}"]
            for k in keys[1:]:
                sets.union(keys[0], k)
        return [sets.find((list(s.strong) or [f"{s.label}/{s.name}"])[0]) for s in samples]

    groups = components(True)
    biggest = Counter(groups).most_common(1)[0][1] if groups else 0
    if any(s.weak for s in samples) and len(samples) >= 4 and biggest > GIANT_GROUP * len(samples):
        msg = (f"grouping by identity would put {biggest} of {len(samples)} videos in one group (identities are "
               "shared across many fakes); grouping by footage only: a fake stays with the video it was made from")
        if problems is not None:
            problems.append(msg)
        groups = components(False)
    for s, g in zip(samples, groups, strict=True):
        s.group = g


# ---------------------------------------------------------------- official splits
def _official_split(root: Path, layout: str, samples: list[Sample], split_file, problems: list[str]) -> None:
    path = Path(split_file) if split_file else None
    if path is not None and not path.exists():
        raise FileNotFoundError(f"split file {path} does not exist")
    if path is None and root.is_dir():
        for cand in (root / "List_of_testing_videos.txt", root / "splits", root / "test.json"):
            if cand.exists() and (cand.suffix != "" or (cand / "test.json").is_file()):
                path = cand
                break
    if path is None:
        return
    if path.suffix.lower() == ".txt":
        _celebdf_list(path, root, samples, problems)
    else:
        _ffpp_lists(path.parent if path.is_file() else path, samples, problems)


def _ffpp_lists(folder: Path, samples: list[Sample], problems: list[str]) -> None:
    """FF++ `{train,val,test}.json` (pairs of ids [[A, B], …]): ids A, B and fakes A_B, B_A go to that split."""
    where: dict[str, str] = {}
    for split in ("train", "val", "test"):
        f = folder / f"{split}.json"
        if not f.is_file():
            continue
        try:
            pairs = json.loads(f.read_text())
            ids = [str(x) for pair in pairs for x in pair]
        except (OSError, ValueError, TypeError) as e:
            raise LayoutError(f"{f} is not a FF++ split list ([[\"071\", \"054\"], …]): {e}") from None
        for i in ids:
            if where.setdefault(i, split) != split:
                problems.append(f"{f}: id {i} is also in {where[i]}.json; kept in {where[i]}")
    if not where:
        raise LayoutError(f"{folder} has no train.json, val.json or test.json (FF++ split lists)")
    for s in samples:
        if not s.strong or not s.strong[0].startswith("ff:"):
            continue
        ids = [k[3:] for k in s.strong]
        got = {where.get(i) for i in ids}
        s.split = where.get(ids[0])
        if len(got) > 1:
            problems.append(f"{s.video}: its ids {', '.join(ids)} are in different split lists ({got}); "
                            f"put in {s.split}")


def _celebdf_list(path: Path, root: Path, samples: list[Sample], problems: list[str]) -> None:
    """Celeb-DF `List_of_testing_videos.txt` (`1 YouTube-real/00170.mp4`): listed videos → test. The
    leading number's meaning (1 = real in most copies) is cross-checked with the folder, not trusted."""
    by_video = {s.video: s for s in samples}
    listed, numbers, missing = [], [], []
    for line, text in enumerate(path.read_text().splitlines(), start=1):
        parts = text.split()
        if not parts:
            continue
        rel = parts[-1].replace("\\", "/")
        s = by_video.get(rel)
        if s is None:
            missing.append(rel)
            continue
        s.split = "test"
        listed.append((line, s))
        numbers.append(parts[0] if len(parts) > 1 else "")
    if missing:
        problems.append(f"{path}: {len(missing)} listed video(s) are not in {root} (left out): "
                        f"{', '.join(missing[:10])}")
    # The convention is whichever reading agrees with the folders more often; the rest are named.
    agree = sum((n == "1") == (s.label == "real") for n, (_, s) in zip(numbers, listed, strict=True))
    real_is = "1" if agree >= len(listed) - agree else "0"
    bad = [f"line {ln} {s.video}" for n, (ln, s) in zip(numbers, listed, strict=True)
           if n in ("0", "1") and (n == real_is) != (s.label == "real")]
    if bad:
        problems.append(f"{path}: the number of {len(bad)} line(s) contradicts the folder (read as {real_is} = real; "
                        f"the folder's label is kept): {', '.join(bad[:10])}")
    if not listed:
        problems.append(f"{path} names no video of {root}; no official split used")


# ---------------------------------------------------------------- records
def samples_frame(samples: list[Sample]):
    """Samples → DataFrame `filename,label,group,method,original,split,video` (filename = `<label>/<name>`,
    the processed folder; label 0/1; original = the processed filename of the original when it is a sample)."""
    import pandas as pd

    folder = {s.path: f"{s.label}/{s.name}" for s in samples}
    return pd.DataFrame({
        "filename": [f"{s.label}/{s.name}" for s in samples],
        "label": [int(s.label == "fake") for s in samples],
        "group": [s.group for s in samples],
        "method": [s.method for s in samples],
        "original": [folder.get(s.original, Path(s.original).stem) if s.original else "" for s in samples],
        "split": [s.split or "" for s in samples],
        "video": [s.video for s in samples],
    })


def layout_report(root, layout: str, samples: list[Sample], problems: list[str], forced: bool = False) -> dict:
    """What layout.json records: the layout, how it was chosen, counts per label/method, groups, problems."""
    return {
        "layout": layout, "chosen": "--layout" if forced else "detected", "root": str(Path(root).absolute()),
        "samples": len(samples), "labels": dict(Counter(s.label for s in samples)),
        "methods": dict(sorted(Counter(s.method for s in samples).items())),
        "groups": len({s.group for s in samples}),
        "official_split": dict(Counter(s.split for s in samples if s.split)) or None,
        "problems": problems,
    }

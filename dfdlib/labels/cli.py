"""`dfd labels`: create the labels CSV from a processed tree (any layout), a face-frame dataset, DFDC
metadata or Gobal_metadata.csv, or check a user's CSV (values, folders, leakage between splits)."""
from __future__ import annotations

import argparse
import sys
import warnings

from dfdlib.labels.io import SHORT, LabelsError, validate_labels
from dfdlib.labels.metadata import from_dfdc_metadata, from_gobal_metadata
from dfdlib.labels.originals import UNCHANGED
from dfdlib.labels.schema import DEFAULT_GLOBS, split_summary
from dfdlib.labels.sources import dataset_groups, is_frames_dataset, make_labels
from dfdlib.labels.splits import check_ratios


def _create(args):

    split = None if args.no_split else check_ratios(args.ratios)
    if args.dfdc:
        return from_dfdc_metadata(args.dfdc, args.processed, args.out, split, args.seed)
    if args.gobal:
        return from_gobal_metadata(args.gobal, args.processed, args.out, split, args.seed)
    frames = args.frames_dataset or ((args.real_glob, args.fake_glob) == DEFAULT_GLOBS
                                     and is_frames_dataset(args.processed))
    if frames:
        print(f"face-frame dataset: {args.processed} (faces already cropped; no detection needed)")
    df = make_labels(args.processed, args.out, split, args.seed, args.real_glob, args.fake_glob, frames,
                     args.min_frames, args.unchanged_faces)
    if frames:
        print(f"{len(df)} usable video folder(s), {len(df.attrs.get('unusable', {}))} unusable (see warnings)")
    return df


def _check(args):

    return validate_labels(args.check, args.processed, args.sequence_length, args.short, args.require_split,
                           groups=dataset_groups(args.processed))


def _cmd_labels(args) -> int:

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            df = _check(args) if args.check else _create(args)
        except LabelsError as e:
            for w in caught:
                print(f"warning: {w.message}", file=sys.stderr)
            print(f"dfd labels: {e}", file=sys.stderr)
            return 1
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    if args.check:
        print(f"OK: {args.check}: {len(df)} videos, frames per folder {df['frames'].min()}..{df['frames'].max()}"
              + (", no group in two splits" if "split" in df.columns and "group" in df.columns else ""))
    else:
        extra = [c for c in ("group", "method") if c in df.columns]
        print(f"wrote {len(df)} rows to {args.out}" + (f" (with {', '.join(extra)} columns)" if extra else ""))
        if "group" in df.columns:
            print(f"{df['group'].nunique()} groups; the split keeps each group in one split")
    print(split_summary(df).to_string())
    return 0


def add_cli(subparsers) -> None:
    """Register `dfd labels` (create / import / check the labels CSV)."""
    p = subparsers.add_parser(
        "labels", help="create, import, check and split the labels CSV",
        description="Create labels.csv from processed folders of any layout (FF++, Celeb-DF, DFDC, manifest, "
                    "real/fake: read from the samples.csv that `dfd preprocess` writes), from a face-frame dataset, "
                    "or import DFDC metadata.json / Gobal_metadata.csv, with a seeded train/val/test split that keeps "
                    "each group (same footage or identity) in one split and honours official split lists; or check "
                    "an existing CSV with --check (leakage: same group in two splits).",
        epilog="examples:\n  dfd labels data/processed --out labels/labels.csv\n"
               "  dfd labels data/faces --frames-dataset --min-frames 10 --out labels/faces.csv\n"
               "  dfd labels --check labels/labels.csv data/processed --sequence-length 20",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("processed", help="processed root (real/**/<video>/frame_*.jpg, fake/**/...) or face-frame "
                                     "dataset root")
    p.add_argument("--out", default="labels/labels.csv", help="CSV to write (default: labels/labels.csv)")
    p.add_argument("--real-glob", default=DEFAULT_GLOBS[0], help="folders of real videos, relative to PROCESSED "
                   "(giving a glob labels by globs only: no groups from samples.csv)")
    p.add_argument("--fake-glob", default=DEFAULT_GLOBS[1], help="folders of fake videos, relative to PROCESSED")
    p.add_argument("--ratios", default="0.7,0.15,0.15", help="train,val,test shares (default 0.7,0.15,0.15)")
    p.add_argument("--seed", type=int, default=0, help="split seed (same seed, same split)")
    p.add_argument("--no-split", action="store_true", help="write no split column")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--dfdc", action="append", metavar="METADATA_JSON",
                     help="import a DFDC metadata.json (repeat for several parts)")
    src.add_argument("--gobal", metavar="CSV", help="import the original project's Gobal_metadata.csv")
    src.add_argument("--frames-dataset", action="store_true",
                     help="PROCESSED is a face-frame dataset (real|fake/**/<video>/0001.png …, faces already "
                          "cropped): check every folder, label the usable ones (detected when not given)")
    src.add_argument("--check", metavar="LABELS_CSV", help="validate LABELS_CSV against PROCESSED instead")
    p.add_argument("--unchanged-faces", choices=UNCHANGED, default="drop",
                   help="faces of a fake (max_faces > 1) that equal its original: left out (default), labelled "
                        "real, or kept as fake without comparing")
    p.add_argument("--min-frames", type=int, default=1, help="with --frames-dataset: fewer frames = unusable")
    p.add_argument("--sequence-length", type=int, default=None, help="with --check: frames each folder needs")
    p.add_argument("--short", choices=SHORT, default="error",
                   help="with --check: folders with too few frames are an error, dropped or padded")
    p.add_argument("--require-split", action="store_true", help="with --check: every row needs a split")
    p.set_defaults(func=_cmd_labels)

"""`dfd predict`, `dfd evaluate`, `dfd models`: verdicts, metrics on a labelled split, the models folder.

Each command's parser and the small function that turns its arguments into a call of verdict.py, evaluate.py or
registry.py, whose functions the notebooks call too.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from dfdlib.metrics import format_metrics_table
from dfdlib.predict.ensemble import Ensemble, as_model
from dfdlib.predict.evaluate import evaluate_model
from dfdlib.predict.registry import MODEL_SUFFIXES, PREVIOUS, best_model, list_models, pick_best
from dfdlib.predict.verdict import MIN_FACE_FRAMES, SCORED_FACES, predict_many
from dfdlib.utils import ensure_writable, write_csv
from dfdlib.video import find_videos


def add_cli(subparsers) -> None:
    """Register `dfd predict`, `dfd evaluate` and `dfd models`."""
    _add_predict(subparsers)
    _add_evaluate(subparsers)
    _add_models(subparsers)


# --- dfd predict ---------------------------------------------------------------------------------
def _add_predict(subparsers) -> None:
    """Register `dfd predict MODEL [MODEL ...] VIDEO ...`."""
    p = subparsers.add_parser("predict", help="REAL/FAKE verdicts for videos (several models = ensemble)",
                              epilog="Exit status: 0 when every video got a verdict, 1 when one did not (no face, "
                                     "unreadable, ...: see its line) or on an error.")
    p.add_argument("paths", nargs="*", metavar="MODEL_OR_VIDEO",
                   help="model files (.pt/.pth; several = ensemble) and videos or folders of videos")
    p.add_argument("--model", action="append", default=[], help="a model file whatever its name (repeatable)")
    p.add_argument("--video", action="append", default=[], help="a video or folder whatever its name (repeatable)")
    p.add_argument("--out", help="write the predictions CSV here")
    p.add_argument("--explain", metavar="DIR", help="write Grad-CAM overlays of each video's top frames to DIR")
    p.add_argument("--threshold", type=float, help="prob_fake >= threshold → FAKE (default: the model file's)")
    p.add_argument("--sequence-length", type=int, help="frames per clip (default: the model's)")
    p.add_argument("--max-faces", type=int, help=f"people scored per video (default {SCORED_FACES}); the verdict "
                                                 "is the most-fake face's")
    p.add_argument("--min-face-frames", type=int, default=MIN_FACE_FRAMES,
                   help="a person seen in at least this many sampled frames is scored (default %(default)s; "
                        "a face seen in fewer frames than training asked for is scored on those frames)")
    p.add_argument("--models-dir", default="models", help="registry used when no model file is given")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | mps")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cli_predict)


def _cli_predict(args) -> int:
    models = [p for p in args.paths if Path(p).suffix.lower() in MODEL_SUFFIXES] + args.model
    inputs = [p for p in args.paths if Path(p).suffix.lower() not in MODEL_SUFFIXES] + args.video
    if not inputs:
        raise ValueError("no video given: dfd predict MODEL.pt VIDEO [VIDEO ...] (or --video PATH)")
    if not models:
        if not args.sequence_length:
            raise ValueError("no model file (.pt/.pth) given; pass one, or --sequence-length N to use the best "
                             f"model for N frames in {args.models_dir}/")

        models = [str(best_model(args.sequence_length, args.models_dir))]
        print(f"model: {models[0]} (best for {args.sequence_length} frames in {args.models_dir}/)")
    videos, names = [], []
    for item in inputs:
        # A folder gives its videos; anything else is predicted as given, so a bad path gets its own row.
        found = find_videos(item) if Path(item).is_dir() else [Path(item)]
        if not found:
            print(f"warning: no video files in {item}")
        videos += found
        names += [str(v) for v in found]
    if not videos:
        raise FileNotFoundError(f"no video files found in {', '.join(inputs)}")
    if args.out:
        ensure_writable(Path(args.out).parent, "folder of the predictions CSV (--out)")
    model = as_model(models if len(models) > 1 else models[0], args.device)
    if args.explain and isinstance(model, Ensemble):
        print("note: Grad-CAM maps are computed for the first ensemble member")
    df = predict_many(model, videos, names, args.sequence_length, args.threshold, not args.no_progress,
                      args.explain, args.device, args.max_faces, args.min_face_frames)
    for r in df.itertuples():
        if r.status == "ok":
            print(f"{r.label:<5} {100 * r.confidence:5.1f}% sure  prob_fake={r.prob_fake:.3f} "
                  f"(threshold {r.threshold:.3f})  "
                  f"{r.frames_used}-frame clip, faces found in {r.faces_found} sampled frames  {r.video}")
            if r.n_faces > 1:
                print("      " + "; ".join(f"face {f['face']}: prob_fake={f['prob_fake']:.3f} "
                                           f"(seen in {f['frames']} frames)" for f in json.loads(r.faces)))
        else:
            print(f"{'-':<5} {'':>6}  {r.status}: {r.reason}")
    if args.out:
        write_csv(df, args.out)
        print(f"predictions written to {args.out}")
    if args.explain:
        print(f"Grad-CAM overlays written to {args.explain}/")
    return _summary(df)


def _summary(df: pd.DataFrame) -> int:
    """One closing line (printed whatever --no-progress says) and the exit status: 1 if a video got no verdict."""
    ok = df["status"] == "ok"
    labels = ", ".join(f"{n} {k}" for k, n in df.loc[ok, "label"].value_counts().sort_index().items())
    missing = ", ".join(f"{n} {k}" for k, n in df.loc[~ok, "status"].value_counts().items())
    print(f"predict: {len(df)} video(s): {ok.sum()} verdict(s)" + (f" ({labels})" if labels else "")
          + (f"; {(~ok).sum()} without a verdict ({missing}); exit status 1" if missing else ""))
    return 0 if ok.all() else 1


# --- dfd evaluate --------------------------------------------------------------------------------
def _add_evaluate(subparsers) -> None:
    """Register `dfd evaluate MODEL [MODEL ...] --csv --data`."""
    e = subparsers.add_parser("evaluate", help="metrics of a model on a labelled split of processed videos")
    e.add_argument("models", nargs="+", metavar="MODEL", help="model file(s); several = ensemble")
    e.add_argument("--csv", required=True, help="labels CSV (filename,label[,split])")
    e.add_argument("--data", required=True, help="processed root (the preprocess stage's output)")
    e.add_argument("--split", default="test", help="split to evaluate: test | val | train | all")
    e.add_argument("--threshold", default="val",
                   help="val (choose on the val split) | model (the file's) | a number (default: val)")
    e.add_argument("--out", help="folder for metrics.json, predictions.csv, confusion.png, roc.png")
    e.add_argument("--batch-size", type=int, default=8)
    e.add_argument("--sequence-length", type=int, help="frames per clip (default: the model's)")
    e.add_argument("--device", default="auto", help="auto | cpu | cuda | mps")
    e.add_argument("--cross-csv", help="cross-dataset: a second dataset's labels CSV (e.g. Celeb-DF after training "
                                       "on FF++), evaluated with the same threshold")
    e.add_argument("--cross-data", help="cross-dataset: that dataset's processed root")
    e.add_argument("--cross-split", default="test", help="its split: test (default; every row when it has no "
                                                          "test rows) | val | train | all")
    e.add_argument("--no-progress", action="store_true", help="no progress bar")
    e.set_defaults(func=_cli_evaluate)


def _method_table(by_method: dict) -> str:
    """metrics["by_method"] as a printable table (one row per method: n, accuracy, recall, ROC-AUC, EER)."""
    cols = ("n_real", "n_fake", "accuracy", "recall", "roc_auc", "eer")
    df = pd.DataFrame.from_dict(by_method, orient="index")[list(cols)]
    return df.to_string(float_format=lambda v: f"{v:.3f}", na_rep="-")


def _num(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def _cli_evaluate(args) -> int:
    thr = args.threshold
    thr = None if thr in ("model", "file") else thr if thr == "val" else float(thr)
    if (args.cross_csv is None) != (args.cross_data is None):
        raise ValueError("--cross-csv and --cross-data go together: the second dataset's labels CSV and its "
                         "processed root")
    model = as_model(args.models if len(args.models) > 1 else args.models[0], args.device)
    metrics = evaluate_model(model, args.csv, args.data, split=None if args.split == "all" else args.split,
                             out_dir=args.out, threshold=thr, batch_size=args.batch_size,
                             sequence_length=args.sequence_length, progress=not args.no_progress,
                             cross_labels=args.cross_csv, cross_root=args.cross_data,
                             cross_split=None if args.cross_split == "all" else args.cross_split)
    print(format_metrics_table(metrics))
    print(f"threshold {metrics['threshold']:.3f} from {metrics['threshold_source']}; "
          f"confusion matrix (rows true real/fake): {metrics['confusion_matrix']}")
    if "by_method" in metrics:
        print(f"per method (each method's fakes against all reals):\n{_method_table(metrics['by_method'])}")
    cross = metrics.get("cross")
    if cross:
        print(f"\ncross-dataset: {cross['labels']} split={cross['split']}")
        print(format_metrics_table(cross))
        best = cross["at_best_threshold"]
        print(f"threshold report: calibrated {cross['threshold']:.3f} (from {metrics['threshold_source']}) gives "
              f"accuracy {cross['accuracy']:.3f}, recall {_num(cross['recall'])}; "
              f"the best threshold on this set would be {cross['best_threshold']:.3f} (accuracy "
              f"{best['accuracy']:.3f}; optimistic: chosen on its labels)")
        if "by_method" in cross:
            print(f"per method:\n{_method_table(cross['by_method'])}")
    if args.out:
        print(f"metrics.json, predictions.csv, confusion.png, roc.png{', roc_by_method.png' if 'by_method' in metrics else ''} "
              f"written to {args.out}/" + (" (the second dataset's in cross/)" if cross else ""))
    return 0


# --- dfd models ----------------------------------------------------------------------------------
def _add_models(subparsers) -> None:
    """Register `dfd models [--dir models] [--json]`."""
    p = subparsers.add_parser("models", help="list model files and the best one per sequence length")
    p.add_argument("--dir", default="models", help="model folder (default: models)")
    p.add_argument("--json", action="store_true", help="print JSON records")
    p.add_argument("--all", action="store_true", help=f"also list earlier runs' files in {PREVIOUS}/ folders")
    p.set_defaults(func=_cli_models)


def _cli_models(args) -> int:
    df = list_models(args.dir, include_previous=args.all)
    aside = df.attrs.get("previous", 0)
    note = (f"{aside} model file(s) of earlier runs in {PREVIOUS}/ folders are not listed nor picked "
            "(--all lists them)") if aside else ""
    if df.empty:
        print(f"no model files in {args.dir}/ (expected *.pt / *.pth)" + (f"; {note}" if note else ""))
        return 0
    if args.json:
        print(df.to_json(orient="records", indent=2))
        return 0
    show = df.drop(columns=["path"]).copy()
    show["accuracy"] = show["accuracy"].map(lambda a: "" if pd.isna(a) else f"{a:.1f}%")
    show = show.astype(object).where(show.notna(), "")
    print(show.to_string(index=False))
    picks = list_models(args.dir) if args.all else df  # an earlier run's file is listed, never picked
    for seq in sorted({int(s) for s in picks.loc[picks["error"].isna(), "sequence_length"].dropna()}):
        print(f"best for {seq:>3} frames: {pick_best(picks, seq, args.dir).relative_to(args.dir)}")
    if note:
        print(note)
    return 0

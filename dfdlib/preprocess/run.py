"""Stage 1 for a whole dataset: `SRC/{real,fake}/*` → `OUT/{real,fake}/<video>/frame_<i>.jpg` + faces.json.

Each video's folder appears atomically (written to `.<name>.tmp-<pid>`, then renamed), so a rerun
skips finished videos and an interrupted run (even kill -9) leaves nothing that counts as done.
Videos are spread over `workers` processes (one MTCNN each, every library pinned to one thread,
so N workers use N cores; where MTCNN runs on a CUDA GPU, `workers` threads share it instead, its calls
batched over their videos), over machines with `shard=(K, N)` (merged by preprocess_merge) or over a Ray
cluster with `ray=` (preprocess_ray), all running process_video below.
"""
from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from dfdlib.datasets.layouts import find_samples, layout_report, samples_frame
from dfdlib.preprocess.batching import shared_batching
from dfdlib.preprocess.config import PreprocessConfig
from dfdlib.preprocess.detector import default_detector, detector_backend
from dfdlib.preprocess.faces import extract_faces
from dfdlib.preprocess.on_ray import run_on_ray
from dfdlib.preprocess.report import ERRORS_LOG, REPORT_COLUMNS, print_summary, sort_report, write_errors
from dfdlib.preprocess.reuse import link_originals, reuse_or_none
from dfdlib.utils import atomic_dir, atomic_write, ensure_writable, start_worker, strict, write_csv

if TYPE_CHECKING:
    import pandas as pd



@dataclass
class VideoTask:
    path: str      # absolute path of the video
    video: str     # path relative to the dataset root, as written in the report (real/a.mp4)
    label: str     # "real" | "fake"
    name: str      # output folder under OUT/<label>/ (may contain '/'; unique per label, see datasets/layouts.py)
    note: str = ""  # said in the report's reason column (e.g. why the folder name keeps the extension)
    group: str = ""  # leakage group (videos sharing footage or identity), from layouts.find_samples
    method: str = ""  # manipulation method / source (FF++ method, Celeb-synthesis, DFDC, real)
    original: str | None = None  # absolute path of the real video a fake was made from, if known
    split: str | None = None  # the dataset's official split, if it has one
    original_dir: str = ""  # the original's output folder under OUT (label/name), when it is in this dataset


def scan_dataset(src: str | os.PathLike, layout: str | None = None, split_file=None
                 ) -> tuple[str, list[VideoTask], list[str], list]:
    """The videos of a dataset root in any known layout (layouts.find_samples): (layout, tasks, problems,
    samples). Raises FileNotFoundError / layouts.LayoutError for a missing or unknown tree."""

    name, samples, problems = find_samples(src, layout=layout, split_file=split_file)
    tasks = [VideoTask(s.path, s.video, s.label, s.name, s.note, s.group, s.method, s.original, s.split)
             for s in samples]
    return name, tasks, problems, samples


def find_tasks(src: str | os.PathLike, layout: str | None = None, split_file=None) -> list[VideoTask]:
    """List the videos of a dataset root (real/ + fake/ folders, recursive, or another layout of
    layouts.LAYOUTS), sorted, with unique output names.

    Two videos with one stem in a class folder (a.avi, a.mp4): the first in sorted order gets folder
    `a`, the next keeps its extension (`a.mp4`) and its report row says so. Raises FileNotFoundError
    if `src` is missing and ValueError (layouts.LayoutError) if it matches no layout.
    """
    return scan_dataset(src, layout, split_file)[1]


def parse_shard(shard) -> tuple[int, int] | None:
    """'K/N' or (K, N) → (K, N) with 0 <= K < N; None stays None. Raises ValueError."""
    if shard is None or shard == "":
        return None
    try:
        k, n = (int(x) for x in (shard.split("/") if isinstance(shard, str) else shard))
    except (ValueError, TypeError):
        raise ValueError(f"shard must look like K/N (e.g. 0/4), got {shard!r}") from None
    if not (n >= 1 and 0 <= k < n):
        raise ValueError(f"shard {k}/{n}: need N >= 1 and 0 <= K < N (shards are numbered 0..N-1)")
    return k, n


def in_shard(task: VideoTask, shard: tuple[int, int] | None) -> bool:
    """Stable split by a hash of the video's group (else its relative path), the same on every machine and
    run: an original and its fakes share a group, so they land in one shard and the fakes can take the
    original's boxes (reuse.py).

    SHA-1, not CRC-32: CRC is linear, so names differing in one digit (real_000, real_001) can all land
    in one shard.
    """
    if shard is None:
        return True
    key = task.group or task.video
    return int.from_bytes(hashlib.sha1(key.encode()).digest()[:8], "big") % shard[1] == shard[0]


# --- one video (runs in the main process or in a worker) -------------------------------------------
_WORKER: dict = {}


def _init_worker() -> None:
    """Pin every library to one thread, so N workers use N cores instead of fighting over them."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS",
                "TF_NUM_INTEROP_THREADS"):
        os.environ[var] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import cv2

    cv2.setNumThreads(1)
    _WORKER.update(threads=1)  # the detector is built on first use, for the run's PreprocessConfig.detector


def _row(task: VideoTask, status: str, reason: str = "", frames: int = 0, filled: int = 0, seconds: float = 0.0,
         detect_side: int = 0, faces: int = 0, replaced: int = 0, traceback: str = "", boxes_from: str = ""):
    """A report row; `replaced` counts sampled frames replaced for having no usable picture, `traceback`
    (status "error" only) goes to ERRORS_LOG, not into the CSV; `boxes_from` names the original whose
    boxes a fake was cut with (reuse.py)."""
    reason = "; ".join(r for r in (reason, task.note) if r)
    return {"video": task.video, "label": task.label, "status": status, "reason": reason, "frames": frames,
            "filled": filled, "seconds": round(seconds, 3), "group": task.group, "method": task.method,
            "detect_side": detect_side, "faces": faces, "replaced": replaced, "boxes_from": boxes_from,
            "traceback": traceback}


def _done_row(task: VideoTask, dest: Path, cfg: PreprocessConfig) -> dict:
    """The skipped_done row of a finished folder, with its frame counts and any settings mismatch."""
    manifest = dest / "faces.json" if (dest / "faces.json").exists() else dest / "face_0" / "faces.json"
    try:
        m = json.loads(manifest.read_text())
    except (OSError, ValueError):
        n = len(list(dest.glob("frame_*.jpg")))
        return _row(task, "skipped_done", f"{dest} exists without a readable faces.json (not written by dfdlib?); "
                                          "kept as it is, use --overwrite to redo it", n)
    old, new = m.get("preprocess") or {}, asdict(cfg)
    diff = [f"{k} {old.get(k)!r}→{v!r}" for k, v in new.items() if k in old and old[k] != v]
    reason = (f"done with other settings ({', '.join(diff)}); use --overwrite to redo it") if diff else ""
    return _row(task, "skipped_done", reason, len(m.get("indices", [])), sum(m.get("filled", [])),
                detect_side=m.get("detect_side", 0), faces=m.get("faces_in_video", 1),
                replaced=sum(bool(k) for k in m.get("replaced", [])),
                boxes_from=(m.get("boxes_reused") or {}).get("from", ""))


def _write_sample(folder: Path, crops: list, manifest: dict, quality: int) -> None:
    """frame_<i>.jpg per RGB crop + faces.json into `folder`. Raises OSError when a file cannot be written."""
    import cv2

    for i, crop in enumerate(crops):
        if not cv2.imwrite(str(folder / f"frame_{i}.jpg"), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, quality]):
            raise OSError(f"could not write {folder / f'frame_{i}.jpg'} (disk full or no permission?)")
    # One key per line, lists inline: readable and diffable without 20 lines per box.
    body = ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}" for k, v in manifest.items())
    (folder / "faces.json").write_text("{\n" + body + "\n}\n")


def process_video(task: VideoTask, out: str, cfg_dict: dict, overwrite: bool = False) -> dict:
    """Extract and save one video's faces; returns its report row. Never raises for a bad video."""
    t0 = time.perf_counter()
    cfg = PreprocessConfig.from_dict(cfg_dict)
    dest = Path(out) / task.label / task.name
    try:
        if dest.is_dir() and not overwrite:
            return _done_row(task, dest, cfg)
        # A fake whose original is done takes its boxes once checked (reuse.py), else faces are detected; the
        # detector is built only when one runs (a fake that passes the background check needs none).
        threads = _WORKER.get("threads")
        res = (reuse_or_none(task.path, Path(out) / task.original_dir, cfg, threads=threads, source=task.original_dir)
               if cfg.reuse_boxes and task.original_dir else None) \
            or extract_faces(task.path, cfg, detector=default_detector(cfg.detector, threads), threads=threads)
        if res.status != "ok":
            reason = res.reason
            if overwrite and dest.is_dir():  # the redo failed: the old crops no longer match the settings
                shutil.rmtree(dest)
                reason += f" (the previous {task.label}/{task.name} folder was removed)"
            return _row(task, res.status, reason, seconds=time.perf_counter() - t0, detect_side=res.detect_side,
                        replaced=sum(bool(k) for k in res.replaced), traceback=res.traceback)
        # One sample folder per face: the video's own folder (max_faces 1, as always), else <video>/face_<k>/,
        # all written inside one temp folder, so a video's faces appear together or not at all.
        with atomic_dir(dest, overwrite=True) as tmp:
            for face in res.faces:
                sample = tmp if cfg.max_faces == 1 else tmp / f"face_{face.index}"
                sample.mkdir(exist_ok=True)
                manifest = res.manifest(face.index)
                manifest.update(video=task.video, label=task.label, group=task.group, method=task.method)
                _write_sample(sample, face.crops, manifest, cfg.jpeg_quality)
        return _row(task, "ok", "", len(res.crops), sum(res.filled), time.perf_counter() - t0, res.detect_side,
                    len(res.faces), sum(bool(k) for k in res.replaced), boxes_from=res.reused.get("from", ""))
    except OSError as e:  # extract_faces never raises, so this is writing: a full disk or lost permissions
        return _row(task, "unreadable", f"{task.path}: could not write its crops to {dest} ({e.strerror or e}); "
                                        "free disk space or fix the output folder's permissions, then rerun: "
                                        "finished videos are kept", seconds=time.perf_counter() - t0)
    except Exception as e:  # a bug: its own status and traceback, the batch goes on (raised under tests)
        if strict():
            raise
        import traceback

        return _row(task, "error", f"{task.path}: unexpected {type(e).__name__}: {e} (a bug in dfdlib; the "
                                   f"traceback is in {ERRORS_LOG}, please report it)",
                    seconds=time.perf_counter() - t0, traceback=traceback.format_exc())


def _clean_stale(out: Path, tasks: list[VideoTask]) -> int:
    """Remove temp/old folders of interrupted runs, only those of our own videos (other shards may be live)."""
    n = 0
    for t in tasks:
        dest = out / t.label / t.name  # the name may hold '/': the temp folder sits beside the last part
        base = glob.escape(str(dest.parent / f".{dest.name}"))
        for p in glob.glob(base + ".tmp-*") + glob.glob(base + ".old-*"):
            shutil.rmtree(p, ignore_errors=True)
            n += 1
    return n


# --- many videos -------------------------------------------------------------------------------------
def _crash_row(task: VideoTask) -> dict:
    return _row(task, "unreadable", f"{task.path}: the worker process died on this video (out of memory or a "
                                    "decoder crash); re-encode it or remove it")


def run_tasks(tasks: list, fn, workers: int = 1, on_row=None, initializer=_init_worker) -> list[dict]:
    """Run fn(task) -> row for every task, in this process (workers=1) or a spawn process pool.

    `initializer` runs once in each worker process (default: pin threads, build its MTCNN).
    If a worker process dies (killed, out of memory, decoder segfault), the videos it may have had
    are rerun one at a time in a one-worker pool to find the one that kills it; that one gets an
    `unreadable` row, and every other video still gets processed. Returns rows in task order.
    """
    rows: dict[int, dict] = {}

    def record(i: int, row: dict) -> None:
        rows[i] = row
        if on_row:
            on_row(row)

    if workers <= 1:
        for i, t in enumerate(tasks):
            record(i, fn(t))
        return [rows[i] for i in range(len(tasks))]
    queue = list(range(len(tasks)))
    while queue:
        crashed = _pool_pass(tasks, queue, fn, min(workers, len(queue)), record, initializer)
        queue = [i for i in queue if i not in rows]
        if not crashed:
            break
        # Tasks are dispatched in order, so the culprit is among the first workers + 1 unfinished ones.
        suspects, queue = queue[:workers + 1], queue[workers + 1:]
        while suspects:
            crashed = _pool_pass(tasks, suspects, fn, 1, record, initializer)
            suspects = [i for i in suspects if i not in rows]
            if crashed and suspects:  # one worker runs tasks in order: the first unfinished one killed it
                record(suspects[0], _crash_row(tasks[suspects[0]]))
                suspects = suspects[1:]
    return [rows[i] for i in range(len(tasks))]


def run_threads(tasks: list, fn, workers: int, on_row=None, backend: str = "auto") -> list[dict]:
    """Run fn(task) -> row for every task in `workers` threads of this process that share one face detector,
    its calls batched over videos (batching.py): the GPU path, one CUDA context and MTCNN for every video.
    Returns rows in task order."""
    from concurrent.futures import ThreadPoolExecutor, as_completed

    rows: list = [None] * len(tasks)
    with shared_batching(backend), ThreadPoolExecutor(workers, thread_name_prefix="dfdlib-video") as pool:
        futures = {pool.submit(fn, t): i for i, t in enumerate(tasks)}
        for fut in as_completed(futures):
            rows[futures[fut]] = row = fut.result()
            if on_row:
                on_row(row)
    return rows


def detects_on_gpu(cfg: PreprocessConfig) -> bool:
    """Whether this run's face detector runs on a CUDA GPU (then workers are threads sharing it), decided as
    FaceDetector decides it, without building one in this process (the workers build their own)."""
    if detector_backend(cfg.detector) != "torch":
        return False
    from dfdlib.preprocess.mtcnn_torch import torch_device

    return torch_device("auto").startswith("cuda")


def _pool_pass(tasks, order: list[int], fn, workers: int, record, initializer) -> bool:
    """Submit tasks[order] to a fresh pool; record finished rows. Returns True if the pool broke."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    crashed = False
    # spawn, not fork: a forked TensorFlow deadlocks, and spawn behaves the same on Linux, macOS, Windows
    # Workers end with this process (start_worker), even when it is killed: no orphan keeps its ~1.4 GB.
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"),
                             initializer=partial(start_worker, os.getpid(), initializer)) as ex:
        futures = {ex.submit(fn, tasks[i]): i for i in order}
        try:
            for fut in as_completed(futures):
                try:
                    record(futures[fut], fut.result())
                except BrokenProcessPool:
                    crashed = True
        except BaseException:
            ex.shutdown(wait=False, cancel_futures=True)
            raise
    return crashed


def preprocess_dataset(src: str | os.PathLike, out: str | os.PathLike, config: PreprocessConfig | None = None,
                       workers: int = 1, shard=None, overwrite: bool = False, progress: bool = True,
                       layout: str | None = None, split_file=None, ray=None,
                       summary: bool | None = None) -> pd.DataFrame:
    """Extract face crops for every video of a dataset (stage 1).

    Takes the dataset root (any layout of layouts.LAYOUTS, detected from the tree unless `layout` names
    one; `split_file` an official split list), the output root, a PreprocessConfig, the number of
    worker processes, an optional shard ("K/N" or (K, N): this run does only its share, with no
    overlap between shards), `overwrite` (redo finished videos), `progress` (bar), `summary` (the
    closing counts; default: as `progress`) and `ray` (None: this machine; True or 'local': a local Ray
    instance; 'auto' or 'ray://HOST:PORT': join a Ray cluster, see preprocess_ray; `workers` > 1 then caps
    the Ray actors).
    Writes `<out>/<label>/<name>/frame_<i>.jpg` + `faces.json` per ok video and the report
    `<out>/preprocess_report.csv` (`preprocess_report_shard-K-of-N.csv` for a shard, so machines
    sharing `out` do not overwrite each other's), plus `<out>/layout.json` (the layout and what was
    skipped) and `<out>/samples.csv` (every sample's group, method, original, official split; read by
    `dfd labels`). Returns the report as a DataFrame.
    Raises FileNotFoundError / ValueError (layouts.LayoutError) for a missing or unknown dataset tree.
    """
    import pandas as pd
    from tqdm.auto import tqdm

    cfg = config or PreprocessConfig()
    if int(workers) < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    shard = parse_shard(shard)
    out = Path(out)
    layout_name, all_tasks, problems, samples = scan_dataset(src, layout, split_file)
    tasks = [t for t in all_tasks if in_shard(t, shard)]
    ensure_writable(out)  # fail now, not after every video has been decoded in vain
    _write_layout(out, src, layout_name, samples, problems, forced=layout is not None, progress=progress)
    _clean_stale(out, tasks)
    link_originals(all_tasks)
    finished = [not overwrite and (out / t.label / t.name).is_dir() for t in tasks]
    todo = [t for t, f in zip(tasks, finished, strict=True) if not f]
    originals = {t.original for t in tasks if t.original}
    todo.sort(key=lambda t: t.path not in originals)  # originals first: their fakes then reuse their boxes
    counts = dict.fromkeys(("ok", "no_face", "too_short", "unreadable", "error"), 0)
    bar = tqdm(total=len(todo), unit="video", desc="preprocess", disable=not progress or not todo)

    def on_row(row: dict) -> None:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
        bar.update(1)
        bar.set_postfix({k: v for k, v in counts.items() if v or k == "ok"}, refresh=False)

    fn = partial(process_video, out=str(out), cfg_dict=asdict(cfg), overwrite=overwrite)
    done_rows = [fn(t) for t, f in zip(tasks, finished, strict=True) if f]  # cheap: reads faces.json only
    workers = min(int(workers), max(1, len(todo)))
    if todo and workers == 1 and not ray:
        default_detector(cfg.detector)  # build MTCNN before the clock of the first video starts
    try:
        if ray:

            rows = run_on_ray(todo, fn, ray, on_row, initializer=_init_worker, crash_row=_crash_row,
                              actors=workers if workers > 1 else None)
        elif workers > 1 and detects_on_gpu(cfg):  # one MTCNN on the GPU, batched over the threads' videos
            rows = run_threads(todo, fn, workers, on_row, cfg.detector)
        else:
            rows = run_tasks(todo, fn, workers, on_row)
    finally:
        bar.close()
    write_errors(out, done_rows + rows, shard)
    report = sort_report(pd.DataFrame(done_rows + rows, columns=REPORT_COLUMNS))
    name = "preprocess_report.csv" if shard is None else f"preprocess_report_shard-{shard[0]}-of-{shard[1]}.csv"
    write_csv(report, out / name)
    if progress if summary is None else summary:
        print_summary(report, out / name, len(all_tasks), shard)
    return report


def _write_layout(out: Path, src, layout: str, samples: list, problems: list[str], forced: bool,
                  progress: bool) -> None:
    """OUT/layout.json + OUT/samples.csv (every shard writes the same content, atomically)."""

    report = layout_report(src, layout, samples, problems, forced)
    with atomic_write(out / "layout.json") as f:
        f.write(json.dumps(report, indent=1) + "\n")
    write_csv(samples_frame(samples), out / "samples.csv")
    if progress:
        methods = ", ".join(f"{k} {v}" for k, v in report["methods"].items())
        how = "given by --layout" if forced else "detected"
        print(f"layout: {layout} ({how}): {len(samples)} videos in {report['groups']} groups ({methods})"
              + (f", official split {report['official_split']}" if report["official_split"] else "")
              + (f"; {len(problems)} problem(s) skipped, see {out / 'layout.json'}" if problems else ""))

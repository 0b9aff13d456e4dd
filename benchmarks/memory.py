"""Memory benchmark (issue 13): peak PSS of the training process tree as the dataset grows.

One training epoch with the tiny backbone, 224 px, 16 frames, batch 8, 2 DataLoader workers, for 40 / 400 /
4,000 clips, with the clip store (`cache="disk"`, the default) and with the old default (`cache="ram"`: every
worker keeps its own uint8 copy of each clip it read) side by side. Each run is a fresh child process; this
process samples the PSS (proportional set size: shared pages divided among the processes that map them, so
the sum over the tree counts each page once; the page cache is not in it) of the child and all its
descendants every 0.1 s and reports the peak, the peak of the main process alone and of its workers.

Clips: a few synthetic processed folders (16 JPEG frames of 224 px noise-textured "faces") replicated under
distinct names with hard links; labels CSV 90 % train / 10 % val (val at most 40 clips). With `--max-steps`
the epoch is capped (the dataset's per-clip bookkeeping is still built for every clip; the store is read
with pread, so how many clips an epoch has touched does not change the memory of the processes). Writes benchmarks/results/memory.md.

    python benchmarks/memory.py [--sizes 40,400,4000] [--ram-sizes 40,400] [--max-steps 4000=20]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

SIZE, FRAMES, BATCH, WORKERS = 224, 16, 8, 2
N_SOURCES = 8


def make_sources(folder: Path, seed: int = 0) -> list[Path]:
    """N_SOURCES processed folders of FRAMES JPEG frames (SIZE px), half of them with a fake-like texture."""
    import cv2

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    checker = (((yy // 6) + (xx // 6)) % 2 * 40 - 20)[..., None]
    out = []
    for k in range(N_SOURCES):
        d = folder / f"src{k}"
        d.mkdir(parents=True)
        base = rng.integers(60, 196, size=3)
        for i in range(FRAMES):
            img = base + rng.normal(0, 12, (SIZE, SIZE, 3)) + (checker if k % 2 else 0)
            cv2.imwrite(str(d / f"frame_{i}.jpg"), np.clip(img, 0, 255).astype(np.uint8),
                        [cv2.IMWRITE_JPEG_QUALITY, 95])
        out.append(d)
    return out


def make_dataset(work: Path, n: int, sources: list[Path]) -> tuple[Path, Path]:
    """processed/<real|fake>/c<i>/ for i < n (hard links to the sources) and labels.csv."""
    import pandas as pd

    root = work / f"n{n}" / "processed"
    rows = []
    n_val = min(40, max(2, n // 10))
    for i in range(n):
        src = sources[i % len(sources)]
        label = int(src.name[3:]) % 2
        d = root / ("fake" if label else "real") / f"c{i}"
        d.mkdir(parents=True)
        for f in src.iterdir():
            os.link(f, d / f.name)
        rows.append({"filename": f"{d.parent.name}/{d.name}", "label": label, "split": "val" if i < n_val else "train"})
    csv = root.parent / "labels.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    return root, csv


def child(root: str, csv: str, out: str, cache: str, max_steps: int | None) -> None:
    """The measured process: one epoch of dfdlib.train; prints one JSON line with what the run reported."""
    from dfdlib.training.loop import train

    t0 = time.perf_counter()
    res = train(dataset_path=root, csv_file=csv, out_dir=out, sequence_length=FRAMES, batch_size=BATCH,
                num_epochs=1, num_workers=WORKERS, backbone="tiny", weights=None, image_size=SIZE, cache=cache,
                max_steps_per_epoch=max_steps, device="cpu", early_stopping=0, show_progress=False)
    row = res.history.iloc[-1].to_dict()
    wait = row.get("data_wait")
    print("RESULT " + json.dumps({"seconds": time.perf_counter() - t0, "epoch_seconds": row.get("seconds"),
                                  "data_wait": None if wait is None else float(wait),
                                  "tf_in_main": "tensorflow" in sys.modules}), flush=True)


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def _pss(pid: int) -> int:
    """PSS of one process in bytes (Linux /proc/<pid>/smaps_rollup; 0 once it has exited)."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def pss_tree(root_pid: int) -> tuple[int, int, int]:
    """(PSS of the whole process tree, of the root process, number of processes) in bytes."""
    pids, todo = [], [root_pid]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo += _children(pid)
    sizes = {pid: _pss(pid) for pid in pids}
    return sum(sizes.values()), sizes[root_pid], sum(1 for v in sizes.values() if v)


def measure(root: Path, csv: Path, cache: str, max_steps: int | None, work: Path) -> dict:
    out = work / "run"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, __file__, "--child", str(root), str(csv), str(out), cache, str(max_steps or 0)]
    store = work / "clips"  # the run's clip store (cache="disk"), measured and removed after each run
    env = dict(os.environ, DFD_CLIP_STORE=str(store),
               PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")]))
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    peak = {"total": 0, "main": 0, "workers": 0, "procs": 0}
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(p.stdout), daemon=True)
    reader.start()
    while p.poll() is None:
        total, main, n = pss_tree(p.pid)
        if total > peak["total"]:
            peak.update(total=total, procs=n)
        peak["main"] = max(peak["main"], main)
        peak["workers"] = max(peak["workers"], total - main)
        time.sleep(0.1)
    reader.join(10)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(f"child failed ({p.returncode}):\n" + "".join(lines[-40:]))
    result = json.loads(next(x for x in reversed(lines) if x.startswith("RESULT "))[7:])
    store_bytes = sum(f.stat().st_blocks * 512 for f in store.rglob("*") if f.is_file())  # sparse: blocks used
    shutil.rmtree(store, ignore_errors=True)  # each run builds its store from scratch
    shutil.rmtree(out, ignore_errors=True)
    return {**peak, **result, "wall": wall, "store_bytes": store_bytes}


def main(argv=None) -> int:
    a = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    a.add_argument("--sizes", default="40,400,4000", help="clip counts measured with the clip store")
    a.add_argument("--ram-sizes", default="40,400", help="clip counts measured with the old RAM cache")
    a.add_argument("--max-steps", default="4000=20", help="cap steps per epoch, e.g. 4000=20,400=10")
    a.add_argument("--work", default=None, help="work folder (default: a temp folder, removed afterwards)")
    a.add_argument("--out", default=str(Path(__file__).parent / "results" / "memory.md"))
    args = a.parse_args(argv)
    caps = {int(k): int(v) for k, v in (x.split("=") for x in args.max_steps.split(",") if x)}
    sizes = [int(x) for x in args.sizes.split(",") if x]
    ram = {int(x) for x in args.ram_sizes.split(",") if x}
    work = Path(args.work or tempfile.mkdtemp(prefix="dfd-bench-memory-"))
    rows = []
    try:
        sources = make_sources(work / "sources")
        for n in sorted(set(sizes) | ram):
            root, csv = make_dataset(work, n, sources)
            for cache in ("disk", "ram"):
                if (cache == "disk" and n not in sizes) or (cache == "ram" and n not in ram):
                    continue
                r = measure(root, csv, cache, caps.get(n), work)
                rows.append((n, cache, caps.get(n), r))
                print(f"{n} clips cache={cache}: peak PSS {r['total'] / 2**20:.0f} MiB (main {r['main'] / 2**20:.0f}, "
                      f"workers {r['workers'] / 2**20:.0f}), {r['wall']:.0f} s", flush=True)
            shutil.rmtree(root.parent, ignore_errors=True)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)

    import torch

    def mib(b):
        return f"{b / 2**20:,.0f}"

    disk = {n: r for n, c, _, r in rows if c == "disk"}
    base = disk.get(min(disk)) if disk else None
    lines = ["# Memory: peak PSS of the training process tree (issue 13)", "",
             f"tiny backbone, {SIZE} px, T={FRAMES}, batch {BATCH}, {WORKERS} workers, 1 epoch, CPU "
             f"({platform.processor() or platform.machine()}, {os.cpu_count()} CPUs visible, torch {torch.__version__}); "
             "PSS summed over the trainer and its DataLoader workers, sampled every 0.1 s. "
             f"Command: `python benchmarks/memory.py {' '.join(argv if argv is not None else sys.argv[1:])}`.", "",
             "| clips | cache | steps cap | peak PSS tree (MiB) | main (MiB) | workers (MiB) | vs smallest store run (MiB) "
             "| store on disk (MiB) | data_wait | run (s) |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for n, c, cap, r in rows:
        delta = f"{(r['total'] - base['total']) / 2**20:+,.0f}" if base and c == "disk" else ""
        wait = "n/a" if r["data_wait"] is None else f"{r['data_wait']:.2f}"
        lines.append(f"| {n:,} | {c} | {cap or 'full epoch'} | {mib(r['total'])} | {mib(r['main'])} | "
                     f"{mib(r['workers'])} | {delta} | {mib(r['store_bytes'])} | {wait} | {r['wall']:.0f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _, _, root, csv, out, cache, steps = sys.argv
        child(root, csv, out, cache, int(steps) or None)
    else:
        sys.exit(main())

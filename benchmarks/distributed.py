"""Benchmark `dfd preprocess --ray` against `--workers 2` on the same videos, and a scaling model for N nodes.

Videos: the library's synthetic sample set (make_sample_dataset; --videos of them, 640x480, --seconds long).
Runs, alternating, each into a fresh output folder, every one timed end to end as a user sees it:
  workers-2   preprocess_dataset(workers=2): a spawn pool of 2 processes, one MTCNN each;
  ray         preprocess_dataset(ray=True, workers=2): a local Ray instance with 2 CPUs (ray.init and
              ray.shutdown included; timed apart too), 2 actors, one MTCNN each.
Then checks that both wrote the same folders, faces.json boxes and report rows, and fits the cost model
    T(N nodes x C cores) = start + max(V * (c + o) / (N * C), V * d)
from the measurements: c = seconds per video inside a worker (the report's `seconds`), start = the fixed
cost of a run (pool or Ray start, MTCNN build), o = Ray's extra seconds per video and actor, d = the driver's
seconds per video (o and d from no-op tasks, whose time is all Ray's). Prints the overhead ratio
ray / workers-2 and writes benchmarks/results/distributed.md.

    python benchmarks/distributed.py [--videos 12] [--seconds 3] [--repeats 2]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pandas as pd  # noqa: E402

from dfdlib import PreprocessConfig, SampleConfig, make_sample_dataset, preprocess_dataset  # noqa: E402

# (videos, per-video seconds of one core) of the datasets a user outgrows one machine with; the 1080p cost is
# benchmarks/preprocess.py's carphone_1920x1080 row (20 frames, detect at 480 px).
DATASETS = {"FaceForensics++ (all methods, c23)": 7_000, "DFDC (full training set)": 119_000}
COST_1080P = 2.63


def cpu_model() -> str:
    out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    name = next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")), "?")
    return f"{name}, {os.cpu_count()} CPUs visible"


def timed_run(src: Path, out: Path, cfg: PreprocessConfig, how: str) -> dict:
    t0 = time.perf_counter()
    if how == "ray":
        import ray

        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
        t_init = time.perf_counter() - t0
        report = preprocess_dataset(src, out, cfg, workers=2, ray=True, progress=False)
        t1 = time.perf_counter()
        ray.shutdown()
        t_down = time.perf_counter() - t1
    else:
        t_init = t_down = 0.0
        report = preprocess_dataset(src, out, cfg, workers=2, progress=False)
    wall = time.perf_counter() - t0
    assert (report["status"] == "ok").all(), report
    return dict(how=how, wall=wall, init=t_init, shutdown=t_down, per_video=float(report["seconds"].mean()),
                n=len(report))


def noop(task) -> dict:
    return {"video": task.video}


def ray_per_task_overhead(n: int = 400) -> tuple[float, float]:
    """(seconds per no-op task of a 2-actor run, seconds to start 2 actors and run 2 tasks): the part of Ray's
    cost that `--workers` does not have (both run the same per-video function). The first, times the 2 actors,
    is the overhead per video and actor; as the driver's own time per task it bounds the rate it can feed."""
    import ray

    from dfdlib.preprocess.on_ray import run_on_ray
    from dfdlib.preprocess.run import VideoTask

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        tasks = [VideoTask(f"/v{i}.mp4", f"real/v{i}.mp4", "real", f"v{i}") for i in range(n)]
        t0 = time.perf_counter()
        run_on_ray(tasks[:2], noop, actors=2)
        t_small = time.perf_counter() - t0
        t0 = time.perf_counter()
        run_on_ray(tasks, noop, actors=2)
        t_big = time.perf_counter() - t0
    finally:
        ray.shutdown()
    return max(0.0, (t_big - t_small) / (n - 2)), t_small


def same_output(a: Path, b: Path) -> bool:
    def manifests(root):
        return {p.parent.relative_to(root).as_posix(): {k: v for k, v in json.loads(p.read_text()).items()
                                                         if k != "seconds"} for p in root.glob("*/*/faces.json")}

    ra, rb = (pd.read_csv(p / "preprocess_report.csv").drop(columns="seconds") for p in (a, b))
    return manifests(a) == manifests(b) and ra.equals(rb)


def hours(s: float) -> str:
    return f"{s / 3600:.1f} h" if s >= 3600 else f"{s / 60:.0f} min"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=12, help="videos (half real, half fake)")
    ap.add_argument("--seconds", type=float, default=3.0, help="length of each video")
    ap.add_argument("--frames", type=int, default=20, help="frames sampled per video")
    ap.add_argument("--repeats", type=int, default=2, help="runs of each kind, alternating; medians reported")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "distributed.md"))
    args = ap.parse_args(argv)
    cfg = PreprocessConfig(frames=args.frames)
    load0 = os.getloadavg()
    runs: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        src = make_sample_dataset(Path(tmp) / "videos", SampleConfig(
            n_real=args.videos // 2, n_fake=args.videos - args.videos // 2, seconds=args.seconds, width=640,
            height=480, seed=0), progress=False)
        for r in range(args.repeats):
            for how in ("workers-2", "ray"):
                runs.append(timed_run(src, Path(tmp) / f"{how}-{r}", cfg, how))
                x = runs[-1]
                print(f"{how:>9} run {r + 1}: {x['wall']:6.2f} s wall ({x['per_video']:.2f} s per video in a "
                      f"worker; ray.init {x['init']:.2f} s, shutdown {x['shutdown']:.2f} s)", flush=True)
        identical = same_output(Path(tmp) / "workers-2-0", Path(tmp) / "ray-0")
    d, t_actors = ray_per_task_overhead()
    o = 2 * d
    print(f"Ray scheduling: {1000 * d:.2f} ms per no-op task with 2 actors ({1 / d:.0f} tasks/s); 2 actors start "
          f"in {t_actors:.2f} s")
    load1 = os.getloadavg()

    def med(how, key):
        return statistics.median(x[key] for x in runs if x["how"] == how)

    v, cores = args.videos, 2
    w_wall, r_wall = med("workers-2", "wall"), med("ray", "wall")
    c = med("workers-2", "per_video")
    c_ray = med("ray", "per_video")
    ratio = r_wall / w_wall
    # start = wall - V*c/cores (the part that does not shrink with more cores); o from Ray's own per-video time
    w_start = max(0.0, w_wall - v * c / cores)
    r_start = max(0.0, r_wall - v * c_ray / cores)
    print(f"overhead ratio ray / workers-2: {ratio:.2f}x ({r_wall:.1f} s vs {w_wall:.1f} s for {v} videos); "
          f"outputs identical: {identical}")
    lines = [
        "## Preprocessing beyond one machine: `--ray` vs `--workers 2` (benchmarks/distributed.py, issue 24)",
        "",
        f"Command: `python benchmarks/distributed.py --videos {v} --seconds {args.seconds:g} --repeats "
        f"{args.repeats}`  ",
        f"CPU (`lscpu`): {cpu_model()}; load average (1 min) {load0[0]:.1f} at start, {load1[0]:.1f} at the end "
        "(the machine is shared).  ",
        f"Videos: {v} synthetic sample videos, 640x480, {args.seconds:g} s; {args.frames} frames each, default "
        "settings. Medians of the alternating runs.",
        "",
        "| run | wall s | s per video in a worker | fixed start s (wall - V*c/2) | notes |",
        "|---|---:|---:|---:|---|",
        f"| `--workers 2` | {w_wall:.2f} | {c:.3f} | {w_start:.2f} | spawn pool, one MTCNN per process |",
        f"| `--ray` (local, 2 CPUs) | {r_wall:.2f} | {c_ray:.3f} | {r_start:.2f} | ray.init {med('ray', 'init'):.2f} "
        f"s + shutdown {med('ray', 'shutdown'):.2f} s included; 2 actors |",
        "",
        f"**Overhead ratio ray / workers-2: {ratio:.2f}x** on one machine; outputs identical (folders, faces.json "
        f"boxes, report rows): {identical}. Both run the same per-video function; the per-video difference in "
        f"the table ({c_ray - c:+.2f} s) is load noise. What Ray adds is measured apart with no-op tasks: "
        f"{1000 * o:.1f} ms of scheduling per video and actor ({100 * o / c:.2f} % of a video; the driver got "
        f"through {1 / d:.0f} no-op tasks/s with 2 actors), and a fixed "
        f"start (ray.init, {t_actors:.1f} s to start 2 actors and run 2 no-op tasks, shutdown).",
        "",
        "### Scaling model",
        "",
        "T(N nodes x C cores) = start + max(V x (c + o) / (N x C), V x d), with start the fixed cost above (Ray "
        "start, one MTCNN per actor, built in parallel), c the per-video cost of one core, o Ray's per-video "
        f"overhead per actor and d the driver's time per video ({1000 * d:.1f} ms measured here, an upper bound: "
        "this driver shared 2 loaded cores with its actors): past N x C = c / d cores the driver, not the "
        f"cluster, sets the pace (here c / d = {COST_1080P / d:.0f} cores for 1080p videos). It also assumes the "
        "shared file system serves N x C readers "
        f"(a DFDC video is ~4 MB, 470 GB / 119k: 100 cores finish {100 / COST_1080P:.0f} videos/s, "
        f"~{4 * 100 / COST_1080P:.0f} MB/s of reads; the crops written are ~20 x 15 KB a video). The unit of "
        "scheduling is an original and its fakes, so the last units set the tail: with V / (N x C) >> "
        "units per actor it is negligible.",
        "",
        f"With this machine's measured c = {c:.2f} s (small 640x480 videos) and the 1080p cost from "
        f"benchmarks/preprocess.py (c = {COST_1080P} s, 20 frames, the DFDC/FF++ resolution; measured on the AMD EPYC "
        f"machine of that section), o = {1000 * o:.1f} ms, d = {1000 * d:.1f} ms, "
        f"start = {r_start:.0f} s:",
        "",
        "| dataset | videos | 1 core (1080p) | 1 node x 16 cores | 4 nodes x 16 | 16 nodes x 16 |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, n_videos in DATASETS.items():
        per = COST_1080P + o
        cols = [hours(n_videos * COST_1080P)] + [hours(r_start + max(n_videos * per / (nodes * 16), n_videos * d))
                                                 for nodes in (1, 4, 16)]
        lines.append(f"| {name} | {n_videos:,} | " + " | ".join(cols) + " |")
    lines += [
        "",
        "A SLURM array follows the same model with start = one job's start (queue wait aside) and V/N videos "
        "per shard; its shards are fixed in advance (hash of the video path), so the slowest shard sets the "
        "end, while Ray hands the next unit to whichever actor is free.",
    ]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"written {args.out}")
    return 0 if identical else 1


if __name__ == "__main__":
    raise SystemExit(main())

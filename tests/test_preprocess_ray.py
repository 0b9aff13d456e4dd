"""preprocess/on_ray.py on a real local Ray instance (2 CPUs, small object store): same output as a plain run,
a killed run resumes to the same result, a crashing actor loses nothing else. Skipped without Ray."""
from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pandas as pd
import pytest

from dfdlib import PreprocessConfig, preprocess_dataset
from dfdlib.cli import main
from dfdlib.preprocess.on_ray import address_of, run_on_ray, work_units
from dfdlib.preprocess.run import VideoTask

CFG = PreprocessConfig(frames=8, size=64)  # the settings of conftest's processed_dir (the plain run)
# Skipped before the session's sample set is built for them (pip install 'dfdlib[ray]' to run them).
needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="needs Ray (the extra dfdlib[ray])")


@pytest.fixture(scope="module")
def ray_instance():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, object_store_memory=80 * 2**20, include_dashboard=False, log_to_driver=False,
             logging_level="WARNING")
    yield ray
    ray.shutdown()


def folders(out):
    return sorted(p.relative_to(out).as_posix() for p in out.glob("*/*"))


def manifest(folder):
    m = json.loads((folder / "faces.json").read_text())
    m.pop("seconds")  # the time the video took: the only field that may differ
    return m


def same_output(out, plain, resumed=False):
    """Folders, every faces.json (boxes included) and the report rows of `out` equal the plain run's."""
    assert folders(out) == folders(plain) and not list(out.rglob(".*"))
    for rel in folders(plain):
        assert manifest(out / rel) == manifest(plain / rel), rel
        assert sorted(p.name for p in (out / rel).iterdir()) == sorted(p.name for p in (plain / rel).iterdir())
    a, b = (pd.read_csv(p / "preprocess_report.csv").drop(columns="seconds") for p in (out, plain))
    if resumed:  # videos finished before the kill are skipped_done now, with the same frame counts
        assert set(a["status"]) <= {"ok", "skipped_done"}
        a, b = a.drop(columns="status"), b.drop(columns="status")
    pd.testing.assert_frame_equal(a, b)


def test_work_units_keep_an_original_with_its_fakes():
    tasks = [VideoTask("/d/r1.mp4", "real/r1.mp4", "real", "r1"), VideoTask("/d/r2.mp4", "real/r2.mp4", "real", "r2"),
             VideoTask("/d/f1.mp4", "fake/f1.mp4", "fake", "f1", original="/d/r2.mp4"),
             VideoTask("/d/f2.mp4", "fake/f2.mp4", "fake", "f2", original="/d/r2.mp4"),
             VideoTask("/d/f3.mp4", "fake/f3.mp4", "fake", "f3")]
    assert work_units(tasks) == [[1, 2, 3], [0], [4]]  # largest first, then in order
    assert address_of(True) is None and address_of("local") is None and address_of("auto") == "auto"
    with pytest.raises(ValueError, match="ray must be"):
        address_of("")


@pytest.mark.slow
@needs_ray
def test_ray_run_equals_plain_run(ray_instance, sample_dir, processed_dir, tmp_path):
    out = tmp_path / "ray"
    report = preprocess_dataset(sample_dir, out, CFG, ray=True, progress=False)
    assert (report["status"] == "ok").all() and len(report) == 8
    same_output(out, processed_dir)


@pytest.mark.slow
@needs_ray
def test_killed_ray_run_resumes_to_the_same_result(ray_instance, sample_dir, processed_dir, tmp_path, capsys):
    out = tmp_path / "killed"
    address = ray_instance.get_runtime_context().gcs_address
    # A second driver joins the instance (the `--ray ADDRESS` path); each video is slowed down so the kill
    # lands half way.
    script = textwrap.dedent(f"""
        import time
        import dfdlib.preprocess.run as pp
        real = pp.process_video
        def slow(*a, **k):
            time.sleep(1.0)
            return real(*a, **k)
        pp.process_video = slow
        pp.preprocess_dataset({str(sample_dir)!r}, {str(out)!r}, pp.PreprocessConfig(frames=8, size=64),
                              ray={address!r}, progress=False)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    try:
        deadline = time.monotonic() + 240
        while len([p for p in out.glob("*/*") if not p.name.startswith(".")]) < 2:
            assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
            assert time.monotonic() < deadline, "the Ray run wrote no folder in 240 s"
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    done = [p for p in out.glob("*/*") if not p.name.startswith(".")]
    assert 2 <= len(done) < 8
    deadline = time.monotonic() + 60  # Ray kills the dead driver's actors: wait until their CPUs are free
    while ray_instance.available_resources().get("CPU", 0) < 2:
        assert time.monotonic() < deadline, "the killed driver's actors are still alive"
        time.sleep(0.2)

    args = ["preprocess", str(sample_dir), str(out), "--frames", "8", "--size", "64", "--ray", "--no-progress"]
    assert main(args) == 0  # the CLI uses the Ray instance of this process
    capsys.readouterr()
    report = pd.read_csv(out / "preprocess_report.csv")
    assert (report["status"] == "skipped_done").sum() >= len(done)
    same_output(out, processed_dir, resumed=True)


def _exit_on_v3(task: VideoTask) -> dict:
    if task.name == "v3":
        os._exit(1)  # what an out-of-memory kill or a decoder segfault looks like to Ray
    return {"video": task.video, "status": "ok"}


@pytest.mark.slow
@needs_ray
def test_a_dying_actor_loses_nothing_else(ray_instance):
    ray_instance.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # actors cannot import tests/
    tasks = [VideoTask(f"/x/v{i}.mp4", f"real/v{i}.mp4", "real", f"v{i}") for i in range(6)]
    seen = []
    rows = run_on_ray(tasks, _exit_on_v3, True, seen.append,
                      crash_row=lambda t: {"video": t.video, "status": "unreadable"})
    assert [r["video"] for r in rows] == [t.video for t in tasks] and len(seen) == 6
    assert [r["status"] for r in rows] == ["ok"] * 3 + ["unreadable"] + ["ok"] * 2

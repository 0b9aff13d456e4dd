"""examples/slurm/preprocess_array.sbatch on a real one-node SLURM (Debian's slurm-wlm: slurmctld + slurmd on
127.0.0.1, no munge), then `dfd preprocess-merge`: the merged report equals a plain run's. Skipped where SLURM
is not installed or cannot start (not root, no binaries)."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from test_preprocess_ray import folders, manifest
from test_video import write_video

from dfdlib import PreprocessConfig, preprocess_dataset

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
SBATCH = ROOT / "examples" / "slurm" / "preprocess_array.sbatch"
CONF = """ClusterName=dfdtest
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
AuthType=auth/none
CredType=cred/none
SlurmUser=root
SlurmdUser=root
StateSaveLocation={dir}/state
SlurmdSpoolDir={dir}/spool
SlurmctldPidFile={dir}/slurmctld.pid
SlurmdPidFile={dir}/slurmd.pid
SlurmctldLogFile={dir}/slurmctld.log
SlurmdLogFile={dir}/slurmd.log
ProctrackType=proctrack/pgid
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
NodeName=dfdnode NodeAddr=127.0.0.1 NodeHostname={host} CPUs=2 RealMemory=2000 State=UNKNOWN
PartitionName=debug Nodes=dfdnode Default=YES MaxTime=INFINITE State=UP
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """SLURM_CONF of a running one-node cluster with 2 CPUs; the daemons are stopped afterwards."""
    need = ("slurmctld", "slurmd", "sbatch", "sinfo")
    if os.geteuid() != 0 or not all(shutil.which(b) for b in need):
        pytest.skip("needs root and Debian's slurm-wlm (apt-get install slurmctld slurmd slurm-client)")
    d = tmp_path_factory.mktemp("slurm")
    (d / "state").mkdir()
    (d / "spool").mkdir()
    conf = d / "slurm.conf"
    conf.write_text(CONF.format(ctld_port=_free_port(), d_port=_free_port(), dir=d, host=socket.gethostname()))
    env = {**os.environ, "SLURM_CONF": str(conf)}
    daemons = [subprocess.Popen(["slurmctld", "-D", "-i"], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.STDOUT)]
    time.sleep(1)
    daemons.append(subprocess.Popen(["slurmd", "-D", "-N", "dfdnode"], env=env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.STDOUT))
    try:
        deadline = time.monotonic() + 30
        while "idle" not in subprocess.run(["sinfo", "-h", "-o", "%T"], env=env, capture_output=True,
                                           text=True).stdout:
            if time.monotonic() > deadline or any(p.poll() is not None for p in daemons):
                pytest.skip(f"SLURM did not start: {(d / 'slurmctld.log').read_text()[-500:] if (d / 'slurmctld.log').exists() else ''}")
            time.sleep(0.5)
        yield env
    finally:
        for p in daemons:
            p.terminate()
        for p in daemons:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


def test_the_sbatch_example_then_merge_equals_a_plain_run(slurm, tmp_path):
    src, out = tmp_path / "videos", tmp_path / "out"
    (src / "real").mkdir(parents=True)
    (src / "fake").mkdir()
    write_video(src / "real" / "r1.mp4", n=12, face=lambda i: (100, 20, 200))
    write_video(src / "real" / "r2.mp4", n=12, face=lambda i: (40 + 6 * i, 20, 200))
    write_video(src / "fake" / "f1.mp4", n=12, face=lambda i: (60, 30, 180))
    bin_dir = tmp_path / "bin"  # `dfd` as the job sees it: this interpreter and this checkout
    bin_dir.mkdir()
    (bin_dir / "dfd").write_text(f'#!/bin/sh\nexec {sys.executable} -m dfdlib "$@"\n')
    (bin_dir / "dfd").chmod(0o755)
    env = {**slurm, "PATH": f"{bin_dir}:{os.environ['PATH']}", "SRC": str(src), "OUT": str(out),
           "PREPROCESS_ARGS": "--frames 4 --size 32", "TF_CPP_MIN_LOG_LEVEL": "3",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    # The example as a user submits it; only the memory request is shrunk to this test node's 2000 MB.
    proc = subprocess.run(["sbatch", "--wait", "--array=0-1", "--cpus-per-task=1", "--mem-per-cpu=900M",
                           f"--output={tmp_path}/log_%a.out", str(SBATCH)], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=400)
    logs = "\n".join(p.read_text() for p in sorted(tmp_path.glob("log_*.out")))
    assert proc.returncode == 0, proc.stdout + proc.stderr + logs
    assert "shard 0/2" in logs and "shard 1/2" in logs
    assert sorted(p.name for p in out.glob("preprocess_report_shard-*")) == [
        "preprocess_report_shard-0-of-2.csv", "preprocess_report_shard-1-of-2.csv"]

    merge = subprocess.run(["dfd", "preprocess-merge", str(out)], env=env, capture_output=True, text=True,
                           timeout=120)
    assert merge.returncode == 0, merge.stdout + merge.stderr
    assert "2 of 2 shard reports, 3 videos: 3 ok" in merge.stdout

    plain = tmp_path / "plain"
    preprocess_dataset(src, plain, PreprocessConfig(frames=4, size=32), progress=False)
    assert folders(out) == folders(plain) == ["fake/f1", "real/r1", "real/r2"]
    for rel in folders(plain):
        assert manifest(out / rel) == manifest(plain / rel), rel
    a, b = (pd.read_csv(p / "preprocess_report.csv").drop(columns="seconds") for p in (out, plain))
    pd.testing.assert_frame_equal(a, b)

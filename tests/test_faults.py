"""Faults (issue 8): kill -9 in the middle of long jobs, crashes in the middle of a write, and the
security rules (weights_only, paths confined to the processed root, uploads in a temp folder).

The kill tests run the real CLI (`python -m dfdlib ...`) in a subprocess with a small hook module that
stops it at a chosen point (before the N-th face crop is written; half-way through writing last.pt) and
says so in a marker file; the test then sends SIGKILL, reruns and compares with an uninterrupted run.
"""
from __future__ import annotations

import ast
import dataclasses
import errno
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from test_trainer import make_tiny_processed
from test_video import write_video

import dfdlib
from dfdlib import cli
from dfdlib.preprocess.faces import PreprocessConfig
from dfdlib.preprocess.run import preprocess_dataset

CFG = PreprocessConfig(frames=4, size=32)
CFG_FLAGS = ["--frames", "4", "--size", "32", "--no-progress"]

# Imported by the CLI subprocess before dfdlib runs: holds the process at one point until it is killed.
HOOK = '''
import os
import time
from pathlib import Path

MARK = Path(os.environ["DFD_FAULT_MARK"])
WHERE, _, N = os.environ["DFD_FAULT_AT"].partition(":")
N = int(N)
calls = [0]


def hold():
    MARK.with_suffix(".tmp").write_text(str(os.getpid()))
    os.replace(MARK.with_suffix(".tmp"), MARK)  # the test sees the marker whole or not at all
    for _ in range(3000):  # the test sends SIGKILL now; give up after 10 minutes if it never comes
        time.sleep(0.2)
    os._exit(3)


if WHERE == "imwrite":  # stop before the N-th face crop is written
    import cv2

    real_imwrite = cv2.imwrite

    def imwrite(path, *args, **kwargs):
        calls[0] += 1
        if calls[0] == N:
            hold()
        return real_imwrite(path, *args, **kwargs)

    cv2.imwrite = imwrite
elif WHERE == "last_pt":  # write half of the N-th last.pt, then stop
    import io

    import torch

    real_save = torch.save

    def save(obj, f, *args, **kwargs):
        if isinstance(obj, dict) and obj.get("format") == "dfdlib-last/1":
            calls[0] += 1
            if calls[0] == N:
                buf = io.BytesIO()
                real_save(obj, buf, *args, **kwargs)
                f.write(buf.getvalue()[: len(buf.getvalue()) // 2])
                f.flush()
                os.fsync(f.fileno())
                hold()
        return real_save(obj, f, *args, **kwargs)

    torch.save = save
'''


@pytest.fixture
def start_cli(tmp_path):
    """start(args, at) runs `python -m dfdlib ARGS` in a subprocess that holds at `at` ("imwrite:N" |
    "last_pt:N"); returns (process, marker file). Processes still alive at teardown are killed."""
    started = []

    def start(args: list, at: str) -> tuple[subprocess.Popen, Path]:
        hook_dir = tmp_path / "hook"
        hook_dir.mkdir(exist_ok=True)
        (hook_dir / "dfd_fault_hook.py").write_text(HOOK)
        mark = tmp_path / f"held-{at.replace(':', '-')}"
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(hook_dir), os.environ.get("PYTHONPATH", "")]),
                   DFD_FAULT_MARK=str(mark), DFD_FAULT_AT=at, TF_CPP_MIN_LOG_LEVEL="3")
        code = "import dfd_fault_hook, runpy; runpy.run_module('dfdlib', run_name='__main__', alter_sys=True)"
        with open(tmp_path / f"cli-{at.replace(':', '-')}.log", "w") as log:  # the child keeps its own handle
            proc = subprocess.Popen([sys.executable, "-c", code, *map(str, args)], env=env, stdout=log,
                                    stderr=subprocess.STDOUT)
        started.append(proc)
        return proc, mark

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def kill_when_held(proc: subprocess.Popen, mark: Path, timeout: float = 300) -> None:
    """Wait for the process to reach its hold point, then kill -9 it."""
    t0 = time.monotonic()
    while not mark.exists():
        if proc.poll() is not None:
            log = (mark.parent / f"cli-{mark.name.removeprefix('held-')}.log").read_text()
            raise AssertionError(f"the CLI ended (exit {proc.returncode}) before the kill point:\n{log[-3000:]}")
        if time.monotonic() - t0 > timeout:
            proc.kill()
            raise AssertionError("the CLI did not reach the kill point in time")
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL


def tree(root: Path) -> dict[str, bytes]:
    """Every file under root → its bytes (faces.json without its timing field)."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            data = p.read_bytes()
            if p.name == "faces.json":
                doc = json.loads(data)
                doc.pop("seconds")
                data = json.dumps(doc, sort_keys=True).encode()
            out[p.relative_to(root).as_posix()] = data
    return out


# ------------------------------------------------------------------------------- kill -9: preprocess
@pytest.mark.slow
def test_kill_9_during_preprocessing_then_rerun_equals_an_uninterrupted_run(tmp_path, start_cli):
    src = tmp_path / "videos"
    (src / "real").mkdir(parents=True)
    (src / "fake").mkdir()
    (src / "real" / "a_broken.mp4").write_bytes(b"")
    for i, name in enumerate(["real/b.mp4", "real/c.mp4", "fake/d.mp4"]):
        write_video(src / name, n=16, face=lambda k, i=i: (60 + 20 * i, 20, 200))
    out = tmp_path / "out"
    # b's 4 crops + faces.json are written, then the process stops before c's second crop and is killed
    proc, mark = start_cli(["preprocess", src, out, *CFG_FLAGS], "imwrite:6")
    reference = preprocess_dataset(src, tmp_path / "reference", CFG, progress=False)  # while it starts up
    kill_when_held(proc, mark)

    # at the moment of the kill: b is complete; c exists only as a temp folder that nothing takes for done
    assert sorted(p.relative_to(out).as_posix() for p in out.glob("*/*")) == ["real/.c.tmp-" + mark.read_text(),
                                                                               "real/b"]
    assert [p.name for p in (out / "real" / f".c.tmp-{mark.read_text()}").iterdir()] == ["frame_0.jpg"]
    assert not (out / "preprocess_report.csv").exists()
    with pytest.warns(UserWarning, match="no fake videos"):
        assert dfdlib.from_folders(out, split=None)["filename"].tolist() == ["real/b"]

    # rerun the same command: finished work is kept, the rest is done, the result equals the reference; the
    # empty video failed, which the exit status says (issue 25.3)
    assert cli.main(["preprocess", str(src), str(out), *CFG_FLAGS]) == 1
    report = pd.read_csv(out / "preprocess_report.csv").set_index("video")
    assert report["status"].to_dict() == {"real/a_broken.mp4": "unreadable", "real/b.mp4": "skipped_done",
                                          "real/c.mp4": "ok", "fake/d.mp4": "ok"}
    assert reference.set_index("video")["status"].to_dict() == {**report["status"].to_dict(), "real/b.mp4": "ok"}
    got, want = tree(out), tree(tmp_path / "reference")
    got.pop("preprocess_report.csv"), want.pop("preprocess_report.csv")
    assert sorted(got) == sorted(want)  # same files: no temp folder left, nothing missing
    for name in want:
        assert got[name] == want[name], name  # same frames, byte for byte; same boxes in faces.json


# ---------------------------------------------------------------------------------- kill -9: train
@pytest.mark.slow
def test_kill_9_while_saving_a_checkpoint_then_resume_reaches_the_same_weights(tmp_path, start_cli, capsys):
    root, csv = make_tiny_processed(tmp_path / "processed")
    args = ["train", "--csv", csv, "--data", root, "--sequence-length", "4", "--batch-size", "2", "--lr", "3e-3",
            "--epochs", "3", "--device", "cpu", "--num-workers", "0", "--backbone", "tiny", "--weights", "none",
            "--hidden-dim", "16", "--image-size", "32", "--early-stopping", "0", "--warmup-epochs", "1",
            "--deterministic", "--seed", "5", "--no-show-progress"]
    full, run = tmp_path / "full", tmp_path / "run"
    # epoch 1 is saved; epoch 2 is trained, and the process is killed half-way through writing its last.pt
    proc, mark = start_cli([*args, "--out", run], "last_pt:2")
    assert cli.main([*map(str, args), "--out", str(full)]) == 0  # the uninterrupted run, meanwhile
    kill_when_held(proc, mark)

    last = torch.load(run / "last.pt", weights_only=True)
    assert last["epoch"] == 1  # the crash mid-write left the previous checkpoint intact
    partial = list(run.glob(".last.pt.*.tmp"))
    assert len(partial) == 1 and 0 < partial[0].stat().st_size < (run / "last.pt").stat().st_size
    with pytest.raises(Exception):  # noqa: B017 - any error: the half file is not a checkpoint
        torch.load(partial[0], weights_only=True)

    capsys.readouterr()
    assert cli.main([*map(str, args), "--out", str(run), "--resume"]) == 0  # the same command, with --resume
    assert f"resuming {run} after epoch 1/3" in capsys.readouterr().out
    a, b = torch.load(full / "last.pt", weights_only=True), torch.load(run / "last.pt", weights_only=True)
    assert a["epoch"] == b["epoch"] == 3
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    for pid, state in a["optimizer"]["state"].items():
        for name, t in state.items():
            assert torch.equal(t, b["optimizer"]["state"][pid][name]), (pid, name)
    cols = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "val_auc", "lr"]
    pd.testing.assert_frame_equal(pd.read_csv(full / "history.csv")[cols], pd.read_csv(run / "history.csv")[cols])
    best_full, best_run = sorted(full.glob("model_*.pt")), sorted(run.glob("model_*.pt"))
    assert [p.name for p in best_full] == [p.name for p in best_run] and len(best_run) == 1
    sa = torch.load(best_full[0], weights_only=True)["state_dict"]
    sb = torch.load(best_run[0], weights_only=True)["state_dict"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not list(run.glob(".*.tmp"))  # the resumed run cleared the crash's half-written file


# ------------------------------------------------------------------------- atomic writes, in process
class _FailingFile(io.RawIOBase):
    """A file object that writes `limit` bytes, then fails like a full disk."""

    def __init__(self, f, limit: int):
        self.f, self.left = f, limit

    def writable(self):
        return True

    def write(self, data):
        data = bytes(data)
        if len(data) > self.left:
            self.f.write(data[:self.left])
            self.f.flush()
            self.left = 0
            raise OSError(errno.ENOSPC, "No space left on device")
        self.left -= len(data)
        return self.f.write(data)

    def flush(self):
        self.f.flush()

    def fileno(self):
        return self.f.fileno()

    def close(self):
        if not self.closed:
            super().close()  # flushes first, while the real file is still open
            self.f.close()


def _writers(tmp_path):
    """name → (path, write(version)) for each kind of file the pipeline writes through atomic_write."""
    from dfdlib.labels.io import write_labels
    from dfdlib.model import ResNeXtLSTM, save_model
    from dfdlib.utils import atomic_write, write_csv

    def labels(v):
        write_labels(pd.DataFrame({"filename": [f"real/v{i}" for i in range(50)], "label": v % 2}), tmp_path / "l.csv")

    def model(v):
        torch.manual_seed(v)
        save_model(tmp_path / "m.pt", ResNeXtLSTM(backbone="tiny", hidden_dim=8), {"sequence_length": v})

    def predictions(v):
        write_csv(pd.DataFrame({"video": [f"v{i}.mp4" for i in range(50)], "prob_fake": v / 10}), tmp_path / "p.csv")

    def metrics(v):
        with atomic_write(tmp_path / "metrics.json") as f:
            json.dump({"accuracy": v / 10, "padding": "x" * 5000}, f)

    return {"labels.csv": (tmp_path / "l.csv", labels), "model file": (tmp_path / "m.pt", model),
            "predictions.csv": (tmp_path / "p.csv", predictions), "metrics.json": (tmp_path / "metrics.json", metrics)}


@pytest.mark.parametrize("name", ["labels.csv", "model file", "predictions.csv", "metrics.json"])
def test_a_write_that_fails_half_way_leaves_the_previous_file(tmp_path, monkeypatch, name):
    path, write = _writers(tmp_path)[name]
    write(1)
    before = path.read_bytes()
    real_fdopen = os.fdopen

    def failing_fdopen(fd, mode="r", *args, **kwargs):
        f = real_fdopen(fd, mode.replace("t", "") if "b" in mode else "wb")
        raw = _FailingFile(f, limit=len(before) // 3)
        return raw if "b" in mode else io.TextIOWrapper(io.BufferedWriter(raw), newline=kwargs.get("newline"))

    monkeypatch.setattr(os, "fdopen", failing_fdopen)
    with pytest.raises((OSError, RuntimeError)):
        write(2)
    monkeypatch.setattr(os, "fdopen", real_fdopen)
    assert path.read_bytes() == before  # the previous version, whole
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp file left behind


# --------------------------------------------------------------------------------------- security
def test_every_torch_load_in_the_library_is_weights_only():
    """Static check: each torch.load(...) call in dfdlib passes weights_only=True."""
    calls = []
    for py in sorted(Path(dfdlib.__file__).parent.rglob("*.py")):
        for node in ast.walk(ast.parse(py.read_text(), str(py))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load" \
                    and ast.unparse(node.func.value) in ("torch", "self.torch"):
                kw = {k.arg: k.value for k in node.keywords}
                ok = isinstance(kw.get("weights_only"), ast.Constant) and kw["weights_only"].value is True
                calls.append((f"{py.name}:{node.lineno}", ok))
    assert len(calls) >= 4  # model, registry, trainer (resume, best model), ...
    assert [c for c, ok in calls if not ok] == []


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_resume_file_with_code_is_refused_and_never_run(tmp_path, capsys):
    root, csv = make_tiny_processed(tmp_path / "processed")
    run = tmp_path / "run"
    run.mkdir()
    torch.save({"format": "dfdlib-last/1", "payload": _RunsCode(tmp_path / "CODE_RAN")}, run / "last.pt")
    rc = cli.main(["train", "--csv", str(csv), "--data", str(root), "--out", str(run), "--resume",
                   "--sequence-length", "4", "--backbone", "tiny", "--weights", "none", "--hidden-dim", "16",
                   "--image-size", "32", "--device", "cpu", "--num-workers", "0", "--epochs", "1",
                   "--no-show-progress"])
    err = capsys.readouterr().err
    assert rc == 1 and "last.pt cannot be read" in err and "delete it to start a new run" in err
    assert "Traceback" not in err and not (tmp_path / "CODE_RAN").exists()


@pytest.mark.parametrize("name", ["../outside", "real/../../outside", "/etc", "C:\\data\\real\\v0"])
def test_csv_paths_are_confined_to_the_processed_root(tmp_path, name):
    from dfdlib.data import FaceSequenceDataset
    from dfdlib.labels.io import LabelsError, validate_labels

    root, _ = make_tiny_processed(tmp_path / "processed", splits=["train", "val"])
    outside = tmp_path / "outside"  # a real folder of frames next to the root: must still be refused
    outside.mkdir()
    shutil.copy(root / "real" / "v0" / "frame_0.jpg", outside / "frame_0.jpg")
    rows = pd.DataFrame({"filename": ["real/v0", "fake/v0", name], "label": [0, 1, 0]})
    with pytest.raises(LabelsError, match="line 4") as exc:
        validate_labels(rows, root)
    assert "relative to the processed root" in str(exc.value) or "outside the processed root" in str(exc.value)
    with pytest.raises(ValueError, match="row 3") as exc:
        FaceSequenceDataset(rows, root, 4)
    assert "relative to the processed root" in str(exc.value)


def test_uploads_are_written_into_a_private_temp_folder_and_removed(tmp_path, monkeypatch):
    from dfdlib.predict.verdict import uploaded_video

    monkeypatch.chdir(tmp_path)
    for name, expected in [("clip.mp4", "clip.mp4"), ("../../evil.mp4", "evil.mp4"), ("..\\..\\win.mp4", "win.mp4"),
                           ("/etc/passwd", "passwd"), (".hidden.mp4", "hidden.mp4"), ("", "upload.mp4"),
                           ("a b é.mov", "a b é.mov")]:
        with uploaded_video(name, memoryview(b"video bytes")) as path:
            folder = path.parent
            assert path.name == expected and path.read_bytes() == b"video bytes"
            assert folder.name.startswith("dfd-upload-") and (folder.stat().st_mode & 0o777) == 0o700
            assert list(folder.iterdir()) == [path]
        assert not folder.exists()
    with pytest.raises(RuntimeError), uploaded_video("x.mp4", b"1") as path:  # removed after an error too
        raise RuntimeError("prediction failed")
    assert not path.parent.exists()
    assert list(tmp_path.iterdir()) == []  # nothing written where the notebook runs


def test_predict_notebook_uses_the_temp_upload_folder():
    nb = json.loads((Path(dfdlib.__file__).parents[1] / "notebooks" / "Predict.ipynb").read_text())
    code = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    assert "FileUpload" in code
    assert "uploaded_video(" in code and '"uploads"' not in code


def test_a_crash_while_saving_an_improved_epoch_leaves_last_pt_naming_a_best_model_that_exists(tmp_path, monkeypatch):
    """Every epoch improves (with a new file name); the write of epoch 2's last.pt fails: the resume file
    still names epoch 1's best model, which must not have been deleted yet, and resume finishes the run."""
    from test_trainer import tiny_config

    import dfdlib.metrics
    from dfdlib.training import checkpoint
    from dfdlib.training.loop import train

    real_metrics, calls = dfdlib.metrics.compute_metrics, [0]

    def improving(y, p, threshold=0.5):  # validation accuracy 10 %, 20 %, ... → a new best name each epoch
        m = real_metrics(y, p, threshold)
        calls[0] += 1
        return dict(m, accuracy=calls[0] / 10, roc_auc=calls[0] / 10)

    monkeypatch.setattr(dfdlib.metrics, "compute_metrics", improving)
    real_save_last = checkpoint.save_last

    def failing_save_last(path, **state):
        if state["epoch"] == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save_last(path, **state)

    monkeypatch.setattr(checkpoint, "save_last", failing_save_last)
    cfg = tiny_config(make_tiny_processed(tmp_path / "processed"), tmp_path / "run", num_epochs=3)
    with pytest.raises(OSError, match="rerun with resume=True"):
        train(cfg)
    last = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert last["epoch"] == 1
    assert (tmp_path / "run" / Path(last["best"]["path"]).name).exists()  # the model last.pt names is there

    monkeypatch.setattr(checkpoint, "save_last", real_save_last)
    result = train(dataclasses.replace(cfg, resume=True))
    assert result.best_model_path.exists() and len(list((tmp_path / "run").glob("model_*.pt"))) <= 2
    assert torch.load(tmp_path / "run" / "last.pt", weights_only=True)["epoch"] == 3


def test_a_full_disk_inside_torch_save_says_what_happened_how_much_space_and_leaves_nothing_stray(
        tmp_path, monkeypatch, capsys):
    """Issue 25.2: torch.save wraps ENOSPC in a RuntimeError ("[enforce fail at inline_container.cc] unexpected
    pos"). The user reads the disk error, the sizes the run's files need and --resume; the improved epoch's new
    model file and its history row are gone, so the run folder holds exactly the last good checkpoint."""
    from test_trainer import tiny_config

    import dfdlib.metrics
    from dfdlib.training import checkpoint
    from dfdlib.training.loop import train

    real_metrics, calls = dfdlib.metrics.compute_metrics, [0]

    def improving(y, p, threshold=0.5):  # a new best (with a new file name) every epoch
        calls[0] += 1
        return dict(real_metrics(y, p, threshold), accuracy=calls[0] / 10, roc_auc=calls[0] / 10)

    monkeypatch.setattr(dfdlib.metrics, "compute_metrics", improving)
    real_save_last, real_fdopen = checkpoint.save_last, os.fdopen

    def disk_full_save_last(path, **state):
        if state["epoch"] != 2:
            return real_save_last(path, **state)

        def fdopen(fd, mode="r", *a, **k):  # the disk fills 1 kB into the real torch.save of last.pt
            return io.BufferedWriter(_FailingFile(real_fdopen(fd, mode, *a, **k), 1024)) if "b" in mode else \
                real_fdopen(fd, mode, *a, **k)

        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(os, "fdopen", fdopen)
            return real_save_last(path, **state)

    monkeypatch.setattr(checkpoint, "save_last", disk_full_save_last)
    run = tmp_path / "run"
    cfg = tiny_config(make_tiny_processed(tmp_path / "processed"), run, num_epochs=3)
    with pytest.raises(OSError) as exc:
        train(cfg)
    msg = str(exc.value)
    assert exc.value.errno == errno.ENOSPC and "No space left on device" in msg and "inline_container" not in msg
    assert "could not save epoch 2" in msg and "holds epoch 1" in msg and "--resume" in msg
    assert " MB per model file and " in msg and " MB for last.pt" in msg and "MB are free" in msg
    last = torch.load(run / "last.pt", weights_only=True)
    assert last["epoch"] == 1
    assert [p.name for p in run.glob("model_*.pt")] == [Path(last["best"]["path"]).name]  # no stray epoch-2 file
    assert len(pd.read_csv(run / "history.csv")) == 1 and not list(run.glob(".*.tmp"))

    monkeypatch.setattr(checkpoint, "save_last", real_save_last)
    result = train(dataclasses.replace(cfg, resume=True))
    assert len(result.history) == 3 and len(pd.read_csv(run / "history.csv")) == 3
    assert [p.name for p in run.glob("model_*.pt")] == [result.best_model_path.name]


def test_sizes_the_full_disk_message_gives_are_those_of_the_files(tmp_path):
    from dfdlib.model import ResNeXtLSTM, save_model
    from dfdlib.training.checkpoint import file_sizes

    model = ResNeXtLSTM(backbone="tiny", hidden_dim=16)
    save_model(tmp_path / "m.pt", model, {"sequence_length": 4})
    opt = torch.optim.AdamW(model.parameters())
    model(torch.zeros(1, 2, 3, 32, 32)).sum().backward()
    opt.step()
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict()}, tmp_path / "last.pt")
    weights, last = file_sizes(model)
    assert weights <= (tmp_path / "m.pt").stat().st_size < weights + 64_000
    assert last <= (tmp_path / "last.pt").stat().st_size < last + 64_000


# ------------------------------------------------------------------------- workers end with their parent
WORK_MODULE = '''
import os, time
def hang(task):
    open(os.path.join(os.environ["PIDS_DIR"], str(os.getpid())), "w").close()
    time.sleep(600)
    return {}
def noop():
    pass
'''


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"  # a zombie has ended
    except FileNotFoundError:
        return False


def _kill_parent_then_wait_for_workers(tmp_path, script: str, n_workers: int) -> list[int]:
    """Run `script` (which starts workers that write their pid into PIDS_DIR and hang), SIGKILL it once every
    worker is up, and return the worker pids still alive 15 s later (killing those, so nothing leaks)."""
    (tmp_path / "hangmod.py").write_text(WORK_MODULE)
    pids_dir = tmp_path / "pids"
    pids_dir.mkdir()
    env = {**os.environ, "PIDS_DIR": str(pids_dir), "PYTHONPATH": os.pathsep.join(
        [str(tmp_path), str(Path(dfdlib.__file__).parents[1]), os.environ.get("PYTHONPATH", "")])}
    parent = subprocess.Popen([sys.executable, "-c", script], env=env)
    deadline = time.monotonic() + 120
    while len(list(pids_dir.iterdir())) < n_workers and time.monotonic() < deadline and parent.poll() is None:
        time.sleep(0.2)
    workers = [int(p.name) for p in pids_dir.iterdir()]
    assert len(workers) == n_workers, "the workers did not start"
    parent.kill()  # as the out-of-memory killer would
    parent.wait()
    deadline = time.monotonic() + 15
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = [w for w in workers if _alive(w)]
    for w in left:
        os.kill(w, signal.SIGKILL)
    return left


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_killing_preprocess_main_process_ends_its_workers(tmp_path):
    """Issue 25.4: SIGKILL of the process that runs the pool (as the OOM killer does) must not leave idle
    workers of ~1.4 GB each running: they end with their parent."""
    script = ("import hangmod\nfrom dfdlib.preprocess.run import run_tasks\n"
              "run_tasks([1, 2, 3, 4], hangmod.hang, workers=2, initializer=hangmod.noop)\n")
    assert _kill_parent_then_wait_for_workers(tmp_path, script, 2) == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_the_parent_watchdog_ends_a_worker_without_prctl(tmp_path):
    """The fallback where PR_SET_PDEATHSIG does not exist (macOS): the watchdog thread notices the parent died."""
    script = ("import os, subprocess, sys\n"
              "subprocess.Popen([sys.executable, '-c', 'import os, hangmod\\nfrom dfdlib.utils import die_with_parent"
              "\\ndie_with_parent(%d, poll=0.2, use_prctl=False)\\nhangmod.hang(0)' % os.getpid()])\n"
              "import time; time.sleep(600)\n")
    assert _kill_parent_then_wait_for_workers(tmp_path, script, 1) == []

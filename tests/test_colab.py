"""Colab, simulated: the notebooks' first cell installs dfdlib unedited, and a training run on "Drive" resumes.

A stub `google.colab` package (its `drive.mount` links a temp "Drive" folder at the mount point), a temp dir as
Colab's /content (DFD_COLAB_ROOT), a local git repository as the repository URL (DFD_REPO_URL) and a pip
recorder in place of pip (DFD_PIP) stand in for Colab. The cell's own code runs for real: Drive mounted before
the copy on it is looked for, `git clone` of the repository, the fallbacks, the error a user sees. The recorder
logs each pip command and "installs" a local source by copying its package where the cell's Python finds it;
one test lets real pip build and install the Drive copy (no index, no build isolation, into a temp folder).
The cell runs in `python -S` (no site-packages), so dfdlib is missing there until the cell installs it.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
NB_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(p.name for p in NB_DIR.glob("*.ipynb"))

MOUNT = '''\
import os


def mount(mountpoint, force_remount=False):
    """Like Colab's: Drive appears at the mount point (moved there from the folder that stands for Drive)."""
    if not os.path.exists(mountpoint):
        os.rename(os.environ["FAKE_DRIVE"], mountpoint)
    os.makedirs(os.path.join(mountpoint, "MyDrive"), exist_ok=True)
'''

# DFD_PIP: logs its arguments; "installs" a source folder (or "dfdlib" when FAKE_PYPI is set) by copying its
# package into FAKE_SITE, or with REAL_PIP set runs pip for real there. mtcnn/papermill succeed; unknowns fail.
RECORDER = '''\
import json, os, shutil, subprocess, sys
from pathlib import Path

args = sys.argv[1:]
with open(os.environ["PIP_LOG"], "a") as f:
    f.write(json.dumps(args) + "\\n")
source = args[-1]
site = Path(os.environ["FAKE_SITE"])
if source == "dfdlib" and os.environ.get("FAKE_PYPI"):
    source = os.environ["FAKE_PYPI"]
if Path(source, "pyproject.toml").is_file():
    if os.environ.get("REAL_PIP"):
        sys.exit(subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-build-isolation",
                                 "--target", str(site), *args[2:-1], source]).returncode)
    shutil.copytree(Path(source, "dfdlib"), site / "dfdlib", ignore=shutil.ignore_patterns("__pycache__"))
    sys.exit(0)
if source in ("mtcnn", "papermill") and not os.environ.get("FAIL_DEPS"):
    sys.exit(0)
print(f"ERROR: No matching distribution found for {source}", file=sys.stderr)
sys.exit(1)
'''


def first_code_cell(name: str) -> str:
    nb = nbformat.read(str(NB_DIR / name), as_version=4)
    return next(c.source for c in nb.cells if c.cell_type == "code")


def repository_url() -> str:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Repository"]


def copy_project(dest: Path) -> Path:
    """A minimal copy of this project: what `pip install` of it needs."""
    dest.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, dest / name)
    shutil.copytree(ROOT / "dfdlib", dest / "dfdlib", ignore=shutil.ignore_patterns("__pycache__"))
    return dest


class Colab:
    """A temp Colab: /content, a Drive folder, the stub google.colab, the pip recorder. run() executes a cell."""

    def __init__(self, tmp: Path):
        self.tmp, self.content, self.drive = tmp, tmp / "content", tmp / "gdrive"
        self.site, self.log = tmp / "site", tmp / "pip.jsonl"
        for d in (self.content, self.drive, self.site, tmp / "stub" / "google" / "colab"):
            d.mkdir(parents=True)
        (tmp / "stub" / "google" / "colab" / "__init__.py").write_text("")
        (tmp / "stub" / "google" / "colab" / "drive.py").write_text(MOUNT)
        (tmp / "recorder.py").write_text(RECORDER)
        self.env = {**os.environ, "DFD_COLAB_ROOT": str(self.content), "FAKE_DRIVE": str(self.drive),
                    "FAKE_SITE": str(self.site), "PIP_LOG": str(self.log),
                    "DFD_PIP": f"{sys.executable} {tmp / 'recorder.py'}",
                    "DFD_REPO_URL": (tmp / "no-such-repo").as_uri(),
                    "PYTHONPATH": os.pathsep.join([str(tmp / "stub"), str(self.site)])}

    def run(self, source: str, **env) -> subprocess.CompletedProcess:
        # Colab's kernel has google.colab imported; -S: no site-packages, so no dfdlib unless the cell installs it
        harness = ("import importlib.util, google.colab\n"
                   f"exec(compile({source!r}, 'colab-cell', 'exec'), {{}})\n"
                   "spec = importlib.util.find_spec('dfdlib')\n"
                   "print('DFDLIB', spec.origin if spec else None)\n")
        return subprocess.run([sys.executable, "-S", "-c", harness], cwd=self.content, capture_output=True,
                              text=True, timeout=300, env={**self.env, **env})

    def pip_calls(self) -> list[list[str]]:
        return [json.loads(line) for line in self.log.read_text().splitlines()] if self.log.exists() else []

    def drive_copy(self) -> Path:
        """This project uploaded to Drive as MyDrive/dfdlib; returns where it shows once Drive is mounted."""
        copy_project(self.drive / "MyDrive" / "dfdlib")
        return self.content / "drive" / "MyDrive" / "dfdlib"


@pytest.fixture
def colab(tmp_path):
    return Colab(tmp_path)


@pytest.fixture(scope="module")
def git_repo(tmp_path_factory):
    """A local git repository holding a copy of this project (what the repository URL points at)."""
    repo = copy_project(tmp_path_factory.mktemp("remote") / "dfdlib")
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com", "-c", "init.defaultBranch=main"]
    for cmd in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "copy"]):
        subprocess.run([*git, *cmd], cwd=repo, check=True)
    return repo


CELL = first_code_cell("Model_and_train_csv.ipynb")


# ---- the cell itself --------------------------------------------------------------------------------

def test_every_notebook_starts_with_the_same_colab_cell_and_the_url_from_pyproject():
    import importlib.util

    cells = {name: first_code_cell(name) for name in NOTEBOOKS}
    assert len(cells) == 4 and len(set(cells.values())) == 1, "the first code cells differ"
    assert "google.colab" in CELL and "drive.mount" in CELL
    url = repository_url()
    assert f'"{url}"' in CELL and CELL.count(url) == 1  # the URL comes from pyproject, in one line of the cell
    spec = importlib.util.spec_from_file_location("sync_notebooks", ROOT / "scripts" / "sync_notebooks.py")
    sync = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sync)
    assert sync.repository_url() == url and CELL == sync.colab_cell()
    assert "check=True" not in CELL  # no CalledProcessError: every failure ends in one message


def test_sync_needs_the_repository_url_in_pyproject(tmp_path):
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import sync_notebooks
    finally:
        sys.path.pop(0)
    bare = tmp_path / "pyproject.toml"
    bare.write_text('[project]\nname = "x"\n')
    with pytest.raises(ValueError, match=r"\[project.urls\]"):
        sync_notebooks.repository_url(bare)


def test_dfdlib_already_installed_only_mounts_drive(colab):
    shutil.copytree(ROOT / "dfdlib", colab.site / "dfdlib", ignore=shutil.ignore_patterns("__pycache__"))
    done = colab.run(CELL)
    assert done.returncode == 0, done.stderr
    assert colab.pip_calls() == [] and not (colab.content / "dfdlib-repo").exists()
    assert (colab.content / "drive" / "MyDrive").is_dir() and not colab.drive.exists()  # mounted


def test_installs_the_copy_on_drive_after_mounting_it(colab):
    copy = colab.drive_copy()
    assert not copy.exists()  # there only once the cell has mounted Drive
    done = colab.run(CELL)
    assert done.returncode == 0, done.stderr
    assert colab.pip_calls() == [["install", "-q", "--no-deps", str(copy)], ["install", "-q", "mtcnn", "papermill"]]
    assert "installed dfdlib from Google Drive" in done.stdout
    assert f"DFDLIB {colab.site / 'dfdlib' / '__init__.py'}" in done.stdout
    assert copy.is_dir() and not (colab.content / "dfdlib-repo").exists()  # no clone when Drive has a copy


def test_a_folder_named_dfdlib_in_the_working_folder_is_not_an_install(colab):
    (colab.content / "dfdlib").mkdir()  # e.g. an older clone: importable as an empty namespace package
    copy = colab.drive_copy()
    done = colab.run(CELL)
    assert done.returncode == 0, done.stderr
    assert colab.pip_calls()[0] == ["install", "-q", "--no-deps", str(copy)]


@pytest.mark.slow
def test_real_pip_builds_and_installs_the_drive_copy(colab):
    colab.drive_copy()
    done = colab.run(CELL, REAL_PIP="1")
    assert done.returncode == 0, done.stderr
    assert f"DFDLIB {colab.site / 'dfdlib' / '__init__.py'}" in done.stdout
    assert list(colab.site.glob("dfdlib-*.dist-info")), sorted(p.name for p in colab.site.iterdir())


def test_clones_the_repository_when_drive_has_no_copy(colab, git_repo):
    url = git_repo.as_uri()
    done = colab.run(CELL, DFD_REPO_URL=url)
    assert done.returncode == 0, done.stderr
    clone = colab.content / "dfdlib-repo"
    assert (clone / ".git").is_dir() and (clone / "pyproject.toml").read_text() == (ROOT / "pyproject.toml").read_text()
    assert colab.pip_calls() == [["install", "-q", "--no-deps", str(clone)], ["install", "-q", "mtcnn", "papermill"]]
    assert f"installed dfdlib from {url}" in done.stdout and f"DFDLIB {colab.site}" in done.stdout

    # the cell again in a fresh runtime with the clone still there: no second clone, pip only
    shutil.rmtree(colab.site / "dfdlib")
    os.rename(colab.content / "drive", colab.drive)  # unmounted
    colab.log.unlink()
    again = colab.run(CELL, DFD_REPO_URL=(colab.tmp / "gone").as_uri())
    assert again.returncode == 0, again.stderr
    assert colab.pip_calls()[0] == ["install", "-q", "--no-deps", str(clone)]


def test_falls_back_to_pypi_when_the_clone_fails(colab, tmp_path):
    pypi = copy_project(tmp_path / "pypi" / "dfdlib")
    done = colab.run(CELL, FAKE_PYPI=str(pypi))
    assert done.returncode == 0, done.stderr
    assert colab.pip_calls() == [["install", "-q", "--no-deps", "dfdlib"], ["install", "-q", "mtcnn", "papermill"]]
    assert "installed dfdlib from PyPI" in done.stdout and not (colab.content / "dfdlib-repo").exists()


def test_no_source_stops_with_one_instruction_and_no_traceback(colab):
    done = colab.run(CELL)
    assert done.returncode == 1 and "DFDLIB" not in done.stdout
    err = done.stderr
    assert "Traceback" not in err and "CalledProcessError" not in err, err
    assert err.startswith("dfdlib could not be installed:")
    assert "Drive: no " in err and "git clone file://" in err and "No matching distribution found for dfdlib" in err
    assert err.rstrip().endswith("to Google Drive as MyDrive/dfdlib, then run this cell again.")
    assert colab.pip_calls() == [["install", "-q", "--no-deps", "dfdlib"]]


def test_missing_mtcnn_or_papermill_is_one_message_too(colab):
    colab.drive_copy()
    done = colab.run(CELL, FAIL_DEPS="1")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "dfdlib is installed but pip install mtcnn papermill: ERROR" in done.stderr
    assert "internet" in done.stderr


def test_git_never_waits_for_a_password(colab):
    # A URL that asks for credentials (a private repository, or a missing one on GitHub) must fail, not hang.
    import http.server
    import threading

    class Auth(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Auth)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/dfdlib.git"
    env = {k: "" for k in ("GIT_ASKPASS", "SSH_ASKPASS")} | {"GIT_CONFIG_NOSYSTEM": "1", "DFD_REPO_URL": url}
    try:
        start = time.monotonic()
        done = colab.run(CELL, **env)
    finally:
        server.shutdown()
    assert done.returncode == 1 and time.monotonic() - start < 60
    assert f"git clone {url}: fatal: could not read Username" in done.stderr and "prompts disabled" in done.stderr


# ---- a training run on "Drive" survives a disconnect ---------------------------------------------------

def colab_kernel_env(colab: Colab) -> dict:
    """The environment of a papermill kernel that sees itself on Colab: sitecustomize imports google.colab."""
    stub = colab.tmp / "stub"
    (stub / "sitecustomize.py").write_text("import google.colab  # what Colab's kernel has imported\n")
    return {**os.environ, "DFD_COLAB_ROOT": str(colab.content), "FAKE_DRIVE": str(colab.drive),
            "PYTHONPATH": os.pathsep.join([str(stub), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}


def papermill(out: Path, env: dict, **params) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "papermill", str(NB_DIR / "Model_and_train_csv.ipynb"), str(out), "--cwd",
           str(NB_DIR), "--no-progress-bar"]
    for k, v in params.items():
        cmd += ["-y", json.dumps({k: v})]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def outputs(path: Path) -> str:
    nb = nbformat.read(str(path), as_version=4)
    return "\n".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "stream")


@pytest.mark.slow
@pytest.mark.notebooks
def test_training_on_drive_resumes_from_last_pt_after_a_kill(colab, processed_dir, labels_csv):
    import pandas as pd
    import psutil
    import torch

    env = colab_kernel_env(colab)
    drive_root = colab.content / "drive" / "MyDrive" / "dfdlib_runs"
    params = dict(smoke=True, colab_root=str(drive_root), processed_dir=str(processed_dir),
                  labels_csv=str(labels_csv), sequence_length=6, num_epochs=6, make_inputs=False)
    run_dir = drive_root / "runs" / "smoke" / "runs" / "train"  # smoke runs keep their files under runs/smoke/
    history, last = run_dir / "history.csv", run_dir / "last.pt"

    # 1. the first run is killed (the runtime disconnects) once an epoch is saved
    first = papermill(colab.tmp / "first.ipynb", env, **params)
    deadline = time.monotonic() + 240
    while not last.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert first.poll() is None, f"the run ended before it could be killed:\n{first.stdout.read()}"
    kernels = psutil.Process(first.pid).children(recursive=True)
    for p in kernels:
        p.send_signal(signal.SIGKILL)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(30)
    psutil.wait_procs(kernels, timeout=30)
    saved = torch.load(last, map_location="cpu", weights_only=True)  # the state resume starts from
    done = pd.DataFrame(saved["history"])
    assert 1 <= saved["epoch"] == len(done) < 6, done

    # 2. the same notebook with resume=True continues after the last saved epoch, on Drive
    second = papermill(colab.tmp / "second.ipynb", env, **params, resume=True)
    log = second.communicate(timeout=300)[0]
    assert second.returncode == 0, log[-3000:]
    text = outputs(colab.tmp / "second.ipynb")
    assert f"root  : {drive_root / 'runs' / 'smoke'} (on Google Drive: kept after a disconnect)" in text
    assert f"resuming {run_dir} after epoch {len(done)}/6" in text
    after = pd.read_csv(history)
    assert after["epoch"].tolist()[: len(done)] == done["epoch"].tolist()
    assert after["train_loss"].tolist()[: len(done)] == pytest.approx(done["train_loss"].tolist())  # kept
    assert len(after) > len(done) and list(run_dir.glob("model_6_acc_*.pt"))

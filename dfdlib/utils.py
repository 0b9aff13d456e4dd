"""Small shared helpers: atomic file/folder writes, device choice, seeding, environment report, frame files,
label cells and groups (union-find), worker processes that end with their parent."""
from __future__ import annotations

import contextlib
import os
import platform
import random
import re
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", **kwargs):
    """Open a temp file beside `path`; on success fsync and rename it over `path`.

    A crash mid-write leaves the previous file (if any) intact and no partial file at `path`.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:  # name the file the user asked for, not our temp file
        raise _not_writable(path.parent, e, f"cannot write {path}: ") from e
    try:
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_csv(df, path: str | os.PathLike, **to_csv_kwargs) -> Path:
    """Write a pandas DataFrame to `path` atomically (no index column); returns the path."""
    path = Path(path)
    with atomic_write(path, "w", newline="") as f:
        df.to_csv(f, index=False, **to_csv_kwargs)
    return path


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, overwrite: bool = False):
    """Yield a temp folder beside `path`; on success rename it to `path`.

    Temp folders are named `.<name>.tmp-<pid>` so an interrupted run leaves nothing that looks done.
    With `overwrite`, an existing `path` is replaced only after the new one is complete.
    """
    path = Path(path)
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
    except OSError as e:
        raise _not_writable(path.parent, e, f"cannot write {path}: ") from e
    try:
        yield tmp
        if path.exists():
            if not overwrite:
                raise FileExistsError(f"{path} already exists (use overwrite=True to replace it)")
            old = path.parent / f".{path.name}.old-{os.getpid()}"
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _not_writable(folder: Path, e: OSError, prefix: str = "", what: str = "folder") -> OSError:
    """The same kind of OSError (PermissionError, ...) with a message naming `folder` and what to do."""
    cls = type(e) if isinstance(e, OSError) and type(e).__init__ is OSError.__init__ else OSError
    return cls(e.errno, f"{prefix}{what} {folder} is not writable ({e.strerror or e}); choose another folder, "
                        "fix its permissions or free disk space")


def ensure_writable(folder: str | os.PathLike, what: str = "output folder") -> Path:
    """Create `folder` if needed and check that a file can be written in it, before long work depends on it.

    Takes the folder and how to call it in the message. Returns it as a Path. Raises PermissionError /
    OSError naming the folder and what to do (read-only, no permission, full disk, a file in the way).
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".dfd-write-check-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise _not_writable(folder, e, what=what) from e
    return folder


def clean_stale_temps(folder: str | os.PathLike) -> int:
    """Remove leftovers of interrupted runs in `folder` and its sub-folders (one level deep).

    Matches the temp names used here: `.<name>.tmp-<pid>` / `.<name>.old-<pid>` (atomic_dir) and
    `.<name>.<random>.tmp` (atomic_write). Returns how many were removed.
    """
    folder = Path(folder)
    if not folder.exists():
        return 0
    n = 0
    for level in ("", "*/"):
        for pattern in (".*.tmp-*", ".*.old-*", ".*.tmp"):
            for p in folder.glob(level + pattern):
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
                n += 1
    return n


def resolve_device(device: str = "auto"):
    """'auto' → cuda if available, else mps, else cpu. An explicit 'cuda' without CUDA raises a clear error."""
    import torch

    device = (device or "auto").lower()
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(
            f"device={device!r} was requested but this PyTorch build sees no CUDA GPU "
            f"(torch {torch.__version__}, cuda build: {torch.version.cuda}). Use device='auto' to fall back "
            "to the CPU, or install a CUDA build of torch (see README, 'GPU not used')."
        )
    return torch.device(device)


def strict() -> bool:
    """True when unexpected exceptions must be raised, not reported as an "error" status: the test suite
    sets DFD_STRICT=1, so a bug fails CI instead of quietly lowering a count."""
    return os.environ.get("DFD_STRICT", "") not in ("", "0")


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def env_report() -> dict:
    """What `dfd env` prints: python, torch/CUDA/GPU memory, TF and mtcnn versions, OpenCV."""
    from importlib import metadata

    def version(pkg: str) -> str:
        try:
            return metadata.version(pkg)
        except metadata.PackageNotFoundError:
            return "not installed"

    rep: dict = {"python": platform.python_version(), "platform": platform.platform()}
    try:
        import torch

        rep["torch"] = torch.__version__
        rep["cuda_available"] = torch.cuda.is_available()
        rep["cuda_version"] = torch.version.cuda
        if torch.cuda.is_available():
            gpus = []
            for i in range(torch.cuda.device_count()):
                p = torch.cuda.get_device_properties(i)
                gpus.append(f"{p.name} ({p.total_memory / 1e9:.1f} GB)")
            rep["gpus"] = gpus
    except ImportError:
        rep["torch"] = "not installed"
    for pkg in ("torchvision", "tensorflow-cpu", "tensorflow", "mtcnn", "opencv-python", "opencv-python-headless"):
        rep[pkg] = version(pkg)
    rep["cpu_count"] = os.cpu_count()
    return rep


# ---------------------------------------------------------------- face-frame files
# One definition of a frame file, for the preprocess output (`frame_<i>.jpg`) and for face-frame datasets
# shipped already cropped (`0001.png`, `frame_12.jpg`, `img_00003.jpg`): an image whose name ends in a number.
FRAME_RE = re.compile(r"(?:.*\D)?(\d+)\.(?:jpe?g|png)", re.IGNORECASE)  # the number is the last digit run
DFDLIB_FRAME_RE = re.compile(r"frame_(\d+)\.jpg")  # what the preprocess stage writes, numbered 0..N-1


def frame_number(name: str) -> int | None:
    """The frame number of an image file name (`frame_12.jpg` → 12, `0003.png` → 3), None if it is not one."""
    m = FRAME_RE.fullmatch(name)
    return int(m.group(1)) if m else None


def frame_files(folder: str | os.PathLike) -> list[str]:
    """Names of the frame images in `folder`, in frame-number order (frame_10 after frame_9); hidden files
    and images without a number are not frames. Raises OSError for an unreadable folder."""
    found = []
    with os.scandir(folder) as it:
        for e in it:
            n = None if e.name.startswith(".") else frame_number(e.name)
            if n is not None:
                found.append((n, e.name))
    return [name for _, name in sorted(found)]


# A video with several people (PreprocessConfig.max_faces > 1) is written as `<label>/<video>/face_<k>/`:
# each face folder is a sample of its own, and the video's name (and group) is the folder above it.
FACE_DIR_RE = re.compile(r"face_(\d+)")


def split_face(filename: str) -> tuple[str, int | None]:
    """(the video's filename, face index) of a sample folder: `fake/v/face_1` → (`fake/v`, 1); a folder
    that is not a `face_<k>` folder is its own video (`fake/v` → (`fake/v`, None))."""
    head, _, last = str(filename).rstrip("/").rpartition("/")
    m = FACE_DIR_RE.fullmatch(last)
    return (head, int(m.group(1))) if m and head.count("/") >= 1 else (str(filename), None)


# ---------------------------------------------------------------- labels, groups, processed roots
# What the datasets, labels and training stages share about a labelled folder tree (one definition each).
TEXT_LABELS = {"real": 0, "fake": 1}


def cell(v) -> str:
    """A CSV/DataFrame cell as stripped text; None/NaN → ''."""
    if v is None or (isinstance(v, float) and v != v) or v.__class__.__name__ in ("NAType", "NaTType"):
        return ""
    return str(v).strip()


def relative_folder(raw) -> tuple[str, str | None]:
    """A labels filename cell → (the folder relative to the processed root, forward slashes, no '.' parts;
    what is wrong with it, or None): empty, absolute (/x, C:, ~) or leading outside the root ('..'). The
    one path rule of the labels CSV and the datasets that read a labels table."""
    s = cell(raw).replace("\\", "/")  # labels written on Windows
    if not s:
        return s, "empty filename: give the processed folder relative to the processed root, e.g. real/video1"
    if s.startswith("/") or re.match(r"[A-Za-z]:", s) or s == "~" or s.startswith("~/"):
        return s, (f"absolute path {s!r}: give the folder relative to the processed root (e.g. real/video1) "
                   "so the CSV keeps working when the data moves")
    parts = [p for p in s.split("/") if p not in ("", ".")]
    if ".." in parts:
        return s, (f"{s!r} points outside the processed root ('..'): give a folder relative to the processed root "
                   "and inside it, e.g. real/video1")
    return "/".join(parts), None


def parse_label(v) -> tuple[int | None, bool]:
    """A label cell → (0 real / 1 fake, or None if it is neither; whether it was given as REAL/FAKE text).
    Accepts 0/1 (also 0.0, "1.0"), real/fake in any case."""
    s = cell(v).lower()
    if s in TEXT_LABELS:
        return TEXT_LABELS[s], True
    try:
        f = float(s)
    except ValueError:
        return None, False
    return (int(f), False) if f in (0.0, 1.0) else (None, False)


class UnionFind:
    """Disjoint sets of hashable items (ints, or strings), grown on demand: `union(a, b)` joins the sets of
    a and b, `find(x)` names x's set by its smallest item, so the names are stable across runs."""

    def __init__(self, items=()):
        self.parent = {x: x for x in items}

    def find(self, x):
        parent = self.parent
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]  # path halving
            x = parent[x]
        return x

    def union(self, a, b) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def not_found(what: str, path: str | os.PathLike) -> FileNotFoundError:
    """The error for a missing input: names the path tried, its absolute form and the working directory."""
    path = Path(path)
    return FileNotFoundError(
        f"{what} not found: tried {str(path)!r} (= {path.absolute()}) from working directory {os.getcwd()}. "
        "Check the path, or give an absolute path."
    )


def check_processed_root(path: str | os.PathLike) -> Path:
    """The processed root (what `dfd preprocess` wrote: `<root>/<real|fake>/<video>/frame_<i>.jpg`, or a
    face-frame dataset's root) as a Path. Raises FileNotFoundError (not_found) when it is not a folder."""
    root = Path(path)
    if not root.is_dir():
        raise not_found("processed folder (the output of `dfd preprocess`)", root)
    return root


# ---------------------------------------------------------------- worker processes
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(parent_pid: int, poll: float = 1.0, use_prctl: bool = True) -> None:
    """Make this (worker) process end when `parent_pid` dies, even by SIGKILL or the out-of-memory killer, so
    no orphaned worker keeps its memory. Linux: the kernel sends SIGKILL (prctl PR_SET_PDEATHSIG); everywhere
    (and as a fallback): a daemon thread that exits the process once its parent is no longer `parent_pid`."""
    if use_prctl and sys.platform.startswith("linux"):
        import ctypes
        import signal

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(poll)
        os._exit(1)

    if os.getppid() != parent_pid:  # the parent died before we got here
        os._exit(1)
    threading.Thread(target=watch, name="dfd-parent-watchdog", daemon=True).start()


def start_worker(parent_pid: int, initializer=None, *args) -> None:
    """A process pool's initializer: tie the worker's life to its parent, then run `initializer(*args)`.
    Module-level, so spawn can pickle it (with functools.partial)."""
    die_with_parent(parent_pid)
    if initializer is not None:
        initializer(*args)

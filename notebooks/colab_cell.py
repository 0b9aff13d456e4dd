# Colab only: mount Google Drive, install dfdlib if it is missing. On Jupyter or in CI this cell does nothing.
import os
import sys

if "google.colab" in sys.modules:
    import importlib.util
    import shutil
    import subprocess

    from google.colab import drive

    colab = os.environ.get("DFD_COLAB_ROOT", "/content")
    drive.mount(f"{colab}/drive")  # runs go to Drive (colab_root below), so a disconnect loses nothing
    drive_copy = f"{colab}/drive/MyDrive/dfdlib"  # this repository uploaded to Drive, if you did
    clone = f"{colab}/dfdlib-repo"  # not "dfdlib": in the working folder that name would shadow the package
    repo_url = os.environ.get("DFD_REPO_URL", "https://github.com/dfdlib/dfdlib")  # from pyproject.toml [project.urls]
    pip = os.environ.get("DFD_PIP", f"{sys.executable} -m pip").split()
    tried = []

    def installed():
        spec = importlib.util.find_spec("dfdlib")
        return spec is not None and spec.origin is not None  # a bare folder named dfdlib is no install

    def run(what, *cmd):
        """Run cmd; True if it worked, else its last error line goes into `tried`."""
        done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "GIT_TERMINAL_PROMPT": "0"})
        if done.returncode:
            tried.append(f"{what}: {(done.stderr.strip().splitlines() or ['failed'])[-1]}")
        return done.returncode == 0

    def install(source):
        # without dependencies: Colab has torch, TensorFlow, OpenCV...; no tensorflow-cpu beside its tensorflow
        return run(f"pip install {source}", *pip, "install", "-q", "--no-deps", source)

    def from_drive():
        if os.path.isfile(f"{drive_copy}/pyproject.toml"):
            return install(drive_copy)
        tried.append(f"Drive: no {drive_copy}/pyproject.toml")
        return False

    def from_git():
        if not os.path.isfile(f"{clone}/pyproject.toml"):
            shutil.rmtree(clone, ignore_errors=True)  # a clone that stopped half way
            if not run(f"git clone {repo_url}", "git", "clone", "-q", "--depth", "1", repo_url, clone):
                return False
        return install(clone)

    if not installed():
        source = next((name for name, attempt in (("Google Drive", from_drive), (repo_url, from_git),
                                                  ("PyPI", lambda: install("dfdlib"))) if attempt()), None)
        importlib.invalidate_caches()
        if source is None or not installed():
            raise SystemExit("dfdlib could not be installed:\n  " + "\n  ".join(tried) + "\nUpload the dfdlib "
                             "repository folder (with its pyproject.toml) to Google Drive as MyDrive/dfdlib, "
                             "then run this cell again.")
        if not run("pip install mtcnn papermill", *pip, "install", "-q", "mtcnn", "papermill"):  # Colab lacks them
            raise SystemExit(f"dfdlib is installed but {tried[-1]}: check the runtime's internet access, then "
                             "run this cell again.")
        print(f"installed dfdlib from {source}")

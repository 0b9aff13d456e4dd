"""The web app of the guide's step 6: upload videos, get REAL/FAKE verdicts, with the models folder as the
registry (a model copied into it is used on the next request, no restart).

    dfd app [--models models] [--host 127.0.0.1] [--port 7860] [--share]
    from dfdlib.app.web import launch_app; launch_app("models", inline=True)   # in a notebook cell

Built with Gradio (`pip install dfdlib[app]`), imported only in this module and only when the app is
built, so `import dfdlib` and `dfd --help` work without it. The page only lays things out; what is
computed lives in core.py, and the verdict is `predict_video`'s. Requests are queued (one analysis
at a time by default: a model and MTCNN on a CPU or one GPU gain nothing from two videos at once), each
upload is deleted once analysed, and everything Gradio stores lives in one private temporary folder that
is removed when the process exits, also on SIGTERM/SIGHUP (`docker stop`, `systemctl stop`), each app's
result files in a subfolder, removed when it closes, of which only the newest `app_core.KEPT_RESULTS` stay.
"""
from __future__ import annotations

import atexit
import os
import shutil
import signal
import tempfile
import threading
import warnings
from pathlib import Path

import pandas as pd

from dfdlib.app import core
from dfdlib.predict.registry import list_models
from dfdlib.predict.verdict import SCORED_FACES, Prediction
from dfdlib.video import VIDEO_EXTENSIONS, find_videos

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
_HOWTO = ("Upload one or several videos (or pick an example), choose a model, press **Analyse**. "
          "The verdict is the model's estimate, not proof. Uploaded files are deleted once analysed.")


_upload_root: Path | None = None


def upload_root() -> Path:
    """The process's private folder for everything Gradio stores (uploads, served images, result files).

    Gradio reads GRADIO_TEMP_DIR from the environment at many points, so it is one folder per process
    (shared by every app it starts), created on first use with mode 0700 and removed at exit.
    """
    global _upload_root
    if _upload_root is None or not _upload_root.is_dir():
        _upload_root = Path(tempfile.mkdtemp(prefix="dfd-app-"))
        atexit.register(shutil.rmtree, _upload_root, True)
        _clean_on_signals()
    os.environ["GRADIO_TEMP_DIR"] = str(_upload_root)
    return _upload_root


def _clean_on_signals() -> None:
    """SIGTERM and SIGHUP end a process without atexit: remove the temp folder first, then end of the signal as
    before. Only where nobody else handles them (a handler is installed from the main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        return

    def remove_then_die(signum, frame):
        if _upload_root is not None:
            shutil.rmtree(_upload_root, ignore_errors=True)
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    for name in ("SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is not None and signal.getsignal(sig) is signal.SIG_DFL:
            signal.signal(sig, remove_then_die)


def _gradio():
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home from a local tool
    upload_root()  # before Gradio is imported: some of its modules read GRADIO_TEMP_DIR at import
    try:
        import gradio as gr
    except ModuleNotFoundError as e:
        raise RuntimeError("the web app needs Gradio: pip install 'dfdlib[app]' (or pip install gradio)") from e
    return gr


def example_videos(examples) -> list[Path]:
    """Up to 2 real + 2 fake videos from `examples` (a folder with real/ and fake/, or a list of files)."""
    if not examples:
        return []
    if isinstance(examples, (list, tuple)):
        return [Path(p) for p in examples if Path(p).is_file()]
    root = Path(examples)
    if not root.is_dir():
        return []
    picked = [v for sub in ("real", "fake") if (root / sub).is_dir() for v in find_videos(root / sub)[:2]]
    return picked or find_videos(root)[:4]


def models_markdown(models_dir: str | Path) -> str:
    """The models folder as a Markdown table (file, frames, accuracy, note), or what to do when it is empty."""
    models_dir = Path(models_dir)
    try:
        df = list_models(models_dir)
    except FileNotFoundError as e:
        return f"**No models:** {e}"
    if df.empty:
        return f"**No model files in `{models_dir}/`.** Copy a trained `model_*.pt` there and press ↻."
    rows = ["| model file | frames | accuracy | note |", "|---|---:|---:|---|"]
    for r in df.itertuples():
        seq = "" if pd.isna(r.sequence_length) else int(r.sequence_length)
        acc = "" if pd.isna(r.accuracy) else f"{r.accuracy:.1f}%"
        note = r.error or ("original project" if r.legacy else "")
        rows.append(f"| {Path(r.path).relative_to(models_dir).as_posix()} | {seq} | {acc} | {note} |")
    return f"Models in `{models_dir}/` (rescanned on every request):\n\n" + "\n".join(rows)


def _remove_upload(path: Path, root: Path, keep: set) -> None:
    """Delete an uploaded file (and its folder once empty) if it lies in the app's temp folder."""
    try:
        real, root = path.resolve(), root.resolve()
        if not real.is_relative_to(root) or real in keep:
            return
        real.unlink()
        if real.parent != root and not any(real.parent.iterdir()):
            real.parent.rmdir()
    except OSError:
        pass


def build_app(models_dir: str | Path = "models", max_size_mb: float | None = None, examples="data/sample",
              device: str = "auto", max_faces: int | None = None):
    """The Gradio Blocks of the app, not launched.

    Takes the models folder, the upload size limit in MB, example videos (a folder with real/ and fake/,
    a list of files, or None), the device and the most faces scored per video. Returns the Blocks, with
    `dfd_temp_dir` (this app's result files, inside upload_root()) and `dfd_cache` (the ModelCache).
    Raises RuntimeError without Gradio.
    """
    gr = _gradio()
    models_dir = Path(models_dir)
    max_mb = float(max_size_mb or core.DEFAULT_MAX_MB)
    max_faces = SCORED_FACES if max_faces is None else int(max_faces)
    # Uploads and the images Gradio serves go to the process's private folder, this app's result files
    # to a subfolder of it (removed by close()).
    root = upload_root()
    temp = Path(tempfile.mkdtemp(prefix="app-", dir=root))
    cache = core.ModelCache(device=device)
    example_files = example_videos(examples)
    examples_key = {(p.name, p.stat().st_size) for p in example_files}

    def menus():
        try:
            df = list_models(models_dir)
        except FileNotFoundError:
            return [], []
        return [str(s) for s in core.sequence_lengths(df)], core.model_choices(df, models_dir)

    def refresh(seq=None, model=None):
        seqs, choices = menus()
        seq = seq if seq in seqs else (seqs[0] if seqs else None)
        model = model if model in [v for _, v in choices] else core.BEST
        return (gr.update(choices=seqs, value=seq), gr.update(choices=choices, value=model),
                models_markdown(models_dir))

    def analyse(files, seq, model_choice, explain, progress=gr.Progress()):  # noqa: B008 - Gradio injects it
        files = [Path(f) for f in (files or [])]
        if not files:
            raise gr.Error("Upload at least one video first (or click an example).")
        # Gradio's cached copy of an example is reused on the next click: keep it (same name and size).
        keep = {f.resolve() for f in files if f.is_file() and (f.name, f.stat().st_size) in examples_key}
        try:
            paths = core.resolve_model(model_choice, seq, models_dir)
            progress(0.0, desc=f"loading {', '.join(p.name for p in paths)}")
            model = cache.get(paths)
        except (FileNotFoundError, ValueError, RuntimeError, OSError) as e:
            for f in files:
                _remove_upload(f, root, keep)
            raise gr.Error(str(e)) from e
        done = []
        for i, f in enumerate(files):
            name = f.name
            try:
                problem = core.check_upload(f, max_mb)
                if problem:
                    a = core.Analysis(Prediction(video=name, status="rejected", reason=problem), model_paths=paths)
                else:
                    def step(frac, desc, i=i, name=name):
                        progress((i + frac) / len(files), desc=f"{name} ({i + 1}/{len(files)}): {desc}")

                    a = core.analyse_video(model, f, paths, explain=bool(explain), max_faces=max_faces,
                                           progress=step)
            except Exception as e:  # noqa: BLE001 - one bad video must not stop the others or the app
                a = core.Analysis(Prediction(video=name, status="error",
                                             reason=f"{name}: {type(e).__name__}: {e}"), model_paths=paths)
            finally:
                _remove_upload(f, root, keep)
            a.prediction.video = name  # the temp path means nothing to the user
            a.prediction.reason = a.prediction.reason.replace(str(f), name)
            done.append((name, a))
        out = Path(tempfile.mkdtemp(prefix="result-", dir=temp))
        json_path, csv_path = core.write_results(done, out)
        core.prune_results(temp, core.KEPT_RESULTS)  # bounded: the oldest results go
        faces = pd.DataFrame([{"video": n} | f for n, a in done for f in a.faces])
        several = len(done) > 1
        crops = [(img, f"{n} · {t}" if several else f"frame {t}") for n, a in done for t, img in enumerate(a.crops)]
        cams = [(img, f"{n} · {cap}" if several else cap) for n, a in done for img, cap in a.cams]
        return ("\n\n---\n\n".join(core.verdict_markdown(a, n) for n, a in done), core.results_table(done),
                gr.update(value=faces, visible=not faces.empty), core.score_figure(done), crops, cams,
                [str(json_path), str(csv_path)], models_markdown(models_dir))

    seqs, choices = menus()
    exts = " ".join(VIDEO_EXTENSIONS)
    with gr.Blocks(title="dfdlib — deepfake detector", analytics_enabled=False, delete_cache=(900, 3600)) as demo:
        gr.Markdown(f"# Deepfake detector (ResNeXt50 + LSTM)\n{_HOWTO}")
        with gr.Row():
            with gr.Column(scale=2):
                files = gr.File(label=f"Videos ({exts}; at most {max_mb:g} MB each)", file_count="multiple",
                                type="filepath", elem_id="videos")
                with gr.Row():
                    seq = gr.Dropdown(seqs, value=seqs[0] if seqs else None, label="Sequence length (frames)",
                                      allow_custom_value=True, scale=1)
                    model = gr.Dropdown(choices, value=core.BEST, label="Model", allow_custom_value=True, scale=3)
                    rescan = gr.Button("↻", scale=0, min_width=48)
                explain = gr.Checkbox(True, label="Grad-CAM overlays (slower)")
                run = gr.Button("Analyse", variant="primary", elem_id="analyse")
                if example_files:
                    gr.Examples([[[str(p)]] for p in example_files], inputs=[files],
                                example_labels=[f"{p.parent.name}/{p.name}" for p in example_files],
                                label="Examples (the generated sample set)")
                models_md = gr.Markdown(models_markdown(models_dir))
            with gr.Column(scale=3):
                verdict = gr.Markdown("Results appear here.", elem_id="verdict")
                table = gr.Dataframe(pd.DataFrame(columns=core.RESULT_COLUMNS), label="Results", interactive=False,
                                     wrap=True)
                faces = gr.Dataframe(label="Per-face scores", interactive=False, visible=False)
                # The figure carries its own title: Gradio's label box would cover the top of the axes.
                plot = gr.Plot(label="Score over the clip", show_label=False)
                crops = gr.Gallery(label="Face crops the model looked at", columns=10, height=170,
                                   object_fit="contain")
                cams = gr.Gallery(label="Grad-CAM: the frames that drove the verdict", columns=4, height=260,
                                  object_fit="contain")
                downloads = gr.File(label="Download the result (JSON, CSV)", file_count="multiple")
        run.click(analyse, [files, seq, model, explain],
                  [verdict, table, faces, plot, crops, cams, downloads, models_md], api_name="analyse")
        rescan.click(refresh, [seq, model], [seq, model, models_md], api_name="refresh")
        demo.load(refresh, [seq, model], [seq, model, models_md], api_name=False)
    demo.dfd_temp_dir = temp
    demo.dfd_cache = cache
    return demo


def launch_app(models_dir: str | Path = "models", host: str = "127.0.0.1", port: int | None = 7860,
               share: bool = False, inline: bool = False, *, max_size_mb: float | None = None,
               examples="data/sample", device: str = "auto", concurrency: int = 1, block: bool | None = None,
               quiet: bool = False):
    """Start the app at http://host:port, or inline in a notebook cell with inline=True.

    Takes the models folder, the address (127.0.0.1 = this machine only; anything else, e.g. 0.0.0.0 =
    every network interface, warns), the port (None = the first free one from 7860), share (a public
    gradio.live link: only when asked), inline, the upload limit in MB, examples (see build_app), the
    device, how many analyses run at once (the rest wait in the queue) and block (default: block unless
    inline). Returns the launched Blocks; `.close()` stops it and its temporary folder is removed.
    """
    gr = _gradio()
    if host not in LOCAL_HOSTS:
        warnings.warn(f"the app listens on {host}: anyone who can reach this machine on port {port} can upload "
                      "videos and use the model; use --host 127.0.0.1 unless that is intended", stacklevel=2)
    limit = float(max_size_mb or core.DEFAULT_MAX_MB)
    demo = build_app(models_dir, limit, examples, device)
    upload_root()  # the server reads GRADIO_TEMP_DIR when it starts
    demo.queue(default_concurrency_limit=max(1, int(concurrency)), max_size=64)
    # Gradio refuses uploads over twice the limit at the door; between 1x and 2x, check_upload says why.
    block = (not inline) if block is None else bool(block)
    theme = gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"],  # no web fonts: works offline
                              font_mono=["ui-monospace", "monospace"])
    demo.launch(server_name=host, server_port=port, share=bool(share), inline=inline, prevent_thread_lock=not block,
                max_file_size=int(2 * limit * 1e6), show_error=True, quiet=quiet, theme=theme, css=core.BADGE_CSS,
                allowed_paths=[str(p.resolve().parent) for p in example_videos(examples)] or None)
    close = demo.close

    def close_and_clean(*args, **kwargs):
        try:
            return close(*args, **kwargs)
        finally:
            shutil.rmtree(demo.dfd_temp_dir, ignore_errors=True)

    demo.close = close_and_clean
    return demo

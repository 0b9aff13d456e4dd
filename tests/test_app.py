"""The web app (`dfd app`), driven through gradio_client on a free local port, with a model trained here.

Skipped without Gradio (`pip install dfdlib[app]`; `dev` includes it). The app-free parts (upload
checks, model menu, windows, import laziness) are in test_app_core.py.
"""
from __future__ import annotations

import json
import re
import shutil
import threading
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
import torchvision  # noqa: F401  before conftest's preprocess loads TensorFlow (the other order segfaults)

pytest.importorskip("gradio")
from gradio_client import Client, handle_file  # noqa: E402

from dfdlib.app import core as app_core  # noqa: E402
from dfdlib.app.web import launch_app, upload_root  # noqa: E402
from dfdlib.data import FaceSequenceDataset  # noqa: E402
from dfdlib.labels.io import read_labels  # noqa: E402
from dfdlib.model import ResNeXtLSTM, load_model, save_model  # noqa: E402
from dfdlib.predict.verdict import predict_video  # noqa: E402
from dfdlib.preprocess.faces import default_detector  # noqa: E402
from dfdlib.utils import seed_everything  # noqa: E402

SEQ, SIZE = 8, 64   # conftest's processed_dir: 8 frames per video, 64 px crops
LIMIT_MB = 1.0      # the app's upload limit in these tests (the sample videos are ~0.1-0.3 MB)
MODEL = "model_8_acc_90.0_app.pt"


def _train(processed_dir, labels_csv, seed: int = 0, epochs: int = 8) -> torch.nn.Module:
    """A tiny model fitted on all 8 sample clips (≈1 s): it tells the sample's reals from its fakes."""
    seed_everything(seed)
    model = ResNeXtLSTM(backbone="tiny", hidden_dim=32)
    ds = FaceSequenceDataset(read_labels(labels_csv), processed_dir, SEQ, split=None, image_size=SIZE)
    loader = torch.utils.data.DataLoader(ds, batch_size=4, shuffle=True)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(epochs):
        for clips, labels in loader:
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(clips), labels).backward()
            opt.step()
    return model.eval()


def _meta(processed_dir, accuracy: float) -> dict:
    preprocess = json.loads(next(processed_dir.rglob("faces.json")).read_text())["preprocess"]
    return {"sequence_length": SEQ, "image_size": SIZE, "sampling": "even", "preprocess": preprocess,
            "class_names": ["REAL", "FAKE"], "threshold": 0.5, "metrics": {"accuracy": accuracy}}


@pytest.fixture(scope="module")
def models_dir(processed_dir, labels_csv, tmp_path_factory):
    out = tmp_path_factory.mktemp("app_models")
    save_model(out / MODEL, _train(processed_dir, labels_csv), _meta(processed_dir, 0.9))
    return out


@pytest.fixture(scope="module")
def app(models_dir, sample_dir):
    demo = launch_app(models_dir, port=None, examples=sample_dir, max_size_mb=LIMIT_MB, device="cpu",
                      block=False, quiet=True)
    yield demo
    demo.close()


@pytest.fixture(scope="module")
def client(app, tmp_path_factory):
    return Client(app.local_url, verbose=False, download_files=str(tmp_path_factory.mktemp("client")))


def _video(sample_dir, kind: str, i: int = 0):
    return sorted(sample_dir.glob(f"{kind}/*.mp4"))[i]


def _analyse(client, paths, model=app_core.BEST, explain=False):
    """The app's 8 outputs; the verdict Markdown as text (its REAL/FAKE badges are HTML spans)."""
    out = list(client.predict([handle_file(str(p)) for p in paths], str(SEQ), model, explain, api_name="/analyse"))
    out[0] = re.sub(r"<[^>]+>", "", out[0])
    return out


def _rows(table: dict) -> pd.DataFrame:
    return pd.DataFrame(table["data"], columns=table["headers"])


def test_real_and_fake_videos_get_the_right_verdicts(app, client, sample_dir, models_dir):
    real, fake = _video(sample_dir, "real"), _video(sample_dir, "fake")
    verdict, table, _faces, plot, crops, cams, downloads, models_md = _analyse(client, [real, fake], explain=True)
    rows = _rows(table).set_index("video")
    assert rows.loc[real.name, "verdict"] == "REAL" and rows.loc[fake.name, "verdict"] == "FAKE", rows
    assert f"{real.name}: REAL · confidence" in verdict and f"{fake.name}: FAKE · confidence" in verdict
    # The app's numbers are predict_video's on the same model file: nothing re-implemented.
    # (The table shows 3 decimals; the JSON download has the full values.)
    results = json.loads(open(next(p for p in downloads if p.endswith(".json"))).read())
    model = load_model(models_dir / MODEL)
    for video, rec in zip((real, fake), results, strict=True):
        pred = predict_video(model, video, detector=default_detector())
        assert rec["video"] == video.name and rec["prob_fake"] == pytest.approx(pred.prob_fake, abs=1e-6)
        assert rec["confidence"] == pytest.approx(pred.confidence, abs=1e-6)
        assert rows.loc[video.name, "P(fake)"] == pytest.approx(pred.prob_fake, abs=1e-3)
    assert len(crops) == 2 * SEQ and len(cams) == 2 * 4  # every crop; the 4 top Grad-CAM frames per video
    assert all("% of the evidence for" in c["caption"] for c in cams)
    assert plot is not None and plot["type"] == "matplotlib"
    assert MODEL in models_md
    assert [r["video"] for r in results] == [real.name, fake.name]
    assert all(r["window_scores"] and sum(r["frame_importance"]) == pytest.approx(1, abs=1e-3) for r in results)
    assert results[0]["model"] == [str(models_dir / MODEL)]
    csv = pd.read_csv(next(p for p in downloads if p.endswith(".csv")))
    assert csv["label"].tolist() == ["REAL", "FAKE"] and (csv["status"] == "ok").all()
    # The model was read from disk once; the next request reuses it.
    loads = app.dfd_cache.loads
    _analyse(client, [real])
    assert app.dfd_cache.loads == loads == 1


def test_bad_uploads_get_clear_messages_and_the_app_keeps_serving(client, sample_dir, tmp_path):
    notes = tmp_path / "notes.mp4"
    notes.write_text("minutes of the meeting, not a video\n")
    empty = tmp_path / "empty.mp4"
    empty.touch()
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    big = tmp_path / "big.mp4"
    big.write_bytes(np.random.default_rng(0).bytes(int(1.5 * LIMIT_MB * 1e6)))
    good = _video(sample_dir, "real", 1)
    verdict, table, *_ = _analyse(client, [notes, empty, text, big, good])
    rows = _rows(table).set_index("video")
    assert rows.loc[notes.name, "status"] == "unreadable" and "OpenCV cannot open" in rows.loc[notes.name, "reason"]
    assert "/tmp/" not in rows.loc[notes.name, "reason"]  # the upload's temp path is not shown
    assert rows.loc[empty.name, "status"] == "rejected" and "empty (0 bytes)" in rows.loc[empty.name, "reason"]
    assert "unsupported file type '.txt'" in rows.loc[text.name, "reason"]
    assert f"over the {LIMIT_MB:g} MB limit" in rows.loc[big.name, "reason"]
    assert rows.loc[good.name, "verdict"] == "REAL"  # the bad files did not stop the good one
    assert verdict.count("**What to try:**") == 4
    # Far over the limit: refused before the upload; nothing breaks.
    huge = tmp_path / "huge.mp4"
    huge.write_bytes(bytes(int(3 * LIMIT_MB * 1e6)))
    with pytest.raises(Exception, match="exceeds the maximum file size"):
        _analyse(client, [huge])
    with pytest.raises(Exception, match="Upload at least one video"):
        client.predict([], str(SEQ), app_core.BEST, False, api_name="/analyse")
    assert _rows(_analyse(client, [good])[1])["verdict"].tolist() == ["REAL"]


def test_no_face_says_why_and_what_to_try(client, tmp_path):
    blank = tmp_path / "blank.mp4"
    writer = cv2.VideoWriter(str(blank), cv2.VideoWriter_fourcc(*"mp4v"), 25, (320, 240))
    rng = np.random.default_rng(0)
    for _ in range(30):  # faint noise: decodes fine, shows no face, stays well under the upload limit
        writer.write(rng.integers(118, 123, size=(240, 320, 3), dtype=np.uint8))
    writer.release()
    verdict, table, *_ = _analyse(client, [blank])
    assert "blank.mp4: no verdict (no face found)" in verdict
    assert "no face" in verdict and "clearly visible" in verdict and "--min-confidence" in verdict
    assert _rows(table)["status"].tolist() == ["no_face"]


def test_a_model_copied_into_the_folder_is_used_without_restart(app, client, models_dir, processed_dir,
                                                                labels_csv, sample_dir, tmp_path):
    second = tmp_path / "model_8_acc_80.0_second.pt"
    save_model(second, _train(processed_dir, labels_csv, seed=1), _meta(processed_dir, 0.8))
    assert second.name not in client.predict(str(SEQ), app_core.BEST, api_name="/refresh")[2]
    shutil.copy(second, models_dir / second.name)
    _seq, menu, listing = client.predict(str(SEQ), app_core.BEST, api_name="/refresh")
    assert second.name in listing and second.name in [v for _, v in menu["choices"]]
    fake = _video(sample_dir, "fake", 1)
    rows = _rows(_analyse(client, [fake], model=second.name)[1])
    assert rows["verdict"].tolist() == ["FAKE"]
    loads = app.dfd_cache.loads
    verdict, table, *_ = _analyse(client, [fake], model=app_core.ENSEMBLE)
    assert _rows(table)["verdict"].tolist() == ["FAKE"] and MODEL in verdict and second.name in verdict
    assert "uncalibrated" in verdict  # an ensemble's threshold is the members' mean until calibrated
    assert app.dfd_cache.loads == loads + 2  # the ensemble's two members
    with pytest.raises(Exception, match="not .or no longer. a readable model file"):
        _analyse(client, [fake], model="../outside.pt")


def test_two_concurrent_requests_both_complete(client, sample_dir):
    videos = [_video(sample_dir, "real", 2), _video(sample_dir, "fake", 2)]
    results, errors = {}, []

    def run(video):
        try:
            results[video.name] = _rows(_analyse(client, [video])[1])["verdict"].tolist()
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(v,)) for v in videos]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors and results == {videos[0].name: ["REAL"], videos[1].name: ["FAKE"]}


def test_uploads_are_deleted_after_analysis(app, client, sample_dir, tmp_path):
    upload = tmp_path / "my_private_clip.mp4"
    shutil.copy(_video(sample_dir, "real", 3), upload)
    _analyse(client, [upload])
    assert upload_root() in app.dfd_temp_dir.parents  # every file the app keeps is in its private folder
    assert not list(upload_root().rglob(upload.name))


def test_per_face_scores_for_a_video_with_two_faces(models_dir, sample_dir, tmp_path):
    """A real and a fake clip side by side: two faces, each scored on its own."""
    path = tmp_path / "two_faces.mp4"
    left, right = (cv2.VideoCapture(str(_video(sample_dir, k))) for k in ("real", "fake"))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (640, 240))
    while True:
        (ok1, a), (ok2, b) = left.read(), right.read()
        if not (ok1 and ok2):
            break
        writer.write(np.hstack([a, b]))
    writer.release()
    model = load_model(models_dir / MODEL)
    a = app_core.analyse_video(model, path, [models_dir / MODEL], explain=False)
    assert a.prediction.status == "ok" and len(a.faces) == 2, a.faces
    by_side = sorted(a.faces, key=lambda f: f["box"][0])  # left face first
    assert [f["label"] for f in by_side] == ["REAL", "FAKE"], a.faces
    assert max(f["prob_fake"] for f in a.faces) == pytest.approx(a.prediction.prob_fake, abs=1e-5)  # most-fake face
    assert "**2 faces**" in app_core.verdict_markdown(a, path.name)
    assert len(a.record()["faces"]) == 2


def test_close_removes_the_temp_folder_and_wide_hosts_warn(models_dir, monkeypatch):
    demo = launch_app(models_dir, port=None, examples=None, block=False, quiet=True)
    temp = demo.dfd_temp_dir
    assert temp.is_dir() and demo.local_url.startswith("http://127.0.0.1:")
    demo.close()
    assert not temp.exists()

    import dfdlib.app.web as app_module

    def refuse(*args, **kwargs):
        raise RuntimeError("not started")

    monkeypatch.setattr(app_module, "build_app", refuse)  # the warning comes before anything listens
    with pytest.warns(UserWarning, match="anyone who can reach this machine"), pytest.raises(RuntimeError):
        launch_app(models_dir, host="0.0.0.0", block=False)


def test_result_files_do_not_pile_up(app, client, sample_dir, monkeypatch):
    """Issue 25.6: every request wrote a result folder that stayed until the app closed; only the newest
    app_core.KEPT_RESULTS stay."""
    monkeypatch.setattr(app_core, "KEPT_RESULTS", 2)
    for i in range(4):
        downloads = _analyse(client, [_video(sample_dir, "real", i % 2)])[6]
        assert all(Path(p).name.startswith("dfd_results.") for p in downloads)
    kept = sorted(app.dfd_temp_dir.glob("result-*"))
    assert len(kept) == 2 and all((k / "dfd_results.json").is_file() for k in kept)


def test_sigterm_removes_the_app_temp_folder(models_dir, tmp_path):
    """Issue 25.6: `docker stop` / `systemctl stop` send SIGTERM, which skips atexit: the uploads, crops and
    results in /tmp/dfd-app-* stayed. The folder goes, and the process still ends of SIGTERM."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-m", "dfdlib", "app", "--models", str(models_dir), "--port",
                             str(port), "--examples", "", "--device", "cpu"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline, up = time.monotonic() + 180, False
        while not up and time.monotonic() < deadline and proc.poll() is None:
            try:
                up = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).status == 200
            except OSError:
                time.sleep(0.5)
        assert up, "the app did not start"
        temps = list(tmp_path.glob("dfd-app-*"))
        assert len(temps) == 1 and list(temps[0].glob("app-*"))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == -signal.SIGTERM
        assert not temps[0].exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _browser():
    """Selenium's webdriver module, Chromium and its driver; in CI (`CI` set: .ci/run installs them) their
    absence fails the test, elsewhere it skips it."""
    import os

    chromium, chromedriver = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
    missing = [str(p) for p in (chromium, chromedriver) if not p.exists()]
    try:
        from selenium import webdriver
    except ImportError:
        webdriver, missing = None, missing + ["selenium"]
    if missing:
        why = f"needs {', '.join(missing)} (apt-get install chromium chromium-driver; pip install selenium)"
        pytest.fail(f"CI must run the browser test: {why}; .ci/run installs them") if os.environ.get("CI") \
            else pytest.skip(why)
    return webdriver, chromium, chromedriver


def test_browser_uploads_a_video_and_shows_the_verdict(models_dir, sample_dir, tmp_path, monkeypatch):
    """Headless Chromium (Debian's chromium + chromium-driver) uses the page as a person would. It runs in
    every CI run (.ci/run installs the browser; selenium is in the dev extra). Every wait is on the page's
    own state (models listed, upload listed, verdict shown, images decoded) under one generous deadline for
    a loaded machine, never a fixed sleep.

    The app runs from a folder holding `models/`, so the page (and the screenshot) shows `models/`, not a
    temp path. The screenshot goes to tmp_path, or to $DFD_APP_SCREENSHOT (docs/app.png for the README).
    """
    import os

    webdriver, chromium, chromedriver = _browser()
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    shot = Path(os.environ.get("DFD_APP_SCREENSHOT") or tmp_path / "app.png").resolve()
    shutil.copytree(models_dir, tmp_path / "models")
    (tmp_path / "data").mkdir()
    shutil.copytree(sample_dir, tmp_path / "data" / "sample")
    monkeypatch.chdir(tmp_path)
    demo = launch_app("models", port=None, examples="data/sample", max_size_mb=LIMIT_MB, device="cpu",
                      block=False, quiet=True)
    opts = webdriver.ChromeOptions()
    opts.binary_location = str(chromium)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1440,1900", "--hide-scrollbars"):
        opts.add_argument(arg)
    # An explicit driver path: Selenium Manager would otherwise try to download one.
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=str(chromedriver)), options=opts)
    try:
        deadline = WebDriverWait(driver, 300, poll_frequency=0.2)  # for a loaded machine; not a sleep

        def text(css: str, squeeze: bool = False) -> str:
            found = driver.execute_script(f"return document.querySelector('{css}')?.textContent || ''")
            return "".join(found.split()) if squeeze else found  # the file box splits a name: "fake_003 .mp4"

        class Steps:  # on a timeout: which state never came, what the page showed, and a screenshot of it
            def until(self, cond, what="page state"):
                try:
                    return deadline.until(cond)
                except Exception as e:
                    driver.save_screenshot(str(tmp_path / "timeout.png"))
                    raise AssertionError(f"waited {deadline._timeout:.0f} s for: {what}; page: "
                                         f"{text('body')[:800]!r}; screenshot {tmp_path / 'timeout.png'}") from e

        wait = Steps()

        driver.get(demo.local_url)
        video = _video(sample_dir, "fake", 3)
        # The page is live once its load event has filled in the models table.
        wait.until(lambda d: MODEL in text("body"), "the models table")
        upload = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#videos input[type=file]")), "the file input")
        upload.send_keys(str(video))
        wait.until(lambda d: video.name in text("#videos", squeeze=True), "the upload listed")  # the finished upload
        wait.until(ec.element_to_be_clickable((By.ID, "analyse")), "Analyse clickable").click()
        wait.until(lambda d: f"{video.name}: FAKE" in text("#verdict"), "the verdict")
        verdict = driver.find_element(By.ID, "verdict")
        assert verdict.is_displayed() and "confidence" in verdict.text
        gallery_images = driver.find_elements(By.CSS_SELECTOR, "img")
        assert len(gallery_images) >= SEQ  # the face crops (and Grad-CAM overlays) are on the page
        # Images load lazily: wait until every one on the page has been fetched and decoded.
        wait.until(lambda d: d.execute_script(
            "return [...document.images].every(i => i.loading !== 'lazy' ? i.complete && i.naturalWidth > 0"
            " : (i.loading = 'eager', false) || (i.complete && i.naturalWidth > 0));"), "every image decoded")
        page = driver.find_element(By.TAG_NAME, "body").text
        assert re.search(r"Models in\s+models/", page) and str(tmp_path) not in page and "/tmp" not in page, page
        shot.parent.mkdir(parents=True, exist_ok=True)
        assert driver.save_screenshot(str(shot))
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    finally:
        driver.quit()
        demo.close()


def test_ci_installs_the_browser_and_a_missing_browser_fails_in_ci(monkeypatch):
    """Issue 25.10: the browser test was skipped in every CI run (no Chromium there)."""
    import tomllib

    root = Path(__file__).resolve().parents[1]
    ci = (root / ".ci" / "run").read_text()
    update, install = ci.find("apt-get update"), ci.find("apt-get install -y -q chromium chromium-driver")
    assert 0 <= update < install < ci.rfind("\nmake test") and "export CI=" in ci
    dev = tomllib.loads((root / "pyproject.toml").read_text())["project"]["optional-dependencies"]["dev"]
    assert any(d.startswith("selenium") for d in dev)
    assert re.search(r"^selenium==[\d.]+$", (root / "constraints.txt").read_text(), re.M)
    real_exists = Path.exists
    monkeypatch.setattr(Path, "exists", lambda p: False if str(p) == "/usr/bin/chromium" else real_exists(p))
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must run the browser test: needs /usr/bin/chromium"):
        _browser()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="apt-get install chromium chromium-driver"):
        _browser()

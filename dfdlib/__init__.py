"""dfdlib: retrain and use a ResNeXt50-LSTM video deepfake detector on your own videos.

Pipeline: videos → faces (`preprocess_dataset`) → labels CSV (`make_labels`, `split_labels`)
→ model (`train`) → verdict (`predict_video`, `evaluate_model`).

The public API is flat; names are imported lazily so `import dfdlib` stays fast and does not start
TensorFlow (MTCNN) or torch until they are needed.
"""
from __future__ import annotations

import os

from dfdlib._lazy import lazy_getattr

# TensorFlow (MTCNN's engine) prints oneDNN / CPU-feature lines from C++ when it loads, before any log level
# is read, between our progress bars. Set before anything imports it; a user's own setting wins.
# oneDNN's custom ops off: that message goes, and MTCNN is no slower on CPU (measured: 0.15 vs 0.21 s/frame).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

__version__ = "0.1.0"

_API = {
    # stage 0: sample data
    "SampleConfig": "sample.dataset", "make_sample_dataset": "sample.dataset",
    # stage 1: videos → faces
    "VideoInfo": "video", "VideoError": "video", "probe_video": "video", "read_frames": "video",
    "sample_indices": "video",
    "PreprocessConfig": "preprocess.config", "FaceDetector": "preprocess.detector",
    "extract_faces": "preprocess.faces", "crop_face": "preprocess.faces",
    "preprocess_dataset": "preprocess.run", "merge_shard_reports": "preprocess.shards",
    "crop_grid": "preprocess.crop_grid",
    # stage 2: labels
    "LabelsError": "labels.io", "from_folders": "labels.metadata", "from_dfdc_metadata": "labels.metadata",
    "from_gobal_metadata": "labels.metadata", "validate_labels": "labels.io", "split_labels": "labels.splits",
    "read_labels": "labels.io", "write_labels": "labels.io", "split_summary": "labels.schema",
    "from_processed": "labels.sources", "make_labels": "labels.sources",
    "from_frames_dataset": "labels.sources",
    # stage 3: model and training
    "FaceSequenceDataset": "data", "build_transforms": "data", "frames_to_clip": "data",
    "create_backbone": "backbones", "ResNeXtLSTM": "model", "LegacyResNeXtLSTM": "model",
    "save_model": "model", "load_model": "model",
    "compute_metrics": "metrics", "plot_history": "metrics", "plot_confusion": "metrics",
    "plot_roc": "metrics",
    "best_threshold": "metrics", "format_metrics_table": "metrics", "GUIDE_LEVELS": "metrics",
    "equal_error_rate": "metrics",
    "TrainConfig": "training.loop", "TrainResult": "training.loop", "train": "training.loop",
    # stage 4: predict / evaluate
    "Prediction": "predict.verdict", "predict_video": "predict.verdict", "predict_folder": "predict.verdict",
    "evaluate_model": "predict.evaluate", "calibrate_threshold": "predict.evaluate",
    "Ensemble": "predict.ensemble", "predict_many": "predict.verdict", "uploaded_video": "predict.verdict",
    "list_models": "predict.registry", "best_model": "predict.registry",
    "grad_cam": "predict.explain", "save_cam_overlays": "predict.explain", "cam_figure": "predict.explain",
    "clip_to_images": "predict.explain",
    # step 6 of the guide: the web app (optional extra dfdlib[app])
    "launch_app": "app.web", "build_app": "app.web",
    "run_demo": "sample.demo",
    "env_report": "utils", "resolve_device": "utils", "seed_everything": "utils",
}

# modules served whole: the notebooks' helpers (`from dfdlib import demo, notebook`)
_MODULES = {"demo": "sample.demo", "notebook": "sample.notebook"}

__all__ = sorted(_API) + ["__version__"]


__getattr__ = lazy_getattr(__name__, _API, _MODULES)


def __dir__():
    return __all__

"""dfdlib: retrain and use a ResNeXt50-LSTM video deepfake detector on your own videos.

Pipeline: videos → faces (`preprocess_dataset`) → labels CSV (`make_labels`, `split_labels`)
→ model (`train`) → verdict (`predict_video`, `evaluate_model`).

The public API is flat; names are imported lazily so `import dfdlib` stays fast and does not start
TensorFlow (MTCNN) or torch until they are needed.
"""
from __future__ import annotations

import os

from ._lazy import lazy_getattr

# TensorFlow (MTCNN's engine) prints oneDNN / CPU-feature lines from C++ when it loads, before any log level
# is read, between our progress bars. Set before anything imports it; a user's own setting wins.
# oneDNN's custom ops off: that message goes, and MTCNN is no slower on CPU (measured: 0.15 vs 0.21 s/frame).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

__version__ = "0.1.0"

_API = {
    # stage 0: sample data
    "SampleConfig": "sample", "make_sample_dataset": "sample",
    # stage 1: videos → faces
    "VideoInfo": "video", "VideoError": "video", "probe_video": "video", "read_frames": "video",
    "sample_indices": "video",
    "PreprocessConfig": "preprocess_config", "FaceDetector": "faces", "extract_faces": "faces", "crop_face": "faces",
    "preprocess_dataset": "preprocess", "merge_shard_reports": "preprocess_merge", "crop_grid": "crop_grid",
    # stage 2: labels
    "LabelsError": "labels", "from_folders": "importers", "from_dfdc_metadata": "importers",
    "from_gobal_metadata": "importers", "validate_labels": "labels", "split_labels": "splits",
    "read_labels": "labels", "write_labels": "labels", "split_summary": "labels_table",
    "from_processed": "label_sources", "make_labels": "label_sources", "from_frames_dataset": "label_sources",
    # stage 3: model and training
    "FaceSequenceDataset": "data", "build_transforms": "data", "frames_to_clip": "data",
    "create_backbone": "backbones", "ResNeXtLSTM": "model", "LegacyResNeXtLSTM": "model",
    "save_model": "model", "load_model": "model",
    "compute_metrics": "metrics", "plot_history": "metrics", "plot_confusion": "metrics", "plot_roc": "metrics",
    "best_threshold": "metrics", "format_metrics_table": "metrics", "GUIDE_LEVELS": "metrics",
    "equal_error_rate": "metrics",
    "TrainConfig": "trainer", "TrainResult": "trainer", "train": "trainer",
    # stage 4: predict / evaluate
    "Prediction": "predict", "predict_video": "predict", "predict_folder": "predict",
    "evaluate_model": "evaluate", "calibrate_threshold": "evaluate", "Ensemble": "ensemble", "predict_many": "predict", "uploaded_video": "predict",
    "list_models": "registry", "best_model": "registry",
    "grad_cam": "explain", "save_cam_overlays": "explain", "cam_figure": "explain", "clip_to_images": "explain",
    # step 6 of the guide: the web app (optional extra dfdlib[app])
    "launch_app": "app", "build_app": "app",
    "run_demo": "demo",
    "env_report": "utils", "resolve_device": "utils", "seed_everything": "utils",
}

__all__ = sorted(_API) + ["__version__"]


__getattr__ = lazy_getattr(__name__, _API)


def __dir__():
    return __all__

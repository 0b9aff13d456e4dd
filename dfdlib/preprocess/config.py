"""Stage 1's settings: one dataclass for sampling, detection, tracking and cropping, read by faces.py (one
video) and run.py (a dataset). Each field's help is its metadata (`config.option`): `dfd preprocess`
flags and the docs read it there, nothing repeats it. Values are checked once, when a config is made (as
TrainConfig's): a config that exists is valid, and callers change one with `dataclasses.replace`."""
from __future__ import annotations

from dataclasses import dataclass

from dfdlib.config import check_choices, config_from_dict, option
from dfdlib.video import SAMPLING

DETECTOR_BACKENDS = ("auto", "torch", "tf")  # faces.detector_backend says what each one runs


@dataclass
class PreprocessConfig:
    frames: int = option(20, "frames sampled per video (10-100 typical); each ok video gives exactly this many "
                              "crops")
    sampling: str = option("even", "'even': spread over the whole video; 'first': the first N frames (original "
                                   "notebooks)", SAMPLING)
    size: int = option(224, "side in px of the saved square face crop (the original project used 112)")
    margin: float = option(0.3, "context added on each side of the face box, as a fraction of its longer side")
    min_confidence: float = option(0.9, "MTCNN detections below this confidence are ignored")
    min_face_size: int = option(20, "smallest face kept (shorter box side, px at full resolution); filtered after "
                                    "detection (mtcnn's own min_face_size above ~24 finds nothing)")
    detect_max_side: int = option(480, "detect on a copy whose longer side is at most this many px (0: full "
                                       "resolution)")
    jpeg_quality: int = option(95, "JPEG quality (1-100) of the saved crops")
    min_detected: float = option(0.5, "share of sampled frames that must show the main face, else the video is "
                                      "no_face")
    track_iou: float = option(0.2, "IoU with the face's previous box for a detection to count as the same face")
    detect_retry: bool = option(True, "main face in too few frames: detect again at 2x detect_max_side, then at "
                                      "full resolution")
    reacquire: float = option(0.6, "appearance similarity (0-1) that rejoins a face to its track after a shot cut "
                                   "(>1: never)")
    max_faces: int = option(1, "people kept per video, most prominent first; above 1 each is a sample "
                               "<video>/face_<k>/")
    crop: str = option("square", "'square' around the box (+margin); 'stretch': the box itself (+margin), clipped "
                                 "to the frame and stretched to size x size (the original project's crops)",
                       ("square", "stretch"))
    detector: str = option("auto", "MTCNN runtime, same networks and boxes: 'torch' (PyTorch; the GPU when there "
                                   "is one), 'tf' (the mtcnn package on TensorFlow, CPU), 'auto' (torch); a model "
                                   "records it and prediction uses the same", DETECTOR_BACKENDS)

    keyframes: int = option(4, "detect faces on every k-th sampled frame (and the last) and follow them in "
                               "between while the shot and the faces at both ends agree; elsewhere every frame is "
                               "detected (1: every sampled frame)")
    start_small: bool = option(True, "when every face on the middle sampled frame is large, detect on a copy at "
                                     "half detect_max_side (a quarter of the pixels); too few faces found there: "
                                     "the usual resolutions follow")
    reuse_boxes: bool = option(True, "a fake whose original is in the dataset (FF++, DFDC, Celeb-DF, a manifest) is "
                                     "cut with the original's boxes after a check on two frames (same size, frame "
                                     "count, fps; faces found where the original's were); else detected as usual")
    replace_blank: bool = option(True, "a sampled frame with no usable picture (black or flat: fades, blank titles; "
                                       "heavy motion blur) is replaced by the nearest usable frame before detection")

    def __post_init__(self):
        check_choices(self)  # sampling, crop, detector
        checks = [
            (self.frames >= 1, "frames must be >= 1"),
            (self.size >= 8, "size must be >= 8 px"),
            (0 <= self.margin <= 2, "margin must be between 0 and 2 (fraction of the face box per side)"),
            (0 <= self.min_confidence <= 1, "min_confidence must be between 0 and 1"),
            (self.min_face_size >= 0, "min_face_size must be >= 0"),
            (self.detect_max_side == 0 or self.detect_max_side >= 48, "detect_max_side must be 0 or >= 48"),
            (1 <= self.jpeg_quality <= 100, "jpeg_quality must be between 1 and 100"),
            (0 <= self.min_detected <= 1, "min_detected must be between 0 and 1"),
            (0 <= self.track_iou < 1, "track_iou must be in [0, 1)"),
            (self.reacquire >= 0, "reacquire must be >= 0 (above 1 turns re-acquisition after cuts off)"),
            (self.max_faces >= 1, "max_faces must be >= 1"),
            (self.keyframes >= 1, "keyframes must be >= 1 (1: detect on every sampled frame)"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(f"PreprocessConfig.{msg}")

    @classmethod
    def from_dict(cls, d: dict | None) -> PreprocessConfig:
        """Rebuild from `asdict(config)` (e.g. a model file's meta["preprocess"]); None gives the defaults.

        Raises ValueError naming an unknown key (a typo, or a field of a newer dfdlib: its crops would differ).
        """
        return config_from_dict(cls, d)

"""Face emotion in production: DeepFace's emotion model on its pytorch engine, from local files only.

DeepFace downloads any weight file it does not find under `$DEEPFACE_HOME/.deepface/weights`.
Heartline never lets it: the reader checks every file the chosen detector and the emotion model
read before DeepFace is imported, and refuses with FileNotFoundError naming what is missing.
`heartline models fetch --face deepface` fills the folder on a connected machine:

    <home>/.deepface/weights/facial_expression_model_weights.pth   (~6 MB, pytorch state dict)

from the hub repo `serengil/deepface` (that one file; the repo also holds every other DeepFace
model, several GB) or, the same file, DeepFace's GitHub release `serengil/deepface_models` v1.0.
The default `opencv` detector reads the Haar cascades that opencv-python-headless<5 ships, so it
needs nothing more; the other detectors offered here each need the files in DETECTOR_FILES.

deepface 0.0.103 is installed with --no-deps: its declared dependencies would replace this
project's OpenCV with OpenCV 5 (no Haar cascades, so DeepFace would try to download them) and
bring pandas and retina-face, none of which this path uses. It imports werkzeug and gdown at
import time without needing them here. With TensorFlow installed it would switch to TensorFlow
unless DEEPFACE_BACKEND_ENGINE says otherwise, so the reader sets it to pytorch.
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from pathlib import Path

import numpy as np

from core.turn import FaceEmotion
from models.emotion.images import open_image

log = logging.getLogger(__name__)

# The FER-2013 labels, in the order DeepFace's emotion model outputs them.
LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

EMOTION_WEIGHTS = "facial_expression_model_weights.pth"
HUB_REPO = "serengil/deepface"
WEIGHT_URLS = (
    f"https://huggingface.co/{HUB_REPO}/resolve/main/{EMOTION_WEIGHTS}",
    f"https://github.com/serengil/deepface_models/releases/download/v1.0/{EMOTION_WEIGHTS}",
)
# What each detector reads from the weights folder, as DeepFace 0.0.103 names the files.
DETECTOR_FILES: dict[str, tuple[str, ...]] = {
    "opencv": (),
    "yunet": ("face_detection_yunet_2023mar.onnx",),
    "ssd": ("deploy.prototxt", "res10_300x300_ssd_iter_140000.caffemodel"),
    "centerface": ("centerface.onnx",),
}
# Every detector but opencv falls back on opencv's eye cascade for alignment.
HAAR_CASCADES = ("haarcascade_frontalface_default.xml", "haarcascade_eye.xml")
INSTALL_HINT = "pip install --no-deps deepface==0.0.103 && pip install werkzeug gdown"

# DeepFace keeps one emotion model per process; readers with different homes take turns.
_LOCK = threading.Lock()


def weights_dir(home: Path) -> Path:
    """Where DeepFace looks for weight files when DEEPFACE_HOME is `home`."""
    return Path(home) / ".deepface" / "weights"


def missing_weights(home: Path, detector: str = "opencv") -> list[str]:
    """The files the emotion model and `detector` need that are not on disk (empty when ready)."""
    folder = weights_dir(home)
    needed = [EMOTION_WEIGHTS, *DETECTOR_FILES[detector]]
    missing = [str(folder / name) for name in needed if not (folder / name).is_file()]
    cascades = _opencv_data_dir()
    for name in HAAR_CASCADES:
        # DeepFace takes them from OpenCV's data folder, else from the weights folder, else downloads.
        if not (cascades / name).is_file() and not (folder / name).is_file():
            missing.append(f"{folder / name} (or {cascades / name}: install opencv-python-headless<5)")
    return missing


def _opencv_data_dir() -> Path:
    import cv2

    return Path(cv2.__file__).parent / "data"  # the folder DeepFace's opencv detector reads


class DeepFaceReader:
    """DeepFace `analyze(actions=["emotion"])`: the largest face's FER label, from local weights."""

    def __init__(self, home: Path, detector: str = "opencv", max_side: int = 960) -> None:
        if detector not in DETECTOR_FILES:
            raise ValueError(f"unsupported DeepFace detector {detector!r}; one of {sorted(DETECTOR_FILES)}")
        self.home = Path(home).expanduser().resolve()
        self.detector = detector
        self.max_side = max_side
        self.name = f"deepface-emotion+{detector}"
        missing = missing_weights(self.home, detector)
        if missing:
            source = f" ({EMOTION_WEIGHTS} is {WEIGHT_URLS[0]})" if EMOTION_WEIGHTS in missing[0] else ""
            raise FileNotFoundError(
                "DeepFace weights are missing, and Heartline never downloads at run time: "
                + ", ".join(missing)
                + f". Run `heartline models fetch --face deepface` on a connected machine{source} "
                "and copy the folder here."
            )
        with _LOCK:
            self._load()
        self._warm_up()
        log.info("face emotion: DeepFace %s on pytorch, weights in %s", detector, self.home)

    def _load(self) -> None:
        os.environ["DEEPFACE_HOME"] = str(self.home)
        os.environ["DEEPFACE_BACKEND_ENGINE"] = "pytorch"
        os.environ.setdefault("DEEPFACE_LOG_LEVEL", str(logging.WARNING))  # it prints to stdout
        # DeepFace's import runs warnings.filterwarnings("ignore") for the whole process: undo it.
        with warnings.catch_warnings():
            try:
                from deepface import DeepFace
                from deepface.commons import backend_utils
                from deepface.modules import modeling
                from deepface.modules.exceptions import FaceNotDetected, ImgNotFound
            except ImportError as error:
                raise ImportError(f"DeepFace is not installed ({error}): {INSTALL_HINT}") from error
        engine = backend_utils.get_backend_engine()
        if engine != backend_utils.PYTORCH:
            raise RuntimeError(
                f"DeepFace was already started on the {engine} engine in this process; "
                "Heartline's DeepFace reader needs DEEPFACE_BACKEND_ENGINE=pytorch"
            )
        self._analyze = DeepFace.analyze
        self._modeling = modeling
        self._no_face = (FaceNotDetected, ImgNotFound)
        # Built here, not through DeepFace's process-wide cache, so that this reader keeps the
        # model from its own home; read() puts it back in the cache before each analysis.
        self._emotion = modeling.get_model_class(task="facial_attribute", model_name="Emotion")()
        modeling.build_model(task="face_detector", model_name=self.detector)

    def _warm_up(self) -> None:
        """One pass through the detector and the network, so the first user waits no longer."""
        self._emotion.predict(np.zeros((224, 224, 3), np.uint8))
        self._run(np.zeros((96, 96, 3), np.uint8))

    def _run(self, bgr: np.ndarray) -> list[dict]:
        with _LOCK:
            self._modeling.cached_models["facial_attribute"]["Emotion"] = self._emotion
            try:
                return self._analyze(
                    bgr, actions=["emotion"], detector_backend=self.detector,
                    enforce_detection=True, align=True, silent=True,
                )
            except self._no_face:
                return []

    def read(self, image: bytes) -> FaceEmotion | None:
        rgb = np.asarray(open_image(image, max_side=self.max_side))
        faces = self._run(np.ascontiguousarray(rgb[:, :, ::-1]))  # DeepFace takes BGR arrays
        if not faces:
            return None
        largest = max(faces, key=lambda face: face["region"]["w"] * face["region"]["h"])
        label = str(largest["dominant_emotion"])
        if label not in LABELS:
            raise RuntimeError(f"DeepFace returned an unknown emotion label {label!r}")
        confidence = min(max(float(largest["emotion"][label]) / 100.0, 0.0), 1.0)  # percent -> [0, 1]
        return FaceEmotion(label, round(confidence, 4), faces=len(faces))

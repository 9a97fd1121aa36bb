"""Audio in and out with PyAV: every format users' apps send, and OGG/Opus voice notes back.

PyAV links FFmpeg in-process, so nothing shells out per message.
"""

from __future__ import annotations

import io
import wave

import av
import numpy as np

from core.errors import InputError, audio_too_long
from core.turn import PcmAudio

STT_RATE = 16_000
OPUS_RATE = 48_000
# Speech stays clear at 32 kbit/s with Opus' VoIP tuning; a minute is ~240 KB, far under
# Telegram's 1 MB voice-bubble limit.
OPUS_BITRATE = 32_000
# The names of files that hold audio, when a folder of clips is read (training, evaluation).
AUDIO_SUFFIXES = {".wav", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".flac", ".webm"}


class PyAvCodec:
    name = f"pyav-{av.__version__}"

    def decode(self, data: bytes, mime_type: str | None, max_seconds: float) -> PcmAudio:
        if not data:
            raise InputError("That audio file is empty.")
        max_samples = int(max_seconds * STT_RATE)
        chunks: list[np.ndarray] = []
        total = 0
        try:
            with av.open(io.BytesIO(data), mode="r") as container:
                if not container.streams.audio:
                    raise InputError("That file has no sound in it. Send a voice note or an audio file.")
                stream = container.streams.audio[0]
                resampler = av.AudioResampler(format="flt", layout="mono", rate=STT_RATE)
                for frame in container.decode(stream):
                    for out in resampler.resample(frame):
                        chunk = out.to_ndarray().reshape(-1)
                        chunks.append(chunk)
                        total += len(chunk)
                    if total > max_samples:
                        duration = container.duration / av.time_base if container.duration else None
                        raise audio_too_long(duration, max_seconds)
                for out in resampler.resample(None):
                    chunks.append(out.to_ndarray().reshape(-1))
        except InputError:
            raise
        except (av.error.FFmpegError, ValueError, IndexError) as error:
            raise InputError(
                "I couldn't read that audio. Voice notes, OGG, WebM, MP3, M4A, WAV and FLAC work."
            ) from error
        samples = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
        if not samples.size:
            raise InputError("That audio has no sound in it.")
        return PcmAudio(np.clip(samples, -1.0, 1.0), STT_RATE)

    def encode_voice_note(self, audio: PcmAudio) -> bytes:
        pcm = (np.clip(audio.samples, -1.0, 1.0) * 32767).astype(np.int16).reshape(1, -1)
        buffer = io.BytesIO()
        with av.open(buffer, mode="w", format="ogg") as container:
            stream = container.add_stream("libopus", rate=OPUS_RATE, layout="mono")
            stream.bit_rate = OPUS_BITRATE
            stream.codec_context.options = {"application": "voip"}
            frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
            frame.sample_rate = audio.sample_rate
            resampler = av.AudioResampler(format="s16", layout="mono", rate=OPUS_RATE)
            for resampled in [*resampler.resample(frame), *resampler.resample(None)]:
                for packet in stream.encode(resampled):
                    container.mux(packet)
            for packet in stream.encode(None):
                container.mux(packet)
        return buffer.getvalue()

    def encode_wav(self, audio: PcmAudio) -> bytes:
        pcm = (np.clip(audio.samples, -1.0, 1.0) * 32767).astype(np.int16)
        buffer = io.BytesIO()
        with wave.open(buffer, "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(audio.sample_rate)
            wav.writeframes(pcm.tobytes())
        return buffer.getvalue()

    def waveform(self, audio: PcmAudio, points: int = 256) -> bytes:
        chunks = np.array_split(np.abs(audio.samples), min(points, max(len(audio.samples), 1)))
        levels = np.array([chunk.max() if chunk.size else 0.0 for chunk in chunks])
        peak = levels.max() or 1.0
        return bytes(np.round(levels / peak * 255).astype(np.uint8))

"""A made-up conversation to try `heartline analyze` on: two stock voices taking turns, each
line spoken with its emotion's prosody as the voice-emotion data is made, a pause between
turns, and the ground truth it was made from.

    python -m models.tools.conversation_data DIR   # DIR/conversation.wav, DIR/truth.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from core.turn import PcmAudio, VoiceStyle

VOICES = {"A": "espeak:en-us+m3", "B": "espeak:en-us+f3"}
# Lines whose words and delivery agree, as people's mostly do.
LINES = (
    ("A", "sad", "I got the call this morning. My grandfather passed away in the night."),
    ("B", "sad", "Oh no. I am so sorry. I know how much he meant to you."),
    ("A", "sad", "I keep thinking about the summers at his farm. I miss him already."),
    ("B", "neutral", "Do you want me to drive you to your parents tomorrow?"),
    ("A", "happy", "Yes, thank you so much. That would really help, you are wonderful."),
    ("B", "angry", "And honestly, your boss refusing you the day off is outrageous."),
)
PAUSE_S = 0.8


def build(folder: Path, seed: int = 3) -> tuple[Path, Path]:
    from models.audio.codec import PyAvCodec
    from models.audio.dsp import resample_to
    from models.emotion.prosody import RATE
    from models.tools.voice_emotion_data import express
    from models.voice.conversion import Analysis
    from models.voice.stock_voices import load_voice

    rng = np.random.default_rng(seed)
    pause = np.zeros(int(PAUSE_S * RATE), np.float32)
    samples, truth, at = [pause], [], PAUSE_S
    for speaker, emotion, text in LINES:
        plain = resample_to(load_voice(VOICES[speaker]).synthesize(text, VoiceStyle()), RATE)
        spoken = express(Analysis(plain), emotion, rng)
        samples += [spoken.samples, pause]
        truth.append({"speaker": speaker, "start": round(at, 2), "end": round(at + spoken.duration_s, 2),
                      "emotion": emotion, "text": text})
        at += spoken.duration_s + PAUSE_S
    folder.mkdir(parents=True, exist_ok=True)
    wav, listing = folder / "conversation.wav", folder / "truth.json"
    wav.write_bytes(PyAvCodec().encode_wav(PcmAudio(np.concatenate(samples), RATE)))
    listing.write_text(json.dumps({"utterances": truth}, indent=2))
    return wav, listing


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        sys.exit(2)
    print("\n".join(map(str, build(Path(sys.argv[1])))))

"""How close cloned replies sound to a user, and how well Whisper still understands them.

Figures, not a test: `similarity_*` are mean speaker-embedding cosines between each reply and
each of the user's clips (one utterance against one, on every side), so the ceiling, the user's
clips against each other, is measured the same way. Replies are held-out sentences, never the
clips' own transcripts, which the conversion was fitted on.
"""

from __future__ import annotations

import json
import re
import time

import numpy as np

from core.turn import PcmAudio, VoiceStyle
from models.voice.stock_voices import DEFAULT_VOICE

REPLY_SENTENCES = (
    "I'm really sorry you had such a hard day. Do you want to tell me more about it?",
    "That sounds wonderful, I'm so happy for you.",
    "It makes sense that you feel tired after everything that happened this week.",
    "Remember to drink some water and get a good night's sleep.",
    "What was the best part of your trip to the mountains?",
    "You don't have to figure everything out tonight. One small step is enough.",
    "I'm here whenever you want to talk, morning or night.",
    "Your friend was lucky to have someone as kind as you.",
    "Let's think about what you could say to your manager tomorrow.",
    "It's okay to feel nervous before an interview. Most people do.",
    "Would you like to try a short breathing exercise with me right now?",
    "I remember you mentioned your brother last week. How is he doing?",
    "Congratulations on finishing the project, that took real patience.",
    "Sometimes a walk outside can clear your head better than anything else.",
    "I can hear how much this matters to you.",
    "Maybe you could write down three things that went well today.",
    "Thank you for trusting me with something so personal.",
    "If the noise keeps you awake, try some soft music or a quiet fan.",
    "That must have been frightening. I'm glad you are safe now.",
    "Tell me about the new puppy! What did you name her?",
    "Cooking dinner for your parents is a lovely idea.",
    "Even on difficult days, you keep showing up, and that counts.",
    "Have you thought about joining a club to meet new people?",
    "Good luck with your exam on Friday, I believe in you.",
    "It sounds like your sister really cares about you.",
    "What would make tomorrow morning a little easier?",
    "Being angry about that is completely understandable.",
    "I love that you found time to paint again.",
    "Let's take it one day at a time.",
    "Did the doctor say anything about the test results?",
    "You handled that conversation with a lot of courage.",
    "A warm cup of tea and a good book sounds perfect for tonight.",
    "I wonder what your grandfather would say if he could see you now.",
    "Moving to a new city is exciting and scary at the same time.",
    "Please be gentle with yourself this weekend.",
    "What song always puts you in a good mood?",
)


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower().replace("\u2019", "'"))


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """Word-level edit distance and the reference length."""
    ref, hyp = words(reference), words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, expected in enumerate(ref, 1):
        previous, row = row, [i] + [0] * len(hyp)
        for j, heard in enumerate(hyp, 1):
            row[j] = min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (expected != heard))
    return row[-1], len(ref)


def word_error_rate(transcriber, audios: list[PcmAudio], texts: list[str]) -> float:
    from models.audio.dsp import resample_to

    errors = total = 0
    for audio, text in zip(audios, texts):
        # faster-whisper takes raw samples at 16 kHz.
        heard = transcriber.transcribe(resample_to(audio, 16_000)).text
        wrong, count = word_errors(text, heard)
        errors, total = errors + wrong, total + count
    return errors / max(total, 1)


def mean_similarity(embeddings: np.ndarray, others: np.ndarray, same: bool = False) -> float:
    cosines = embeddings @ others.T
    if same:  # leave out each clip against itself
        count = len(embeddings)
        return float((cosines.sum() - np.trace(cosines)) / (count * count - count))
    return float(cosines.mean())


def evaluate(user_clips: list[PcmAudio], user_transcripts: list[str], *, encoder=None,
             transcriber=None, candidates: list[str] | None = None, base_voice: str = DEFAULT_VOICE,
             stats: dict | None = None, reply_texts: tuple[str, ...] = REPLY_SENTENCES) -> dict:
    """Speak the held-out replies with the base voice and in the user's styled voice, and compare.

    `stats` is the conversion registration stored; without it, one is fitted on the clips here.
    """
    from models.voice import stock_voices
    from models.voice.speaker import SpeakerEncoder
    from models.speech.whisper import FasterWhisperTranscriber, packaged_model_dir

    encoder = encoder or SpeakerEncoder()
    transcriber = transcriber or FasterWhisperTranscriber(packaged_model_dir(), "tiny.en")
    texts = list(reply_texts)
    user = np.array([encoder.embed(clip) for clip in user_clips])

    fit_seconds = None  # the stored conversion was fitted at registration
    if stats is None:
        started = time.perf_counter()
        stats = stock_voices.fit_user_voice(user_clips, user_transcripts, encoder, candidates or [base_voice])
        fit_seconds = time.perf_counter() - started

    base = stock_voices.load_voice(base_voice)
    base_replies = [base.synthesize(text, VoiceStyle()) for text in texts]
    started = time.perf_counter()
    cloned = [stock_voices.speak_in_user_voice(text, VoiceStyle(), stats) for text in texts]
    seconds_per_audio_second = (time.perf_counter() - started) / sum(a.duration_s for a in cloned)

    ceiling = mean_similarity(user, user, same=True)
    similarity_base = mean_similarity(np.array([encoder.embed(a) for a in base_replies]), user)
    similarity_cloned = mean_similarity(np.array([encoder.embed(a) for a in cloned]), user)
    return {
        "stock_voice": stats["stock_voice"],
        "similarity_base": similarity_base,
        "similarity_cloned": similarity_cloned,
        "similarity_ceiling": ceiling,
        "gap_closed": (similarity_cloned - similarity_base) / max(ceiling - similarity_base, 1e-6),
        "wer_base": word_error_rate(transcriber, base_replies, texts),
        "wer_cloned": word_error_rate(transcriber, cloned, texts),
        "fit_seconds": fit_seconds,
        "reply_seconds_per_audio_second": seconds_per_audio_second,
        "stats_bytes": len(json.dumps(stats)),
    }

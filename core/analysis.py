"""Conversation analysis: who spoke when, and how each of them felt, utterance by utterance.

The recording is cut into utterances where the transcriber heard speech, the utterances are
grouped by voice, and each is read from its words and its sound together, in the light of the
same speaker's previous utterance (a feeling rarely vanishes between two sentences). Backends
come in through the small interfaces below; `models/` holds them, `config/wiring.py` chooses.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Protocol

from core.emotions import Reading, fuse
from core.stages import TextEmotionReader, VoiceEmotionReader
from core.turn import EmotionScore, PcmAudio

# How much the speaker's previous utterance counts in reading this one.
CONTEXT_WEIGHT = 0.3
# Under this an utterance is too short to tell a voice by; it joins its neighbour's speaker.
SHORTEST_VOICE_S = 0.6


class Segmenter(Protocol):
    def segments(self, audio: PcmAudio) -> Iterable[tuple[float, float, str]]:
        """(start, end, text) per stretch of speech, in order."""


class VoiceEmbedder(Protocol):
    def embed(self, audio: PcmAudio):
        """A unit vector that is close for the same voice."""


@dataclass(frozen=True)
class Utterance:
    speaker: str
    start: float
    end: float
    text: str
    emotion: str
    confidence: float
    reason: str


@dataclass(frozen=True)
class ConversationAnalysis:
    speakers: list[dict]
    utterances: list[Utterance]
    summary: str

    def to_dict(self) -> dict:
        return {"speakers": self.speakers, "utterances": [asdict(u) for u in self.utterances],
                "summary": self.summary}


def analyse(audio: PcmAudio, segmenter: Segmenter, embedder: VoiceEmbedder,
            cluster: Callable[[list, int | None], list[int]], text_reader: TextEmotionReader,
            voice_reader: VoiceEmotionReader | None, weights: dict[str, float],
            speakers: int | None = None, progress: Callable[[float], None] | None = None) -> ConversationAnalysis:
    """`cluster(embeddings, speakers)` numbers the voices; `progress(seconds)` hears how far into
    the recording the work is."""
    pieces = []
    for start, end, text in segmenter.segments(audio):
        clip = audio.slice(start, end)
        voice = None
        if end - start >= SHORTEST_VOICE_S:
            try:
                voice = embedder.embed(clip)
            except ValueError:  # too little voiced sound in it to tell whose it is
                voice = None
        pieces.append((start, end, text, clip, voice))
        if progress:
            progress(end)
    voiced = [p[4] for p in pieces if p[4] is not None]
    numbers = iter(cluster(voiced, speakers) if voiced else [])
    speaker_of, last = [], 0
    for piece in pieces:  # a blip too short to embed is taken as the speaker before it
        last = next(numbers) if piece[4] is not None else last
        speaker_of.append(f"S{last + 1}")
    utterances, previous = [], {}
    for (start, end, text, clip, _), speaker in zip(pieces, speaker_of):
        readings = [Reading("text", tuple(text_reader.read(text)))]
        if voice_reader is not None:
            readings.append(Reading("voice", (voice_reader.read(clip),)))
        if speaker in previous:
            readings.append(Reading("context", (previous[speaker],)))
        fused = fuse(readings, {**weights, "context": CONTEXT_WEIGHT})
        previous[speaker] = EmotionScore(fused.primary_emotion, fused.confidence)
        utterances.append(Utterance(speaker, round(start, 2), round(end, 2), text, fused.primary_emotion,
                                    round(fused.confidence, 3), _reason(readings)))
    speakers = _per_speaker(utterances)
    return ConversationAnalysis(speakers, utterances, _summary(utterances, speakers))


def _reason(readings: list[Reading]) -> str:
    """What each source said: "words: sadness 0.62; voice: sad 0.51; before: sadness 0.70"."""
    names = {"text": "words", "voice": "voice", "context": "before"}
    parts = []
    for reading in readings:
        top = max(reading.scores, key=lambda score: score.confidence)
        parts.append(f"{names[reading.modality]}: {top.emotion} {top.confidence:.2f}")
    return "; ".join(parts)


def _per_speaker(utterances: list[Utterance]) -> list[dict]:
    found = []
    for speaker in dict.fromkeys(u.speaker for u in utterances):
        own = [u for u in utterances if u.speaker == speaker]
        feelings = Counter(u.emotion for u in own)
        found.append({"speaker": speaker, "utterances": len(own),
                      "seconds": round(sum(u.end - u.start for u in own), 1),
                      "emotions": dict(feelings.most_common()), "mostly": feelings.most_common(1)[0][0]})
    return found


def _summary(utterances: list[Utterance], speakers: list[dict]) -> str:
    if not utterances:
        return "No speech was found in the recording."
    lines = [f"{len(speakers)} speaker{'s' if len(speakers) > 1 else ''}, {len(utterances)} utterances "
             f"over {utterances[-1].end - utterances[0].start:.0f} s."]
    for speaker in speakers:
        own = [u.emotion for u in utterances if u.speaker == speaker["speaker"]]
        shift = f", ending {own[-1]}" if len(own) > 2 and own[-1] != speaker["mostly"] else ""
        lines.append(f"{speaker['speaker']} spoke {speaker['utterances']} times ({speaker['seconds']:.0f} s), "
                     f"mostly {speaker['mostly']}{shift}.")
    return " ".join(lines)

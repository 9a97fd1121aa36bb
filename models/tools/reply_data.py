"""The reply corpus: conversations and the reply a caring friend would give, as the trainer and
`heartline eval reply` read them, and the prompts the pipeline would build for them.

One JSON object per line (see models/data/replies/README.md):

    {"id": "GRF-0001", "persona": "friend", "custom_persona": null, "feeling": "sadness",
     "turns": [{"user": "...", "reply": "..."}], "message": "...", "reply": "...",
     "recall": ["Lisbon"]}

`turns` are the earlier exchanges, oldest first; `recall` the words from them a good reply uses.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from core.emotions import SHARED, Reading, fuse, shared_distribution
from core.mood import next_mood, trend_guidance
from core.personas import CUSTOM, PERSONAS
from core.prompts import reply_request
from core.reply_checks import recalled_memory, register
from core.stages import LanguageIdentifier, TextEmotionReader
from core.turn import EmotionScore, FusedEmotion, Memory, ReplyRequest
from models.tools import DataError
from storage.memory import MIN_WORDS, RECALLED
from storage.turns import HISTORY_TURNS, RECENT_EMOTIONS

MAX_REPLY_CHARS = 600


@dataclass(frozen=True)
class Dialogue:
    id: str
    persona: str
    custom_persona: str | None
    feeling: str
    turns: tuple[tuple[str, str], ...]  # (what the user said, what Heartline answered)
    message: str
    reply: str
    recall: tuple[str, ...] = ()


def load_dialogues(path: Path) -> list[Dialogue]:
    """Every row of a corpus file, or a DataError naming the first bad line and what is wrong."""
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    dialogues, seen = [], set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            dialogue = _dialogue(json.loads(line), number)
        except json.JSONDecodeError as error:
            raise DataError(f"{path} line {number}: not JSON ({error.msg})") from None
        except DataError as error:
            raise DataError(f"{path} line {number}: {error}") from None
        if dialogue.id in seen:
            raise DataError(f"{path} line {number}: id {dialogue.id!r} is used twice")
        seen.add(dialogue.id)
        dialogues.append(dialogue)
    if not dialogues:
        raise DataError(f"{path}: no rows")
    return dialogues


def _dialogue(row: object, number: int) -> Dialogue:
    if not isinstance(row, dict):
        raise DataError("a row must be a JSON object")
    message, reply = row.get("message"), row.get("reply")
    if not isinstance(message, str) or not message.strip():
        raise DataError('"message" must be a non-empty string')
    if not isinstance(reply, str) or not reply.strip():
        raise DataError('"reply" must be a non-empty string')
    if len(reply) > MAX_REPLY_CHARS:
        raise DataError(f'"reply" is {len(reply)} characters; a spoken reply is at most {MAX_REPLY_CHARS}')
    persona = row.get("persona") or "friend"
    custom = row.get("custom_persona") or None
    if persona not in PERSONAS and persona != CUSTOM:
        raise DataError(f'"persona" must be one of {", ".join([*PERSONAS, CUSTOM])}, not {persona!r}')
    if (persona == CUSTOM) != bool(custom):
        raise DataError('"custom_persona" describes the role exactly when "persona" is "custom"')
    feeling = row.get("feeling") or "neutral"
    if feeling not in SHARED:
        raise DataError(f'"feeling" must be one of {", ".join(SHARED)}, not {feeling!r}')
    turns = row.get("turns") or []
    if not isinstance(turns, list) or not all(
            isinstance(t, dict) and isinstance(t.get("user"), str) and isinstance(t.get("reply"), str)
            for t in turns):
        raise DataError('"turns" must be a list of {"user": ..., "reply": ...}')
    recall = row.get("recall") or []
    if not isinstance(recall, list) or not all(isinstance(word, str) and word for word in recall):
        raise DataError('"recall" must be a list of words')
    said = " ".join(t["user"] for t in turns).lower()
    for word in recall:
        if word.lower() not in said:
            raise DataError(f"recall word {word!r} is not in anything the user said earlier")
    return Dialogue(str(row.get("id") or f"line-{number}"), persona, custom, feeling,
                    tuple((t["user"], t["reply"]) for t in turns), message, reply, tuple(recall))


@dataclass(frozen=True)
class Readers:
    """The pipeline's own readers, so a training prompt carries what a live one would."""

    emotion: TextEmotionReader
    languages: LanguageIdentifier
    # MiniLM's cosine between a text and each of others, as ReplyJudge.closeness gives it
    closeness: Callable[[str, Sequence[str]], list[float]]


def prompt_for(dialogue: Dialogue, readers: Readers, history_turns: int = HISTORY_TURNS,
               max_sentences: int = 3) -> ReplyRequest:
    """The request the pipeline would build for this conversation's last message.

    The earlier turns' feelings (for Heartline's mood and the user's trend), the message's
    feeling and language are read by the same readers the pipeline uses, not taken from the
    labels, so the model learns from prompts as it will see them. With fewer `history_turns`,
    older statements reach the prompt the way a long conversation's do: as recalled memories.
    """
    feelings, mood = [], None
    for said, _ in dialogue.turns:
        fused = _text_only(readers.emotion.read(said))
        feelings.append(fused.primary_emotion)
        mood = next_mood(mood, fused)
    emotions = readers.emotion.read(dialogue.message)
    fused = _text_only(emotions)
    mood = next_mood(mood, fused)
    feeling = register(fused.primary_emotion, fused.confidence, dialogue.message,
                       shared_distribution(emotions))
    cut = len(dialogue.turns) - history_turns if history_turns else len(dialogue.turns)
    recent, older = dialogue.turns[max(cut, 0):], dialogue.turns[:max(cut, 0)]
    history = [Memory(text, "memory") for text in _most_like(dialogue.message, older, readers.closeness)]
    for said, answered in recent:
        history += [Memory(said, "user"), Memory(answered, "assistant")]
    trend = trend_guidance([*feelings[-(RECENT_EMOTIONS):], fused.primary_emotion])
    return reply_request(dialogue.persona, replace(fused, primary_emotion=feeling), history,
                         dialogue.message, f"corpus:{dialogue.id}",
                         max_sentences, readers.languages.identify(dialogue.message),
                         custom_persona=dialogue.custom_persona, mood=mood, trend=trend,
                         recall=lambda context: recalled_memory(context, readers.closeness))


def _text_only(emotions: list[EmotionScore]) -> FusedEmotion:
    return fuse([Reading("text", tuple(emotions))], {})


def _most_like(message: str, older: tuple[tuple[str, str], ...], closeness) -> list[str]:
    """Chroma's recall, offline: the user's statements worth keeping, most like the message first."""
    kept = [said for said, _ in older if len(said.split()) >= MIN_WORDS]
    if not kept:
        return []
    scored = sorted(zip(kept, closeness(message, kept)), key=lambda pair: -pair[1])
    return [said for said, _ in scored[:RECALLED]]

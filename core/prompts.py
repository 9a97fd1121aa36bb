"""Turning a turn, its emotion and the user's history into chat messages, and back into speech."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace

from core.mood import BotMood, mood_guidance
from core.reply_checks import NEGATIVE
from core.personas import emotion_guidance, persona_prompt
from core.speakable import without_links_and_emoji
from core.turn import ChatMessage, FusedEmotion, Memory, ReplyContext, ReplyRequest

MAX_USER_CHARS = 2000
# The prompt's budget for what is recalled: small models lose the thread in long prompts, and on
# two CPU cores every prompt token costs the local model ~3 ms before it says a word.
MEMORY_CHARS = 500
TURN_CHARS = 240

NO_WORDS_REPLY = (
    "I couldn't hear any words in that voice note. Could you try again, a little closer to the mic?"
)
IMAGE_ONLY_PROMPT = "(The user sent a selfie without any words.)"

# Whisper's language codes for the languages people most often write to us in.
LANGUAGE_NAMES = {
    "ar": "Arabic", "de": "German", "es": "Spanish", "fr": "French", "hi": "Hindi",
    "id": "Indonesian", "it": "Italian", "ja": "Japanese", "ko": "Korean", "nl": "Dutch",
    "pl": "Polish", "pt": "Portuguese", "ru": "Russian", "sv": "Swedish", "tr": "Turkish",
    "uk": "Ukrainian", "vi": "Vietnamese", "zh": "Chinese",
}


def build_messages(
    persona: str,
    fused: FusedEmotion,
    history: list[Memory],
    user_text: str,
    max_sentences: int,
    language: str | None = None,
    *,
    custom_persona: str | None = None,
    mood: BotMood | None = None,
    trend: str = "",
    recalled: str | None = None,
) -> list[ChatMessage]:
    parts = [persona_prompt(persona, custom_persona), emotion_guidance(fused), trend,
             mood_guidance(mood) if mood else "",
             f"Answer in at most {max_sentences} short sentences of plain spoken language."]
    system = " ".join(part for part in parts if part)
    if language in LANGUAGE_NAMES:
        system += f" The user speaks {LANGUAGE_NAMES[language]}; answer in {LANGUAGE_NAMES[language]}."
    remembered = _within(MEMORY_CHARS, [m.text for m in history if m.role == "memory"])
    if remembered:
        system += " Things they told you before: " + " | ".join(remembered)
    if recalled:  # a small model loses a fact among many (dev recall 59% -> 68% with this line)
        system += f" This message is about what they told you: {recalled[:TURN_CHARS]}"
    messages = [ChatMessage("system", system)]
    messages += [ChatMessage(m.role, m.text[:TURN_CHARS]) for m in history if m.role != "memory"]
    messages.append(ChatMessage("user", user_text[:MAX_USER_CHARS] or IMAGE_ONLY_PROMPT))
    return messages


def reply_request(
    persona: str,
    fused: FusedEmotion,
    history: list[Memory],
    user_text: str,
    user_key: str,
    max_sentences: int,
    language: str | None = None,
    *,
    custom_persona: str | None = None,
    mood: BotMood | None = None,
    trend: str = "",
    recall: Callable[[ReplyContext], str | None] | None = None,
) -> ReplyRequest:
    """The prompt, and what the reply will be judged against: built from the same inputs so the
    two never disagree (the reply trainer builds its prompts here too). `recall` finds the
    earlier statement the message asks about or leans on, which the prompt then names."""
    context = ReplyContext(
        user_text=user_text[:MAX_USER_CHARS],
        language=language,
        memories=tuple(m.text for m in history if m.role in ("memory", "user")),
        recent_replies=tuple(m.text for m in history if m.role == "assistant"),
    )
    if recall is not None:
        context = replace(context, recalled=recall(context) or "")
    messages = build_messages(persona, fused, history, user_text, max_sentences, language,
                              custom_persona=custom_persona, mood=mood, trend=trend,
                              recalled=context.recalled)
    return ReplyRequest(messages, persona, fused, user_key, context)


def _within(budget: int, texts: list[str]) -> list[str]:
    kept, used = [], 0
    for text in texts:
        if used + len(text) <= budget:
            kept.append(text)
            used += len(text)
    return kept


_MARKDOWN = re.compile(r"[*_`#>~|]+")
_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def clean_reply(text: str, max_sentences: int, max_chars: int, feeling: str = "neutral") -> str:
    """Make a generated reply fit to be read aloud: no markdown, links or emoji, short, whole
    sentences, one question at most, and no exclamations for someone sad, scared or angry."""
    text = without_links_and_emoji(_LINK.sub(r"\1", text))
    text = _MARKDOWN.sub("", text)
    text = " ".join(text.split())
    if feeling in NEGATIVE:
        text = text.replace("!", ".")
    sentences = [s for s in _SENTENCE_END.split(text) if s]
    if len(sentences) > 1 and not sentences[-1].endswith((".", "!", "?")):
        sentences.pop()  # cut off by the token limit
    kept: list[str] = []
    asked = False
    for sentence in sentences:
        if len(kept) == max_sentences or (kept and len(" ".join([*kept, sentence])) > max_chars):
            break
        if sentence.endswith("?"):
            if asked:
                continue
            asked = True
        kept.append(sentence)
    reply = " ".join(kept)
    if len(reply) > max_chars:
        reply = reply[:max_chars].rsplit(" ", 1)[0].rstrip(",;:") + "..."
    return reply

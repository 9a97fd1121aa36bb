"""Personas change what the real offline model says, not only the prompt."""

from __future__ import annotations

from core.personas import persona_names
from core.prompts import build_messages
from core.turn import FusedEmotion, ReplyRequest


def test_the_same_message_gets_a_different_reply_from_each_persona(settings):
    from config import wiring

    # Greedy decoding: any difference comes from the persona, not from sampling.
    replier = wiring.replier(settings.model_copy(update={"reply_temperature": 0.0,
                                                         "reply_max_new_tokens": 40}))
    sad = FusedEmotion("sadness", 0.9, "text_only")
    replies = {
        persona: replier.generate(ReplyRequest(
            build_messages(persona, sad, [], "I failed my driving test again today.", 2),
            persona, sad, "cli:personas"))
        for persona in persona_names()
    }
    assert all(replies.values()) and len(set(replies.values())) == len(replies), replies

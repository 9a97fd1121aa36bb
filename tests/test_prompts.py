from core.personas import voice_style
from core.prompts import build_messages, clean_reply, reply_request
from core.turn import FusedEmotion, Memory


def test_reply_is_made_fit_to_be_spoken():
    raw = "**Great news!** 🎉 See [this page](https://x.example) or https://y.example. You did it!"
    assert clean_reply(raw, max_sentences=3, max_chars=400) == "Great news! See this page or You did it!"


def test_reply_keeps_whole_sentences_within_the_limits():
    raw = "One. Two is here. Three comes next. Four never shows."
    assert clean_reply(raw, max_sentences=2, max_chars=400) == "One. Two is here."
    assert clean_reply("I am glad. That is so good for", 3, 400) == "I am glad."
    assert clean_reply("word " * 200, 3, 50).endswith("...")
    assert len(clean_reply("word " * 200, 3, 50)) <= 53


def test_messages_carry_persona_emotion_history_and_the_words():
    fused = FusedEmotion("sadness", 0.7, "fused_conflict")
    history = [Memory("My dog is ill.", "user"), Memory("I'm sorry to hear that.", "assistant")]
    messages = build_messages("tutor", fused, history, "I'm fine.", max_sentences=2)
    system = messages[0].content
    assert messages[0].role == "system"
    assert "patient tutor" in system and "sad" in system and "do not seem to match" in system
    assert [m.role for m in messages[1:]] == ["user", "assistant", "user"]
    assert messages[-1].content == "I'm fine."


def test_voice_style_follows_the_feeling_and_can_be_turned_off():
    sad = voice_style(FusedEmotion("sadness", 0.9, "text_only"), expressiveness=1.0)
    happy = voice_style(FusedEmotion("joy", 0.9, "text_only"), expressiveness=1.0)
    assert sad.rate < 1.0 < happy.rate and sad.energy < 1.0 < happy.energy
    assert sad.pitch < 1.0 < happy.pitch
    flat = voice_style(FusedEmotion("sadness", 0.9, "text_only"), expressiveness=0.0)
    assert (flat.rate, flat.energy, flat.pitch) == (1.0, 1.0, 1.0)


def test_a_spoken_language_other_than_english_asks_for_an_answer_in_it():
    fused = FusedEmotion("neutral", 0.5, "text_only")
    spanish = build_messages("friend", fused, [], "Hola, ¿qué tal?", 2, language="es")[0].content
    assert spanish.endswith("The user speaks Spanish; answer in Spanish.")
    assert "answer in" not in build_messages("friend", fused, [], "Hi", 2, language="en")[0].content


def test_remembered_statements_join_the_system_prompt_within_a_budget():
    fused = FusedEmotion("neutral", 0.5, "text_only")
    history = [Memory("My dog is called Biscuit.", "memory"), Memory("x" * 700, "memory"),
               Memory("Hello", "user"), Memory("Hi there!", "assistant")]
    messages = build_messages("friend", fused, history, "Guess what my dog did", 2)
    assert "Things they told you before: My dog is called Biscuit." in messages[0].content
    assert "x" * 700 not in messages[0].content
    assert [m.role for m in messages] == ["system", "user", "assistant", "user"]


def test_the_statement_a_message_is_about_is_named_in_the_prompt_and_judged_on():
    fused = FusedEmotion("fear", 0.8, "text_only")
    fever = "My daughter Nour has a fever and we're seeing Dr Haddad at 4."
    history = [Memory("Work was long.", "user"), Memory("Rest up.", "assistant"), Memory(fever, "user")]
    request = reply_request("friend", fused, history, "She's getting worse.", "t:1", 2,
                            recall=lambda context: context.memories[-1])
    assert request.context.recalled == fever
    assert request.messages[0].content.endswith(f"This message is about what they told you: {fever}")
    plain = reply_request("friend", fused, history, "She's getting worse.", "t:1", 2)
    assert plain.context.recalled is None and "This message is about" not in plain.messages[0].content

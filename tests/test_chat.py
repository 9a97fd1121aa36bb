"""The layer every front door shares, on the real pipeline through the embedded queue."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid

import pytest

from bots.chat import HELP, NOT_ALLOWED, Chat, Incoming, too_large
from config import wiring
from config.settings import Settings
from core.delivery import message_key
from core.mood import RESTING

_ids = itertools.count(1)


@pytest.fixture()
def chat(pipeline, settings):
    return make_chat(settings)


def make_chat(settings: Settings, **overrides) -> Chat:
    return wiring.chat(settings.model_copy(update=overrides))


def msg(user="u1", **fields) -> Incoming:
    fields.setdefault("chat_id", user)
    return Incoming(platform="telegram", user_id=user, message_id=str(next(_ids)), **fields)


def ask(chat: Chat, message: Incoming) -> list:
    """What the user gets back: answers at once, and a turn's answer from the outbox, as a
    door's sender takes it."""
    return [answer(chat, reply.queued) if reply.queued else reply
            for reply in asyncio.run(chat.handle(message))]


def answer(chat: Chat, key: str, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while (delivery := chat.outbox.get(key)) is None:
        assert time.monotonic() < deadline, "no answer in the outbox"
        time.sleep(0.05)
    chat.outbox.sent(key)
    return delivery.reply


def test_a_text_message_gets_a_voice_reply_with_its_words(chat):
    [reply] = ask(chat, msg(text="I just got the job I wanted!"))
    assert reply.text and reply.voice.ogg[:4] == b"OggS"
    assert reply.voice.duration_s > 0.5 and len(reply.voice.waveform) == 256
    assert reply.result["emotion_analysis"]["fused_emotion"]["primary_emotion"] == "joy"


def test_a_redelivered_message_is_answered_once(chat):
    message = msg(user="dup", text="/help")
    assert ask(chat, message)[0].text == HELP
    assert ask(chat, message) == []


def test_commands_set_persona_and_voice_and_show_the_mood(chat):
    assert "friend" in ask(chat, msg(user="c1", text="/persona"))[0].text
    assert ask(chat, msg(user="c1", text="/persona@heartline_bot tutor"))[0].text == "Okay, from now on I'm your tutor."
    assert "assistant, friend, tutor, or a role" in ask(chat, msg(user="c1", text="/persona pirate"))[0].text
    assert ask(chat, msg(user="c1", text="/voice off"))[0].text == "I'll answer in text only."
    [reply] = ask(chat, msg(user="c1", text="My grandmother died and I miss her so much."))
    assert reply.voice is None and reply.result["metadata"]["persona"] == "tutor"
    mood = ask(chat, msg(user="c1", text="/mood"))[0].text
    assert mood.startswith("With you I'm feeling warm") and "seemed sad" in mood
    assert "/voice train" in ask(chat, msg(user="c1", text="/voice status"))[0].text
    assert "don't know that command" in ask(chat, msg(user="c1", text="/dance"))[0].text


def test_forget_deletes_the_conversation_and_resets_the_mood(chat):
    ask(chat, msg(user="f1", text="My grandmother died and I miss her so much.", ))
    assert chat.users.bot_mood("telegram:f1").warmth > RESTING.warmth  # moved by the sad news
    assert "deleted our conversation" in ask(chat, msg(user="f1", text="/forget"))[0].text
    assert chat.users.bot_mood("telegram:f1") is None
    assert ask(chat, msg(user="f1", text="/mood"))[0].text == (
        "I'm feeling warm and steady. We haven't talked enough for me to tell how you are yet.")


def test_a_custom_persona_in_the_users_words_is_checked_then_used(chat):
    refused = ask(chat, msg(user="p1", text="/persona custom a bully who calls me a stupid idiot"))[0]
    assert refused.problem == "input" and "can't take on that role" in refused.text
    assert "under 300 characters" in ask(chat, msg(user="p1", text="/persona custom " + "x " * 200))[0].text
    done = ask(chat, msg(user="p1", text="/persona custom a calm sea captain who speaks in nautical terms"))
    assert done[0].text == "Okay, from now on I'll be: a calm sea captain who speaks in nautical terms"
    [reply] = ask(chat, msg(user="p1", text="How was your day?"))
    assert reply.result["metadata"]["persona"] == "custom"
    assert "role you described" in ask(chat, msg(user="p1", text="/persona"))[0].text


def test_groups_answer_only_when_addressed(chat):
    group = dict(chat_id="-100", private=False)
    assert ask(chat, msg(user="g1", text="hello all", **group)) == []
    assert ask(chat, msg(user="g1", text="/help", addressed=True, **group))[0].text == HELP


def test_allow_list_and_rate_limit(settings, pipeline):
    private = make_chat(settings, allowed_users=["telegram:friend"], max_messages_per_minute=2)
    assert ask(private, msg(user="stranger", text="/help"))[0].text == NOT_ALLOWED
    assert ask(private, msg(user="friend", text="/help"))[0].text == HELP
    assert ask(private, msg(user="friend", text="/help"))[0].text == HELP
    slow = ask(private, msg(user="friend", text="/help"))[0].text
    assert slow.startswith("You're sending messages faster than I can answer. Try again in ")


def test_bot_processes_on_one_redis_share_redeliveries_and_rates(settings, pipeline, redis_url):
    shared = dict(redis_url=redis_url, queue_name="chat-gate", max_messages_per_minute=3)
    first, second = make_chat(settings, **shared), make_chat(settings, **shared)
    user = f"two-bots-{uuid.uuid4().hex[:8]}"  # Redis keeps what earlier runs saw for a day
    message = msg(user=user, text="/help")
    assert ask(first, message)[0].text == HELP
    assert ask(second, message) == []  # the same message redelivered to the other process
    assert ask(second, msg(user=user, text="/help"))[0].text == HELP
    assert ask(first, msg(user=user, text="/help"))[0].text == HELP
    assert "Try again in" in ask(second, msg(user=user, text="/help"))[0].text


def test_an_admin_forgets_everything_a_user_gave_and_sets_another_a_rate(settings, pipeline):
    from workers import jobs

    chat = make_chat(settings, admins=["telegram:boss"])
    ask(chat, msg(user="gone", text="My dog Biscuit has been sick all week."))
    ask(chat, msg(user="gone", text="/persona tutor"))
    [done] = ask(chat, msg(user="boss", text="/admin forget gone"))
    assert done.text.startswith("Done: I've deleted everything telegram:gone gave me")
    assert chat.users.prefs("telegram:gone").persona is None
    assert chat.moderation.user("telegram:gone")["messages"] == 0
    recalled = jobs.current_pipeline().stages.memory.recall("telegram:gone", "How is Biscuit?")
    assert not [m for m in recalled if "Biscuit" in m.text]
    assert [(r["actor"], r["action"], r["details"]) for r in chat.moderation.audit(1)] == [
        ("telegram:boss", "forget", None)]  # that it was done, and nothing of what was forgotten

    assert ask(chat, msg(user="boss", text="/admin limits slow 1/hour"))[0].text == "telegram:slow may send 1/hour"
    assert ask(chat, msg(user="slow", text="/help"))[0].text == HELP
    assert "Try again in 60 minutes, please" in ask(chat, msg(user="slow", text="/help"))[0].text
    assert "not 'lots'" in ask(chat, msg(user="boss", text="/admin limits slow lots"))[0].text


def test_past_the_daily_voice_quota_replies_come_in_writing_and_past_the_turns_none(settings, pipeline):
    from bots.chat import OUT_OF_TURNS

    chat = make_chat(settings, daily_turns=3, daily_voice_seconds=1)
    [spoken] = ask(chat, msg(user="q1", text="I just got the job I wanted!"))
    assert spoken.voice is not None  # a reply is spoken whole, though it passes the quota
    notice, written = ask(chat, msg(user="q1", text="We start on Monday."))
    assert "voice replies (1 s), so I'll answer in writing until midnight UTC" in notice.text
    assert written.voice is None and written.text
    [quietly] = ask(chat, msg(user="q1", text="I'm so happy."))  # told once a day, not every time
    assert quietly.voice is None
    [refused] = ask(chat, msg(user="q1", text="Are you still there?"))
    assert refused.text.startswith(OUT_OF_TURNS.split("{")[0]) and "answers 3 messages a day" in refused.text
    assert ask(chat, msg(user="q1", text="/help"))[0].text == HELP  # commands are not turns
    assert ask(chat, msg(user="q2", text="Hello!"))[0].voice is not None  # nor anyone else's quota


def _one_bot_process(settings: Settings, user: str, messages: int, ready) -> list[str]:
    """A bot process of its own (spawned, sharing only the database and Redis), handling
    `messages` texts from one user at the same moment as the other."""
    chat = wiring.chat(settings)
    ready.wait()
    said = []
    for n in range(messages):
        replies = asyncio.run(chat.handle(Incoming(platform="telegram", user_id=user, chat_id=user,
                                                   message_id=f"{uuid.uuid4().hex}", text=f"hello {n}")))
        said += ["queued" if reply.queued else reply.text for reply in replies]
    return said


def test_two_bot_processes_share_a_users_daily_quota(settings, redis_url):
    """Two bot processes before one Redis queue and one PostgreSQL database: the user's daily
    turns are counted once between them, and every message past them is told when to return."""
    import multiprocessing

    from conftest import fresh_database

    with fresh_database("heartline_quota") as database:
        shared = settings.model_copy(update={
            "redis_url": redis_url, "database_url": database, "queue_name": f"quota-{uuid.uuid4().hex[:8]}",
            "daily_turns": 5, "max_messages_per_minute": 100})
        spawn = multiprocessing.get_context("spawn")
        with spawn.Manager() as manager, spawn.Pool(2) as pool:
            ready = manager.Barrier(2)
            said = sum(pool.starmap(_one_bot_process, [(shared, "q-both", 4, ready)] * 2), [])
        import redis
        from rq import Queue

        Queue(shared.queue_name, connection=redis.Redis.from_url(redis_url)).empty()
    assert said.count("queued") == 5
    refusals = [words for words in said if words != "queued"]
    assert len(refusals) == 3 and all("answers 5 messages a day. I can answer again in" in w for w in refusals)


def test_very_long_text_is_refused_with_a_reason(chat, settings):
    [reply] = ask(chat, msg(user="long", text="I need to tell you everything. " * 4000))
    assert reply.problem == "input" and f"over {settings.max_text_chars} characters" in reply.text


def test_a_forgotten_voice_training_ends_by_itself_with_a_message(chat, say):
    from datetime import datetime, timedelta, timezone

    ask(chat, msg(user="v2", text="/voice train"))
    long_ago = datetime.now(timezone.utc) - timedelta(minutes=chat.settings.voice_training_minutes + 1)
    chat.users.update("telegram:v2", voice_training_since=long_ago)
    notice, reply = ask(chat, msg(user="v2", audio=say("Hello, how are you today?"), audio_mime="audio/ogg"))
    assert "stopped waiting for voice clips" in notice.text
    assert reply.result["user_input"]["transcript"]  # the voice note is a turn again
    assert chat.users.prefs("telegram:v2").training_since is None


def test_bad_input_and_oversized_files_get_a_clear_message(chat, settings):
    [reply] = ask(chat, msg(user="b1", audio=b"not audio", audio_mime="audio/ogg"))
    assert reply.text.startswith("I couldn't read that audio") and reply.voice is None
    assert "too large" in too_large(settings.max_upload_bytes + 1, settings).text
    assert too_large(1000, settings) is None


def test_voice_training_takes_checked_own_clips_only(chat, say):
    assert "voice notes of you speaking" in ask(chat, msg(user="v1", text="/voice train"))[0].text
    clip = say("Hello, this is my own voice. I am recording it so you can learn how I sound.")
    assert "forwarded" in ask(chat, msg(user="v1", audio=clip, audio_mime="audio/ogg", forwarded=True))[0].text
    assert ask(chat, msg(user="v1", audio=clip, audio_mime="audio/ogg"))[0].text.startswith("Got clip 1 (")
    short = say("Hi.")
    assert "at least 3 seconds" in ask(chat, msg(user="v1", audio=short, audio_mime="audio/ogg"))[0].text
    assert "at least 2 clips; I have 1" in ask(chat, msg(user="v1", text="/voice done"))[0].text
    assert "stopped" in ask(chat, msg(user="v1", text="/voice cancel"))[0].text
    assert chat.users.pending_clips("telegram:v1") == []


def test_voice_done_says_what_it_is_doing_and_about_how_long_before_it_starts(chat, say, monkeypatch):
    from bots.chat import LEARNING
    from models.voice import stock_voices

    # One candidate voice, so the real fit takes seconds rather than minutes.
    monkeypatch.setattr(stock_voices, "reply_voices", lambda: ["piper:joe-us"])
    ask(chat, msg(user="v5", text="/voice train"))
    for sentence in ("Hello, this is my own voice. I am recording it so you can learn how I sound.",
                     "I like long walks by the river on a quiet Sunday morning with my dog."):
        ask(chat, msg(user="v5", audio=say(sentence), audio_mime="audio/ogg"))
    done = msg(user="v5", text="/voice done")
    thanks, learned = ask(chat, done)
    assert thanks.text == LEARNING and learned.text.startswith("Thank you! I've learned your voice from 2 clips")
    learning = chat.outbox.get(f"{message_key('telegram', 'v5', done.message_id)}:learning").reply.text
    assert learning == ("Learning your voice now: fitting the nearest stock voice to yours. That takes "
                        "under a minute; I'll tell you when it's done.")


def test_a_training_clip_job_run_again_keeps_the_clip_once(chat, say):
    from core.delivery import Envelope
    from workers import jobs

    ask(chat, msg(user="v3", text="/voice train"))
    clip = say("Hello, this is my own voice. I am recording it so you can learn how I sound.")
    envelope = Envelope("telegram", "v3", "clip-1", "telegram:v3")
    jobs.chat_voice_clip(envelope, clip, "audio/ogg")
    jobs.chat_voice_clip(envelope, clip, "audio/ogg")  # RQ retried it after a worker died
    assert len(chat.users.pending_clips("telegram:v3")) == 1
    assert answer(chat, envelope.key).text.startswith("Got clip 1 (")


def test_past_the_daily_registrations_voice_done_is_refused_and_the_clips_wait(settings, pipeline, say):
    chat = make_chat(settings, daily_voice_registrations=1)
    assert chat.quotas.take("telegram:v4", "registrations")  # registered once already today
    ask(chat, msg(user="v4", text="/voice train"))
    clip = say("Hello, this is my own voice. I am recording it so you can learn how I sound.")
    for _ in range(2):
        ask(chat, msg(user="v4", audio=clip, audio_mime="audio/ogg"))
    [refused] = ask(chat, msg(user="v4", text="/voice done"))
    assert "voice registrations this Heartline allows in a day (1)" in refused.text
    assert "/voice done again in" in refused.text
    assert len(chat.users.pending_clips("telegram:v4")) == 2  # the recorded clips are not thrown away


def test_banned_and_muted_users_are_told_once_and_make_no_job(chat):
    from datetime import timedelta

    from bots.chat import BANNED

    chat.moderation.ban("cli", "telegram:ban1", "spam")
    first, again = msg(user="ban1", text="hello?"), msg(user="ban1", text="hello??")
    assert [r.text for r in ask(chat, first)] == [BANNED]
    assert ask(chat, again) == []
    assert not chat.outbox.has(message_key("telegram", "ban1", again.message_id))

    chat.moderation.mute("cli", "telegram:mute1", timedelta(hours=2))
    [notice] = ask(chat, msg(user="mute1", text="I need to talk"))
    assert notice.text.startswith("The moderators have paused our conversation until ")
    assert ask(chat, msg(user="mute1", text="please")) == []
    chat.moderation.unban("cli", "telegram:mute1")
    [answer] = ask(chat, msg(user="mute1", text="/privacy"))
    assert "What I keep" in answer.text

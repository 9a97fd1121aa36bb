"""The Telegram front door, on the unmodified python-telegram-bot and aiogram, against a fake
Bot API server on loopback, with the real pipeline behind it."""

from __future__ import annotations

import asyncio
import io
import threading
import time
import uuid
from pathlib import Path

import av
import pytest
from pydantic import SecretStr

from bots.fake_telegram import FakeTelegram
from bots.telegram import CHAT_ACTION_EVERY, make_telegram_door
from config import wiring
from core.delivery import message_key

SMILE = (Path(__file__).parent / "data" / "smiling_face.jpg").read_bytes()


class RunningDoor:
    """A front door on its own event loop in a thread, as `heartline run` runs it."""

    def __init__(self, door) -> None:
        self.door = door
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(door.start(), self.loop).result(60)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.door.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def opus_info(data: bytes) -> tuple[str, str, float]:
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        return container.format.name, stream.codec_context.name, float(container.duration / av.time_base)


@pytest.fixture()
def user() -> int:
    """A new person each test: users' choices persist, and Telegram message ids repeat per chat."""
    return uuid.uuid4().int % 10**9


@pytest.fixture(params=["ptb", "aiogram"])
def telegram(request, settings, pipeline):
    with FakeTelegram() as fake:
        door_settings = settings.model_copy(update={
            "telegram_bot_token": SecretStr(fake.token), "telegram_api_url": fake.api_url,
            "telegram_library": request.param, "max_upload_bytes": 400_000,
            "allowed_users": [], "max_messages_per_minute": 100,
        })
        chat = wiring.chat(door_settings)
        running = RunningDoor(make_telegram_door(door_settings, chat))
        try:
            yield fake
        finally:
            running.close()
            chat.queue.close()
        assert fake.unknown == []


def test_a_voice_note_is_answered_with_a_voice_note(telegram, user, say):
    telegram.send_voice(user, say("I am so happy today, we won the match!"), duration=3)
    [voice] = telegram.wait_for("sendVoice", timeout=180)
    filename, content_type, data = voice.upload("voice")
    container, codec, seconds = opus_info(data)
    assert (container, codec) == ("ogg", "opus")
    assert int(voice.params["duration"]) == max(1, round(seconds))
    assert voice.params["caption"]  # the reply's words ride along as the caption
    # "Recording a voice message..." shows (it lasts ~5 s) until the voice note arrives.
    shown = [c.time for c in telegram.sent("sendChatAction")
             if c.params["action"] == "record_voice" and c.time <= voice.time]
    assert shown and voice.time - shown[-1] < CHAT_ACTION_EVERY + 1
    if voice.time - shown[0] > 2 * CHAT_ACTION_EVERY:
        assert len(shown) >= 2


def test_selfie_text_commands_duplicates_and_groups(telegram, user):
    photo = telegram.send_photo(user, SMILE, caption="Look at me today")
    telegram.wait_for("sendVoice", timeout=180)
    telegram.redeliver(photo)
    telegram.send_command(user, "/voice off")
    [text] = telegram.wait_for("sendMessage", timeout=60)
    assert text.params["text"] == "I'll answer in text only."
    assert len(telegram.sent("sendVoice")) == 1  # the redelivered selfie made no second reply

    group = -user  # a group of this test's own: message ids restart with each fake server
    telegram.send_text(user, "hello everyone", chat_id=group, chat_type="group")
    telegram.send_command(user, "/help@heartline_test_bot", chat_id=group, chat_type="group")
    replies = telegram.wait_for("sendMessage", count=2, timeout=60)
    assert "/persona" in replies[1].params["text"]
    assert str(replies[1].params["chat_id"]) == str(group)
    assert "reply_parameters" in replies[1].params  # answers in a group thread the message


def test_rate_limits_are_waited_out_and_big_files_refused(telegram, user):
    telegram.fail_next("sendMessage", error_code=429, retry_after=1)
    telegram.fail_next("sendMessage", error_code=502)  # a command's answer is retried as a turn's is
    started = time.monotonic()
    telegram.send_command(user, "/privacy")
    [limited, failed, sent] = telegram.wait_for("sendMessage", count=3, timeout=60, ok=None)
    assert (limited.ok, failed.ok, sent.ok) == (False, False, True) and failed.time - limited.time >= 1.0
    assert "What I keep" in sent.params["text"] and time.monotonic() - started < 30

    telegram.send_document(user, b"\0" * 500_000, "long.mp3", "audio/mpeg")
    [too_big] = [c for c in telegram.wait_for("sendMessage", count=4, timeout=60) if "too large" in c.params["text"]]
    assert "limit is 390 KB" in too_big.params["text"] and telegram.sent("getFile") == []


def test_voice_training_refuses_forwarded_audio(telegram, user, say):
    telegram.send_command(user, "/voice train")
    telegram.send_voice(user, say("This is a clip I found somewhere else."), duration=3, forwarded=True)
    messages = telegram.wait_for("sendMessage", count=2, timeout=120)
    assert "voice notes of you speaking" in messages[0].params["text"]
    assert "forwarded" in messages[1].params["text"]


def test_a_voice_note_the_user_refuses_arrives_as_words_and_5xx_are_retried(telegram, user):
    telegram.fail_next("sendVoice", error_code=400, description="Bad Request: VOICE_MESSAGES_FORBIDDEN")
    telegram.send_text(user, "I finally finished my thesis today!")
    [words] = telegram.wait_for("sendMessage", timeout=180, ok=True)
    assert words.params["text"] and not telegram.sent("sendVoice", ok=True)

    telegram.fail_next("sendVoice", error_code=502, times=2)
    telegram.send_text(user, "And my friends are taking me out to celebrate.")
    telegram.wait_for("sendVoice", timeout=180, ok=True)
    assert len(telegram.sent("sendVoice", ok=False)) == 3  # the refused one, then two 502s


@pytest.mark.parametrize("library", ["ptb", "aiogram"])
def test_a_webhook_update_is_answered_and_confirmed_only_once_handled(library, settings, pipeline, user,
                                                                     unused_port):
    import requests

    port = unused_port
    with FakeTelegram() as fake:
        door_settings = settings.model_copy(update={
            "telegram_bot_token": SecretStr(fake.token), "telegram_api_url": fake.api_url,
            "telegram_library": library, "telegram_webhook_url": "https://heartline.example:8443/hook",
            "telegram_webhook_secret": SecretStr("s3cret"), "telegram_webhook_host": "127.0.0.1",
            "telegram_webhook_port": port, "allowed_users": [], "max_messages_per_minute": 100,
        })
        chat = wiring.chat(door_settings)
        running = RunningDoor(make_telegram_door(door_settings, chat))
        try:
            assert fake.webhook["url"] == "https://heartline.example:8443/hook"
            update = {"update_id": 1, "message": {
                "message_id": 5, "date": int(time.time()), "text": "/privacy",
                "chat": {"id": user, "type": "private"},
                "from": {"id": user, "is_bot": False, "first_name": "Ann"}}}
            hook = f"http://127.0.0.1:{port}/hook"
            assert requests.post(hook, json=update, timeout=10).status_code == 403  # no secret
            done = requests.post(hook, json=update, timeout=30,
                                 headers={"X-Telegram-Bot-Api-Secret-Token": "s3cret"})
            # The 200 comes once the answer is safe in the outbox, not before; the sender sends it.
            assert done.status_code == 200 and chat.outbox.has(message_key("telegram", str(user), "5") + ":0")
            [sent] = fake.wait_for("sendMessage", timeout=30)
            assert "What I keep" in sent.params["text"]
        finally:
            running.close()
            chat.queue.close()


def test_a_file_download_that_fails_is_retried_and_then_explained(telegram, user, say):
    telegram.fail_next("getFile", error_code=502)
    telegram.send_voice(user, say("I think I finally understand my new job."), duration=3)
    telegram.wait_for("sendVoice", timeout=180, ok=True)  # the second try fetched it

    telegram.fail_next("getFile", error_code=502, times=3)
    telegram.send_voice(user, say("Can you hear me now?"), duration=2)
    [sorry] = telegram.wait_for("sendMessage", timeout=60, ok=True)
    assert sorry.params["text"] == "I couldn't fetch your file from Telegram. Please send it again."


def _said_to(fake: FakeTelegram, chat_id: int, count: int, timeout: float = 120) -> list[str]:
    """The words Heartline has said in one chat (messages and voice-note captions), once there
    are `count` of them."""
    deadline = time.monotonic() + timeout
    while True:
        words = [call.params.get("text") or call.params.get("caption") or ""
                 for call in fake.sent(ok=True) if call.method in ("sendMessage", "sendVoice")
                 and str(call.params.get("chat_id")) == str(chat_id)]
        if len(words) >= count:
            return words
        assert time.monotonic() < deadline, f"waited for {count} answers in chat {chat_id}, got {words}"
        time.sleep(0.05)


def test_admins_moderate_in_chat_and_hear_of_a_crisis(settings, pipeline, user, monkeypatch):
    """The done-when of the moderation issue, through python-telegram-bot: a non-admin is
    refused, a crisis reaches the admin after the user's caring reply, warnings add up to a
    mute, and a banned user is told once and then gets no answer."""
    from bots.chat import ADMIN_ONLY, BANNED
    from workers import jobs

    admin = user + 1
    with FakeTelegram() as fake:
        door_settings = settings.model_copy(update={
            "telegram_bot_token": SecretStr(fake.token), "telegram_api_url": fake.api_url,
            "telegram_library": "ptb", "admins": [f"telegram:{admin}"], "allowed_users": [],
            "max_messages_per_minute": 100, "warn_limit": 2})
        # The jobs run here, as a worker started with the same HEARTLINE_ADMINS would run them.
        monkeypatch.setattr(jobs, "_settings", door_settings)
        chat = wiring.chat(door_settings)
        running = RunningDoor(make_telegram_door(door_settings, chat))
        try:
            fake.send_command(user, "/admin ban telegram:1")
            assert _said_to(fake, user, 1) == [ADMIN_ONLY]
            fake.send_command(admin, "/admin")
            assert "/admin review ID approve|dismiss" in _said_to(fake, admin, 1)[0]

            fake.send_text(user, "I don't want to live anymore")
            care = _said_to(fake, user, 2)[1]
            alert = _said_to(fake, admin, 2)[1]
            assert "reach out" in care and f"telegram:{user} wrote words that read as self-harm" in alert
            assert "live anymore" not in alert  # who and when, never what was said
            [to_user] = [c for c in fake.sent("sendVoice") if str(c.params["chat_id"]) == str(user)]
            [to_admin] = [c for c in fake.sent("sendMessage") if "self-harm" in c.params.get("text", "")]
            assert to_user.time <= to_admin.time  # the user is answered first

            fake.send_command(admin, "/admin flagged")
            flagged = _said_to(fake, admin, 3)[2]
            assert f"telegram:{user} flagged_input: self_harm" in flagged
            flag_id = flagged.split()[0].lstrip("#")
            fake.send_command(admin, f"/admin review {flag_id} dismiss")
            assert _said_to(fake, admin, 4)[3] == f"Flag {flag_id} dismissed."

            fake.send_command(admin, f"/admin warn {user} rude to others")  # a bare id: this platform's
            fake.send_command(admin, f"/admin warn {user} again")
            warned = _said_to(fake, admin, 6)[4:]
            assert warned[0] == f"telegram:{user} has 1 warning(s)" and "muted until" in warned[1]
            fake.send_text(user, "hello?")
            fake.send_text(user, "hello??")
            fake.send_command(admin, f"/admin user {user}")
            about = _said_to(fake, admin, 7)[6]
            assert "warnings: 2" in about and "muted_until: 20" in about
            muted = _said_to(fake, user, 3)
            assert muted[2].startswith("The moderators have paused our conversation")

            fake.send_command(admin, f"/admin ban {user} spam")
            assert _said_to(fake, admin, 8)[7] == f"telegram:{user} banned"
            fake.send_text(user, "why")
            fake.send_text(user, "answer me")
            fake.send_command(admin, "/admin audit")
            audit = _said_to(fake, admin, 9)[8]
            assert f"telegram:{admin} ban telegram:{user}: spam" in audit
            assert f"telegram:{user} refused -: not an admin" in audit
            assert _said_to(fake, user, 4)[3:] == [BANNED]  # told once, and after that nothing
        finally:
            running.close()
            chat.queue.close()
    assert fake.unknown == []

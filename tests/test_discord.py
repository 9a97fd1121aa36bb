"""The Discord front door, on the unmodified discord.py, against a fake Discord (REST, gateway
and CDN) on loopback, with the real pipeline behind it."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from fake_discord import FakeDiscord
from pydantic import SecretStr
from test_telegram import RunningDoor, opus_info

from bots.discord_door import DiscordDoor
from config import wiring

SMILE = (Path(__file__).parent / "data" / "smiling_face.jpg").read_bytes()
IS_VOICE_MESSAGE = 1 << 13
WAVEFORM = base64.b64encode(bytes(range(0, 256, 4))).decode()


@pytest.fixture()
def discord_api(settings, pipeline, monkeypatch):
    import discord

    with FakeDiscord() as fake:
        # The door points discord.py at the fake by setting these; put them back afterwards.
        monkeypatch.setattr(discord.http.Route, "BASE", discord.http.Route.BASE)
        monkeypatch.setattr(discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY",
                            discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY)
        door_settings = settings.model_copy(update={
            "discord_bot_token": SecretStr(fake.token), "discord_api_url": fake.api_url,
            "discord_gateway_url": fake.gateway_url, "max_upload_bytes": 400_000,
            "allowed_users": [], "max_messages_per_minute": 100,
        })
        chat = wiring.chat(door_settings)
        running = RunningDoor(DiscordDoor(door_settings, chat))
        try:
            yield fake
        finally:
            running.close()
            chat.queue.close()
        assert fake.unknown == []


def test_a_voice_message_is_answered_with_a_voice_message(discord_api, say):
    alice = discord_api.user_id("alice")
    event = discord_api.send_voice_message(alice, say("I am so happy today, we won the match!"), 3.0, WAVEFORM)
    [words, voice] = discord_api.wait_for("POST", "/messages", count=2, timeout=180)
    assert words.json["content"] and not words.flags & IS_VOICE_MESSAGE
    assert voice.flags & IS_VOICE_MESSAGE
    [(filename, _, data)] = voice.files.values()
    [attachment] = voice.json["attachments"]
    assert filename == "voice-message.ogg" and opus_info(data)[:2] == ("ogg", "opus")
    assert attachment["duration_secs"] == pytest.approx(opus_info(data)[2], abs=0.1)
    assert len(base64.b64decode(attachment["waveform"])) == 256
    assert any(c.path.endswith("/typing") for c in discord_api.calls)

    discord_api.redeliver(event)  # the same message again makes no second answer
    discord_api.send_dm(alice, "/help")
    replies = discord_api.wait_for("POST", "/messages", count=3, timeout=60)
    assert "/persona" in replies[2].json["content"]


def test_servers_selfies_slash_commands_and_big_files(discord_api):
    bob, general = discord_api.user_id("bob"), discord_api.channel_id("general")
    discord_api.send_guild_message(bob, general, "just chatting with friends")
    discord_api.send_guild_message(bob, general, "/privacy", mention_bot=True)
    [privacy] = discord_api.wait_for("POST", f"/channels/{general}/messages", timeout=60)
    assert "What I keep" in privacy.json["content"]
    assert privacy.json["message_reference"]  # answers in a server thread the message

    discord_api.invoke_slash_command(bob, "persona", {"role": "tutor"})
    [followup] = discord_api.wait_for("POST", "/webhooks/", timeout=60)
    assert followup.json["content"] == "Okay, from now on I'm your tutor."

    discord_api.send_dm(bob, "", attachments=[("long.mp3", b"\0" * 500_000, "audio/mpeg")])
    sent = discord_api.wait_for("POST", "/messages", count=2, timeout=60)
    assert "too large" in sent[-1].json["content"]

    discord_api.fail_next("POST /channels", retry_after=0.5)
    discord_api.send_image(bob, SMILE, content="look at my smile")
    replies = discord_api.wait_for("POST", "/messages", count=4, timeout=180)
    assert replies[-1].flags & IS_VOICE_MESSAGE  # sent after the 429 was waited out


def test_a_channel_that_refuses_voice_messages_gets_the_words_once(discord_api):
    bob, general = discord_api.user_id("bob"), discord_api.channel_id("general")
    discord_api.no_voice_messages.add(general)

    def posted(status: int) -> list:
        return [c for c in discord_api.calls
                if c.path == f"/channels/{general}/messages" and c.status == status]

    discord_api.send_guild_message(bob, general, "I finally handed in my thesis!", mention_bot=True)
    [words] = discord_api.wait_for("POST", f"/channels/{general}/messages", timeout=180)
    deadline = time.monotonic() + 30
    while not posted(400) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert posted(400), "the voice message was never tried"
    time.sleep(3)  # a second copy of the words would come now
    assert posted(200) == [words] and not words.flags & IS_VOICE_MESSAGE


def test_an_alert_for_an_admin_goes_to_their_dms(discord_api, settings):
    """A worker writes an admin's alert as "dm:<user id>": the door opens the DM channel."""
    from core.delivery import DIRECT, Delivery, Outgoing

    bob = discord_api.user_id("bob")
    alert = Delivery(f"alert-{uuid.uuid4().hex}", "discord", DIRECT + bob, f"discord:{bob}",
                     Outgoing(text="Heartline: someone may need help"))
    wiring.outbox(settings).put(alert)
    [sent] = discord_api.wait_for("POST", "/messages", timeout=60)
    [dm] = discord_api.wait_for("POST", "/users/@me/channels")
    assert sent.json["content"] == "Heartline: someone may need help"
    assert sent.path == f"/channels/{dm.response['id']}/messages"


@pytest.mark.parametrize("queue", ["embedded", "rq"])
def test_heartline_run_answers_a_voice_message_on_discord(queue, say, tmp_path, request):
    env = {**os.environ, "HEARTLINE_DATA_DIR": str(tmp_path)}
    worker = None
    if queue == "rq":
        env["HEARTLINE_REDIS_URL"] = request.getfixturevalue("redis_url")
        env["HEARTLINE_QUEUE_NAME"] = f"dc-{uuid.uuid4().hex[:8]}"
        worker = subprocess.Popen([sys.executable, "-m", "bots.cli", "worker"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with FakeDiscord() as fake:
        env.update(DISCORD_BOT_TOKEN=fake.token, HEARTLINE_DISCORD_API_URL=fake.api_url,
                   HEARTLINE_DISCORD_GATEWAY_URL=fake.gateway_url)
        bot = subprocess.Popen([sys.executable, "-m", "bots.cli", "run"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            fake.wait_ready(timeout=120)
            fake.send_voice_message(fake.user_id("alice"), say("Good morning, how are you?"), 2.0, WAVEFORM)
            [voice] = [c for c in fake.wait_for("POST", "/messages", count=2, timeout=240)
                       if c.flags & IS_VOICE_MESSAGE]
            assert opus_info(next(iter(voice.files.values()))[2])[:2] == ("ogg", "opus")
        finally:
            bot.terminate()
            _, log = bot.communicate(timeout=60)
            if worker:
                worker.terminate()
                worker.wait(60)
    assert fake.token not in log and "how are you" not in log.lower()

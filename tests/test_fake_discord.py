"""The unmodified discord.py client runs end to end against the fake Discord, on loopback."""

from __future__ import annotations

import asyncio
import base64
import io
import queue
import threading
from pathlib import Path

import aiohttp
import av
import discord
import numpy as np
import pytest
import yarl
from discord import app_commands
from discord.ext import commands

from audio_files import tone
from fake_discord import EPHEMERAL, IS_VOICE_MESSAGE, LOADING, MESSAGE_CONTENT, FakeDiscord

SELFIE = Path(__file__).parent / "data" / "smiling_face.jpg"
WAVEFORM = base64.b64encode(bytes(range(0, 256, 4))).decode()  # 64 one-byte samples


def voice_note(seconds: float = 1.0) -> bytes:
    """A real OGG/Opus voice note, 48 kHz mono, as Discord's apps record them."""
    pcm = (tone(seconds, 48000) * 32767).astype(np.int16).reshape(1, -1)
    frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
    frame.sample_rate = 48000
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="ogg") as container:
        stream = container.add_stream("libopus", rate=48000, layout="mono")
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    return buffer.getvalue()


class VoiceMessageFile(discord.File):
    """An OGG/Opus upload carrying the metadata Discord needs to show it as a voice message."""

    def __init__(self, ogg: bytes, duration_secs: float, waveform_b64: str) -> None:
        super().__init__(io.BytesIO(ogg), filename="voice-message.ogg")
        self.duration_secs, self.waveform = duration_secs, waveform_b64

    def to_dict(self, index: int) -> dict:
        return {**super().to_dict(index), "duration_secs": self.duration_secs, "waveform": self.waveform}


async def send_voice_message(client: discord.Client, channel_id: int, ogg: bytes, duration_secs: float,
                             waveform_b64: str, content: str | None = None) -> dict:
    """discord.py 2.7 has no public API for voice messages, so post one through its HTTP layer."""
    params = discord.http.handle_message_parameters(
        content=content, file=VoiceMessageFile(ogg, duration_secs, waveform_b64),
        flags=discord.MessageFlags(voice=True))
    with params:  # closes the file
        return await client.http.send_message(channel_id, params=params)


class RunningBot:
    """A discord.py bot on its own loop in a thread, as an adapter runs; the test thread stays
    free to block on the fake's helpers and to hand coroutines to the bot with `call`."""

    def __init__(self, fake: FakeDiscord, intents: discord.Intents, bot_class: type = commands.Bot) -> None:
        self.messages: queue.Queue[discord.Message] = queue.Queue()
        self.late_errors: queue.Queue[int] = queue.Queue()
        # guild_ready_timeout: discord.py waits this long after the last GUILD_CREATE before on_ready.
        self.bot = bot = bot_class(command_prefix="!", intents=intents, guild_ready_timeout=0.1)

        @bot.event
        async def setup_hook() -> None:
            await bot.tree.sync()

        @bot.event
        async def on_message(message: discord.Message) -> None:
            if message.author != bot.user:
                self.messages.put(message)

        @bot.tree.command(description="Check that the bot answers")
        async def ping(interaction: discord.Interaction, text: str) -> None:
            await interaction.response.send_message(f"pong: {text}")

        @bot.tree.command(description="Answers too late")
        async def slow(interaction: discord.Interaction) -> None:
            await asyncio.sleep(0.3)
            try:
                await interaction.response.send_message("too late")
            except discord.NotFound as error:
                self.late_errors.put(error.code)

        voice = app_commands.Group(name="voice", description="Your voice")

        @voice.command(description="Register your voice from a recording")
        async def train(interaction: discord.Interaction, sample: discord.Attachment) -> None:
            await interaction.response.defer(thinking=True)
            data = await sample.read()
            await interaction.edit_original_response(content=f"got {len(data)} bytes of {sample.content_type}")
            await interaction.followup.send("training started", ephemeral=True)

        bot.tree.add_command(voice)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.running = asyncio.run_coroutine_threadsafe(bot.start(fake.token), self.loop)
        fake.wait_ready()
        self.call(bot.wait_until_ready())

    def call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def next_message(self) -> discord.Message:
        return self.messages.get(timeout=5)

    def stop(self) -> None:
        if not self.loop.is_closed():
            self.call(self.bot.close())
            self.running.result(10)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()


def content_intents() -> discord.Intents:
    intents = discord.Intents.default()
    intents.message_content = True
    return intents


@pytest.fixture
def fake(monkeypatch):
    with FakeDiscord() as fake:
        monkeypatch.setattr(discord.http.Route, "BASE", fake.api_url)
        monkeypatch.setattr(discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(fake.gateway_url))
        yield fake


@pytest.fixture
def bot(fake):
    running = RunningBot(fake, content_intents())
    yield running
    running.stop()


def test_bot_logs_in_identifies_with_its_intents_and_caches_the_guild(fake, bot):
    assert fake.intents == bot.bot.intents.value and fake.intents & MESSAGE_CONTENT
    assert bot.bot.user.id == int(fake.bot_user["id"]) and bot.bot.application_id == int(fake.application_id)
    guild = bot.bot.get_guild(int(fake.guild_id("Heartline Test")))
    assert guild.get_channel(int(fake.channel_id("general"))).name == "general"
    assert guild.me.id == bot.bot.user.id
    assert [(c.method, c.path, c.status) for c in fake.calls] == [
        ("GET", "/users/@me", 200), ("GET", "/oauth2/applications/@me", 200),
        ("PUT", f"/applications/{fake.application_id}/commands", 200)]
    assert [c["name"] for c in fake.commands[None]] == ["ping", "slow", "voice"]

    before = len(fake.calls)
    bot.stop()
    assert fake.calls[before:] == []  # closing is a websocket close, no REST call


def test_a_sharded_bot_asks_for_the_gateway_and_identifies_as_its_shard(fake):
    running = RunningBot(fake, content_intents(), bot_class=commands.AutoShardedBot)
    try:
        assert ("GET", "/gateway/bot") in [(c.method, c.path) for c in fake.calls]
        assert fake.identifies[-1]["shard"] == [0, 1] and running.bot.shard_count == 1
        fake.send_dm(fake.user_id("alice"), "hello shard")
        assert running.next_message().content == "hello shard"
    finally:
        running.stop()


def test_voice_message_in_dm_is_downloaded_and_answered_with_typing_a_file_and_text(fake, bot):
    ogg = voice_note()
    delivered = fake.send_voice_message(fake.user_id("alice"), ogg, 1.0, WAVEFORM)

    message = bot.next_message()
    assert message.id == int(delivered["id"]) and isinstance(message.channel, discord.DMChannel)
    assert message.flags.voice and message.content == ""
    [attachment] = message.attachments
    assert attachment.is_voice_message() and attachment.filename == "voice-message.ogg"
    assert attachment.content_type == "audio/ogg" and attachment.size == len(ogg)
    assert attachment.duration == 1.0 and attachment.waveform == base64.b64decode(WAVEFORM)
    assert bot.call(attachment.read()) == ogg

    async def answer() -> None:
        async with message.channel.typing():
            await message.reply("I hear you", file=discord.File(io.BytesIO(b"transcript"), "transcript.txt"))
        await message.channel.send("Take care")

    bot.call(answer())
    dm = str(message.channel.id)
    assert fake.wait_for("GET", f"/attachments/{dm}/")[0].status == 200
    fake.wait_for("POST", f"/channels/{dm}/typing")
    reply, text = fake.sent(dm)
    assert reply.json["content"] == "I hear you" and int(reply.json["message_reference"]["message_id"]) == message.id
    assert reply.files == {"files[0]": ("transcript.txt", "application/octet-stream", b"transcript")}
    assert reply.message["type"] == 19 and reply.message["attachments"][0]["content_type"] == "text/plain"
    assert text.json["content"] == "Take care" and text.files == {} and text.flags == 0
    assert fake.unknown == []


def test_a_redelivered_message_arrives_again_with_the_same_id(fake, bot):
    delivered = fake.send_dm(fake.user_id("bob"), "hello")
    fake.redeliver(delivered)
    assert bot.next_message().id == bot.next_message().id == int(delivered["id"])


def test_bot_sends_a_real_voice_message_and_discord_rules_are_enforced(fake, bot):
    ogg = voice_note(2.5)
    alice = bot.call(bot.bot.fetch_user(int(fake.user_id("alice"))))
    dm = bot.call(alice.create_dm())

    data = bot.call(send_voice_message(bot.bot, dm.id, ogg, 2.5, WAVEFORM))
    [call] = fake.wait_for("POST", f"/channels/{dm.id}/messages")
    assert call.flags == IS_VOICE_MESSAGE
    assert call.files == {"files[0]": ("voice-message.ogg", "application/octet-stream", ogg)}
    assert call.json["attachments"] == [{"id": 0, "filename": "voice-message.ogg", "duration_secs": 2.5,
                                         "waveform": WAVEFORM}]
    fetched = bot.call(dm.fetch_message(int(data["id"])))
    assert fetched.flags.voice and fetched.attachments[0].is_voice_message()
    assert fetched.attachments[0].content_type == "audio/ogg" and fetched.attachments[0].duration == 2.5

    with pytest.raises(discord.HTTPException) as refused:
        bot.call(send_voice_message(bot.bot, dm.id, ogg, 2.5, WAVEFORM, content="with words"))
    assert refused.value.code == 50159  # voice messages do not support additional content


def test_guild_messages_arrive_with_content_mentions_and_replies(fake, bot):
    general, bob = fake.channel_id("general"), fake.user_id("bob")
    fake.send_guild_message(bob, general, "how are you?", mention_bot=True)
    mentioned = bot.next_message()
    assert mentioned.content == f"<@{bot.bot.user.id}> how are you?"
    assert bot.bot.user.id in [u.id for u in mentioned.mentions]
    assert mentioned.guild.name == "Heartline Test" and isinstance(mentioned.author, discord.Member)

    fake.send_guild_message(bob, general, "just chatting", attachments=[("notes.txt", b"some notes")])
    plain = bot.next_message()
    assert plain.content == "just chatting" and plain.attachments[0].content_type == "text/plain"

    answer = bot.call(plain.channel.send("I'm here"))
    fake.send_guild_message(bob, general, "thanks", reply_to=str(answer.id))
    reply = bot.next_message()
    assert reply.reference.message_id == answer.id and reply.reference.resolved.content == "I'm here"
    assert bot.bot.user.id in [u.id for u in reply.mentions]  # replies ping


def test_without_the_message_content_intent_only_mentions_and_dms_carry_content(fake):
    running = RunningBot(fake, discord.Intents.default())
    try:
        general, bob = fake.channel_id("general"), fake.user_id("bob")
        fake.send_guild_message(bob, general, "hello everyone", attachments=[("a.txt", b"x")])
        hollow = running.next_message()
        assert hollow.content == "" and hollow.attachments == []
        fake.send_guild_message(bob, general, "hello bot", mention_bot=True)
        assert running.next_message().content.endswith("hello bot")
        fake.send_dm(bob, "hello in private")
        assert running.next_message().content == "hello in private"
    finally:
        running.stop()


def test_an_image_arrives_with_its_size(fake, bot):
    selfie = SELFIE.read_bytes()
    fake.send_image(fake.user_id("alice"), selfie, filename="selfie.jpg", content="me today")
    [image] = bot.next_message().attachments
    with av.open(str(SELFIE)) as container:
        stream = container.streams.video[0]
        assert (image.width, image.height) == (stream.width, stream.height)
    assert image.content_type == "image/jpeg" and bot.call(image.read()) == selfie


def test_slash_commands_reach_app_command_handlers_and_their_responses_are_recorded(fake, bot):
    alice, general = fake.user_id("alice"), fake.channel_id("general")
    ping = fake.invoke_slash_command(alice, "ping", {"text": "hello"}, channel_id=general)
    [callback] = fake.wait_for("POST", f"/interactions/{ping['id']}/")
    assert callback.json == {"type": 4, "data": {"content": "pong: hello", "tts": False}}
    assert callback.response["resource"]["message"]["interaction_metadata"]["user"]["id"] == alice
    assert callback.message["channel_id"] == general

    ogg = voice_note()
    train = fake.invoke_slash_command(alice, "voice train", {"sample": ("sample.ogg", ogg)})
    [deferred] = fake.wait_for("POST", f"/interactions/{train['id']}/")
    assert deferred.json["type"] == 5 and deferred.message["flags"] & LOADING
    [edit] = fake.wait_for("PATCH", "/messages/@original")
    assert edit.json["content"] == f"got {len(ogg)} bytes of audio/ogg" and not edit.message["flags"] & LOADING
    [followup] = fake.wait_for("POST", f"/webhooks/{fake.application_id}/")
    assert followup.json["content"] == "training started" and followup.flags & EPHEMERAL

    fake.interaction_timeout = 0.1  # shorter than the handler's 0.3 s, like a reply after Discord's 3 s
    fake.invoke_slash_command(alice, "slow")
    assert bot.late_errors.get(timeout=5) == 10062  # unknown interaction
    assert fake.unknown == []


def test_a_rate_limited_call_is_waited_out_and_retried(fake, bot):
    general = fake.channel_id("general")
    fake.fail_next("POST /channels/", retry_after=0.5)
    bot.call(bot.bot.get_channel(int(general)).send("after the limit"))
    first, second = [c for c in fake.calls if c.path == f"/channels/{general}/messages"]
    assert (first.status, second.status) == (429, 200) and second.time - first.time >= 0.5
    assert first.response == {"message": "You are being rate limited.", "retry_after": 0.5, "global": False}

    async def raw_429() -> tuple[int, dict]:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{fake.api_url}/users/@me",
                                   headers={"Authorization": f"Bot {fake.token}"}) as response:
                return response.status, dict(response.headers)

    fake.fail_next("GET /users/@me", retry_after=1.5)
    status, headers = asyncio.run(raw_429())
    assert status == 429 and headers["Content-Type"] == "application/json"
    assert (headers["Retry-After"], headers["X-RateLimit-Scope"], headers["X-RateLimit-Remaining"]) == \
        ("2", "user", "0")
    assert float(headers["X-RateLimit-Reset-After"]) == 1.5 and "X-RateLimit-Bucket" in headers


def test_an_unknown_route_is_a_discord_404_and_is_recorded(fake, bot):
    guild = bot.bot.get_guild(int(fake.guild_id("Heartline Test")))
    with pytest.raises(discord.NotFound) as missing:
        bot.call(guild.fetch_emojis())
    assert missing.value.code == 0 and missing.value.text == "404: Not Found"
    assert [(c.method, c.path) for c in fake.unknown] == [("GET", f"/guilds/{guild.id}/emojis")]


def test_a_wrong_token_is_refused_like_discord_does(fake):
    client = discord.Client(intents=discord.Intents.default())

    async def login() -> None:
        async with client:
            await client.login(fake.token + "x")

    with pytest.raises(discord.LoginFailure):
        asyncio.run(login())
    assert [(c.path, c.status, c.response["code"]) for c in fake.calls] == [("/users/@me", 401, 0)]

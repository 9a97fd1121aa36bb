"""The Discord front door on discord.py: DMs, mentions in servers, voice messages, slash commands.

Imported only when a Discord token is set.
"""

from __future__ import annotations

import asyncio
import base64
import io
import logging
import uuid
from dataclasses import replace

import discord
from discord import app_commands

from bots.chat import UNSUPPORTED, Chat, Incoming, too_large
from bots.sender import Fault, Sender
from config.settings import Settings
from core.delivery import DIRECT, Delivery, Outgoing

log = logging.getLogger(__name__)

READY_TIMEOUT = 60


async def send_text_message(client, channel_id: int, text: str, reference=None) -> None:
    """A message by channel id through discord.py's HTTP layer: after a restart the channel
    (a DM's above all) may not be in the client's cache."""
    params = discord.http.handle_message_parameters(
        content=text[:2000],
        message_reference=reference.to_message_reference_dict() if reference else discord.utils.MISSING,
    )
    with params:
        await client.http.send_message(channel_id, params=params)


async def send_voice_message(client, channel_id: int, ogg: bytes, duration_s: float, waveform: bytes,
                             reference=None) -> None:
    """Post a real Discord voice message (flag, duration, waveform).

    discord.py 2.7 reads voice messages but has no API to send one (its feature request is
    open upstream); this is the one place that works around it, through its HTTP layer.
    """

    class VoiceMessageFile(discord.File):
        def to_dict(self, index: int) -> dict:
            return {**super().to_dict(index), "duration_secs": round(duration_s, 2),
                    "waveform": base64.b64encode(waveform).decode()}

    params = discord.http.handle_message_parameters(
        file=VoiceMessageFile(io.BytesIO(ogg), filename="voice-message.ogg"),
        flags=discord.MessageFlags(voice=True),
        message_reference=reference.to_message_reference_dict() if reference else discord.utils.MISSING,
    )
    with params:
        await client.http.send_message(channel_id, params=params)


class DiscordDoor:
    def __init__(self, settings: Settings, chat: Chat) -> None:
        self.settings = settings
        self.chat = chat
        self.sender = Sender("discord", chat.outbox, self.send_delivery, fault,
                             settings.send_attempts, settings.outbox_keep_s)
        self._words_sent: set[str] = set()  # answers whose words went and whose voice did not yet

    async def start(self) -> None:
        s = self.settings
        if s.discord_api_url:  # a local or test server instead of discord.com
            discord.http.Route.BASE = s.discord_api_url
        if s.discord_gateway_url:
            import yarl

            discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(s.discord_gateway_url)
        intents = discord.Intents.default()
        intents.message_content = True  # without it, server messages arrive with no attachments
        self.client = client = discord.Client(intents=intents)
        tree = app_commands.CommandTree(client)
        self._add_commands(tree)

        @client.event
        async def setup_hook() -> None:
            await tree.sync()

        client.event(self.on_message)
        self._task = asyncio.create_task(client.start(s.discord_bot_token.get_secret_value()))
        ready = asyncio.create_task(client.wait_until_ready())
        done, _ = await asyncio.wait({self._task, ready}, timeout=READY_TIMEOUT,
                                     return_when=asyncio.FIRST_COMPLETED)
        if ready not in done:
            ready.cancel()
            if self._task in done:
                self._task.result()  # raises the login error
            raise TimeoutError("Discord did not become ready")
        self.sender.start()
        log.info("Discord connected as %s", client.user)

    async def stop(self) -> None:
        await self.sender.stop()
        await self.client.close()
        await asyncio.gather(self._task, return_exceptions=True)

    # -- messages ---------------------------------------------------------------------------

    async def on_message(self, message) -> None:
        if message.author.bot:
            return
        try:
            await self._answer(message)
        except Exception:
            error_id = uuid.uuid4().hex[:8]
            log.exception("error %s answering a Discord message", error_id)
            await message.channel.send(f"Something went wrong on my side (error id {error_id}). "
                                       "Please try again in a moment.")

    async def _answer(self, message) -> None:
        me = self.client.user
        replied = message.reference.resolved if message.reference else None
        incoming = Incoming(
            platform="discord", user_id=str(message.author.id), chat_id=str(message.channel.id),
            message_id=str(message.id),
            text=message.content.replace(me.mention, "").strip() or None,
            private=message.guild is None,
            addressed=me in message.mentions or getattr(replied, "author", None) == me,
            forwarded=bool(getattr(message, "message_snapshots", None)),
        )
        if not self.chat.wants(incoming):
            return
        audio = next((a for a in message.attachments if (a.content_type or "").startswith("audio/")), None)
        image = next((a for a in message.attachments if (a.content_type or "").startswith("image/")), None)
        if message.attachments and not (audio or image) and not incoming.text:
            await self.chat.post(incoming, [Outgoing(text=UNSUPPORTED)])
            return
        for attachment in (audio, image):
            refusal = too_large(attachment.size, self.settings) if attachment else None
            if refusal:
                await self.chat.post(incoming, [refusal])
                return
        async with message.channel.typing():
            if audio:
                incoming = replace(incoming, audio=await audio.read(), audio_mime=audio.content_type)
            if image:
                incoming = replace(incoming, image=await image.read())
            replies = await self.chat.handle(incoming)
        await self.chat.post(incoming, replies)

    async def send_delivery(self, delivery: Delivery, with_voice: bool) -> None:
        """The sender's way out: one answer from the outbox."""
        reply, channel_id = delivery.reply, await self._channel_id(delivery.chat_id)
        voice = reply.voice if with_voice else None
        # A slash command's id ("i...") is no message to quote.
        quoted = delivery.reply_to if delivery.reply_to and delivery.reply_to.isdigit() else None
        reference = (discord.MessageReference(message_id=int(quoted), channel_id=channel_id,
                                              fail_if_not_exists=False) if quoted else None)
        # A voice message can carry no text, so the words go first as their own message; tried
        # again after the voice failed, an answer does not send its words twice.
        if (reply.text and (voice is None or self.settings.reply_text != "none")
                and delivery.key not in self._words_sent):
            await send_text_message(self.client, channel_id, reply.text, reference)
            self._words_sent.add(delivery.key)
        if voice:
            await send_voice_message(self.client, channel_id, voice.ogg, voice.duration_s,
                                     voice.waveform, reference)
        self._words_sent.discard(delivery.key)

    async def _channel_id(self, chat_id: str) -> int:
        """The channel itself, or for an admin's alert ("dm:<user id>") the DM channel with
        that user, which Discord opens (or finds) for the bot."""
        if not chat_id.startswith(DIRECT):
            return int(chat_id)
        channel = await self.client.http.start_private_message(int(chat_id.removeprefix(DIRECT)))
        return int(channel["id"])

    # -- slash commands -----------------------------------------------------------------------

    def _add_commands(self, tree) -> None:
        async def run(interaction, text: str) -> None:
            # Registration can take longer than the 3 s Discord allows for a first answer.
            await interaction.response.defer(thinking=True)
            incoming = Incoming(
                platform="discord", user_id=str(interaction.user.id),
                chat_id=str(interaction.channel_id), message_id=f"i{interaction.id}", text=text,
                private=interaction.guild is None, addressed=True,
            )
            replies = await self.chat.handle(incoming)
            words = "\n".join(r.text for r in replies if r.text)
            if not words and any(r.queued for r in replies):
                words = "On it: I'll answer here in a moment."
            await interaction.followup.send(words or "Done.")

        for name, description in (("start", "Say hello"), ("help", "What I can do"),
                                  ("mood", "How I feel with you, and how you've seemed"),
                                  ("forget", "Delete our conversation"),
                                  ("privacy", "What I keep and how to delete it")):
            tree.command(name=name, description=description)(_simple(run, f"/{name}"))

        @tree.command(name="persona", description="How I talk with you")
        @app_commands.describe(describe="with custom: who I should be, in your words")
        @app_commands.choices(role=[app_commands.Choice(name=n, value=n)
                                    for n in ("assistant", "friend", "tutor", "custom")])
        async def persona(interaction, role: app_commands.Choice[str], describe: str = "") -> None:
            await run(interaction, f"/persona {role.value} {describe}".strip())

        @tree.command(name="voice", description="Teach me your voice, or manage it")
        @app_commands.choices(action=[app_commands.Choice(name=a, value=a) for a in
                                      ("train", "done", "cancel", "status", "delete", "on", "off")])
        async def voice(interaction, action: app_commands.Choice[str]) -> None:
            await run(interaction, f"/voice {action.value}")


# Discord's JSON error codes that refuse a voice message but not words: voice messages are off
# in this channel, no permission to attach files, the file is too large.
VOICE_REFUSED = {50173, 50013, 40005}


def fault(error: Exception) -> Fault:
    """discord.py waits out 429s and retries 5xx itself; what reaches us is what that left."""
    if isinstance(error, discord.HTTPException) and 400 <= error.status < 500:
        # Trying the same request again cannot help; words may still go if only the voice was refused.
        return Fault(voice_refused=error.code in VOICE_REFUSED, permanent=True)
    return Fault()  # 5xx after discord.py's own retries, timeouts, a network that is away


def _simple(run, text: str):
    async def command(interaction) -> None:
        await run(interaction, text)

    return command

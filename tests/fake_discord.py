"""A fake Discord on loopback: REST API v10, the gateway websocket and the attachment CDN on one port.

It speaks the wire protocol closely enough for the unmodified discord.py client to run against it:

    discord.http.Route.BASE = fake.api_url
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)

(`discord.Client` connects straight to DEFAULT_GATEWAY; `AutoShardedClient` asks GET /gateway/bot.)
Tests play Discord's users with `send_dm`, `send_guild_message`, `send_voice_message`, `send_image`
and `invoke_slash_command`, then look at what the bot did through `calls`, `sent()` and `wait_for()`.
Ids are snowflake strings, as in Discord's JSON; every helper also accepts ints.

    with FakeDiscord() as fake:
        ...  # point discord.py here, start the bot in its own thread or task
        fake.wait_ready()
        fake.send_voice_message(fake.user_id("alice"), ogg_bytes, 2.0, waveform_b64)
        [reply] = fake.wait_for("POST", "/messages")
        assert reply.flags & IS_VOICE_MESSAGE and reply.files["files[0]"][2].startswith(b"OggS")
        assert fake.unknown == []
"""

from __future__ import annotations

import asyncio
import base64
import copy
import hashlib
import hmac
import json
import math
import mimetypes
import re
import secrets
import struct
import threading
import time
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from aiohttp import WSMsgType, web

API = "/api/v10"
DISCORD_EPOCH_MS = 1420070400000
SUPPRESS_EMBEDS, EPHEMERAL, LOADING = 1 << 2, 1 << 6, 1 << 7
SUPPRESS_NOTIFICATIONS, IS_VOICE_MESSAGE, IS_COMPONENTS_V2 = 1 << 12, 1 << 13, 1 << 15
SETTABLE_FLAGS = SUPPRESS_EMBEDS | EPHEMERAL | SUPPRESS_NOTIFICATIONS | IS_VOICE_MESSAGE | IS_COMPONENTS_V2
GUILD_MEMBERS, GUILD_MESSAGES, DIRECT_MESSAGES, MESSAGE_CONTENT = 1 << 1, 1 << 9, 1 << 12, 1 << 15
# What an unverified bot with the privileged intents switched on in the portal carries.
APPLICATION_FLAGS = (1 << 15) | (1 << 19) | (1 << 23)
# @everyone may react, view, send, embed, attach, read history, use commands and send voice messages.
EVERYONE_PERMISSIONS = str(sum(1 << bit for bit in (6, 10, 11, 14, 15, 16, 31, 46)))
UPLOAD_LIMIT = 10 * 1024 * 1024  # a bot's attachment_size_limit outside boosted guilds
REPLY, CHAT_INPUT_COMMAND = 19, 20  # message types
ATTACHMENT_OPTION = 11


@dataclass
class Call:
    """One HTTP request the client made, as the fake understood it."""

    method: str
    path: str  # without the /api/v10 prefix; CDN downloads keep their own path
    query: dict[str, str]
    json: Any  # the JSON body, or a multipart request's payload_json
    files: dict[str, tuple[str, str, bytes]]  # part name -> (filename, content type as sent, bytes)
    time: float  # time.monotonic()
    status: int = 0
    response: Any = None
    unknown: bool = False  # a route Discord does not have (answered 404)
    # The message this call created or edited, as the call left it: a later edit (a deferred
    # response filled in) must not rewrite what an earlier call is recorded to have made.
    message: dict | None = field(default=None, repr=False)

    def record(self, message: dict) -> dict:
        self.message = copy.deepcopy(message)
        return message

    @property
    def flags(self) -> int:
        body = self.json if isinstance(self.json, dict) else {}
        # Interaction callbacks carry the message under "data".
        return body.get("flags") or (body.get("data") or {}).get("flags") or 0


CALL = web.RequestKey("call", Call)  # each request's Call, filled in by the middleware


class DiscordError(Exception):
    """An error Discord answers with a JSON body {"message", "code"}."""

    def __init__(self, status: int, message: str, code: int) -> None:
        super().__init__(f"{status} {message} (code {code})")
        self.status, self.message, self.code = status, message, code


class _Session:
    """One gateway connection: its sequence numbers, intents and transport compression."""

    def __init__(self, ws: web.WebSocketResponse, compress: str | None) -> None:
        self.ws, self.seq, self.intents, self.ready = ws, 0, 0, False
        # discord.py asks for zlib-stream (zstd-stream only if zstandard is installed, which we
        # answer uncompressed: text frames are still accepted, as with no compression at all).
        self.zlib = zlib.compressobj() if compress == "zlib-stream" else None

    async def send(self, op: int, d: Any = None, t: str | None = None) -> None:
        if op == 0:
            self.seq += 1
        text = json.dumps({"op": op, "d": d, "s": self.seq if op == 0 else None, "t": t})
        if self.zlib:  # one shared stream; every payload ends at a Z_SYNC_FLUSH marker
            await self.ws.send_bytes(self.zlib.compress(text.encode()) + self.zlib.flush(zlib.Z_SYNC_FLUSH))
        else:
            await self.ws.send_str(text)


def _timestamp(snowflake: str) -> str:
    ms = (int(snowflake) >> 22) + DISCORD_EPOCH_MS
    return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat()


def _image_size(data: bytes) -> tuple[int, int] | None:
    """Width and height of a PNG or JPEG: Discord reports them on image attachments."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return struct.unpack(">II", data[16:24])
    at = 2
    while data.startswith(b"\xff\xd8") and at + 9 < len(data):
        marker, length = data[at + 1], struct.unpack(">H", data[at + 2:at + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):  # start of frame: height, then width
            height, width = struct.unpack(">HH", data[at + 5:at + 9])
            return width, height
        at += 2 + length
    return None


def _json(body: Any, status: int = 200) -> web.Response:
    if body is None:
        return web.Response(status=204)
    # discord.py parses JSON only when Content-Type is exactly application/json (no charset).
    return web.Response(status=status, body=json.dumps(body).encode(), content_type="application/json")


class FakeDiscord:
    """Discord for one bot, served from a background thread so sync and async tests can use it.

    `users` are usernames; `guilds` maps guild names to text channel names (default: one guild
    "Heartline Test" with #general). Every user is a member of every guild.
    """

    def __init__(self, *, users: tuple[str, ...] = ("alice", "bob"), guilds: dict[str, list[str]] | None = None,
                 bot_name: str = "Heartline", heartbeat_interval_ms: int = 41250,
                 interaction_timeout: float = 3.0) -> None:
        self._cond = threading.Condition()  # guards calls, sessions and ids across threads
        self._last_id = 0
        self._secret = secrets.token_bytes(16)  # signs CDN URLs
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.interaction_timeout = interaction_timeout  # seconds to send the initial response
        self.application_id = self._snowflake()  # a bot's user id is its application id
        self.bot_user = {"id": self.application_id, "username": bot_name, "discriminator": "0",
                         "global_name": None, "avatar": None, "bot": True, "verified": True, "flags": 0,
                         "mfa_enabled": False, "public_flags": 0, "email": None}
        # Real tokens are base64(bot id).timestamp.hmac.
        self.token = ".".join([base64.b64encode(self.application_id.encode()).decode().rstrip("="),
                               secrets.token_urlsafe(4), secrets.token_urlsafe(28)])
        self.users: dict[str, dict] = {}
        for name in users:
            user_id = self._snowflake()
            self.users[user_id] = {"id": user_id, "username": name, "discriminator": "0", "global_name": name.title(),
                                   "avatar": None, "bot": False, "public_flags": 0}
        self.channels: dict[str, dict] = {}  # guild text channels and DMs
        self.guilds: dict[str, dict] = {}
        for name, channel_names in (guilds or {"Heartline Test": ["general"]}).items():
            self._add_guild(name, channel_names)
        self.messages: dict[str, dict] = {}
        self.commands: dict[str | None, list[dict]] = {}  # guild id (None: global) -> registered commands
        self.identifies: list[dict] = []  # every IDENTIFY payload ("d"), intents included
        self.events: list[tuple[str, dict]] = []  # dispatched (event name, data), in order
        self._calls: list[Call] = []
        self._failures: list[list] = []  # [route substring, times left, retry_after]
        self.no_voice_messages: set[str] = set()  # channel ids whose settings refuse voice messages
        self._sessions: list[_Session] = []
        self._interactions: dict[str, dict] = {}
        self._cdn: dict[str, tuple[str, bytes]] = {}  # path -> (content type, bytes)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fake-discord", daemon=True)
        self._thread.start()
        port = self._run(self._start())
        self.url = f"http://127.0.0.1:{port}"
        self.api_url = self.url + API
        self.gateway_url = f"ws://127.0.0.1:{port}/gateway"

    # ---- lifecycle -------------------------------------------------------------------------

    async def _start(self) -> int:
        app = web.Application(middlewares=[self._middleware], client_max_size=4 * UPLOAD_LIMIT)
        routes = [
            ("GET", "/gateway", self._get_gateway), ("GET", "/gateway/bot", self._get_gateway),
            ("GET", "/users/@me", self._get_user), ("GET", "/users/{user_id}", self._get_user),
            ("POST", "/users/@me/channels", self._create_dm), ("GET", "/oauth2/applications/@me", self._application),
            ("GET", "/channels/{channel_id}", self._get_channel),
            ("POST", "/channels/{channel_id}/messages", self._create_message),
            ("POST", "/channels/{channel_id}/typing", self._typing),
            ("POST", "/interactions/{interaction_id}/{token}/callback", self._interaction_callback),
            ("POST", "/webhooks/{application_id}/{token}", self._followup),
        ]
        for method in ("GET", "PATCH"):
            routes.append((method, "/channels/{channel_id}/messages/{message_id}", self._channel_message))
            routes.append((method, "/webhooks/{application_id}/{token}/messages/@original", self._webhook_message))
            routes.append((method, "/webhooks/{application_id}/{token}/messages/{message_id}", self._webhook_message))
        for method in ("GET", "PUT"):
            routes.append((method, "/applications/{application_id}/commands", self._commands))
            routes.append((method, "/applications/{application_id}/guilds/{guild_id}/commands", self._commands))
        app.router.add_get("/gateway", self._gateway)
        app.router.add_get(r"/attachments/{channel_id:\d+}/{attachment_id:\d+}/{filename}", self._cdn_get)
        for method, path, handler in routes:
            # Ids only match digits, so that e.g. /channels/1/messages/pins stays an unknown route.
            app.router.add_route(method, API + re.sub(r"\{(\w+_id)\}", r"{\1:\\d+}", path), handler)
        # Matched last, also by known paths with a method Discord does not have there.
        app.router.add_route("*", API + "/{tail:.*}", self._unknown)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        return self._runner.addresses[0][1]

    def close(self) -> None:
        if self._loop.is_closed():
            return

        async def stop() -> None:
            for session in list(self._sessions):
                await session.ws.close(code=1001)  # going away, as when Discord restarts a gateway
            await self._runner.cleanup()

        self._run(stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def __enter__(self) -> FakeDiscord:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    # ---- what tests read -------------------------------------------------------------------

    def user_id(self, username: str) -> str:
        return next(u["id"] for u in self.users.values() if u["username"] == username)

    def channel_id(self, name: str) -> str:
        return next(c["id"] for c in self.channels.values() if c.get("name") == name)

    def guild_id(self, name: str) -> str:
        return next(g["id"] for g in self.guilds.values() if g["name"] == name)

    @property
    def intents(self) -> int:
        return self.identifies[-1]["intents"] if self.identifies else 0

    @property
    def calls(self) -> list[Call]:
        with self._cond:
            return list(self._calls)

    @property
    def unknown(self) -> list[Call]:
        """Calls to routes Discord does not have: a test can assert there were none."""
        return [c for c in self.calls if c.unknown]

    def sent(self, channel_id: str | int | None = None) -> list[Call]:
        """Calls that created or edited a message (channel sends, interaction responses, followups)."""
        return [c for c in self.calls
                if c.message and (channel_id is None or c.message["channel_id"] == str(channel_id))]

    def wait_for(self, method: str, path_substring: str, count: int = 1, timeout: float = 10) -> list[Call]:
        """Blocks until `count` successful calls match; returns all matching ones. Thread-safe;
        from async code use `await asyncio.to_thread(fake.wait_for, ...)`."""
        def matching() -> list[Call]:
            return [c for c in self._calls if c.method == method and path_substring in c.path and c.status < 400]

        with self._cond:
            if not self._cond.wait_for(lambda: len(matching()) >= count, timeout):
                seen = "".join(f"\n  {c.method} {c.path} -> {c.status}" for c in self._calls)
                raise TimeoutError(f"expected {count} x {method} *{path_substring}* within {timeout}s; saw:{seen}")
            return matching()

    def wait_ready(self, timeout: float = 10) -> dict:
        """Blocks until a client got READY and its GUILD_CREATEs; returns its IDENTIFY payload."""
        with self._cond:
            if not self._cond.wait_for(lambda: any(s.ready for s in self._sessions), timeout):
                raise TimeoutError(f"no client identified on the fake gateway within {timeout}s")
            return self.identifies[-1]

    def fail_next(self, route_substring: str, times: int = 1, retry_after: float = 0.5) -> None:
        """The next `times` API calls whose "METHOD /path" contains route_substring answer 429."""
        with self._cond:
            self._failures.append([route_substring, times, retry_after])

    # ---- what users do ---------------------------------------------------------------------

    def send_dm(self, user_id: str | int, content: str, attachments: list[tuple] = ()) -> dict:
        """The user writes to the bot in DM. Attachments are (filename, bytes[, content_type])."""
        return self._run(self._from_user(user_id, None, content, attachments))

    def send_guild_message(self, user_id: str | int, channel_id: str | int, content: str, mention_bot: bool = False,
                           reply_to: dict | str | int | None = None, attachments: list[tuple] = ()) -> dict:
        return self._run(self._from_user(user_id, channel_id, content, attachments,
                                         mention_bot=mention_bot, reply_to=reply_to))

    def send_voice_message(self, user_id: str | int, ogg_bytes: bytes, duration_secs: float, waveform_b64: str,
                           channel_id: str | int | None = None) -> dict:
        """A voice message as Discord's apps record it (in DM unless channel_id is given)."""
        if len(base64.b64decode(waveform_b64)) > 256:
            raise ValueError("a voice message waveform holds at most 256 one-byte samples")
        return self._run(self._from_user(
            user_id, channel_id, "", [("voice-message.ogg", ogg_bytes, "audio/ogg")], flags=IS_VOICE_MESSAGE,
            meta={"duration_secs": duration_secs, "waveform": waveform_b64}))

    def send_image(self, user_id: str | int, image_bytes: bytes, filename: str = "image.jpg", content: str = "",
                   channel_id: str | int | None = None) -> dict:
        return self._run(self._from_user(user_id, channel_id, content, [(filename, image_bytes)]))

    def invoke_slash_command(self, user_id: str | int, name: str, options: dict[str, Any] | None = None,
                             channel_id: str | int | None = None) -> dict:
        """The user runs a registered slash command (in DM unless channel_id is given). `name` may be
        "group sub" for subcommands; ATTACHMENT option values are (filename, bytes[, content_type])."""
        return self._run(self._slash_command(user_id, name, options or {}, channel_id))

    def redeliver(self, event: dict) -> None:
        """Dispatches a delivered message or interaction again, as Discord may after a reconnect."""
        self._run(self._redeliver(str(event["id"])))

    # ---- state -----------------------------------------------------------------------------

    def _snowflake(self) -> str:
        # Milliseconds since the Discord epoch in the high bits, so ids grow with time like real ones.
        with self._cond:
            self._last_id = max(self._last_id + 1, (int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22)
            return str(self._last_id)

    def _member(self, user: dict, guild_id: str) -> dict:
        return {"user": user, "nick": None, "avatar": None, "roles": [], "joined_at": _timestamp(guild_id),
                "premium_since": None, "deaf": False, "mute": False, "flags": 0, "pending": False}

    def _partial_member(self, user: dict, guild_id: str) -> dict:
        return {k: v for k, v in self._member(user, guild_id).items() if k != "user"}

    def _add_guild(self, name: str, channel_names: list[str]) -> None:
        guild_id = self._snowflake()
        channels = []
        for position, channel_name in enumerate(channel_names):
            channel = {"id": self._snowflake(), "type": 0, "guild_id": guild_id, "name": channel_name,
                       "position": position, "permission_overwrites": [], "parent_id": None, "topic": None,
                       "nsfw": False, "rate_limit_per_user": 0, "last_message_id": None, "flags": 0}
            self.channels[channel["id"]] = channel
            channels.append(channel)
        members = [self._member(user, guild_id) for user in [self.bot_user, *self.users.values()]]
        everyone = {"id": guild_id, "name": "@everyone", "permissions": EVERYONE_PERMISSIONS, "position": 0,
                    "color": 0, "hoist": False, "managed": False, "mentionable": False, "flags": 0}
        self.guilds[guild_id] = {
            "id": guild_id, "name": name, "icon": None, "owner_id": members[-1]["user"]["id"], "roles": [everyone],
            "emojis": [], "stickers": [], "features": [], "mfa_level": 0, "verification_level": 0,
            "explicit_content_filter": 0, "default_message_notifications": 0, "afk_channel_id": None,
            "afk_timeout": 300, "system_channel_id": None, "system_channel_flags": 0, "rules_channel_id": None,
            "premium_tier": 0, "preferred_locale": "en-US", "nsfw_level": 0, "joined_at": _timestamp(guild_id),
            "large": False, "unavailable": False, "member_count": len(members), "members": members,
            "channels": channels, "threads": [], "presences": [], "voice_states": [], "stage_instances": [],
            "guild_scheduled_events": [], "soundboard_sounds": []}

    def _user(self, user_id: Any) -> dict:
        if str(user_id) == self.bot_user["id"]:
            return self.bot_user
        if str(user_id) not in self.users:
            raise DiscordError(404, "Unknown User", 10013)
        return self.users[str(user_id)]

    def _channel(self, channel_id: Any) -> dict:
        if str(channel_id) not in self.channels:
            raise DiscordError(404, "Unknown Channel", 10003)
        return self.channels[str(channel_id)]

    def _dm_channel(self, user_id: str) -> dict:
        for channel in self.channels.values():
            if channel["type"] == 1 and channel["recipients"][0]["id"] == user_id:
                return channel
        channel = {"id": self._snowflake(), "type": 1, "last_message_id": None, "flags": 0,
                   "recipients": [self._user(user_id)]}
        self.channels[channel["id"]] = channel
        return channel

    def _signed(self, path: str) -> str:
        # Discord's CDN URLs expire and are signed (ex/is/hm); a URL with its query stripped is refused.
        expires, issued = f"{int(time.time()) + 86400:x}", f"{int(time.time()):x}"
        mac = hmac.new(self._secret, f"{path}{expires}{issued}".encode(), "sha256").hexdigest()
        return f"{self.url}{path}?ex={expires}&is={issued}&hm={mac}&"

    def _store_attachment(self, channel_id: str, filename: str, data: bytes, content_type: str | None = None,
                          **meta: Any) -> dict:
        if len(data) > UPLOAD_LIMIT:
            raise DiscordError(413, "Request entity too large", 40005)
        attachment_id, filename = self._snowflake(), re.sub(r"[^\w.-]", "_", filename)
        path = f"/attachments/{channel_id}/{attachment_id}/{filename}"
        # Discord derives the type from the name: discord.py uploads every file as octet-stream.
        content_type = content_type or mimetypes.guess_type(filename)[0] or "application/octet-stream"
        self._cdn[path] = (content_type, data)
        url = self._signed(path)
        attachment = {"id": attachment_id, "filename": filename, "size": len(data), "url": url, "proxy_url": url,
                      "content_type": content_type, **meta}
        if content_type.startswith("image/") and (size := _image_size(data)):
            attachment["width"], attachment["height"] = size
        return attachment

    def _uploads(self, channel_id: str, entries: list[dict], files: dict, keep: list[dict] = ()) -> list[dict]:
        """A create or edit's attachments: kept ones by id, new files matched to entries by index."""
        by_id = {str(entry.get("id")): entry for entry in entries}
        result = [attachment for attachment in keep if attachment["id"] in by_id]
        for part, (filename, _, data) in files.items():
            entry = by_id.get(part.removeprefix("files[").removesuffix("]"), {})
            meta = {k: entry[k] for k in ("description", "duration_secs", "waveform", "title") if k in entry}
            result.append(self._store_attachment(channel_id, entry.get("filename", filename), data, **meta))
        return result

    def _message(self, channel: dict, author: dict, content: str, *, attachments: list[dict] = (), flags: int = 0,
                 mentions: list[dict] = (), reference: dict | None = None, **extra: Any) -> dict:
        message_id = self._snowflake()
        message = {"id": message_id, "channel_id": channel["id"], "author": author, "content": content,
                   "timestamp": _timestamp(message_id), "edited_timestamp": None, "tts": False,
                   "mention_everyone": False, "mentions": list(mentions), "mention_roles": [],
                   "attachments": list(attachments), "embeds": [], "components": [], "pinned": False, "type": 0,
                   "flags": flags, **extra}
        guild_id = channel.get("guild_id")
        if guild_id:  # guild messages carry the author's member and each mention's member, without user
            message["guild_id"] = guild_id
            message["member"] = self._partial_member(author, guild_id)
            message["mentions"] = [{**user, "member": self._partial_member(user, guild_id)} for user in mentions]
        if reference:
            referenced = self.messages.get(str(reference.get("message_id")))
            if referenced is None:
                raise DiscordError(400, "Invalid Form Body", 50035)
            message["type"] = REPLY
            message["message_reference"] = {"type": 0, "message_id": referenced["id"],
                                            "channel_id": referenced["channel_id"],
                                            **({"guild_id": guild_id} if guild_id else {})}
            message["referenced_message"] = {k: v for k, v in referenced.items() if k != "referenced_message"}
        self.messages[message_id] = message
        return message

    def _bot_message(self, channel: dict, body: dict, files: dict, **extra: Any) -> dict:
        attachments = self._uploads(channel["id"], body.get("attachments") or [], files)
        flags = (body.get("flags") or 0) & SETTABLE_FLAGS
        if flags & IS_VOICE_MESSAGE:  # Discord's own rules for voice messages
            if body.get("content") or body.get("embeds") or body.get("sticker_ids") or body.get("poll"):
                raise DiscordError(400, "Voice messages do not support additional content.", 50159)
            if len(attachments) != 1 or not attachments[0]["content_type"].startswith("audio/"):
                raise DiscordError(400, "Voice messages must have a single audio attachment.", 50160)
            if "duration_secs" not in attachments[0] or "waveform" not in attachments[0]:
                raise DiscordError(400, "Voice messages must have supporting metadata.", 50161)
        if not (body.get("content") or attachments or body.get("embeds") or body.get("components")
                or body.get("sticker_ids") or body.get("poll")):
            raise DiscordError(400, "Cannot send an empty message", 50006)
        message = self._message(channel, self.bot_user, body.get("content") or "", attachments=attachments,
                                flags=flags, reference=body.get("message_reference"), **extra)
        message.update(embeds=body.get("embeds") or [], components=body.get("components") or [],
                       **({"nonce": body["nonce"]} if "nonce" in body else {}))
        return message

    # ---- gateway ---------------------------------------------------------------------------

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        session = _Session(ws, request.query.get("compress"))
        with self._cond:
            self._sessions.append(session)
        try:
            await session.send(10, {"heartbeat_interval": self.heartbeat_interval_ms})
            async for frame in ws:
                if frame.type != WSMsgType.TEXT:
                    break
                payload = json.loads(frame.data)
                if payload["op"] == 1:
                    await session.send(11)
                elif payload["op"] == 2:
                    await self._identify(session, payload["d"])
                elif payload["op"] == 6:  # RESUME: we keep no replay buffer, so the client must IDENTIFY
                    await session.send(9, False)
                # Presence (3), voice state (4) and member requests (8) change nothing here.
        finally:
            with self._cond:
                self._sessions.remove(session)
        return ws

    async def _identify(self, session: _Session, d: dict) -> None:
        if d.get("token") != self.token:
            await session.ws.close(code=4004, message=b"Authentication failed.")
            return
        with self._cond:
            self.identifies.append(d)
        session.intents = d.get("intents", 0)
        await session.send(0, {
            "v": 10, "user": self.bot_user, "guilds": [{"id": g, "unavailable": True} for g in self.guilds],
            "session_id": secrets.token_hex(16), "session_type": "normal", "resume_gateway_url": self.gateway_url,
            "application": {"id": self.application_id, "flags": APPLICATION_FLAGS}, "private_channels": [],
            "relationships": [], "presences": [], "user_settings": {}, "_trace": ['["fake-discord"]'],
            **({"shard": d["shard"]} if "shard" in d else {})}, "READY")  # sharded clients read it back
        for guild in self.guilds.values():
            members = guild["members"]
            if not session.intents & GUILD_MEMBERS:  # without the intent only the bot's own member comes
                members = [m for m in members if m["user"]["id"] == self.bot_user["id"]]
            await session.send(0, {**guild, "members": members}, "GUILD_CREATE")
        with self._cond:
            session.ready = True
            self._cond.notify_all()

    def _as_seen(self, message: dict, intents: int) -> dict:
        # Without MESSAGE_CONTENT, guild messages that neither come from nor mention the bot arrive hollow.
        bot_id = self.bot_user["id"]
        if (intents & MESSAGE_CONTENT or "guild_id" not in message or message["author"]["id"] == bot_id
                or any(u["id"] == bot_id for u in message["mentions"])):
            return message
        return {**message, "content": "", "embeds": [], "attachments": [], "components": []}

    async def _dispatch(self, event: str, data: dict) -> None:
        is_message = event.startswith("MESSAGE_")
        if is_message and data.get("flags", 0) & EPHEMERAL:
            return  # ephemeral messages exist only for the user who saw them
        self.events.append((event, data))
        intent = (GUILD_MESSAGES if "guild_id" in data else DIRECT_MESSAGES) if is_message else 0
        for session in list(self._sessions):
            if session.ready and session.intents & intent == intent:
                await session.send(0, self._as_seen(data, session.intents) if is_message else data, event)

    def _require_bot(self) -> None:
        if not any(s.ready for s in self._sessions):
            raise RuntimeError("no bot is connected to the fake gateway; call wait_ready() first")

    async def _from_user(self, user_id: Any, channel_id: Any, content: str, attachments: list[tuple], *,
                         flags: int = 0, mention_bot: bool = False, reply_to: Any = None, meta: dict | None = None
                         ) -> dict:
        self._require_bot()
        author = self._user(user_id)
        channel = self._channel(channel_id) if channel_id else self._dm_channel(author["id"])
        files = [self._store_attachment(channel["id"], *attachment, **(meta or {})) for attachment in attachments]
        mentions, reference = [], None
        if mention_bot:
            content, mentions = f"<@{self.bot_user['id']}> {content}", [self.bot_user]
        if reply_to is not None:
            reference = {"message_id": str(reply_to["id"] if isinstance(reply_to, dict) else reply_to)}
            replied = self.messages.get(reference["message_id"], {}).get("author")
            if replied and replied not in mentions:  # replies ping the replied-to author by default
                mentions.append(replied)
        message = self._message(channel, author, content, attachments=files, flags=flags, mentions=mentions,
                                reference=reference)
        await self._dispatch("MESSAGE_CREATE", message)
        return message

    async def _redeliver(self, event_id: str) -> None:
        found = next(((e, d) for e, d in reversed(self.events) if d.get("id") == event_id), None)
        if found is None:
            raise LookupError(f"nothing with id {event_id} was dispatched")
        await self._dispatch(*found)

    async def _slash_command(self, user_id: Any, name: str, options: dict[str, Any], channel_id: Any) -> dict:
        self._require_bot()
        user = self._user(user_id)
        channel = self._channel(channel_id) if channel_id else self._dm_channel(user["id"])
        guild_id = channel.get("guild_id")
        root, *path = name.split()
        command = next((c for scope in (guild_id, None) for c in self.commands.get(scope, []) if c["name"] == root),
                       None)
        if command is None:
            raise LookupError(f"/{root} is not registered (did the bot sync its command tree?)")
        chain, spec = [], command  # walk down subcommand groups and subcommands
        for sub in path:
            spec = next((o for o in spec.get("options", []) if o["name"] == sub and o["type"] in (1, 2)), None)
            if spec is None:
                raise LookupError(f"/{name} is not a registered subcommand")
            chain.append(spec)
        declared = {o["name"]: o for o in spec.get("options", [])}
        missing = [n for n, o in declared.items() if o.get("required") and n not in options]
        if missing or set(options) - set(declared):
            raise ValueError(f"/{name} takes {sorted(declared)}; missing {missing}, got {sorted(options)}")
        resolved: dict[str, dict] = {}
        given = []
        for key, value in options.items():
            if declared[key]["type"] == ATTACHMENT_OPTION:  # uploaded first, then referenced by id
                attachment = self._store_attachment(channel["id"], *value)
                resolved.setdefault("attachments", {})[attachment["id"]] = attachment
                value = attachment["id"]
            given.append({"name": key, "type": declared[key]["type"], "value": value})
        for sub in reversed(chain):
            given = [{"name": sub["name"], "type": sub["type"], "options": given}]
        data = {"id": command["id"], "name": root, "type": 1, "options": given,
                **({"resolved": resolved} if resolved else {}),
                **({"guild_id": command["guild_id"]} if "guild_id" in command else {})}
        interaction_id = self._snowflake()
        token = base64.urlsafe_b64encode(f"interaction:{interaction_id}:{secrets.token_urlsafe(48)}".encode())
        payload = {"id": interaction_id, "application_id": self.application_id, "type": 2, "data": data,
                   "channel_id": channel["id"], "channel": channel, "token": token.decode().rstrip("="),
                   "version": 1, "app_permissions": EVERYONE_PERMISSIONS, "locale": "en-US", "entitlements": [],
                   # "0" is the guild installation; invoked in the bot's DM its owner id is "0".
                   "authorizing_integration_owners": {"0": guild_id or "0"},
                   "context": 0 if guild_id else 1, "attachment_size_limit": UPLOAD_LIMIT}
        if guild_id:
            payload.update(guild_id=guild_id, guild_locale="en-US",
                           guild={"id": guild_id, "locale": "en-US", "features": []},
                           member={**self._member(user, guild_id), "permissions": EVERYONE_PERMISSIONS})
        else:
            payload["user"] = user
        self._interactions[interaction_id] = {"payload": payload, "at": time.monotonic(), "responded": False,
                                              "original": None, "channel": channel, "user": user, "name": name}
        await self._dispatch("INTERACTION_CREATE", payload)
        return payload

    # ---- REST ------------------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path == "/gateway":
            return await handler(request)
        api = request.path.startswith(API)
        body, files = await self._read_body(request)
        call = Call(request.method, request.path.removeprefix(API) if api else request.path, dict(request.query),
                    body, files, time.monotonic())
        request[CALL] = call
        retry_after = self._take_failure(call) if api else None
        try:
            if retry_after is not None:
                result, status = {"message": "You are being rate limited.", "retry_after": retry_after,
                                  "global": False}, 429
            else:
                if api and not re.match(r"/(interactions|webhooks)/|/gateway$", call.path) \
                        and request.headers.get("Authorization") != f"Bot {self.token}":
                    raise DiscordError(401, "401: Unauthorized", 0)
                result, status = await handler(request), 200
        except DiscordError as error:
            result, status = {"message": error.message, "code": error.code}, error.status
        response = result if isinstance(result, web.StreamResponse) else _json(result, status)
        if api:
            response.headers.update(self._ratelimit_headers(request, retry_after))
        call.status, call.response = response.status, None if isinstance(result, web.StreamResponse) else result
        with self._cond:
            self._calls.append(call)
            self._cond.notify_all()
        return response

    @staticmethod
    def _ratelimit_headers(request: web.Request, retry_after: float | None) -> dict[str, str]:
        bucket = hashlib.sha1(f"{request.method} {request.match_info.route.resource.canonical}".encode())
        reset_after = 1.0 if retry_after is None else retry_after
        # discord.py treats a 429 without Via (which Discord's responses carry) as a Cloudflare ban.
        headers = {"Via": "1.1 google", "X-RateLimit-Bucket": bucket.hexdigest()[:32], "X-RateLimit-Limit": "5",
                   "X-RateLimit-Remaining": "4" if retry_after is None else "0",
                   "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
                   "X-RateLimit-Reset-After": f"{reset_after:.3f}"}
        if retry_after is not None:
            headers.update({"Retry-After": str(math.ceil(retry_after)), "X-RateLimit-Scope": "user"})
        return headers

    def _take_failure(self, call: Call) -> float | None:
        with self._cond:
            for failure in self._failures:
                if failure[0] in f"{call.method} {call.path}" and failure[1] > 0:
                    failure[1] -= 1
                    return failure[2]
        return None

    @staticmethod
    async def _read_body(request: web.Request) -> tuple[Any, dict]:
        if request.content_type == "multipart/form-data":
            payload, files = None, {}
            async for part in await request.multipart():
                if part.name == "payload_json":
                    payload = json.loads(await part.text())
                else:
                    content_type = part.headers.get("Content-Type", "application/octet-stream")
                    files[part.name] = (part.filename, content_type, bytes(await part.read()))
            return payload, files
        if request.content_type == "application/json" and request.can_read_body:
            return await request.json(), {}
        return None, {}

    async def _unknown(self, request: web.Request) -> None:
        request[CALL].unknown = True
        raise DiscordError(404, "404: Not Found", 0)

    async def _cdn_get(self, request: web.Request) -> web.Response:
        query, stored = request.query, self._cdn.get(request.path)
        expected = hmac.new(self._secret, f"{request.path}{query.get('ex')}{query.get('is')}".encode(),
                            "sha256").hexdigest()
        if stored is None or not hmac.compare_digest(expected, query.get("hm", "")) \
                or int(query["ex"], 16) < time.time():
            return web.Response(status=404, text="This content is no longer available.")
        return web.Response(body=stored[1], content_type=stored[0])

    async def _get_gateway(self, request: web.Request) -> dict:
        if request.path.endswith("/bot"):
            return {"url": self.gateway_url, "shards": 1, "session_start_limit": {
                "total": 1000, "remaining": 999, "reset_after": 86400000, "max_concurrency": 1}}
        return {"url": self.gateway_url}

    async def _get_user(self, request: web.Request) -> dict:
        return self._user(request.match_info.get("user_id", self.bot_user["id"]))

    async def _application(self, request: web.Request) -> dict:
        return {"id": self.application_id, "name": self.bot_user["username"], "icon": None, "description": "",
                "summary": "", "type": None, "bot_public": True, "bot_require_code_grant": False,
                "verify_key": hashlib.sha256(self._secret).hexdigest(), "flags": APPLICATION_FLAGS,
                "owner": next(iter(self.users.values()), self.bot_user), "team": None, "bot": self.bot_user,
                "rpc_origins": [], "redirect_uris": [], "interactions_endpoint_url": None, "tags": [],
                "approximate_guild_count": len(self.guilds)}

    async def _create_dm(self, request: web.Request) -> dict:
        return self._dm_channel(self._user((request[CALL].json or {}).get("recipient_id"))["id"])

    async def _get_channel(self, request: web.Request) -> dict:
        return self._channel(request.match_info["channel_id"])

    async def _typing(self, request: web.Request) -> None:
        self._channel(request.match_info["channel_id"])

    async def _create_message(self, request: web.Request) -> dict:
        call = request[CALL]
        if (int((call.json or {}).get("flags") or 0) & IS_VOICE_MESSAGE
                and request.match_info["channel_id"] in self.no_voice_messages):
            raise DiscordError(400, "Cannot send voice messages in this channel", 50173)
        message = call.record(self._bot_message(self._channel(request.match_info["channel_id"]), call.json or {},
                                                call.files))
        await self._dispatch("MESSAGE_CREATE", message)
        return message

    async def _channel_message(self, request: web.Request) -> dict:
        message = self.messages.get(request.match_info["message_id"])
        if message is None or message["channel_id"] != self._channel(request.match_info["channel_id"])["id"]:
            raise DiscordError(404, "Unknown Message", 10008)
        return await self._message_action(request, message)

    async def _message_action(self, request: web.Request, message: dict) -> dict:
        """GET or PATCH (edit) one message, for channels and interaction webhooks alike."""
        call = request[CALL]
        if request.method == "GET":
            return message
        if message["author"]["id"] != self.bot_user["id"]:
            raise DiscordError(403, "Cannot edit a message authored by another user", 50005)
        if message["flags"] & IS_VOICE_MESSAGE:
            raise DiscordError(400, "Voice messages cannot be edited.", 50162)
        body = call.json or {}
        for key in ("content", "embeds", "components"):
            if key in body:
                message[key] = body[key] or ("" if key == "content" else [])
        if "attachments" in body or call.files:
            message["attachments"] = self._uploads(message["channel_id"], body.get("attachments") or [],
                                                   call.files, keep=message["attachments"])
        message["flags"] &= ~LOADING  # editing a deferred response replaces "is thinking..."
        message["edited_timestamp"] = datetime.now(timezone.utc).isoformat()
        call.record(message)
        await self._dispatch("MESSAGE_UPDATE", message)
        return message

    async def _commands(self, request: web.Request) -> list[dict]:
        guild_id = request.match_info.get("guild_id")
        if request.match_info["application_id"] != self.application_id or (guild_id and guild_id not in self.guilds):
            raise DiscordError(403, "Missing Access", 50001)
        if request.method == "PUT":  # bulk overwrite keeps the ids of commands whose name stays
            old = {c["name"]: c["id"] for c in self.commands.get(guild_id, [])}
            self.commands[guild_id] = [
                {"type": 1, "description": "", "default_member_permissions": None, "nsfw": False, **body,
                 "id": old.get(body["name"]) or self._snowflake(), "application_id": self.application_id,
                 "version": self._snowflake(), **({"guild_id": guild_id} if guild_id else {})}
                for body in request[CALL].json]
        return self.commands.get(guild_id, [])

    def _interaction_extra(self, interaction: dict) -> dict:
        """What Discord adds to messages answering an interaction."""
        payload = interaction["payload"]
        return {"type": CHAT_INPUT_COMMAND, "application_id": self.application_id, "webhook_id": self.application_id,
                "interaction_metadata": {"id": payload["id"], "type": 2, "user": interaction["user"],
                                         "name": interaction["name"], "command_type": 1,
                                         "authorizing_integration_owners": payload["authorizing_integration_owners"]}}

    async def _interaction_callback(self, request: web.Request) -> dict | None:
        call, interaction = request[CALL], self._interactions.get(request.match_info["interaction_id"])
        if interaction is None or interaction["payload"]["token"] != request.match_info["token"] \
                or time.monotonic() - interaction["at"] > self.interaction_timeout:
            raise DiscordError(404, "Unknown interaction", 10062)
        if interaction["responded"]:
            raise DiscordError(400, "Interaction has already been acknowledged.", 40060)
        kind, data = call.json["type"], call.json.get("data") or {}
        channel, extra, message = interaction["channel"], self._interaction_extra(interaction), None
        if kind == 4:  # CHANNEL_MESSAGE_WITH_SOURCE
            message = self._bot_message(channel, data, call.files, **extra)
        elif kind == 5:  # DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE: "is thinking..." until edited
            flags = LOADING | ((data.get("flags") or 0) & EPHEMERAL)
            message = self._message(channel, self.bot_user, "", flags=flags, **extra)
        interaction.update(responded=True, original=message)
        if message:
            call.record(message)
            await self._dispatch("MESSAGE_CREATE", message)
        if request.query.get("with_response") not in ("1", "true", "True"):
            return None
        return {"interaction": {"id": interaction["payload"]["id"], "type": 2,
                                "response_message_id": message and message["id"],
                                "response_message_loading": kind == 5,
                                "response_message_ephemeral": bool(message and message["flags"] & EPHEMERAL)},
                "resource": {"type": kind, **({"message": message} if message else {})}}

    def _interaction_for(self, request: web.Request) -> dict:
        match = request.match_info
        for interaction in self._interactions.values():
            if match["application_id"] == self.application_id and interaction["payload"]["token"] == match["token"] \
                    and interaction["responded"]:
                return interaction
        raise DiscordError(404, "Unknown Webhook", 10015)

    async def _followup(self, request: web.Request) -> dict | None:
        call, interaction = request[CALL], self._interaction_for(request)
        message = call.record(self._bot_message(interaction["channel"], call.json or {}, call.files,
                                                **self._interaction_extra(interaction)))
        await self._dispatch("MESSAGE_CREATE", message)
        return message if request.query.get("wait") in ("1", "true", "True") else None

    async def _webhook_message(self, request: web.Request) -> dict:
        interaction, message_id = self._interaction_for(request), request.match_info.get("message_id")
        message = self.messages.get(message_id) if message_id else interaction["original"]
        if message is None or message.get("interaction_metadata", {}).get("id") != interaction["payload"]["id"]:
            raise DiscordError(404, "Unknown Message", 10008)
        return await self._message_action(request, message)

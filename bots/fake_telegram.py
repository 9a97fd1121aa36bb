"""A Telegram Bot API server on loopback, so the unmodified PTB and aiogram run end to end in tests
and in `heartline soak`.

It speaks the wire protocol of https://core.telegram.org/bots/api for the methods a bot like ours
uses: the same URLs, parameter encodings (query, urlencoded, JSON, multipart with `attach://`),
`{"ok": ...}` envelopes, HTTP status codes and error descriptions, and the same long-polling rules
(an offset confirms earlier updates, the newest poller wins, 409 while a webhook is set). Anything
else answers 404 and is recorded, so a test can assert the bot called nothing we do not know.

Tests and the soak drive it from any thread: users send updates, failures are injected, and every
call the bot made is read back with its uploads.

    with FakeTelegram() as tg:
        app = Application.builder().token(tg.token).base_url(f"{tg.api_url}/bot") \
            .base_file_url(f"{tg.api_url}/file/bot").build()
        ...
        tg.send_voice(42, ogg_bytes, duration=3)
        reply = tg.wait_for("sendVoice")[0]  # in the bot's own event loop: await tg.wait_for_async(...)
        assert reply.upload("voice")[2].startswith(b"OggS")
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import mimetypes
import re
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http import HTTPStatus
from itertools import count
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from aiohttp import web

BOT_ID = 7000000001
BOT_USERNAME = "heartline_test_bot"
# How the bot appears as the sender of its own messages; getMe adds the capability flags.
BOT_USER = {"id": BOT_ID, "is_bot": True, "first_name": "Heartline", "username": BOT_USERNAME}
# Telegram numbers basic groups -N and supergroups -100N.
DEFAULT_CHAT_IDS = {"group": -4000000001, "supergroup": -1001000000001}

MAX_DOWNLOAD = 20 * 1024 * 1024  # getFile refuses bigger files on the public Bot API
MAX_UPLOAD = 50 * 1024 * 1024  # multipart uploads
MAX_TEXT, MAX_CAPTION = 4096, 1024
# Update types getUpdates leaves out unless allowed_updates names them.
NOT_BY_DEFAULT = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
CHAT_ACTIONS = frozenset({
    "typing", "upload_photo", "record_video", "upload_video", "record_voice", "upload_voice",
    "upload_document", "choose_sticker", "find_location", "record_video_note", "upload_video_note",
})
# Form fields arrive as strings and the Bot API reads numbers, booleans and JSON-serialized
# objects out of them; these fields are text and must stay text even when they look like JSON.
TEXT_PARAMS = frozenset({
    "text", "caption", "parse_mode", "action", "url", "secret_token", "file_id", "voice", "audio",
    "photo", "document", "thumbnail", "title", "performer", "language_code", "ip_address",
    "business_connection_id", "message_effect_id",
})
# Where getFile puts each kind of file, as the real server names its paths.
FOLDERS = {"voice": ("voice", ".oga"), "audio": ("music", ".mp3"), "photo": ("photos", ".jpg"),
           "document": ("documents", "")}
# What Telegram clients mark as entities when a user types a command or a @username.
_ENTITY = re.compile(r"(?<![\w/@])(?:(?P<bot_command>/\w{1,32}(?:@\w{5,32})?)|(?P<mention>@\w{5,32}))"
                     r"(?![\w@])", re.ASCII)


class BotAPIError(Exception):
    """An error answer; the server turns it into Telegram's error envelope and HTTP status."""

    def __init__(self, code: int, description: str, parameters: dict | None = None) -> None:
        super().__init__(description)
        self.body = {"ok": False, "error_code": code, "description": description}
        if parameters:
            self.body["parameters"] = parameters


@dataclass
class Call:
    """One request the bot made."""

    method: str  # as Telegram names it ("sendVoice"); the real API matches method names in any case
    params: dict[str, Any]  # decoded: numbers, booleans and JSON objects as Python values
    files: dict[str, tuple[str, str, bytes]]  # uploaded parts: {part name: (filename, type, bytes)}
    time: float  # time.monotonic() on arrival, to measure gaps such as a retry's wait
    response: dict[str, Any] = field(default_factory=dict)  # the envelope answered; {} until then

    @property
    def ok(self) -> bool:
        return self.response.get("ok", False)

    @property
    def result(self) -> Any:
        return self.response.get("result")

    def upload(self, name: str) -> tuple[str, str, bytes] | None:
        """The file sent as parameter `name`: a part of that name, or the part `attach://` names."""
        value = self.params.get(name)
        if isinstance(value, str) and value.startswith("attach://"):
            return self.files.get(value.removeprefix("attach://"))
        return self.files.get(name)


class _File(NamedTuple):
    kind: str  # "voice", "audio", "photo" or "document"
    media: dict  # the Voice / Audio / PhotoSize / Document object messages carry
    data: bytes
    path: str


@dataclass
class _Queued:
    update: dict
    redelivered: bool = False  # a duplicate delivery outlives the offset that confirmed the original
    delivered: bool = False


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2  # entity offsets and lengths count UTF-16 code units


def _entities(text: str) -> list[dict]:
    return [{"type": m.lastgroup, "offset": _utf16_len(text[:m.start()]), "length": _utf16_len(m.group())}
            for m in _ENTITY.finditer(text)]


def _entity_text(text: str, entity: dict) -> str:
    units = text.encode("utf-16-le")
    return units[2 * entity["offset"]:2 * (entity["offset"] + entity["length"])].decode("utf-16-le")


def _ogg_duration(data: bytes) -> int:
    """Seconds of an OGG/Opus file: the last page's granule position counts 48 kHz samples."""
    head, last = data.find(b"OpusHead"), data.rfind(b"OggS")
    if not data.startswith(b"OggS") or head < 0:
        return 0
    granule = int.from_bytes(data[last + 6:last + 14], "little")
    pre_skip = int.from_bytes(data[head + 10:head + 12], "little")
    return round(max(granule - pre_skip, 0) / 48000)


def _image_size(data: bytes) -> tuple[int, int]:
    """(width, height) of a PNG or JPEG; Telegram refuses a photo it cannot decode."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    at = 2
    while data.startswith(b"\xff\xd8") and at + 9 < len(data) and data[at] == 0xFF:
        marker, length = data[at + 1], int.from_bytes(data[at + 2:at + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # start of frame
            return int.from_bytes(data[at + 7:at + 9], "big"), int.from_bytes(data[at + 5:at + 7], "big")
        at += 2 + length
    raise BotAPIError(400, "Bad Request: IMAGE_PROCESS_FAILED")


def _decode(name: str, value: Any) -> Any:
    if not isinstance(value, str) or name in TEXT_PARAMS:
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value  # e.g. chat_id "@channelname"


async def _read_params(request: web.Request) -> tuple[dict, dict]:
    raw: dict[str, Any] = dict(request.query)
    files: dict[str, tuple[str, str, bytes]] = {}
    if request.content_type == "application/json" and request.can_read_body:
        raw.update(await request.json())
    elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        try:
            form = await request.post()
        except web.HTTPRequestEntityTooLarge:
            raise BotAPIError(413, "Request Entity Too Large") from None
        for key, value in form.items():
            if isinstance(value, web.FileField):
                files[key] = (value.filename, value.content_type, value.file.read())
            else:
                raw[key] = value
    return {key: _decode(key, value) for key, value in raw.items()}, files


def _ok(result: Any, description: str | None = None) -> dict:
    return {"ok": True, "result": result, **({"description": description} if description else {})}


def _captioned(caption: str | None, entities: list | None = None) -> dict:
    if caption is None:
        return {}
    if _utf16_len(caption) > MAX_CAPTION:
        raise BotAPIError(400, "Bad Request: message caption is too long")
    entities = _entities(caption) if entities is None else entities
    return {"caption": caption, **({"caption_entities": entities} if entities else {})}


class FakeTelegram:
    """The fake server, serving from a background thread with its own event loop.

    Bot side: `api_url`, `token`, `me` (the getMe user). User side: `send_text`, `send_command`,
    `send_voice`, `send_audio`, `send_photo`, `send_document` (each takes the keywords `chat_id`,
    `chat_type` ("private", "group", "supergroup"), `reply_to_bot` (True for the bot's latest
    message in that chat, or a Message dict) and `forwarded`) return the Update queued, or None for
    a group message privacy mode keeps from the bot; `send_update` queues any other update and
    `redeliver` queues one again. Checks: `calls`, `sent`, `wait_for`, `wait_for_async`, `unknown`,
    `downloads`, `webhook`; `fail_next` injects errors.
    """

    def __init__(self) -> None:
        self.token = f"{BOT_ID}:{secrets.token_urlsafe(27)[:35]}"
        self.me = {**BOT_USER, "can_join_groups": True, "can_read_all_group_messages": False,
                   "supports_inline_queries": False, "can_connect_to_business": False,
                   "has_main_web_app": False}
        self._calls: list[Call] = []  # in arrival order, answered or not yet
        self.downloads: list[str] = []  # file paths fetched from /file/bot<token>/
        self.webhook: dict | None = None  # the parameters of the setWebhook in force
        self._lock = threading.Condition()  # guards everything below; notified on every call
        self._queue: list[_Queued] = []
        self._allowed: frozenset[str] = frozenset()  # empty: all types but NOT_BY_DEFAULT
        self._update_ids, self._message_ids, self._file_numbers = count(100000001), count(1), count(1)
        self._chats: dict[int, dict] = {}
        self._messages: dict[tuple[int, int], dict] = {}
        self._files: dict[str, _File] = {}
        self._paths: dict[str, _File] = {}
        self._commands: dict[tuple[str, str], list] = {}
        self._failures: dict[str, list[BotAPIError]] = {}
        self._poller = 0  # which getUpdates is the newest; an older one still waiting answers 409
        self._closing = False
        self._methods = {name.lower(): (name, getattr(self, f"_{name}")) for name in (
            "getMe", "getUpdates", "setWebhook", "deleteWebhook", "getWebhookInfo", "setMyCommands",
            "getMyCommands", "deleteMyCommands", "sendMessage", "sendVoice", "sendAudio", "sendPhoto",
            "sendDocument", "sendChatAction", "getFile")}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fake-telegram", daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(10)

    async def _serve(self) -> None:
        self._changed = asyncio.Event()  # set and replaced whenever a long poll should look again
        app = web.Application(client_max_size=MAX_UPLOAD)
        app.router.add_route("*", "/bot{token}/{method}", self._api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._download)
        # No access log: request lines carry the token.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=2)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.api_url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._wake()  # long polls answer at once instead of holding the shutdown
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def __enter__(self) -> FakeTelegram:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ---- HTTP ----

    async def _api(self, request: web.Request) -> web.Response:
        name = request.match_info["method"]
        method, handler = self._methods.get(name.lower(), (name, None))
        call = Call(method, {}, {}, time.monotonic())
        with self._lock:
            self._calls.append(call)  # params and response are filled in below
        try:
            call.params, call.files = await _read_params(request)
            if request.match_info["token"] != self.token:
                raise BotAPIError(401, "Unauthorized")
            if handler is None:
                raise BotAPIError(404, "Not Found")
            with self._lock:
                failures = self._failures.get(method)
                if failures:
                    raise failures.pop(0)
            response = await handler(call.params, call.files)
        except BotAPIError as error:
            response = error.body
        except Exception as error:  # answered and recorded, so a test sees what the fake choked on
            response = BotAPIError(500, f"Internal Server Error: the fake failed: {error!r}").body
        with self._lock:
            call.response = response
            self._lock.notify_all()
        return web.json_response(response, status=response.get("error_code", 200))

    async def _download(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.json_response(BotAPIError(401, "Unauthorized").body, status=401)
        file = self._paths.get(request.match_info["path"])
        if file is None:
            return web.json_response(BotAPIError(404, "Not Found").body, status=404)
        with self._lock:
            self.downloads.append(file.path)
        return web.Response(body=file.data, content_type="application/octet-stream")

    def _wake(self) -> None:
        """Callable from any thread: waiting long polls look at the queue again."""
        self._loop.call_soon_threadsafe(self._notify)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # ---- Bot API methods: each takes (params, files) and returns the success envelope ----

    async def _getMe(self, p: dict, files: dict) -> dict:
        return _ok(self.me)

    async def _getUpdates(self, p: dict, files: dict) -> dict:
        if self.webhook:
            raise BotAPIError(409, "Conflict: can't use getUpdates method while webhook is active; "
                                   "use deleteWebhook to delete the webhook first")
        limit = min(max(int(p.get("limit", 100)), 1), 100)
        deadline = self._loop.time() + max(float(p.get("timeout", 0)), 0)
        with self._lock:
            if "allowed_updates" in p:  # otherwise the previous setting stays, as on Telegram
                self._allowed = frozenset(p["allowed_updates"])
            offset = int(p.get("offset", 0))
            if offset > 0:
                self._queue = [q for q in self._queue if q.update["update_id"] >= offset
                               or (q.redelivered and not q.delivered)]
            elif offset < 0:  # keep the last -offset updates, forget the rest
                self._queue = self._queue[offset:]
            self._poller += 1
            me = self._poller
        self._notify()
        while True:
            with self._lock:
                if self._poller != me:
                    raise BotAPIError(409, "Conflict: terminated by other getUpdates request; "
                                           "make sure that only one bot instance is running")
                if self.webhook:
                    raise BotAPIError(409, "Conflict: terminated by setWebhook request")
                # Updates of a type not allowed are dropped, as if Telegram had never made them.
                self._queue = [q for q in self._queue if self._wanted(q.update)]
                batch = self._queue[:limit]
                if batch or self._closing or self._loop.time() >= deadline:
                    for queued in batch:
                        queued.delivered = True
                    return _ok([queued.update for queued in batch])
                changed = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), deadline - self._loop.time())

    def _wanted(self, update: dict) -> bool:
        kind = next(key for key in update if key != "update_id")
        return kind in self._allowed if self._allowed else kind not in NOT_BY_DEFAULT

    async def _setWebhook(self, p: dict, files: dict) -> dict:
        url = p.get("url") or ""
        if not url:
            return await self._deleteWebhook(p, files)
        parts = urlsplit(url)
        if parts.scheme != "https":
            raise BotAPIError(400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook")
        if (parts.port or 443) not in (80, 88, 443, 8443):
            raise BotAPIError(400, "Bad Request: bad webhook: Webhook can be set up only on ports "
                                   "80, 88, 443 or 8443")
        with self._lock:
            self.webhook = p
            if p.get("drop_pending_updates"):
                self._queue.clear()
        self._notify()
        return _ok(True, "Webhook was set")

    async def _deleteWebhook(self, p: dict, files: dict) -> dict:
        with self._lock:
            had, self.webhook = self.webhook, None
            if p.get("drop_pending_updates"):
                self._queue.clear()
        return _ok(True, "Webhook was deleted" if had else "Webhook is already deleted")

    async def _getWebhookInfo(self, p: dict, files: dict) -> dict:
        with self._lock:
            info = {"url": "", "has_custom_certificate": False, "pending_update_count": len(self._queue)}
            if self.webhook:
                info.update(url=self.webhook["url"], max_connections=self.webhook.get("max_connections", 40),
                            ip_address="127.0.0.1")
                if "allowed_updates" in self.webhook:
                    info["allowed_updates"] = self.webhook["allowed_updates"]
        return _ok(info)

    @staticmethod
    def _scope(p: dict) -> tuple[str, str]:
        return json.dumps(p.get("scope") or {"type": "default"}, sort_keys=True), p.get("language_code") or ""

    async def _setMyCommands(self, p: dict, files: dict) -> dict:
        commands = p.get("commands")
        if not isinstance(commands, list):
            raise BotAPIError(400, "Bad Request: can't parse commands JSON object")
        if len(commands) > 100:
            raise BotAPIError(400, "Bad Request: BOT_COMMANDS_TOO_MUCH")
        for command in commands:
            if not re.fullmatch(r"[a-z0-9_]{1,32}", str(command.get("command", ""))):
                raise BotAPIError(400, "Bad Request: BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", ""))) <= 256:
                raise BotAPIError(400, "Bad Request: BOT_COMMAND_DESCRIPTION_INVALID")
        with self._lock:
            self._commands[self._scope(p)] = [{"command": c["command"], "description": c["description"]}
                                              for c in commands]
        return _ok(True)

    async def _getMyCommands(self, p: dict, files: dict) -> dict:
        with self._lock:
            return _ok(self._commands.get(self._scope(p), []))

    async def _deleteMyCommands(self, p: dict, files: dict) -> dict:
        with self._lock:
            self._commands.pop(self._scope(p), None)
        return _ok(True)

    async def _sendMessage(self, p: dict, files: dict) -> dict:
        text = p.get("text")
        if not text:
            raise BotAPIError(400, "Bad Request: message text is empty")
        if _utf16_len(text) > MAX_TEXT:
            raise BotAPIError(400, "Bad Request: message is too long")
        entities = {"entities": p["entities"]} if p.get("entities") else {}
        return _ok(self._bot_message(p, {"text": text, **entities}))

    async def _sendVoice(self, p: dict, files: dict) -> dict:
        return self._send_file(p, files, "voice")

    async def _sendAudio(self, p: dict, files: dict) -> dict:
        return self._send_file(p, files, "audio")

    async def _sendPhoto(self, p: dict, files: dict) -> dict:
        return self._send_file(p, files, "photo")

    async def _sendDocument(self, p: dict, files: dict) -> dict:
        return self._send_file(p, files, "document")

    async def _sendChatAction(self, p: dict, files: dict) -> dict:
        self._chat(p)
        if p.get("action") not in CHAT_ACTIONS:
            raise BotAPIError(400, "Bad Request: wrong parameter action in request")
        return _ok(True)

    async def _getFile(self, p: dict, files: dict) -> dict:
        file = self._files.get(p.get("file_id") or "")
        if file is None:
            raise BotAPIError(400, "Bad Request: invalid file_id")
        if len(file.data) > MAX_DOWNLOAD:
            raise BotAPIError(400, "Bad Request: file is too big")
        return _ok({"file_id": file.media["file_id"], "file_unique_id": file.media["file_unique_id"],
                    "file_size": len(file.data), "file_path": file.path})

    # ---- helpers of the methods ----

    def _chat(self, p: dict) -> dict:
        chat_id = p.get("chat_id")
        if chat_id in (None, ""):
            raise BotAPIError(400, "Bad Request: chat_id is empty")
        with self._lock:
            chat = self._chats.get(chat_id)
        if chat is None:  # the bot can only write to chats that wrote to it
            raise BotAPIError(400, "Bad Request: chat not found")
        return chat

    def _send_file(self, p: dict, files: dict, kind: str) -> dict:
        media = self._upload(p, files, kind)
        caption = _captioned(p.get("caption"), p.get("caption_entities") or [])
        return _ok(self._bot_message(p, {kind: [media] if kind == "photo" else media, **caption}))

    def _bot_message(self, p: dict, content: dict) -> dict:
        chat = self._chat(p)
        message = {"message_id": next(self._message_ids), "from": BOT_USER, "chat": chat,
                   "date": int(time.time()), **content}
        reply = p.get("reply_parameters") or (
            {"message_id": p["reply_to_message_id"]} if "reply_to_message_id" in p else None)
        with self._lock:
            if reply:
                target = self._messages.get((chat["id"], reply.get("message_id")))
                if target is not None:  # Telegram quotes one level, not the target's own reply
                    message["reply_to_message"] = {k: v for k, v in target.items() if k != "reply_to_message"}
                elif not (reply.get("allow_sending_without_reply") or p.get("allow_sending_without_reply")):
                    raise BotAPIError(400, "Bad Request: message to be replied not found")
            markup = p.get("reply_markup")
            if isinstance(markup, dict) and "inline_keyboard" in markup:  # only these show in a Message
                message["reply_markup"] = markup
            self._messages[(chat["id"], message["message_id"])] = message
        return message

    def _upload(self, p: dict, files: dict, kind: str) -> dict:
        """The media object for parameter `kind`: a new upload, an attach:// part, or a known file_id."""
        value = p.get(kind)
        part = files.get(kind)
        if part is None and isinstance(value, str) and value.startswith("attach://"):
            part = files.get(value.removeprefix("attach://"))
            if part is None:
                raise BotAPIError(400, "Bad Request: wrong file identifier/HTTP URL specified")
        if part is None:
            if not value:
                raise BotAPIError(400, f"Bad Request: there is no {kind} in the request")
            known = self._files.get(value)
            if known is None or known.kind != kind:  # an HTTP URL would be fetched by Telegram; not here
                raise BotAPIError(400, "Bad Request: wrong file identifier/HTTP URL specified")
            return known.media
        file_name, content_type, data = part
        if not data:
            raise BotAPIError(400, "Bad Request: file must be non-empty")
        return self._store(kind, data, file_name=file_name, duration=p.get("duration"),
                           title=p.get("title"), performer=p.get("performer"))

    def _store(self, kind: str, data: bytes, *, file_name: str | None = None, mime_type: str | None = None,
               duration: int | None = None, title: str | None = None, performer: str | None = None) -> dict:
        """Keep a file as Telegram would, downloadable by getFile; returns its media object."""
        number = next(self._file_numbers)
        media = {"file_id": f"{kind[:2].upper()}{number}{secrets.token_urlsafe(24)}",
                 "file_unique_id": f"AgAD{number}{secrets.token_urlsafe(6)}"}
        if kind == "photo":
            media["width"], media["height"] = _image_size(data)
        if kind in ("voice", "audio"):
            media["duration"] = _ogg_duration(data) if duration is None else int(duration)
        if kind == "audio":
            media.update(performer=performer, title=title)
        if kind in ("audio", "document"):
            media["file_name"] = file_name
        if kind != "photo":
            media["mime_type"] = (mime_type or ("audio/ogg" if data.startswith(b"OggS") else None)
                                  or mimetypes.guess_type(file_name or "")[0] or "application/octet-stream")
        media = {key: value for key, value in media.items() if value is not None}
        media["file_size"] = len(data)
        folder, extension = FOLDERS[kind]
        if kind in ("audio", "document") and file_name and "." in file_name:
            extension = "." + file_name.rsplit(".", 1)[1]
        path = f"{folder}/file_{number}{extension}"
        with self._lock:
            self._files[media["file_id"]] = self._paths[path] = _File(kind, media, data, path)
        return media

    # ---- test side: what users do ----

    def send_text(self, user_id: int, text: str, chat_id: int | None = None, chat_type: str = "private",
                  reply_to_bot: bool | dict = False, entities: list | None = None,
                  forwarded: bool = False) -> dict | None:
        """A text message; `entities` default to the commands and @mentions in it, as clients mark them."""
        entities = _entities(text) if entities is None else entities
        return self._user_message(user_id, {"text": text, **({"entities": entities} if entities else {})},
                                  chat_id=chat_id, chat_type=chat_type, reply_to_bot=reply_to_bot,
                                  forwarded=forwarded)

    def send_command(self, user_id: int, command: str, **where: Any) -> dict | None:
        """A command with its arguments, e.g. "/voice train" or "/start@heartline_test_bot"."""
        if not command.startswith("/"):
            raise ValueError(f"a command starts with '/': {command!r}")
        return self.send_text(user_id, command, **where)

    def send_voice(self, user_id: int, ogg_bytes: bytes, duration: int, caption: str | None = None,
                   **where: Any) -> dict | None:
        voice = self._store("voice", ogg_bytes, duration=duration, mime_type="audio/ogg")
        return self._user_message(user_id, {"voice": voice, **_captioned(caption)}, **where)

    def send_audio(self, user_id: int, data: bytes, duration: int, file_name: str = "audio.mp3",
                   mime_type: str = "audio/mpeg", title: str | None = None, performer: str | None = None,
                   caption: str | None = None, **where: Any) -> dict | None:
        audio = self._store("audio", data, file_name=file_name, mime_type=mime_type, duration=duration,
                            title=title, performer=performer)
        return self._user_message(user_id, {"audio": audio, **_captioned(caption)}, **where)

    def send_photo(self, user_id: int, jpeg_bytes: bytes, caption: str | None = None,
                   **where: Any) -> dict | None:
        # Telegram would add smaller sizes too; one PhotoSize, the original, is enough to read.
        photo = [self._store("photo", jpeg_bytes)]
        return self._user_message(user_id, {"photo": photo, **_captioned(caption)}, **where)

    def send_document(self, user_id: int, data: bytes, file_name: str, mime_type: str,
                      caption: str | None = None, **where: Any) -> dict | None:
        document = self._store("document", data, file_name=file_name, mime_type=mime_type)
        return self._user_message(user_id, {"document": document, **_captioned(caption)}, **where)

    def send_update(self, payload: dict) -> dict:
        """Queue any other update, e.g. {"edited_message": {...}}; it gets the next update_id."""
        update = {"update_id": next(self._update_ids), **payload}
        self._enqueue(_Queued(update))
        return update

    def redeliver(self, update: dict) -> None:
        """Deliver an update again, same update_id, as Telegram does when it thinks one was lost."""
        self._enqueue(_Queued(update, redelivered=True))

    def _enqueue(self, queued: _Queued) -> None:
        with self._lock:
            self._queue.append(queued)
        self._wake()

    def _user_message(self, user_id: int, content: dict, *, chat_id: int | None = None,
                      chat_type: str = "private", reply_to_bot: bool | dict = False,
                      forwarded: bool = False) -> dict | None:
        user = {"id": user_id, "is_bot": False, "first_name": f"User {user_id}",
                "username": f"user{user_id}", "language_code": "en"}
        if chat_type == "private":
            chat = {"id": user_id if chat_id is None else chat_id, "type": "private",
                    "first_name": user["first_name"], "username": user["username"]}
        elif chat_type in DEFAULT_CHAT_IDS:
            chat = {"id": DEFAULT_CHAT_IDS[chat_type] if chat_id is None else chat_id, "type": chat_type,
                    "title": "Heartline testers"}
        else:
            raise ValueError(f"chat_type must be private, group or supergroup, not {chat_type!r}")
        now = int(time.time())
        message = {"message_id": next(self._message_ids), "from": user, "chat": chat, "date": now}
        if forwarded:
            message["forward_origin"] = {"type": "hidden_user", "sender_user_name": "Someone Else",
                                         "date": now - 3600}
        with self._lock:
            self._chats[chat["id"]] = chat
            if reply_to_bot:
                message["reply_to_message"] = (reply_to_bot if isinstance(reply_to_bot, dict)
                                               else self._last_bot_message(chat["id"]))
            message.update(content)
            self._messages[(chat["id"], message["message_id"])] = message
        if chat_type != "private" and not self._addressed_to_bot(message):
            return None  # privacy mode: the bot never sees ordinary group chatter
        return self.send_update({"message": message})

    def _last_bot_message(self, chat_id: int) -> dict:
        for message in reversed(self._messages.values()):
            if message["chat"]["id"] == chat_id and message["from"]["id"] == BOT_ID:
                return {k: v for k, v in message.items() if k != "reply_to_message"}
        raise ValueError(f"the bot has sent nothing in chat {chat_id} to reply to")

    @staticmethod
    def _addressed_to_bot(message: dict) -> bool:
        """What a bot in privacy mode receives from a group: commands, @mentions, replies to it."""
        text = message.get("text") or message.get("caption") or ""
        for entity in message.get("entities") or message.get("caption_entities") or []:
            word = _entity_text(text, entity).lower()
            if entity["type"] == "bot_command" and word.partition("@")[2] in ("", BOT_USERNAME):
                return True
            if entity["type"] == "mention" and word == f"@{BOT_USERNAME}":
                return True
        return message.get("reply_to_message", {}).get("from", {}).get("id") == BOT_ID

    # ---- test side: failures and checks ----

    def fail_next(self, method: str, error_code: int = 429, retry_after: int = 1, times: int = 1,
                  description: str | None = None, parameters: dict | None = None) -> None:
        """Answer the next `times` calls of `method` with an error instead of running it."""
        if error_code == 429:
            description = description or f"Too Many Requests: retry after {retry_after}"
            parameters = {"retry_after": retry_after, **(parameters or {})}
        error = BotAPIError(error_code, description or HTTPStatus(error_code).phrase, parameters)
        name = self._methods.get(method.lower(), (method,))[0]
        with self._lock:
            self._failures.setdefault(name, []).extend([error] * times)

    def sent(self, method: str | None = None, ok: bool | None = None) -> list[Call]:
        """Calls so far, of one method (any case) and/or only those that succeeded (or failed)."""
        with self._lock:
            return [call for call in self._calls if call.response
                    and (method is None or call.method.lower() == method.lower()) and ok in (None, call.ok)]

    def wait_for(self, method: str, count: int = 1, timeout: float = 10,
                 ok: bool | None = None) -> list[Call]:
        """Block until `count` calls of `method` arrived; returns them all, or fails saying what came."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(found := self.sent(method, ok)) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = Counter(c.method + ("" if c.ok else f"({c.response['error_code']})")
                                   for c in self.sent())
                    raise AssertionError(f"waited {timeout}s for {count} {method} call(s), got "
                                         f"{len(found)}; calls: {dict(seen)}")
                self._lock.wait(remaining)
            return found

    async def wait_for_async(self, method: str, count: int = 1, timeout: float = 10,
                             ok: bool | None = None) -> list[Call]:
        """wait_for for a test running the bot on its own event loop, which must not be blocked."""
        return await asyncio.to_thread(self.wait_for, method, count, timeout, ok)

    @property
    def calls(self) -> list[Call]:
        """Every call answered so far, in the order they arrived."""
        return self.sent()

    @property
    def unknown(self) -> list[Call]:
        """Calls of methods this fake does not know (each answered 404): a test asserts it is empty."""
        return [call for call in self.sent() if call.method.lower() not in self._methods]

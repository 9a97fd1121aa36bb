"""The local web chat, served by aiohttp from the bot process. Everything is served locally."""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from pathlib import Path

from aiohttp import web

from bots.chat import Chat, Incoming, too_large
from bots.web.admin import add_admin_routes
from config.settings import Settings
from core.delivery import Outgoing
from storage.outbox import Outbox

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
ANSWER_POLL_S = 0.1
_USER_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")

SETTINGS = web.AppKey("settings", Settings)
CHAT = web.AppKey("chat", Chat)


def create_app(settings: Settings, chat: Chat, chat_page: bool = True) -> web.Application:
    """The web chat and, with an admin token set, the admin page; beside Telegram or Discord
    (`chat_page` False) the admin page alone."""
    # Room for one audio file and one image at the upload limit, plus the form fields.
    app = web.Application(client_max_size=2 * settings.max_upload_bytes + 2**20)
    app[SETTINGS] = settings
    app[CHAT] = chat
    app.router.add_static("/static", STATIC)
    app.router.add_get("/healthz", _health)
    if chat_page:
        app.router.add_get("/", _index)
        app.router.add_post("/api/turn", _turn)
        app.router.add_get("/api/replies/{key}.ogg", _reply_audio)
    add_admin_routes(app, settings, chat)
    return app


async def _index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html")


async def _health(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def _turn(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    form = await request.post()
    user = str(form.get("user", ""))
    if not _USER_ID.match(user):
        return _error(400, "This browser has no valid chat id; reload the page.")
    audio, image = form.get("audio"), form.get("image")
    audio_bytes = audio.file.read() if isinstance(audio, web.FileField) else None
    image_bytes = image.file.read() if isinstance(image, web.FileField) else None
    for data in (audio_bytes, image_bytes):
        refusal = too_large(len(data), settings) if data is not None else None
        if refusal:
            return _error(413, refusal.text)
    message = Incoming(
        platform="web",
        user_id=user,
        chat_id=user,
        message_id=str(form.get("message_id") or uuid.uuid4().hex),
        text=str(form.get("text") or "") or None,
        audio=audio_bytes,
        audio_mime=audio.content_type if isinstance(audio, web.FileField) else None,
        image=image_bytes,
    )
    chat = request.app[CHAT]
    replies = await chat.handle(message)
    if not replies:
        return _error(409, "That message was already answered.")
    reply = replies[0]
    if reply.queued:
        reply = await _answer(chat.outbox, reply.queued, settings.job_timeout_s + 60)
        if reply is None:
            return _error(504, "I'm still working on that. Please try again in a moment.")
    if reply.problem:
        return _error(422 if reply.problem == "input" else 500, reply.text)
    if reply.result is None:  # a command: just words
        return web.json_response({"response": reply.text, "reply_audio": None})
    result = reply.result
    if result["reply_audio"]:
        result["reply_audio"]["url"] = f"/api/replies/{replies[0].queued}.ogg"
    return web.json_response(result)


async def _answer(outbox: Outbox, key: str, timeout_s: float) -> Outgoing | None:
    """The web chat's sender: the request itself waits (asleep, holding no thread) for the
    worker's answer, and takes it from the outbox; the voice stays there for the player."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        delivery = await asyncio.to_thread(outbox.get, key)
        if delivery is not None:
            await asyncio.to_thread(outbox.sent, key, keep_voice=True)
            return delivery.reply
        await asyncio.sleep(ANSWER_POLL_S)
    return None


async def _reply_audio(request: web.Request) -> web.StreamResponse:
    voice = await asyncio.to_thread(request.app[CHAT].outbox.voice, request.match_info["key"])
    if voice is None:
        raise web.HTTPNotFound()
    return web.Response(body=voice, headers={"Content-Type": "audio/ogg"})


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


class WebChat:
    """The web chat as one of the bot's front doors; with `chat_page` False, only the admin
    page (for a bot on Telegram or Discord)."""

    def __init__(self, settings: Settings, chat: Chat, chat_page: bool = True) -> None:
        self.settings = settings
        self.chat = chat
        self.chat_page = chat_page
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        self._runner = web.AppRunner(create_app(self.settings, self.chat, self.chat_page))
        await self._runner.setup()
        await web.TCPSite(self._runner, self.settings.web_host, self.settings.web_port).start()
        site = f"http://{self.settings.web_host}:{self.settings.web_port}"
        log.info("web %s listening", "chat" if self.chat_page else "admin page")
        if self.chat_page:
            print(f"Heartline web chat: {site}", flush=True)
        if self.settings.admin_token is not None:
            print(f"Heartline admin page: {site}/admin", flush=True)

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()

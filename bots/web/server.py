"""The local web chat, served by aiohttp from this process. Everything is served locally."""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from pathlib import Path

from aiohttp import web

from config.settings import Settings
from core.errors import InputError
from core.personas import persona_names
from core.turn import Turn
from workers.queues import EmbeddedQueue, JobFailed, JobQueue, make_queue, submit_turn

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
_USER_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")

SETTINGS = web.AppKey("settings", Settings)
QUEUE = web.AppKey("queue", object)


def create_app(settings: Settings, queue: JobQueue) -> web.Application:
    # Room for one audio file and one image at the upload limit, plus the form fields.
    app = web.Application(client_max_size=2 * settings.max_upload_bytes + 2**20)
    app[SETTINGS] = settings
    app[QUEUE] = queue
    app.router.add_get("/", _index)
    app.router.add_static("/static", STATIC)
    app.router.add_post("/api/turn", _turn)
    app.router.add_get("/api/replies/{path:.+}", _reply_audio)
    app.router.add_get("/healthz", _health)
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
    persona = str(form.get("persona") or "") or None
    if persona is not None and persona not in persona_names():
        return _error(400, f"Unknown persona; choose one of {', '.join(persona_names())}.")
    audio, image = form.get("audio"), form.get("image")
    turn = Turn(
        user_id=user,
        platform="web",
        chat_id=user,
        text=str(form.get("text") or "") or None,
        audio=audio.file.read() if isinstance(audio, web.FileField) else None,
        audio_mime=audio.content_type if isinstance(audio, web.FileField) else None,
        image=image.file.read() if isinstance(image, web.FileField) else None,
        persona=persona,
        message_id=str(form.get("message_id") or "") or None,
        want_voice=form.get("voice", "on") != "off",
    )
    for data, what in ((turn.audio, "recording"), (turn.image, "image")):
        if data is not None and len(data) > settings.max_upload_bytes:
            return _error(413, f"That {what} is larger than {settings.max_upload_bytes // 2**20} MB.")
    handle = submit_turn(request.app[QUEUE], turn)
    loop = asyncio.get_running_loop()
    try:
        result = await loop.run_in_executor(None, handle.result, settings.job_timeout_s + 60)
    except InputError as error:
        return _error(422, str(error))
    except (JobFailed, TimeoutError):
        error_id = uuid.uuid4().hex[:8]
        log.error("web turn failed: job %s, error id %s", handle.job_id, error_id)
        return _error(500, f"Something went wrong on my side (error id {error_id}). Please try again.")
    if result["reply_audio"]:
        relative = Path(result["reply_audio"]["path"]).resolve().relative_to(settings.audio_dir.resolve())
        result["reply_audio"]["url"] = f"/api/replies/{relative.as_posix()}"
    return web.json_response(result)


async def _reply_audio(request: web.Request) -> web.StreamResponse:
    from storage.blobs import AudioBlobs

    path = AudioBlobs(request.app[SETTINGS].audio_dir).resolve(request.match_info["path"])
    if path is None or path.suffix != ".ogg":
        raise web.HTTPNotFound()
    return web.FileResponse(path, headers={"Content-Type": "audio/ogg"})


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def serve(settings: Settings) -> None:
    queue = make_queue(settings)
    if isinstance(queue, EmbeddedQueue):
        queue.warm_up()
    app = create_app(settings, queue)
    print(f"Heartline web chat: http://{settings.web_host}:{settings.web_port}", flush=True)
    web.run_app(app, host=settings.web_host, port=settings.web_port, print=None)

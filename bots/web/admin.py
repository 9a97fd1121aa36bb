"""The web admin page: the flagged queue, users and their history, limits and the audit log,
behind HEARTLINE_ADMIN_TOKEN. It acts through the same AdminDesk as `/admin` in chat and
`heartline admin`, so all three say and do the same; its actions are audited as "web-admin".
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from pathlib import Path

from aiohttp import web

from bots.admin import AdminDesk, AdminError, user_key
from bots.chat import Chat
from config.settings import Settings

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
ACTOR = "web-admin"

TOKEN = web.AppKey("admin_token", str)
DESK = web.AppKey("desk", AdminDesk)
QUEUE = web.AppKey("admin_queue", object)


def add_admin_routes(app: web.Application, settings: Settings, chat: Chat) -> None:
    """/admin and its API, when an admin token is set; without one there is no admin page."""
    if settings.admin_token is None:
        return
    app[TOKEN] = settings.admin_token.get_secret_value()
    app[DESK] = chat.desk
    app[QUEUE] = chat.queue
    app.router.add_get("/admin", _page)
    api = [
        web.get("/api/admin/flagged", _flagged), web.post("/api/admin/flagged/{id}", _review),
        web.get("/api/admin/users", _users), web.get("/api/admin/users/{user}", _user),
        web.post("/api/admin/users/{user}", _act), web.get("/api/admin/audit", _audit),
    ]
    app.router.add_routes(api)
    app.middlewares.append(_token_checked)


@web.middleware
async def _token_checked(request: web.Request, handler):
    if not request.path.startswith("/api/admin/"):
        return await handler(request)
    given = request.headers.get("Authorization", "").removeprefix("Bearer ")
    if not hmac.compare_digest(given.encode(), request.app[TOKEN].encode()):
        log.warning("refused an admin API call with a wrong or missing token from %s", request.remote)
        return web.json_response({"error": "That admin token is not right."}, status=401)
    try:
        return await handler(request)
    except AdminError as error:
        return web.json_response({"error": str(error)}, status=400)


async def _page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "admin.html")


def _desk(request: web.Request) -> AdminDesk:
    return request.app[DESK]


async def _done(call, *args) -> web.Response:
    """A desk call (it reads and writes the database) off the event loop, answered as JSON."""
    done = await asyncio.to_thread(call, *args)
    return web.json_response({"result": done.result, "words": done.words})


async def _flagged(request: web.Request) -> web.Response:
    return await _done(_desk(request).flagged, 50, request.query.get("all") == "1")


async def _review(request: web.Request) -> web.Response:
    body = await _body(request)
    return await _done(_desk(request).review, ACTOR, request.match_info["id"], str(body.get("verdict", "")))


async def _users(request: web.Request) -> web.Response:
    users = await asyncio.to_thread(_desk(request).moderation.users, 100)
    return web.json_response({"result": users})


async def _user(request: web.Request) -> web.Response:
    target = user_key(request.match_info["user"])
    desk = _desk(request)
    found, history = await asyncio.gather(asyncio.to_thread(desk.user, target),
                                          asyncio.to_thread(desk.audit, 50, target))
    return web.json_response({"result": found.result, "history": history.result})


async def _act(request: web.Request) -> web.Response:
    """warn, mute, ban, unban, limits or forget, on one user."""
    target, body, desk = user_key(request.match_info["user"]), await _body(request), _desk(request)
    action, reason = body.get("action"), (str(body.get("reason") or "").strip() or None)
    if action in ("warn", "ban", "unban"):
        return await _done(getattr(desk, action), ACTOR, target, reason)
    if action == "mute":
        return await _done(desk.mute, ACTOR, target, str(body.get("duration", "")), reason)
    if action == "limits":
        return await _done(desk.limits, ACTOR, target, str(body.get("rate", "")))
    if action == "forget":
        return await _done(desk.forget, request.app[QUEUE], ACTOR, target)
    raise AdminError(f"no such action: {action!r}")


async def _audit(request: web.Request) -> web.Response:
    return await _done(_desk(request).audit, 100, None)


async def _body(request: web.Request) -> dict:
    try:
        body = await request.json()
    except ValueError:
        raise AdminError("the request was not JSON") from None
    if not isinstance(body, dict):
        raise AdminError("the request was not a JSON object")
    return body

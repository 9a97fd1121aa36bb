"""The web chat's HTTP API on a real aiohttp server, with the real pipeline behind it."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp.test_utils import TestServer

from bots.web.server import create_app
from config import wiring

USER = "browser-0123456789"


def run(coroutine):
    return asyncio.run(coroutine)


async def _serve(settings, scenario, chat_page=True):
    chat = wiring.chat(settings)
    server = TestServer(create_app(settings, chat, chat_page))
    await server.start_server()
    try:
        async with aiohttp.ClientSession(base_url=str(server.make_url(""))) as http:
            return await scenario(http)
    finally:
        await server.close()
        chat.queue.close()


def test_the_page_and_a_text_turn(settings, pipeline):
    async def scenario(http):
        page = await http.get("/")
        assert page.status == 200 and "Heartline" in await page.text()
        form = aiohttp.FormData({"user": USER, "text": "I just got the job I wanted!", "voice": "on"})
        reply = await http.post("/api/turn", data=form)
        assert reply.status == 200
        body = await reply.json()
        assert body["emotion_analysis"]["fused_emotion"]["primary_emotion"] == "joy"
        audio = await http.get(body["reply_audio"]["url"])
        assert audio.status == 200 and audio.headers["Content-Type"] == "audio/ogg"
        assert (await audio.read())[:4] == b"OggS"
        assert (await http.get("/api/replies/../../heartline.db")).status == 404

    run(_serve(settings, scenario))


def test_a_recorded_voice_note_and_bad_uploads(settings, pipeline, say):
    async def scenario(http):
        form = aiohttp.FormData({"user": USER})
        form.add_field("audio", say("Good morning, how are you?"), filename="voice-note.ogg",
                       content_type="audio/ogg")
        body = await (await http.post("/api/turn", data=form)).json()
        assert "good morning" in body["user_input"]["transcript"].lower()

        form = aiohttp.FormData({"user": USER})
        form.add_field("audio", b"this is not audio", filename="x.ogg", content_type="audio/ogg")
        bad = await http.post("/api/turn", data=form)
        assert bad.status == 422 and "couldn't read that audio" in (await bad.json())["error"]

        form = aiohttp.FormData({"user": USER, "text": "look"})
        form.add_field("image", b"%PDF-1.7", filename="selfie.jpg", content_type="image/jpeg")
        bad = await http.post("/api/turn", data=form)
        assert bad.status == 422 and "picture" in (await bad.json())["error"]

        anonymous = await http.post("/api/turn", data=aiohttp.FormData({"user": "x", "text": "hi"}))
        assert anonymous.status == 400

        command = await http.post("/api/turn", data=aiohttp.FormData({"user": USER, "text": "/persona tutor"}))
        assert (await command.json())["response"] == "Okay, from now on I'm your tutor."

    run(_serve(settings, scenario))


def test_beside_a_platform_only_the_admin_page_is_served_and_its_api_wants_the_token(settings):
    from pydantic import SecretStr

    admin_settings = settings.model_copy(update={"admin_token": SecretStr("the-admin-token")})

    async def scenario(http):
        assert (await http.get("/")).status == 404  # no web chat beside Telegram or Discord
        assert (await http.post("/api/turn", data={"user": USER})).status == 404
        assert (await http.get("/admin")).status == 200
        for wrong in ({}, {"Authorization": "Bearer the-admin-tokeN"}):
            refused = await http.get("/api/admin/users", headers=wrong)
            assert refused.status == 401 and "token" in (await refused.json())["error"]
        token = {"Authorization": "Bearer the-admin-token"}
        done = await http.post("/api/admin/users/discord:77", json={"action": "mute", "duration": "2h"}, headers=token)
        assert done.status == 200 and (await done.json())["words"].startswith("discord:77 muted until")
        bad = await http.post("/api/admin/users/discord:77", json={"action": "mute", "duration": "soon"}, headers=token)
        assert bad.status == 400 and "soon" in (await bad.json())["error"]
        users = (await (await http.get("/api/admin/users", headers=token)).json())["result"]
        assert users[0]["user"] == "discord:77" and users[0]["muted_until"]

    run(_serve(admin_settings, scenario, chat_page=False))
    # Without a token there is no admin page at all.
    run(_serve(settings, lambda http: _status(http, "/admin", 404)))


async def _status(http, path, expected):
    assert (await http.get(path)).status == expected


def test_the_admin_page_comes_up_beside_telegram_when_a_token_is_set(settings):
    from pydantic import SecretStr

    from bots.web.server import WebChat

    telegram = settings.model_copy(update={"telegram_bot_token": SecretStr("123:abc")})
    chat = wiring.chat(telegram)
    try:
        assert not any(isinstance(door, WebChat) for door in wiring.doors(telegram, chat))
        with_admin = telegram.model_copy(update={"admin_token": SecretStr("the-admin-token")})
        [admin_page] = [door for door in wiring.doors(with_admin, chat) if isinstance(door, WebChat)]
        assert admin_page.chat_page is False
    finally:
        chat.queue.close()

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


async def _serve(settings, scenario):
    chat = wiring.chat(settings)
    server = TestServer(create_app(settings, chat))
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

"""The fake Telegram Bot API is faithful enough for the unmodified PTB and aiogram to run on it.

Each library polls the fake on loopback, downloads a user's voice note, answers with a voice
note and a text, meets a duplicate delivery and a 429; the fake's own rules (long polling,
privacy mode in groups, errors) are checked over plain HTTP, as any client would see them.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import struct
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from bots.fake_telegram import BOT_ID, FakeTelegram

pytest.importorskip("telegram", reason="python-telegram-bot is not installed")
pytest.importorskip("aiogram", reason="aiogram is not installed")

USER = 42


def _ogg_crc(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7 if crc & 0x80000000 else crc << 1) & 0xFFFFFFFF
    return crc


def _ogg_page(packets: list[bytes], granule: int, sequence: int, flags: int) -> bytes:
    lacing = b"".join(bytes([255] * (len(p) // 255) + [len(p) % 255]) for p in packets)
    page = struct.pack("<4sBBqIIIB", b"OggS", 0, flags, granule, 1, sequence, 0, len(lacing))
    page += lacing + b"".join(packets)
    return page[:22] + struct.pack("<I", _ogg_crc(page)) + page[26:]


def ogg_opus(seconds: float) -> bytes:
    """A real OGG/Opus file of silence (20 ms CELT silence frames), as a voice note is."""
    frames, pre_skip = int(seconds * 50), 312
    head = b"OpusHead" + struct.pack("<BBHIhB", 1, 1, pre_skip, 48000, 0, 0)
    tags = b"OpusTags" + struct.pack("<I", 4) + b"test" + struct.pack("<I", 0)
    return (_ogg_page([head], 0, 0, 2) + _ogg_page([tags], 0, 1, 0)
            + _ogg_page([b"\xf8\xff\xfe"] * frames, pre_skip + frames * 960, 2, 4))


VOICE, REPLY = ogg_opus(3), ogg_opus(1)


def bot_api(tg: FakeTelegram, method: str, token: str | None = None, **params) -> tuple[int, dict]:
    """A Bot API call over plain HTTP with a JSON body: (HTTP status, envelope)."""
    request = urllib.request.Request(f"{tg.api_url}/bot{token or tg.token}/{method}",
                                     data=json.dumps(params).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


async def until(condition, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def check_conversation(tg: FakeTelegram, voice: dict, downloads: list[bytes], start: list[str]) -> float:
    """What both libraries must have done for a voice note then a text; returns when the voice
    update was confirmed."""
    calls = tg.calls
    first_poll = next(i for i, call in enumerate(calls) if call.method == "getUpdates")
    assert [call.method for call in calls[:first_poll + 1]] == start
    assert [u["update_id"] for u in calls[first_poll].result] == [voice["update_id"]]
    handled = [call.method for call in calls[first_poll + 1:] if call.method != "getUpdates"]
    assert handled[:4] == ["sendChatAction", "getFile", "sendVoice", "sendMessage"]

    assert downloads == [VOICE]  # the user's voice note, byte for byte, through getFile
    assert tg.downloads == [tg.sent("getFile")[0].result["file_path"]]
    [reply] = tg.sent("sendVoice")
    assert reply.params["chat_id"] == USER
    _, _, audio = reply.upload("voice")
    assert audio == REPLY and audio.startswith(b"OggS") and b"OpusHead" in audio
    assert reply.result["voice"]["mime_type"] == "audio/ogg"
    assert reply.result["voice"]["duration"] == 1
    assert tg.sent("sendMessage")[0].params == {"chat_id": USER, "text": "echo: hello"}
    # The library confirms the voice update by asking for the next one.
    return next(call.time for call in calls if call.method == "getUpdates"
                and call.params.get("offset", 0) > voice["update_id"])


def test_python_telegram_bot_end_to_end():
    from telegram.error import RetryAfter
    from telegram.ext import Application, MessageHandler, filters

    with FakeTelegram() as tg:
        downloads: list[bytes] = []
        errors: list[Exception] = []

        async def on_voice(update, context):
            await context.bot.send_chat_action(update.effective_chat.id, "record_voice")
            file = await update.message.voice.get_file()
            downloads.append(bytes(await file.download_as_bytearray()))
            await update.message.reply_voice(REPLY, duration=1)

        async def on_text(update, context):
            await update.message.reply_text(f"echo: {update.message.text}")

        async def on_error(update, context):
            errors.append(context.error)

        app = (Application.builder().token(tg.token).base_url(f"{tg.api_url}/bot")
               .base_file_url(f"{tg.api_url}/file/bot").build())
        app.add_handler(MessageHandler(filters.VOICE, on_voice))
        app.add_handler(MessageHandler(filters.TEXT, on_text))
        app.add_error_handler(on_error)

        async def scenario() -> float:
            async with app:
                await app.bot.set_my_commands([("voice", "Train your voice")])
                await app.start()
                voice = tg.send_voice(USER, VOICE, duration=3)  # waiting before the first poll
                await app.updater.start_polling(poll_interval=0.0, timeout=1)
                try:
                    await tg.wait_for_async("sendVoice")
                    tg.send_text(USER, "hello")
                    await tg.wait_for_async("sendMessage")
                    confirmed = check_conversation(
                        tg, voice, downloads, ["getMe", "setMyCommands", "deleteWebhook", "getUpdates"])

                    # Delivered again after it was confirmed: PTB handles it a second time.
                    tg.redeliver(voice)
                    await tg.wait_for_async("sendVoice", 2)
                    redelivered = [c for c in tg.sent("getUpdates") if c.time > confirmed and c.result]
                    assert redelivered[0].result == [voice]

                    # A 429 on a send reaches the error handler as RetryAfter; PTB does not retry it.
                    tg.fail_next("sendMessage")
                    tg.send_text(USER, "again")
                    await until(lambda: errors)
                    assert isinstance(errors[0], RetryAfter)
                    assert errors[0].retry_after in (1, datetime.timedelta(seconds=1))
                    # A 429 on getUpdates is retried after retry_after (plus PTB's 0.5 s slack).
                    tg.fail_next("getUpdates")
                    await tg.wait_for_async("getUpdates", ok=False)
                    tg.send_text(USER, "after")
                    await tg.wait_for_async("sendMessage", 2, ok=True)
                    [failed] = tg.sent("getUpdates", ok=False)
                    retry = next(c for c in tg.sent("getUpdates") if c.time > failed.time)
                    assert retry.time - failed.time >= 1
                    assert [c.params["text"] for c in tg.sent("sendMessage")] == [
                        "echo: hello", "echo: again", "echo: after"]
                    assert [c.ok for c in tg.sent("sendMessage")] == [True, False, True]
                    assert len(tg.sent("sendVoice")) == 2  # the duplicate was confirmed, not repeated
                finally:
                    stopping = time.monotonic()
                    await app.updater.stop()
                    await app.stop()
            return stopping

        stopping = asyncio.run(scenario())
        # On stop PTB confirms what it handled with one last, immediate getUpdates (a long poll
        # may still start while it stops).
        after = [call for call in tg.calls if call.time >= stopping]
        assert {call.method for call in after} == {"getUpdates"} and after[-1].params["timeout"] == 0
        last = after[-1]
        delivered = [update["update_id"] for call in tg.sent("getUpdates") for update in call.result or []]
        assert last.params["offset"] == max(delivered) + 1
        assert tg.unknown == []


def test_aiogram_end_to_end():
    from aiogram import Bot, Dispatcher, F, Router
    from aiogram.client.session.aiohttp import AiohttpSession
    from aiogram.client.telegram import TelegramAPIServer
    from aiogram.exceptions import TelegramRetryAfter
    from aiogram.types import BotCommand, BufferedInputFile, ErrorEvent, Message

    with FakeTelegram() as tg:
        downloads: list[bytes] = []
        errors: list[Exception] = []
        router = Router()

        @router.message(F.voice)
        async def on_voice(message: Message, bot: Bot):
            await bot.send_chat_action(message.chat.id, "record_voice")
            downloads.append((await bot.download(message.voice)).read())
            await message.answer_voice(BufferedInputFile(REPLY, "reply.ogg"), duration=1)

        @router.message(F.text)
        async def on_text(message: Message):
            await message.answer(f"echo: {message.text}")

        @router.errors()
        async def on_error(event: ErrorEvent):
            errors.append(event.exception)

        async def scenario() -> float:
            bot = Bot(tg.token, session=AiohttpSession(api=TelegramAPIServer.from_base(tg.api_url)))
            dispatcher = Dispatcher()
            dispatcher.include_router(router)
            await bot.set_my_commands([BotCommand(command="voice", description="Train your voice")])
            voice = tg.send_voice(USER, VOICE, duration=3)
            polling = asyncio.create_task(
                dispatcher.start_polling(bot, handle_signals=False, polling_timeout=1))
            try:
                await tg.wait_for_async("sendVoice")
                tg.send_text(USER, "hello")
                await tg.wait_for_async("sendMessage")
                confirmed = check_conversation(tg, voice, downloads, ["setMyCommands", "getMe", "getUpdates"])
                # aiogram asks only for the update types its handlers use, and uploads by attach://.
                assert tg.sent("getUpdates")[0].params["allowed_updates"] == ["message"]
                reply = tg.sent("sendVoice")[0]
                assert reply.params["voice"].startswith("attach://")
                assert reply.files[reply.params["voice"].removeprefix("attach://")][0] == "reply.ogg"

                tg.redeliver(voice)
                await tg.wait_for_async("sendVoice", 2)
                redelivered = [c for c in tg.sent("getUpdates") if c.time > confirmed and c.result]
                assert redelivered[0].result == [voice]

                # A 429 on a send reaches the error handlers as TelegramRetryAfter, not retried.
                tg.fail_next("sendMessage")
                tg.send_text(USER, "again")
                await until(lambda: errors)
                assert isinstance(errors[0], TelegramRetryAfter) and errors[0].retry_after == 1
                # A 429 on getUpdates is retried after aiogram's own backoff (about 1 s).
                tg.fail_next("getUpdates")
                await tg.wait_for_async("getUpdates", ok=False)
                tg.send_text(USER, "after")
                await tg.wait_for_async("sendMessage", 2, ok=True)
                assert [c.ok for c in tg.sent("sendMessage")] == [True, False, True]
                assert len(tg.sent("sendVoice")) == 2
            finally:
                stopping = time.monotonic()
                await dispatcher.stop_polling()
                await polling  # also closes the bot's session
            return stopping

        stopping = asyncio.run(scenario())
        assert [call.method for call in tg.calls if call.time >= stopping] == []  # nothing on stop
        assert tg.unknown == []


def test_python_telegram_bot_sends_every_kind_of_file():
    from telegram import Bot
    from telegram.error import BadRequest

    photo = (Path(__file__).parent / "data" / "smiling_face.jpg").read_bytes()
    with FakeTelegram() as tg:
        tg.send_text(USER, "hi")  # the bot can only write to a user who wrote first

        async def scenario():
            async with Bot(tg.token, base_url=f"{tg.api_url}/bot", base_file_url=f"{tg.api_url}/file/bot") as bot:
                voice = await bot.send_voice(USER, VOICE)
                again = await bot.send_voice(USER, voice.voice.file_id)  # by file_id: no upload
                picture = await bot.send_photo(USER, photo, caption="you")
                document = await bot.send_document(USER, b"%PDF-1.4 notes", filename="notes.pdf")
                audio = await bot.send_audio(USER, VOICE, filename="song.ogg", title="Song")
                downloaded = await (await bot.get_file(picture.photo[-1].file_id)).download_as_bytearray()
                await bot.set_my_commands([("voice", "Train your voice")], language_code="en")
                assert [c.command for c in await bot.get_my_commands(language_code="en")] == ["voice"]
                assert await bot.get_my_commands() == ()  # another scope / language
                with pytest.raises(BadRequest, match="(?i)bot_command_invalid"):  # PTB recases it
                    await bot.set_my_commands([("Voice!", "Train your voice")])
                return voice, again, picture, document, audio, bytes(downloaded)

        voice, again, picture, document, audio, downloaded = asyncio.run(scenario())
        assert tg.sent("sendVoice")[0].result["voice"]["duration"] == 3  # read from the OGG/Opus file
        assert again.voice.file_unique_id == voice.voice.file_unique_id and tg.sent("sendVoice")[1].files == {}
        assert (picture.photo[-1].width, picture.photo[-1].height, picture.caption) == (240, 240, "you")
        assert downloaded == photo
        assert (document.document.file_name, document.document.mime_type) == ("notes.pdf", "application/pdf")
        assert (audio.audio.title, audio.audio.mime_type) == ("Song", "audio/ogg")
        assert tg.unknown == []


def test_parameters_arrive_in_every_encoding():
    with FakeTelegram() as tg:
        tg.send_text(USER, "hi")
        base = f"{tg.api_url}/bot{tg.token}"
        with urllib.request.urlopen(f"{base}/sendMessage?chat_id={USER}&text=123", timeout=10) as response:
            assert json.load(response)["result"]["text"] == "123"  # text stays text, even if it looks like JSON
        keyboard = {"inline_keyboard": [[{"text": "OK", "callback_data": "ok"}]]}
        form = urllib.parse.urlencode({"chat_id": USER, "text": "true", "reply_markup": json.dumps(keyboard)})
        with urllib.request.urlopen(f"{base}/sendMessage", data=form.encode(), timeout=10) as response:
            assert json.load(response)["result"]["reply_markup"] == keyboard
        assert [call.params for call in tg.sent("sendMessage")] == [
            {"chat_id": USER, "text": "123"}, {"chat_id": USER, "text": "true", "reply_markup": keyboard}]


def test_unknown_method_is_404_and_recorded():
    with FakeTelegram() as tg:
        assert bot_api(tg, "logOut") == (404, {"ok": False, "error_code": 404, "description": "Not Found"})
        assert [call.method for call in tg.unknown] == ["logOut"]
        assert bot_api(tg, "GETME")[1]["result"]["username"] == "heartline_test_bot"  # any case
        assert [call.method for call in tg.unknown] == ["logOut"]


def test_wrong_token_is_401():
    with FakeTelegram() as tg:
        wrong = f"{BOT_ID}:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
        assert bot_api(tg, "getMe", token=wrong) == (
            401, {"ok": False, "error_code": 401, "description": "Unauthorized"})


def test_a_webhook_makes_get_updates_409_until_deleted():
    with FakeTelegram() as tg:
        assert bot_api(tg, "setWebhook", url="http://example.org/hook")[0] == 400  # HTTPS only
        assert bot_api(tg, "setWebhook", url="https://example.org/hook")[1] == {
            "ok": True, "result": True, "description": "Webhook was set"}
        status, body = bot_api(tg, "getUpdates")
        assert status == 409 and body["description"].startswith("Conflict: can't use getUpdates")
        assert bot_api(tg, "getWebhookInfo")[1]["result"]["url"] == "https://example.org/hook"
        assert bot_api(tg, "deleteWebhook")[1]["description"] == "Webhook was deleted"
        assert bot_api(tg, "getUpdates") == (200, {"ok": True, "result": []})


def test_get_file_refuses_files_over_20_mb():
    with FakeTelegram() as tg:
        update = tg.send_document(USER, bytes(25 * 1024 * 1024), "big.bin", "application/octet-stream")
        document = update["message"]["document"]
        assert document["file_size"] == 25 * 1024 * 1024
        assert bot_api(tg, "getFile", file_id=document["file_id"]) == (
            400, {"ok": False, "error_code": 400, "description": "Bad Request: file is too big"})
        assert bot_api(tg, "getFile", file_id="nonsense")[1]["description"] == "Bad Request: invalid file_id"


def test_long_poll_waits_confirms_and_yields_to_a_newer_poller():
    with FakeTelegram() as tg:
        threading.Timer(0.3, tg.send_text, (USER, "late")).start()
        began = time.monotonic()
        status, body = bot_api(tg, "getUpdates", timeout=5)
        assert status == 200 and body["result"][0]["message"]["text"] == "late"
        assert 0.2 < time.monotonic() - began < 3  # answered when the update came, not at timeout

        first = body["result"][0]["update_id"]
        second = tg.send_text(USER, "two")
        assert second["update_id"] == first + 1
        assert bot_api(tg, "getUpdates", limit=1)[1]["result"][0]["update_id"] == first  # unconfirmed
        assert [u["update_id"] for u in bot_api(tg, "getUpdates", offset=first + 1)[1]["result"]] == [first + 1]

        # allowed_updates sticks until changed; updates of other types are dropped.
        assert bot_api(tg, "getUpdates", offset=first + 2, allowed_updates=["callback_query"])[1]["result"] == []
        tg.send_text(USER, "ignored")
        assert bot_api(tg, "getUpdates")[1]["result"] == []
        assert bot_api(tg, "getUpdates", allowed_updates=[])[1]["result"] == []  # it was dropped

        # A second poller ends the first one with 409, as when two bot instances run.
        answers: list = []
        waiting = threading.Thread(target=lambda: answers.append(bot_api(tg, "getUpdates", timeout=5)))
        waiting.start()
        time.sleep(0.2)  # the first poll is waiting
        assert bot_api(tg, "getUpdates")[0] == 200
        waiting.join(5)
        status, body = answers[0]
        assert status == 409 and "terminated by other getUpdates request" in body["description"]


def test_groups_deliver_only_what_privacy_mode_lets_through():
    with FakeTelegram() as tg:
        assert tg.send_text(7, "just chatting", chat_type="group") is None
        assert tg.send_command(7, "/start@other_bot", chat_type="group") is None

        mention = tg.send_text(7, "😀 @heartline_test_bot how are you?", chat_type="group")
        assert mention["message"]["chat"] == {"id": -4000000001, "type": "group", "title": "Heartline testers"}
        # Offsets count UTF-16 code units: the emoji is two.
        assert mention["message"]["entities"] == [{"type": "mention", "offset": 3, "length": 19}]
        command = tg.send_command(7, "/voice train", chat_type="group")
        assert command["message"]["entities"] == [{"type": "bot_command", "offset": 0, "length": 6}]

        mention_id = mention["message"]["message_id"]
        status, body = bot_api(tg, "sendMessage", chat_id=-4000000001, text="Hi!",
                               reply_parameters={"message_id": mention_id})
        assert status == 200 and body["result"]["reply_to_message"]["message_id"] == mention_id
        _, orphan = bot_api(tg, "sendMessage", chat_id=-4000000001, text="Hi!",
                            reply_parameters={"message_id": 999})
        assert orphan["description"] == "Bad Request: message to be replied not found"
        reply = tg.send_text(7, "thanks", chat_type="group", reply_to_bot=True)
        assert reply["message"]["reply_to_message"]["message_id"] == body["result"]["message_id"]
        forwarded = tg.send_voice(USER, VOICE, duration=3, forwarded=True)
        assert forwarded["message"]["forward_origin"]["type"] == "hidden_user"
        assert forwarded["message"]["voice"]["mime_type"] == "audio/ogg"

        # The bot can only write where a user wrote to it, within Telegram's limits.
        assert bot_api(tg, "sendMessage", chat_id=999, text="hi")[1]["description"] == (
            "Bad Request: chat not found")
        assert bot_api(tg, "sendMessage", chat_id=USER, text="x" * 4097)[1]["description"] == (
            "Bad Request: message is too long")
        assert bot_api(tg, "sendChatAction", chat_id=USER, action="singing")[0] == 400

"""The Telegram front door on aiogram (HEARTLINE_TELEGRAM_LIBRARY=aiogram)."""

from __future__ import annotations

import asyncio
import logging

from bots.telegram import COMMANDS, TelegramDoor

log = logging.getLogger(__name__)


class AiogramTelegram(TelegramDoor):
    async def start(self) -> None:
        from aiogram import Bot, Dispatcher, Router
        from aiogram.client.session.aiohttp import AiohttpSession
        from aiogram.client.telegram import TelegramAPIServer
        from aiogram.types import BotCommand

        s = self.settings
        session = (AiohttpSession(api=TelegramAPIServer.from_base(s.telegram_api_url))
                   if s.telegram_api_url else None)
        self.bot = Bot(s.telegram_bot_token.get_secret_value(), session=session)
        router = Router()
        router.message()(self.on_message)
        self.dispatcher = Dispatcher()
        self.dispatcher.include_router(router)
        me = await self.bot.get_me()
        self.bot_id, self.bot_username = me.id, me.username
        await self.bot.set_my_commands([BotCommand(command=c, description=d) for c, d in COMMANDS])
        self._runner = None
        if s.telegram_webhook_url:
            await self._start_webhook()
        else:
            # aiogram never deletes a webhook itself, and while one is set polling gets 409 forever.
            await self.bot.delete_webhook()
            self._polling = asyncio.create_task(self.dispatcher.start_polling(
                self.bot, handle_signals=False, close_bot_session=False, allowed_updates=["message"]))
        log.info("Telegram (aiogram) connected as @%s", self.bot_username)

    async def _start_webhook(self) -> None:
        from urllib.parse import urlparse

        from aiogram.webhook.aiohttp_server import SimpleRequestHandler
        from aiohttp import web

        s = self.settings
        secret = s.telegram_webhook_secret.get_secret_value() if s.telegram_webhook_secret else None
        app = web.Application()
        SimpleRequestHandler(self.dispatcher, self.bot, secret_token=secret).register(
            app, path=urlparse(s.telegram_webhook_url).path or "/")
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, s.telegram_webhook_host, s.telegram_webhook_port).start()
        await self.bot.set_webhook(s.telegram_webhook_url, secret_token=secret,
                                   allowed_updates=["message"])

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()
        else:
            await self.dispatcher.stop_polling()
            await self._polling
        await self.bot.session.close()

    async def download(self, file_id: str) -> bytes:
        file = await self.bot.get_file(file_id)
        return (await self.bot.download_file(file.file_path)).read()

    async def send_voice(self, chat_id, ogg, duration, caption, reply_to) -> None:
        from aiogram.types import BufferedInputFile

        await self.bot.send_voice(chat_id, BufferedInputFile(ogg, "reply.ogg"), duration=duration,
                                  caption=caption, reply_parameters=_reply(reply_to))

    async def send_text(self, chat_id, text, reply_to) -> None:
        await self.bot.send_message(chat_id, text, reply_parameters=_reply(reply_to))

    async def chat_action(self, chat_id, action) -> None:
        await self.bot.send_chat_action(chat_id, action)

    def retry_after(self, error: Exception) -> float | None:
        from aiogram.exceptions import TelegramRetryAfter

        return float(error.retry_after) if isinstance(error, TelegramRetryAfter) else None


def _reply(message_id: int | None):
    from aiogram.types import ReplyParameters

    return ReplyParameters(message_id=message_id, allow_sending_without_reply=True) if message_id else None

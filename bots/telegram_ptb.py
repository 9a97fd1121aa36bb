"""The Telegram front door on python-telegram-bot (the default library)."""

from __future__ import annotations

import datetime
import logging

from bots.telegram import COMMANDS, TelegramDoor

log = logging.getLogger(__name__)


class PtbTelegram(TelegramDoor):
    async def start(self) -> None:
        from telegram.ext import Application, MessageHandler, filters

        s = self.settings
        builder = Application.builder().token(s.telegram_bot_token.get_secret_value())
        if s.telegram_api_url:
            builder = builder.base_url(f"{s.telegram_api_url}/bot").base_file_url(
                f"{s.telegram_api_url}/file/bot")
        # Turns take seconds; one user's turn must not hold up everyone else's.
        self.app = builder.concurrent_updates(True).build()
        self.app.add_handler(MessageHandler(filters.UpdateType.MESSAGE, self._on_update))
        await self.app.initialize()  # getMe
        self.bot_id, self.bot_username = self.app.bot.id, self.app.bot.username
        await self.app.bot.set_my_commands(COMMANDS)
        await self.app.start()
        if s.telegram_webhook_url:
            await self.app.updater.start_webhook(
                listen=s.telegram_webhook_host, port=s.telegram_webhook_port,
                url_path=_path_of(s.telegram_webhook_url), webhook_url=s.telegram_webhook_url,
                secret_token=s.telegram_webhook_secret.get_secret_value() if s.telegram_webhook_secret else None,
                allowed_updates=["message"],
            )
        else:
            await self.app.updater.start_polling(allowed_updates=["message"])
        log.info("Telegram (python-telegram-bot) connected as @%s", self.bot_username)

    async def stop(self) -> None:
        await self.app.updater.stop()
        await self.app.stop()
        await self.app.shutdown()

    async def _on_update(self, update, context) -> None:
        await self.on_message(update.message)

    async def download(self, file_id: str) -> bytes:
        # File.file_path is a URL containing the bot token: never log it.
        file = await self.app.bot.get_file(file_id)
        return bytes(await file.download_as_bytearray())

    async def send_voice(self, chat_id, ogg, duration, caption, reply_to) -> None:
        await self.app.bot.send_voice(chat_id, voice=ogg, duration=duration, caption=caption,
                                      reply_parameters=_reply(reply_to))

    async def send_text(self, chat_id, text, reply_to) -> None:
        await self.app.bot.send_message(chat_id, text, reply_parameters=_reply(reply_to))

    async def chat_action(self, chat_id, action) -> None:
        await self.app.bot.send_chat_action(chat_id, action)

    def retry_after(self, error: Exception) -> float | None:
        from telegram.error import RetryAfter

        if not isinstance(error, RetryAfter):
            return None
        delay = error.retry_after
        return delay.total_seconds() if isinstance(delay, datetime.timedelta) else float(delay)


def _reply(message_id: int | None):
    from telegram import ReplyParameters

    return ReplyParameters(message_id, allow_sending_without_reply=True) if message_id else None


def _path_of(url: str) -> str:
    from urllib.parse import urlparse

    return urlparse(url).path.lstrip("/")

"""`heartline run`: every front door whose configuration is present, in one event loop."""

from __future__ import annotations

import asyncio
import signal
from typing import Protocol

from bots.chat import Chat
from config.settings import Settings
from config.wiring import open_storage
from storage.outbox import Outbox
from storage.users import UserStore
from storage.voices import VoiceProfileStore
from workers.queues import EmbeddedQueue, make_queue


class Door(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


def make_chat(settings: Settings) -> Chat:
    storage = open_storage(settings)
    queue = make_queue(settings)
    if isinstance(queue, EmbeddedQueue):
        queue.warm_up()  # load the models now, so the first message does not wait for them
    return Chat(settings, queue, UserStore(storage.sessions, storage.blobs),
                VoiceProfileStore(storage.sessions, storage.blobs), Outbox(storage.sessions))


def doors_for(settings: Settings, chat: Chat) -> list[Door]:
    from bots.web.server import WebChat

    doors: list[Door] = []
    if settings.telegram_bot_token is not None:
        from bots.telegram import make_telegram_door

        doors.append(make_telegram_door(settings, chat))
    if settings.discord_bot_token is not None:
        from bots.discord_door import DiscordDoor

        doors.append(DiscordDoor(settings, chat))
    if not doors:
        doors.append(WebChat(settings, chat))
    return doors


async def run(settings: Settings) -> None:
    doors = doors_for(settings, make_chat(settings))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    started: list[Door] = []
    try:
        for door in doors:
            await door.start()
            started.append(door)
        await stop.wait()
    finally:
        for door in reversed(started):
            await door.stop()

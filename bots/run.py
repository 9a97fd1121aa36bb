"""`heartline run`: every front door whose configuration is present, in one event loop."""

from __future__ import annotations

import asyncio
import signal
from typing import Protocol

from config import wiring
from config.settings import Settings


class Door(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


async def run(settings: Settings) -> None:
    doors = wiring.doors(settings, wiring.chat(settings))
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

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
    chat = wiring.chat(settings)
    doors = wiring.doors(settings, chat)
    monitor = _monitor(settings, chat) if settings.metrics_port is not None else None
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
        if monitor is not None:
            monitor.shutdown()


def _monitor(settings: Settings, chat):
    """Health, readiness and metrics of this bot process; with the embedded queue it also runs
    the jobs, so it is ready once its models are loaded."""
    from workers import jobs, monitoring
    from workers.queues import EmbeddedQueue

    runs_jobs = isinstance(chat.queue, EmbeddedQueue)
    monitoring.watch_queue_and_outbox(chat.queue.waiting, chat.outbox.pending)
    checks = monitoring.readiness(settings, jobs.pipeline_loaded if runs_jobs else None)
    return monitoring.serve(settings.metrics_host, settings.metrics_port, checks)

"""The second half of every front door: send what the workers left in the outbox.

One asyncio task per door, not a thread per waiting message. It claims its platform's due
answers, sends each, and marks it sent. A platform fault is retried with backoff (or after the
platform's own `retry_after`); a voice note the user's settings refuse becomes words; the last
try sends the words alone, so a reply that cannot be spoken is still read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from core.delivery import Delivery
from storage.outbox import Outbox
from workers import monitoring

log = logging.getLogger(__name__)

POLL_S = 0.25  # how soon a finished answer leaves; one indexed query per tick
MAX_BACKOFF_S = 120.0
PURGE_EVERY_S = 3600.0


@dataclass(frozen=True)
class Fault:
    """What a platform error means for sending again."""

    retry_after: float | None = None  # the platform said when to try again
    voice_refused: bool = False  # the words may still go, as text
    permanent: bool = False  # trying again cannot help (the bot was blocked, the chat is gone)


Send = Callable[[Delivery, bool], Awaitable[None]]  # (delivery, with_voice)


def backoff(attempts: int) -> float:
    """Exponential with jitter, so senders that failed together do not retry together."""
    return min(MAX_BACKOFF_S, 2.0 ** attempts) * random.uniform(0.5, 1.0)


class Sender:
    def __init__(self, platform: str, outbox: Outbox, send: Send,
                 classify: Callable[[Exception], Fault], attempts: int = 5,
                 keep_s: float = 86400.0) -> None:
        self.platform = platform
        self.outbox = outbox
        self.send = send
        self.classify = classify
        self.attempts = attempts
        self.keep_s = keep_s
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name=f"heartline-sender-{self.platform}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def run(self) -> None:
        """Send until cancelled; a database that is briefly away delays answers, loses none."""
        last_purge = 0.0
        loop = asyncio.get_running_loop()
        while True:
            try:
                if loop.time() - last_purge > PURGE_EVERY_S:
                    await asyncio.to_thread(self.outbox.purge, self.keep_s)
                    last_purge = loop.time()
                due = await asyncio.to_thread(self.outbox.claim, self.platform)
                for delivery in due:
                    await self.deliver(delivery)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("the %s sender could not read the outbox; trying again", self.platform)
                due = []
            if not due:
                await asyncio.sleep(POLL_S)

    async def deliver(self, delivery: Delivery) -> None:
        last_try = delivery.attempts + 1 >= self.attempts
        with_voice = delivery.reply.voice is not None and not last_try
        try:
            await self._send(delivery, with_voice)
        except Exception as error:
            fault = self.classify(error)
            if fault.permanent or last_try:
                log.warning("gave up sending a %s answer after %d tries: %s", self.platform,
                            delivery.attempts + 1, type(error).__name__)
                await asyncio.to_thread(self.outbox.failed, delivery.key)
                monitoring.SENT.labels(self.platform, "failed").inc()
                return
            delay = fault.retry_after if fault.retry_after is not None else backoff(delivery.attempts)
            log.info("sending a %s answer failed (%s); trying again in %.1f s", self.platform,
                     type(error).__name__, delay)
            await asyncio.to_thread(self.outbox.retry_later, delivery.key, delay)
            monitoring.SENT.labels(self.platform, "retried").inc()
            return
        await asyncio.to_thread(self.outbox.sent, delivery.key)
        monitoring.SENT.labels(self.platform, "sent").inc()

    async def _send(self, delivery: Delivery, with_voice: bool) -> None:
        try:
            await self.send(delivery, with_voice)
        except Exception as error:
            if not (with_voice and self.classify(error).voice_refused):
                raise
            log.info("a %s chat refuses voice notes; sending the words", self.platform)
            await self.send(delivery, False)

"""Two ways to carry a turn to the job function: RQ on Redis, or an embedded in-process queue.

Both run `workers.jobs.process_turn`, retry a failed job the configured number of times, and
give one job per platform message however often the platform delivers it.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from threading import Lock
from typing import Protocol

from config.settings import Settings
from core.errors import InputError
from core.turn import Turn
from workers import jobs

log = logging.getLogger(__name__)


class JobFailed(RuntimeError):
    """The job failed after its retries; `job_id` is the reference in the worker's log."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"job {job_id} failed")
        self.job_id = job_id


class TurnHandle(Protocol):
    job_id: str

    def result(self, timeout: float) -> dict:
        """The turn's result; raises InputError, JobFailed or TimeoutError."""


class TurnQueue(Protocol):
    def submit(self, turn: Turn) -> TurnHandle: ...


def job_id_for(turn: Turn) -> str | None:
    """Same platform message, same job id: that is what makes a redelivery one job."""
    if not turn.message_id:
        return None
    key = f"{turn.platform}\0{turn.chat_id}\0{turn.message_id}"
    return "turn-" + hashlib.sha256(key.encode()).hexdigest()[:32]


def _unwrap(payload: dict) -> dict:
    if "error" in payload:
        raise InputError(payload["error"]["message"])
    return payload


class EmbeddedHandle:
    def __init__(self, job_id: str, future: Future) -> None:
        self.job_id = job_id
        self.future = future

    def result(self, timeout: float) -> dict:
        try:
            return _unwrap(self.future.result(timeout))
        except FutureTimeout:
            raise TimeoutError(f"job {self.job_id} still running after {timeout:.0f} s") from None


class EmbeddedQueue:
    """One worker thread in this process: the same job function, no Redis needed."""

    REMEMBERED_JOBS = 10_000

    def __init__(self, retries: int = 2) -> None:
        self.retries = retries
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="heartline-worker")
        self._jobs: OrderedDict[str, EmbeddedHandle] = OrderedDict()
        self._lock = Lock()
        self._count = 0

    def submit(self, turn: Turn) -> EmbeddedHandle:
        job_id = job_id_for(turn)
        with self._lock:
            if job_id and job_id in self._jobs:
                log.info("duplicate delivery of job %s ignored", job_id)
                return self._jobs[job_id]
            self._count += 1
            job_id = job_id or f"embedded-{self._count}"
            handle = EmbeddedHandle(job_id, self._executor.submit(self._run, job_id, turn))
            self._jobs[job_id] = handle
            while len(self._jobs) > self.REMEMBERED_JOBS:
                self._jobs.popitem(last=False)
        return handle

    def _run(self, job_id: str, turn: Turn) -> dict:
        for attempt in range(self.retries + 1):
            try:
                return jobs.process_turn(turn)
            except Exception:
                log.exception("job %s failed (attempt %d of %d)", job_id, attempt + 1, self.retries + 1)
        raise JobFailed(job_id)

    def warm_up(self) -> Future:
        """Load the models now, on the worker thread, so the first user does not wait."""
        return self._executor.submit(jobs.current_pipeline)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


class RedisHandle:
    FINAL = {"finished", "failed", "stopped", "canceled"}

    def __init__(self, job) -> None:
        self.job = job
        self.job_id = job.id

    def result(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            status = self.job.get_status(refresh=True)
            status = getattr(status, "value", status)
            if status == "finished":
                return _unwrap(self.job.return_value(refresh=True))
            if status in self.FINAL:
                raise JobFailed(self.job_id)
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {self.job_id} is {status} after {timeout:.0f} s")
            time.sleep(0.1)


class RedisQueue:
    def __init__(self, settings: Settings) -> None:
        from redis import Redis
        from rq import Queue

        self.connection = Redis.from_url(settings.redis_url)
        self.queue = Queue(settings.queue_name, connection=self.connection)
        self.settings = settings

    def workers_listening(self) -> int:
        from rq import Worker

        return Worker.count(connection=self.connection, queue=self.queue)

    def submit(self, turn: Turn) -> RedisHandle:
        from rq import Retry
        from rq.exceptions import DuplicateJobError
        from rq.job import Job

        job_id = job_id_for(turn)
        cfg = self.settings
        try:
            job = self.queue.enqueue(
                jobs.process_turn,
                turn,
                job_id=job_id,
                unique=job_id is not None,
                # RQ logs the description at info level: it must never contain the message.
                description=f"turn from {turn.platform}",
                job_timeout=cfg.job_timeout_s,
                result_ttl=cfg.result_ttl_s,
                failure_ttl=cfg.result_ttl_s,
                retry=Retry(max=cfg.job_retries, interval=cfg.job_retry_intervals_s)
                if cfg.job_retries else None,
            )
        except DuplicateJobError:
            log.info("duplicate delivery of job %s ignored", job_id)
            job = Job.fetch(job_id, connection=self.connection)
        return RedisHandle(job)


def make_queue(settings: Settings) -> TurnQueue:
    if settings.redis_url:
        return RedisQueue(settings)
    return EmbeddedQueue(retries=settings.job_retries)

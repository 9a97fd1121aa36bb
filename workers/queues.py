"""Two ways to carry a job to a worker: RQ on Redis, or an embedded in-process queue.

Both run the job functions in `workers.jobs`, retry a failed job the configured number of
times, and give one job per job id however often it is submitted (a platform redelivering a
message submits the same id again).
"""

from __future__ import annotations

import contextlib
import logging
import pickle
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from threading import Lock, Timer
from typing import TYPE_CHECKING, Any, Protocol

from config.settings import Settings
from core.errors import InputError
from core.turn import Turn
from workers import jobs, progress

if TYPE_CHECKING:
    from storage.journal import JobJournal

log = logging.getLogger(__name__)


class JobFailed(RuntimeError):
    """The job failed after its retries; `job_id` is the reference in the worker's log."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"job {job_id} failed")
        self.job_id = job_id


class QueueFull(RuntimeError):
    """More jobs are waiting than the workers can answer in reasonable time: say so now."""


class JobHandle(Protocol):
    job_id: str

    def result(self, timeout: float) -> Any:
        """The job's result; raises InputError, JobFailed or TimeoutError."""

    def progress(self) -> tuple[str, int, int] | None:
        """What the job last said of how far it is (`workers.progress.report`), if anything."""


class JobQueue(Protocol):
    def submit(self, job: Callable, *args: Any, job_id: str | None = None,
               description: str = "job", gpu: bool = False,
               on_failure: Callable | None = None) -> JobHandle:
        """Run `job(*args)` on a worker (a GPU worker when `gpu` and one is configured); if its
        last try fails, `on_failure(*args)` runs instead (a module-level function).
        `description` is logged: never put user content in it."""

    def waiting(self) -> int:
        """Jobs no worker has taken yet."""


def submit_turn(queue: JobQueue, turn: Turn, gpu: bool = False) -> JobHandle:
    # Same platform message, same job id: that is what makes a redelivery one job.
    return queue.submit(jobs.process_turn, turn, job_id=jobs.turn_key(turn),
                        description=f"turn from {turn.platform}", gpu=gpu,
                        on_failure=jobs.answer_failed)


def _unwrap(payload: Any) -> Any:
    if isinstance(payload, dict) and "error" in payload:
        raise InputError(payload["error"]["message"])
    return payload


class EmbeddedHandle:
    def __init__(self, job_id: str, future: Future, journaled: bool = False) -> None:
        self.job_id = job_id
        self.future = future
        self.journaled = journaled
        self.last_progress: tuple[str, int, int] | None = None

    def progress(self) -> tuple[str, int, int] | None:
        return self.last_progress

    def result(self, timeout: float) -> Any:
        try:
            return _unwrap(self.future.result(timeout))
        except FutureTimeout:
            raise TimeoutError(f"job {self.job_id} still running after {timeout:.0f} s") from None


class EmbeddedQueue:
    """One worker thread in this process: the same job functions, no Redis needed, and the same
    promises as RQ: a bounded backlog, retries after the configured intervals, dedup by job id,
    and, given a journal, jobs that outlive the process (a new one runs what it left)."""

    REMEMBERED_JOBS = 10_000

    def __init__(self, retries: int = 2, retry_intervals_s: Sequence[float] = (0,),
                 max_waiting: int = 100, journal: JobJournal | None = None) -> None:
        self.retries = retries
        self.retry_intervals_s = list(retry_intervals_s) or [0]
        self.max_waiting = max_waiting
        self.journal = journal
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="heartline-worker")
        self._jobs: OrderedDict[str, EmbeddedHandle] = OrderedDict()
        self._lock = Lock()
        self._count = 0
        self._waiting = 0
        if journal is not None:
            self._resume()

    def waiting(self) -> int:
        return self._waiting

    def _resume(self) -> None:
        """Run again, first, the jobs a process that was killed left unfinished."""
        for job_id, payload in self.journal.unfinished():
            try:
                job, args, on_failure, description = pickle.loads(payload)
            except Exception:  # written by a version whose job functions are gone
                log.warning("dropped unfinished job %s: this version cannot run it", job_id)
                self.journal.done(job_id)
                continue
            log.info("running job %s again: the last process stopped before it finished", job_id)
            self.submit(job, *args, job_id=job_id, description=description, on_failure=on_failure)

    def submit(self, job: Callable, *args: Any, job_id: str | None = None,
               description: str = "job", gpu: bool = False,
               on_failure: Callable | None = None) -> EmbeddedHandle:
        with self._lock:
            if job_id and job_id in self._jobs:
                log.info("duplicate submission of job %s ignored", job_id)
                return self._jobs[job_id]
            if self._waiting >= self.max_waiting:
                raise QueueFull(f"{self.max_waiting} jobs are waiting")
            journaled = bool(job_id) and self.journal is not None
            if journaled:  # kept before the door confirms the message
                self.journal.add(job_id, pickle.dumps((job, args, on_failure, description)))
            self._waiting += 1
            self._count += 1
            job_id = job_id or f"embedded-{self._count}"
            handle = self._jobs[job_id] = EmbeddedHandle(job_id, Future(), journaled)
            while len(self._jobs) > self.REMEMBERED_JOBS:
                self._jobs.popitem(last=False)
        self._executor.submit(self._run, handle, description, job, args, on_failure, 0)
        return handle

    def _run(self, handle: EmbeddedHandle, description: str, job: Callable, args: tuple,
             on_failure: Callable | None, attempt: int) -> None:
        if attempt == 0:
            with self._lock:
                self._waiting -= 1
        try:
            result = _reporting_to(handle, job, args)
            self._finished(handle)
            handle.future.set_result(result)
            return
        except Exception:
            log.exception("%s (job %s) failed, attempt %d of %d", description, handle.job_id,
                          attempt + 1, self.retries + 1)
        if attempt < self.retries:
            # Later, as RQ's retry intervals do, without holding the one worker thread meanwhile.
            delay = self.retry_intervals_s[min(attempt, len(self.retry_intervals_s) - 1)]
            timer = Timer(delay, self._retry, (handle, description, job, args, on_failure, attempt + 1))
            timer.daemon = True
            timer.start()
            return
        try:
            if on_failure is not None:
                on_failure(*args)
        finally:
            self._finished(handle)
            handle.future.set_exception(JobFailed(handle.job_id))

    def _finished(self, handle: EmbeddedHandle) -> None:
        if not handle.journaled:
            return
        try:
            self.journal.done(handle.job_id)
        except Exception:  # run again after a restart, the job finds its answer and stops
            log.exception("could not mark job %s done", handle.job_id)

    def _retry(self, *run_args) -> None:
        with contextlib.suppress(RuntimeError):  # the queue was closed meanwhile
            self._executor.submit(self._run, *run_args)

    def warm_up(self) -> Future:
        """Load the models now, on the worker thread, so the first user does not wait."""
        return self._executor.submit(jobs.current_pipeline)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _reporting_to(handle: EmbeddedHandle, job: Callable, args: tuple) -> Any:
    """`job(*args)`, its progress reports kept on its handle."""
    reporting = progress.embedded_reporter.set(lambda step: setattr(handle, "last_progress", step))
    try:
        return job(*args)
    finally:
        progress.embedded_reporter.reset(reporting)


class RedisHandle:
    FINAL = {"finished", "failed", "stopped", "canceled"}

    def __init__(self, job) -> None:
        self.job = job
        self.job_id = job.id

    def progress(self) -> tuple[str, int, int] | None:
        step = self.job.get_meta(refresh=True).get("progress")
        return tuple(step) if step else None

    def result(self, timeout: float) -> Any:
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
        self.gpu_queue = (Queue(settings.gpu_queue_name, connection=self.connection)
                          if settings.gpu_queue_name else self.queue)
        self.settings = settings

    def waiting(self) -> int:
        return self.queue.count + (self.gpu_queue.count if self.gpu_queue is not self.queue else 0)

    def workers_listening(self) -> int:
        from rq import Worker

        return Worker.count(connection=self.connection, queue=self.queue)

    def submit(self, job: Callable, *args: Any, job_id: str | None = None,
               description: str = "job", gpu: bool = False,
               on_failure: Callable | None = None) -> RedisHandle:
        from rq import Callback, Retry
        from rq.exceptions import DuplicateJobError
        from rq.job import Job

        cfg = self.settings
        queue = self.gpu_queue if gpu else self.queue
        if queue.count >= cfg.max_waiting_jobs:
            raise QueueFull(f"{cfg.max_waiting_jobs} jobs are waiting on {queue.name}")
        try:
            enqueued = queue.enqueue(
                job,
                *args,
                job_id=job_id,
                unique=job_id is not None,
                # RQ logs the description at info level: it must never contain user content.
                description=description,
                job_timeout=cfg.job_timeout_s,
                result_ttl=cfg.result_ttl_s,
                failure_ttl=cfg.result_ttl_s,
                retry=Retry(max=cfg.job_retries, interval=cfg.job_retry_intervals_s)
                if cfg.job_retries else None,
                # A job no worker took within a day is dropped; long before that, a worker
                # that takes a late turn tells the user it came too late (jobs.process_turn).
                ttl=cfg.outbox_keep_s,
                on_failure=Callback(_after_a_failed_try) if on_failure else None,
                meta={"on_failure": f"{on_failure.__module__}.{on_failure.__qualname__}"}
                if on_failure else None,
            )
        except DuplicateJobError:
            log.info("duplicate submission of job %s ignored", job_id)
            enqueued = Job.fetch(job_id, connection=self.connection)
        return RedisHandle(enqueued)


def _after_a_failed_try(job, connection, exc_type, exc, traceback) -> None:
    """RQ's failure callback, called after every failed try (a dead worker's too): the job's
    own handler runs once RQ will not try again."""
    from rq.utils import import_attribute

    if job.retries_left:
        return
    import_attribute(job.meta["on_failure"])(*job.args)


def make_queue(settings: Settings, journal: JobJournal | None = None) -> JobQueue:
    """RQ when Redis is configured; else the embedded queue, which keeps its jobs in `journal`
    (a bot's: jobs that must outlive the process) or in memory (a command's own)."""
    if settings.redis_url:
        return RedisQueue(settings)
    return EmbeddedQueue(settings.job_retries, settings.job_retry_intervals_s,
                         settings.max_waiting_jobs, journal)

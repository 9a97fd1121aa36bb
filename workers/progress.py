"""How far a long job is, told from inside it to whoever waits on its handle (the command line
shows it as a progress bar). Under RQ it rides in the job's meta, which any process can read;
the embedded queue hands each running job a place of its own on its handle."""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar

# Set by the embedded queue around each job it runs.
embedded_reporter: ContextVar[Callable[[tuple], None] | None] = ContextVar("embedded_reporter", default=None)


def report(what: str, done: int, total: int) -> None:
    """From inside a job: `done` of `total` steps of `what`."""
    step = (what, done, total)
    reporter = embedded_reporter.get()
    if reporter is not None:
        reporter(step)
        return
    from rq import get_current_job

    job = get_current_job()
    if job is not None:  # outside any queue (a test calling the job itself) there is no one to tell
        job.meta["progress"] = list(step)
        job.save_meta()

"""`heartline worker`: an RQ worker that loads the models once and keeps them.

It is a SimpleWorker (jobs run in the worker process itself): RQ's default forks a child per
job, which would either reload the models every time or share torch/CTranslate2 thread pools
across fork(), which is not safe.
"""

from __future__ import annotations

import logging

from config.settings import Settings
from workers import jobs

log = logging.getLogger(__name__)


def run_worker(settings: Settings, burst: bool = False) -> None:
    from redis import Redis
    from rq import Queue, SimpleWorker

    if not settings.redis_url:
        raise SystemExit("heartline worker needs HEARTLINE_REDIS_URL (without it, `heartline run` "
                         "processes messages in-process)")
    connection = Redis.from_url(settings.redis_url)
    jobs.current_pipeline()  # load every model before taking the first job
    worker = SimpleWorker([Queue(settings.queue_name, connection=connection)], connection=connection)
    log.info("worker ready on queue %r", settings.queue_name)
    worker.work(burst=burst, with_scheduler=True, logging_level=settings.log_level)

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


def run_worker(settings: Settings, burst: bool = False, gpu: bool = False) -> None:
    from redis import Redis
    from rq import Queue, SimpleWorker

    if not settings.redis_url:
        raise SystemExit("heartline worker needs HEARTLINE_REDIS_URL (without it, `heartline run` "
                         "processes messages in-process)")
    names = [settings.queue_name]
    if gpu:
        if not settings.gpu_queue_name:
            raise SystemExit("heartline worker --gpu needs HEARTLINE_GPU_QUEUE_NAME")
        names.insert(0, settings.gpu_queue_name)  # cloned-voice turns first, then any other work
    connection = Redis.from_url(settings.redis_url)
    jobs.current_pipeline()  # load every model before taking the first job
    worker = SimpleWorker([Queue(name, connection=connection) for name in names], connection=connection)
    log.info("worker ready on queues %s", ", ".join(names))
    worker.work(burst=burst, with_scheduler=True, logging_level=settings.log_level)

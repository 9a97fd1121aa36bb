"""`heartline worker`: an RQ worker that loads the models once and keeps them.

It runs jobs in the worker process itself (a SimpleWorker): RQ's default forks a child per job,
which would either reload the models every time or share torch/CTranslate2 thread pools across
fork(), which is not safe. A SimpleWorker has no parent process watching the job, so this one
keeps the job's heartbeat from a thread: a worker killed mid-job is seen dead within
DEAD_AFTER_S, and an idle worker puts its job back on the queue within MAINTENANCE_S more.
"""

from __future__ import annotations

import logging
import threading

from redis import Redis
from rq import Queue, SimpleWorker
from rq.worker import WorkerStatus

from config.settings import Settings
from workers import jobs, monitoring

log = logging.getLogger(__name__)

HEARTBEAT_S = 5  # a running job says it is alive this often
DEAD_AFTER_S = 20  # and its worker is taken for dead this long after it last did
MAINTENANCE_S = 10  # how often an idle worker looks for dead workers' jobs
WORKER_TTL_S = MAINTENANCE_S + 15  # RQ wakes an idle worker every (ttl - 15) s to do so


class ModelWorker(SimpleWorker):
    def execute_job(self, job, queue):
        execution = self.prepare_execution(job)
        done = threading.Event()
        beating = threading.Thread(target=self._keep_alive, args=(job, execution, done),
                                   name="heartline-heartbeat", daemon=True)
        beating.start()
        try:
            self.perform_job(job, queue, execution)
        finally:
            done.set()
            beating.join()
        self.set_state(WorkerStatus.IDLE)

    def get_heartbeat_ttl(self, job, working_time: float = 0.0) -> int:
        return DEAD_AFTER_S

    def _keep_alive(self, job, execution, done: threading.Event) -> None:
        while not done.wait(HEARTBEAT_S):
            try:
                self.maintain_heartbeats(job, execution)
            except Exception as error:  # Redis away a moment: the next beat may reach it
                log.warning("job heartbeat failed: %s", type(error).__name__)


def run_worker(settings: Settings, burst: bool = False, gpu: bool = False,
               metrics_port: int | None = None) -> None:
    if not settings.redis_url:
        raise SystemExit("heartline worker needs HEARTLINE_REDIS_URL (without it, `heartline run` "
                         "processes messages in-process)")
    names = [settings.queue_name]
    if gpu:
        if not settings.gpu_queue_name:
            raise SystemExit("heartline worker --gpu needs HEARTLINE_GPU_QUEUE_NAME")
        names.insert(0, settings.gpu_queue_name)  # cloned-voice turns first, then any other work
    connection = Redis.from_url(settings.redis_url)
    jobs.configure(settings)
    metrics_port = settings.metrics_port if metrics_port is None else metrics_port
    if metrics_port is not None:  # up before the models load: alive, and not ready until they are
        from config import wiring

        queues = [Queue(name, connection=connection) for name in names]
        monitoring.watch_queue_and_outbox(lambda: sum(q.count for q in queues),
                                          wiring.outbox(settings).pending)
        monitoring.serve(settings.metrics_host, metrics_port,
                         monitoring.readiness(settings, jobs.pipeline_loaded))
    jobs.current_pipeline()  # load every model before taking the first job
    worker = ModelWorker(
        [Queue(name, connection=connection) for name in names], connection=connection,
        worker_ttl=WORKER_TTL_S, maintenance_interval=MAINTENANCE_S,
        job_monitoring_interval=HEARTBEAT_S)
    log.info("worker ready on queues %s", ", ".join(names))
    worker.work(burst=burst, with_scheduler=True, logging_level=settings.log_level)

"""Turns through RQ on the real Redis server and through the embedded queue: same job, same result."""

from __future__ import annotations

import uuid

import pytest

from config.settings import Settings
from core.errors import InputError
from core.turn import Turn
from workers import jobs
from workers.queues import EmbeddedQueue, JobFailed, QueueFull, RedisQueue, submit_turn

RESULT_KEYS = {"user_input", "emotion_analysis", "response", "reply_audio", "safety", "metadata"}


class FlakyStore:
    """The real store, failing its first `failures` writes like a database restarting would."""

    def __init__(self, store, failures: int) -> None:
        self.store, self.failures, self.calls = store, failures, 0

    def __getattr__(self, name):
        return getattr(self.store, name)

    def save_turn(self, turn, result, mood_step=None):
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError("database went away")
        return self.store.save_turn(turn, result, mood_step)


@pytest.fixture()
def rq_queue(redis_url):
    queue = RedisQueue(Settings(redis_url=redis_url, queue_name=f"test-{uuid.uuid4().hex[:8]}",
                                job_retries=2, job_retry_intervals_s=[0]))
    yield queue
    rq = queue.queue
    job_ids = {*rq.get_job_ids(), *rq.finished_job_registry.get_job_ids(),
               *rq.failed_job_registry.get_job_ids()}
    for job_id in job_ids:
        queue.connection.delete(f"rq:job:{job_id}", f"rq:results:{job_id}")
    rq.delete(delete_jobs=True)
    for key in queue.connection.scan_iter(f"*{rq.name}*"):
        queue.connection.delete(key)


def work(queue: RedisQueue) -> None:
    from rq import SimpleWorker

    SimpleWorker([queue.queue], connection=queue.connection).work(burst=True)


def text_turn(**kwargs) -> Turn:
    return Turn(user_id=f"q-{uuid.uuid4().hex[:6]}", text="I just got the job I wanted!",
                want_voice=False, **kwargs)


def test_a_turn_through_rq_gives_the_pipeline_result(rq_queue, pipeline):
    handle = submit_turn(rq_queue, text_turn())
    work(rq_queue)
    result = handle.result(timeout=10)
    assert set(result) == RESULT_KEYS
    assert result["emotion_analysis"]["fused_emotion"]["primary_emotion"] == "joy"
    assert result["response"]


def test_a_failed_job_is_retried_and_the_turn_kept_once(rq_queue, pipeline, monkeypatch):
    flaky = FlakyStore(pipeline.stages.store, failures=1)
    monkeypatch.setattr(pipeline.stages, "store", flaky)
    handle = submit_turn(rq_queue, text_turn())
    work(rq_queue)
    result = handle.result(timeout=10)
    assert flaky.calls == 2
    handle.job.refresh()
    assert handle.job.retries_left == 1
    assert result["metadata"]["message_id"]


@pytest.mark.parametrize("kind", ["rq", "embedded"])
def test_a_job_that_keeps_failing_ends_failed_and_says_so(kind, rq_queue, pipeline, monkeypatch):
    monkeypatch.setattr(pipeline.stages, "store", FlakyStore(pipeline.stages.store, failures=99))
    queue = rq_queue if kind == "rq" else EmbeddedQueue(retries=2)
    handle = submit_turn(queue, text_turn(platform="telegram", chat_id="8", message_id=uuid.uuid4().hex))
    if kind == "rq":
        work(rq_queue)
    with pytest.raises(JobFailed):
        handle.result(timeout=60)
    assert pipeline.stages.store.calls == 3  # the first try and two retries
    # The user is told, once, rather than left waiting: the answer waits in the outbox.
    answer = jobs.current_outbox().get(handle.job_id)
    assert answer.reply.problem == "internal" and "error id" in answer.reply.text


def test_bad_input_is_answered_not_retried(rq_queue, pipeline):
    handle = submit_turn(rq_queue, Turn(user_id="q-bad", audio=b"not audio at all", audio_mime="audio/ogg"))
    work(rq_queue)
    with pytest.raises(InputError, match="couldn't read that audio"):
        handle.result(timeout=10)
    handle.job.refresh()
    assert handle.job.retries_left == 2


def test_a_redelivered_message_is_one_job(rq_queue):
    turn = text_turn(platform="telegram", chat_id="5", message_id=uuid.uuid4().hex)
    first, second = submit_turn(rq_queue, turn), submit_turn(rq_queue, turn)
    assert first.job_id == second.job_id
    assert rq_queue.queue.count == 1


def test_cloned_voice_turns_wait_for_a_gpu_worker_which_takes_them_first(redis_url, pipeline):
    from rq import Queue, SimpleWorker

    name = f"test-{uuid.uuid4().hex[:8]}"
    queue = RedisQueue(Settings(redis_url=redis_url, queue_name=name, gpu_queue_name=f"{name}-gpu"))
    try:
        cloned, plain = submit_turn(queue, text_turn(), gpu=True), submit_turn(queue, text_turn())
        assert (queue.gpu_queue.count, queue.queue.count) == (1, 1)
        SimpleWorker([queue.queue], connection=queue.connection).work(burst=True)  # a CPU worker
        assert plain.result(timeout=10)["response"] and queue.gpu_queue.count == 1
        gpu_worker = SimpleWorker([queue.gpu_queue, queue.queue], connection=queue.connection)
        submit_turn(queue, text_turn())
        gpu_worker.work(burst=True, max_jobs=1)
        assert cloned.result(timeout=10)["response"]  # its own queue first...
        assert queue.queue.count == 1  # ...then the shared one
    finally:
        for q in (queue.queue, queue.gpu_queue):
            Queue(q.name, connection=queue.connection).empty()
            q.delete(delete_jobs=True)


def test_the_embedded_queue_runs_the_same_job_with_retries_and_dedup(pipeline, monkeypatch):
    queue = EmbeddedQueue(retries=2)
    flaky = FlakyStore(pipeline.stages.store, failures=1)
    monkeypatch.setattr(pipeline.stages, "store", flaky)
    turn = text_turn(platform="web", chat_id="w", message_id="m1")
    first, second = submit_turn(queue, turn), submit_turn(queue, turn)
    assert first is second
    result = first.result(timeout=120)
    assert set(result) == RESULT_KEYS and flaky.calls == 2
    with pytest.raises(InputError):
        submit_turn(queue, Turn(user_id="e", image=None, text="")).result(timeout=60)
    queue.close()


def test_the_embedded_queue_is_bounded_and_retries_after_its_interval():
    import threading
    import time

    queue = EmbeddedQueue(retries=1, retry_intervals_s=[0.5], max_waiting=1)
    release, started = threading.Event(), threading.Event()

    def busy():
        started.set()
        release.wait(30)

    queue.submit(busy)
    started.wait(10)
    waiting = queue.submit(time.monotonic)  # waits its turn
    with pytest.raises(QueueFull):
        queue.submit(time.monotonic)
    release.set()
    waiting.result(timeout=10)

    tries = []

    def flaky():
        tries.append(time.monotonic())
        if len(tries) == 1:
            raise ConnectionError("database went away")
        return "done"

    assert queue.submit(flaky).result(timeout=10) == "done"
    assert tries[1] - tries[0] >= 0.5
    queue.close()


def _record(path: str, word: str) -> str:
    with open(path, "a") as out:
        out.write(word + "\n")
    return word


def test_the_embedded_queue_journal_outlives_the_process(tmp_path):
    """What a killed process had queued is run by the next one, once; finished jobs leave nothing."""
    from storage.db import make_engine, migrate, session_factory
    from storage.journal import JobJournal

    engine = make_engine(f"sqlite:///{tmp_path / 'jobs.db'}")
    migrate(engine)
    journal = JobJournal(session_factory(engine))
    ran = str(tmp_path / "ran.txt")

    done = EmbeddedQueue(journal=journal)
    assert done.submit(_record, ran, "finished", job_id="msg-1").result(10) == "finished"
    done.close()
    assert journal.unfinished() == []

    # A process killed before its job ran: the row was written, nothing ran it.
    import pickle

    journal.add("msg-2", pickle.dumps((_record, (ran, "left behind"), None, "turn from telegram")))
    restarted = EmbeddedQueue(journal=journal)
    again = restarted.submit(_record, ran, "left behind", job_id="msg-2")  # the redelivered message
    assert again.result(10) == "left behind"
    restarted.close()
    assert open(ran).read().splitlines() == ["finished", "left behind"]
    assert journal.unfinished() == []


def counting_to_three() -> str:
    """A long job as registration is one: it says how far it is as it goes."""
    from workers import progress

    for done in range(1, 4):
        progress.report("counting", done, 3)
    return "counted"


def test_a_job_says_how_far_it_is_through_either_queue(rq_queue):
    handle = rq_queue.submit(counting_to_three, description="progress test")
    work(rq_queue)  # another process's worker, as in production: the steps travel in the job's meta
    assert handle.result(10) == "counted" and handle.progress() == ("counting", 3, 3)

    embedded = EmbeddedQueue()
    try:
        handle = embedded.submit(counting_to_three)
        assert handle.result(10) == "counted" and handle.progress() == ("counting", 3, 3)
    finally:
        embedded.close()

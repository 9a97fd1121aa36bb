"""Processes really killed with SIGKILL, in production shape: `heartline run` and `heartline
worker` on real Redis, the unmodified Telegram library against a fake Bot API. Every message is
answered exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
from redis import Redis
from rq import Queue, Worker

from bots.fake_telegram import FakeTelegram
from core.delivery import message_key

pytestmark = pytest.mark.timeout(600)


@pytest.fixture()
def env(redis_url, tmp_path):
    queue = f"faults-{uuid.uuid4().hex[:8]}"
    # HEARTLINE_MODEL_CACHE_DIR stays the suite's, where the models' first-run builds already are.
    yield {**os.environ, "HEARTLINE_DATA_DIR": str(tmp_path), "HEARTLINE_REDIS_URL": redis_url,
           "HEARTLINE_QUEUE_NAME": queue, "HEARTLINE_WEB_PORT": "0"}
    connection = Redis.from_url(redis_url)
    Queue(queue, connection=connection).delete(delete_jobs=True)
    for key in connection.scan_iter(f"*{queue}*"):
        connection.delete(key)


@contextmanager
def heartline(command: str, env: dict, never_logged: tuple[str, ...] = ()):
    log = Path(env["HEARTLINE_DATA_DIR"]) / f"{command}-{uuid.uuid4().hex[:6]}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out:
        process = subprocess.Popen([sys.executable, "-m", "bots.cli", command], env=env,
                                   stdout=subprocess.DEVNULL, stderr=out)
    try:
        yield process
    except BaseException:
        print(f"--- {command} log ---\n" + log.read_text()[-3000:])
        raise
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(60)
    # Through kills, restarts and retries, nothing may log the bot's token, or what users said.
    written = log.read_text()
    token = env.get("TELEGRAM_BOT_TOKEN")
    assert not token or token not in written, f"the bot token is in the {command} log"
    assert not [words for words in never_logged if words.lower() in written.lower()], \
        f"users' words are in the {command} log"


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.1)


def job_of(update: dict) -> str:
    message = update["message"]
    return message_key("telegram", str(message["chat"]["id"]), str(message["message_id"]))


def no_more(fake: FakeTelegram, method: str, seconds: float = 5) -> int:
    """How many calls of `method` there are once nothing has changed for a while."""
    time.sleep(seconds)
    return len(fake.sent(method, ok=True))


def test_a_bot_killed_before_it_sent_the_answer_sends_it_once_restarted(env, say):
    user = uuid.uuid4().int % 10**9
    redis = Redis.from_url(env["HEARTLINE_REDIS_URL"])
    with FakeTelegram() as fake:
        env = {**env, "TELEGRAM_BOT_TOKEN": fake.token, "HEARTLINE_TELEGRAM_API_URL": fake.api_url}
        with heartline("run", env) as bot:
            fake.wait_for("getUpdates", timeout=120)
            update = fake.send_voice(user, say("My sister is coming to visit next week."), duration=3)
            wait_until(lambda: redis.exists(f"rq:job:{job_of(update)}"), 60, "the job")
            bot.send_signal(signal.SIGKILL)  # the job exists; nobody has answered yet
            bot.wait(10)
        # The worker starts only now, so the answer is certainly made while no bot runs.
        with heartline("worker", env), heartline("run", env):
            [voice] = fake.wait_for("sendVoice", timeout=240)
            assert str(voice.params["chat_id"]) == str(user)
            assert no_more(fake, "sendVoice") == 1  # the update came again: still one answer


def test_make_run_killed_mid_turn_answers_once_restarted(tmp_path, say):
    """No Redis, as `make run` with a Telegram token: the embedded queue's jobs are rows in the
    database until they have run, so a new process runs what the killed one had taken."""
    import sqlite3

    user = uuid.uuid4().int % 10**9
    env = {key: value for key, value in os.environ.items() if key != "HEARTLINE_REDIS_URL"}

    def journaled() -> int:
        with sqlite3.connect(tmp_path / "heartline.db") as database:
            return database.execute("SELECT count(*) FROM embedded_jobs").fetchone()[0]

    with FakeTelegram() as fake:
        env = {**env, "HEARTLINE_DATA_DIR": str(tmp_path), "HEARTLINE_WEB_PORT": "0", "TELEGRAM_BOT_TOKEN": fake.token,
               "HEARTLINE_TELEGRAM_API_URL": fake.api_url}
        with heartline("run", env, never_logged=("grandmother",)) as bot:
            fake.wait_for("getUpdates", timeout=120)
            fake.send_voice(user, say("My grandmother is in hospital and I'm worried."), duration=3)
            wait_until(lambda: journaled() == 1, 60, "the job in the journal")
            assert fake.sent("sendVoice") == []  # the models are still loading: nobody answered
            bot.send_signal(signal.SIGKILL)
            bot.wait(10)
        with heartline("run", env, never_logged=("grandmother",)):
            [voice] = fake.wait_for("sendVoice", timeout=240)
            assert str(voice.params["chat_id"]) == str(user)
            assert no_more(fake, "sendVoice") == 1
            assert journaled() == 0


def test_a_worker_killed_mid_job_costs_a_retry_not_the_answer(env, say):
    user = uuid.uuid4().int % 10**9
    redis = Redis.from_url(env["HEARTLINE_REDIS_URL"])
    queue = Queue(env["HEARTLINE_QUEUE_NAME"], connection=redis)
    with FakeTelegram() as fake:
        env = {**env, "TELEGRAM_BOT_TOKEN": fake.token, "HEARTLINE_TELEGRAM_API_URL": fake.api_url}
        with heartline("worker", env), heartline("worker", env), heartline("run", env):
            fake.wait_for("getUpdates", timeout=120)
            # A worker says it is there only once its models are loaded.
            wait_until(lambda: Worker.count(connection=redis, queue=queue) == 2, 300, "two workers")
            update = fake.send_voice(user, say("I passed my driving test this morning!"), duration=3)
            job = job_of(update)
            wait_until(lambda: job in queue.started_job_registry.get_job_ids(), 60, "the job to start")
            worker = redis.hget(f"rq:job:{job}", "worker_name").decode()
            os.kill(int(redis.hget(f"rq:worker:{worker}", "pid")), signal.SIGKILL)
            killed_at = time.monotonic()
            fake.wait_for("sendVoice", timeout=90)
            assert time.monotonic() - killed_at < 60
            assert no_more(fake, "sendVoice") == 1




@contextmanager
def redis_server(port: int, data: Path):
    server = subprocess.Popen(["redis-server", "--port", str(port), "--save", "", "--appendonly", "no",
                               "--dir", str(data)], stdout=subprocess.DEVNULL)
    client = Redis(port=port)
    wait_until(lambda: _answers(client), 30, "redis-server")
    try:
        yield server
    finally:
        server.kill()
        server.wait(10)


def _answers(client: Redis) -> bool:
    try:
        return client.ping()
    except Exception:
        return False


def test_a_redis_restart_costs_a_clear_try_again_not_a_silent_loss(settings, pipeline, tmp_path,
                                                                   unused_port):
    from pydantic import SecretStr
    from test_telegram import RunningDoor

    from bots.telegram import make_telegram_door
    from config import wiring

    port = unused_port
    user = uuid.uuid4().int % 10**9
    redis = Redis(port=port)
    with FakeTelegram() as fake, redis_server(port, tmp_path) as server:
        door_settings = settings.model_copy(update={
            "telegram_bot_token": SecretStr(fake.token), "telegram_api_url": fake.api_url,
            "redis_url": f"redis://127.0.0.1:{port}/0", "queue_name": "restart"})
        chat = wiring.chat(door_settings)
        running = RunningDoor(make_telegram_door(door_settings, chat))
        try:
            before = fake.send_text(user, "Good morning, I slept really well.")
            wait_until(lambda: redis.exists(f"rq:job:{job_of(before)}"), 30, "the first job")

            server.kill()
            server.wait(10)
            fake.send_text(user, "Are you still there?")
            # Only this user's messages: the door also sends what earlier tests left pending.
            wait_until(lambda: _said_to(fake, user), 60, "an answer to the user")
            assert "Please try again in a moment" in _said_to(fake, user)[0]

            with redis_server(port, tmp_path):
                after = fake.send_text(user, "I'm back, and still feeling good.")
                wait_until(lambda: redis.exists(f"rq:job:{job_of(after)}"), 30, "a job after the restart")
        finally:
            running.close()


@pytest.fixture()
def own_postgres():
    """A database of this test's own: the session's is shared with tests that count rows."""
    from conftest import fresh_database

    with fresh_database("heartline_hosts") as url:
        yield url


def _said_to(fake: FakeTelegram, user: int) -> list[str]:
    return [c.params["text"] for c in fake.sent("sendMessage", ok=True)
            if str(c.params["chat_id"]) == str(user)]


def test_bot_and_worker_on_separate_disks_share_only_redis_and_the_database(env, own_postgres,
                                                                            tmp_path, say):
    """`heartline run` with aiogram and `heartline worker` as an operator runs them on two hosts:
    each process has a data dir of its own. Voice notes in and out (OGG/Opus) and voice-training
    clips cross between them, neither leaves audio on its disk nor logs the token or the words,
    and each serves its own health and metrics (one production-shaped run for all of it: each
    such run costs ~40 s)."""
    from test_monitoring import free_ports, get
    from test_telegram import opus_info

    user = uuid.uuid4().int % 10**9
    bot_disk, worker_disk = tmp_path / "bot-host", tmp_path / "worker-host"
    worker_port, bot_port = free_ports(2)
    said_by_user = ("booked the trip", "grandmother", "recording it so that you")
    with FakeTelegram() as fake:
        shared = {**env, "HEARTLINE_DATABASE_URL": own_postgres, "TELEGRAM_BOT_TOKEN": fake.token,
                  "HEARTLINE_TELEGRAM_API_URL": fake.api_url, "HEARTLINE_TELEGRAM_LIBRARY": "aiogram"}
        with heartline("worker", {**shared, "HEARTLINE_DATA_DIR": str(worker_disk),
                                  "HEARTLINE_METRICS_PORT": str(worker_port)}, said_by_user), \
                heartline("run", {**shared, "HEARTLINE_DATA_DIR": str(bot_disk),
                                  "HEARTLINE_METRICS_PORT": str(bot_port)}, said_by_user):
            fake.wait_for("getUpdates", timeout=120)
            fake.send_voice(user, say("I finally booked the trip to see my grandmother."), duration=3)
            [voice] = fake.wait_for("sendVoice", timeout=240, ok=True)
            assert opus_info(voice.upload("voice")[2])[:2] == ("ogg", "opus")

            fake.send_command(user, "/voice train")
            fake.send_voice(user, say("This is my own voice. I am recording it so that you can "
                                      "learn how I sound when I speak."), duration=5)
            said = [c.params["text"] for c in fake.wait_for("sendMessage", count=2, timeout=240, ok=True)]
            assert said[1].startswith("Got clip 1 ("), said  # checked by the worker, kept for the bot
            fake.send_command(user, "/voice cancel")
            fake.wait_for("sendMessage", count=3, timeout=60, ok=True)
            time.sleep(1)  # the sender marks the last answer sent just after Telegram took it
            worker, bot = get(worker_port, "/metrics")[1], get(bot_port, "/metrics")[1]
            ready = [json.loads(get(port, "/readyz")[1]) for port in (worker_port, bot_port)]
    assert ready == [{"ready": True, "checks": {"database": True, "redis": True, "models": True}},
                     {"ready": True, "checks": {"database": True, "redis": True}}]
    assert 'heartline_turns_total{outcome="answered",platform="telegram"} 1.0' in worker
    assert 'heartline_stage_seconds_count{stage="transcribe"} 1.0' in worker
    assert 'heartline_stage_seconds_count{stage="generate_reply"} 1.0' in worker
    assert "heartline_queue_wait_seconds_count 1.0" in worker
    assert 'heartline_messages_total{platform="telegram"} 4.0' in bot
    assert 'heartline_sent_total{outcome="sent",platform="telegram"} 4.0' in bot
    assert "heartline_outbox_pending 0.0" in bot
    for disk in (bot_disk, worker_disk):
        kept = [p for p in disk.rglob("*") if p.suffix in (".ogg", ".wav", ".opus")]
        assert kept == [], f"audio left on {disk.name}: {kept}"


def test_a_short_soak_answers_every_message_once_through_kills(redis_url, tmp_path):
    """`heartline soak` as an operator runs it: users writing at once while a worker and the
    bot are SIGKILLed and restarted."""
    done = subprocess.run(
        [sys.executable, "-m", "bots.cli", "soak", "--users", "3", "--minutes", "0.5", "--workers", "2",
         "--keep", str(tmp_path / "soak"), "--json"],
        capture_output=True, text=True, timeout=560,
        env={**os.environ, "HEARTLINE_REDIS_URL": redis_url})
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["sent"] >= 4 and report["answered"] == report["sent"]
    assert report["lost"] == report["duplicated"] == report["failed"] == 0
    assert report["unknown_api_calls"] == 0
    assert [event.get("killed", "platform") for event in report["events"]] == ["worker", "platform", "bot"]
    assert report["token_in_logs"] == report["text_in_logs"] == []

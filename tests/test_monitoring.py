"""/healthz, /readyz and /metrics as Prometheus and an orchestrator read them."""

from __future__ import annotations

import json
import os
import socket
import urllib.error
import urllib.request
import uuid

from prometheus_client import REGISTRY

from core.turn import Turn
from workers import jobs, monitoring


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_alive_ready_and_metrics_say_what_they_should():
    def redis_down():
        raise ConnectionError("refused")

    server = monitoring.serve("127.0.0.1", 0, {"database": lambda: None, "redis": redis_down,
                                               "models": lambda: False})
    try:
        port = server.server_port
        assert get(port, "/healthz") == (200, '{"alive": true}')
        status, body = get(port, "/readyz")
        assert status == 503
        assert json.loads(body) == {"ready": False,
                                    "checks": {"database": True, "redis": False, "models": False}}
        status, body = get(port, "/metrics")
        assert status == 200 and "# TYPE heartline_stage_seconds histogram" in body
        assert get(port, "/nothing")[0] == 404
    finally:
        server.shutdown()


def test_a_turn_counts_its_outcome_and_times_its_stages(pipeline):
    def sample(name: str, **labels) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    before = sample("heartline_turns_total", platform="web", outcome="answered")
    replies = sample("heartline_stage_seconds_count", stage="generate_reply")
    jobs.process_turn(Turn(user_id=uuid.uuid4().hex, platform="web", chat_id="w",
                           message_id=uuid.uuid4().hex, text="I finally finished the marathon!"))
    assert sample("heartline_turns_total", platform="web", outcome="answered") == before + 1
    assert sample("heartline_stage_seconds_count", stage="generate_reply") == replies + 1

    refused = sample("heartline_turns_total", platform="web", outcome="refused")
    jobs.process_turn(Turn(user_id="m", platform="web", chat_id="w", message_id=uuid.uuid4().hex,
                           audio=b"not audio", audio_mime="audio/ogg"))
    assert sample("heartline_turns_total", platform="web", outcome="refused") == refused + 1


def test_a_bot_and_a_worker_each_serve_health_and_metrics(redis_url, tmp_path):
    """Production shape: `heartline worker --metrics-port` and `heartline run` with
    HEARTLINE_METRICS_PORT, one Telegram message through both."""
    import time

    from bots.fake_telegram import FakeTelegram
    from test_faults import heartline, wait_until

    with socket.socket() as one, socket.socket() as other:  # two free ports, told apart
        one.bind(("127.0.0.1", 0))
        other.bind(("127.0.0.1", 0))
        worker_port, bot_port = one.getsockname()[1], other.getsockname()[1]
    user = uuid.uuid4().int % 10**9
    with FakeTelegram() as fake:
        env = {**os.environ, "HEARTLINE_DATA_DIR": str(tmp_path), "HEARTLINE_REDIS_URL": redis_url,
               "HEARTLINE_QUEUE_NAME": f"metrics-{uuid.uuid4().hex[:8]}", "HEARTLINE_WEB_PORT": "0",
               "TELEGRAM_BOT_TOKEN": fake.token, "HEARTLINE_TELEGRAM_API_URL": fake.api_url}
        with heartline("worker", {**env, "HEARTLINE_METRICS_PORT": str(worker_port)}), \
                heartline("run", {**env, "HEARTLINE_METRICS_PORT": str(bot_port)}):
            wait_until(lambda: _answers(worker_port, "/healthz"), 60, "the worker's /healthz")
            wait_until(lambda: get(worker_port, "/readyz")[0] == 200, 300, "the worker's models")
            fake.wait_for("getUpdates", timeout=120)
            fake.send_text(user, "I passed my exam this morning!")
            fake.wait_for("sendVoice", timeout=180, ok=True)
            time.sleep(1)  # the sender marks the answer sent just after the platform took it
            worker = get(worker_port, "/metrics")[1]
            bot = get(bot_port, "/metrics")[1]
            status, ready = get(bot_port, "/readyz")
            assert (status, json.loads(ready)) == (200, {"ready": True,
                                                         "checks": {"database": True, "redis": True}})
    assert 'heartline_turns_total{outcome="answered",platform="telegram"} 1.0' in worker
    assert 'heartline_stage_seconds_count{stage="generate_reply"} 1.0' in worker
    assert 'heartline_stage_seconds_count{stage="synthesize_voice"} 1.0' in worker
    assert "heartline_queue_wait_seconds_count 1.0" in worker
    assert 'heartline_messages_total{platform="telegram"} 1.0' in bot
    assert 'heartline_sent_total{outcome="sent",platform="telegram"} 1.0' in bot
    assert "heartline_outbox_pending 0.0" in bot


def _answers(port: int, path: str) -> bool:
    try:
        return get(port, path)[0] == 200
    except OSError:
        return False

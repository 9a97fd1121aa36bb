"""/healthz, /readyz and /metrics as Prometheus and an orchestrator read them."""

from __future__ import annotations

import json
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


def free_ports(count: int) -> list[int]:
    """Loopback ports nothing listens on, all different."""
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]
    finally:
        for probe in probes:
            probe.close()


# A bot and a worker serving theirs in production shape: tests/test_faults.py's
# test_bot_and_worker_on_separate_disks_share_only_redis_and_the_database.

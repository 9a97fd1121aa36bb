"""What an operator watches, served by every process (each bot, each worker) on its own port:
`/healthz` (the process is alive), `/readyz` (what it needs answers: models loaded, database
and Redis reachable; 503 naming what does not) and Prometheus `/metrics` (prometheus-client).

The server is the standard library's, on a daemon thread, so the same one serves a worker's
synchronous RQ loop and a bot's event loop without touching either.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

log = logging.getLogger(__name__)

_SECONDS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128)

MESSAGES = Counter("heartline_messages", "Platform messages a front door handled", ["platform"])
REFUSED = Counter("heartline_refused", "Messages answered without a job: rate limit, bad input, "
                  "queue full", ["platform", "reason"])
TURNS = Counter("heartline_turns", "Turns a worker finished, by outcome: answered, refused (bad "
                "input), failed (after its last try), stale (waited too long), repeated (already "
                "answered)", ["platform", "outcome"])
FLAGGED = Counter("heartline_flagged_inputs", "Messages flagged for moderators", ["platform"])
STAGE_SECONDS = Histogram("heartline_stage_seconds", "Time each pipeline stage took", ["stage"],
                          buckets=_SECONDS)
QUEUE_WAIT = Histogram("heartline_queue_wait_seconds", "From the door taking a message to a worker "
                       "starting it", buckets=_SECONDS + (300, 900))
SENT = Counter("heartline_sent", "Outbox answers by what became of a try: sent, retried, failed",
               ["platform", "outcome"])
QUEUE_DEPTH = Gauge("heartline_queue_depth", "Jobs waiting for a worker (read when scraped)")
OUTBOX_PENDING = Gauge("heartline_outbox_pending", "Answers waiting to be sent (read when scraped)")

Check = Callable[[], object]  # raises, or returns False, when what it checks is not there


def serve(host: str, port: int, checks: dict[str, Check]) -> ThreadingHTTPServer:
    """Start serving; `port` 0 picks a free one (`server.server_port`)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                self._reply(200, "application/json", b'{"alive": true}')
            elif path == "/readyz":
                results = {name: _passes(check) for name, check in checks.items()}
                body = json.dumps({"ready": all(results.values()), "checks": results}).encode()
                self._reply(200 if all(results.values()) else 503, "application/json", body)
            elif path == "/metrics":
                self._reply(200, CONTENT_TYPE_LATEST, generate_latest())
            else:
                self._reply(404, "text/plain", b"not found")

        def _reply(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args) -> None:  # scrapes every few seconds: not worth a line
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="heartline-monitoring", daemon=True).start()
    log.info("health and metrics on http://%s:%d (/healthz, /readyz, /metrics)", host, server.server_port)
    return server


def _passes(check: Check) -> bool:
    try:
        return check() is not False
    except Exception as error:
        log.warning("readiness check failed: %s", type(error).__name__)
        return False


def readiness(settings, models: Callable[[], bool] | None = None) -> dict[str, Check]:
    """The checks a process is ready by: its database, its Redis (if any), its models (if it
    runs jobs). Each reads through the process's own connections."""
    from sqlalchemy import text

    from config import wiring

    def database() -> None:
        with wiring.open_storage(settings).sessions() as session:
            session.execute(text("SELECT 1"))

    checks: dict[str, Check] = {"database": database}
    if settings.redis_url:
        from redis import Redis

        redis = Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
        checks["redis"] = redis.ping
    if models is not None:
        checks["models"] = models
    return checks


def watch_queue_and_outbox(depth: Callable[[], int] | None, pending: Callable[[], int]) -> None:
    """Gauges read when Prometheus scrapes, not kept up to date by every change."""
    if depth is not None:
        QUEUE_DEPTH.set_function(lambda: _or_nan(depth))
    OUTBOX_PENDING.set_function(lambda: _or_nan(pending))


def _or_nan(read: Callable[[], int]) -> float:
    try:
        return float(read())
    except Exception:  # Redis or the database away: the gauge says "unknown", not 0
        return float("nan")

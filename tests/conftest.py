"""Shared fixtures: real models (loaded once per test session), real services, real audio.

Redis and PostgreSQL tests skip with a reason when the server is not answering, except under
CI=true, where a missing service fails the run.
"""

from __future__ import annotations

import os
import socket
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import onnxruntime
import pytest

ROOT = Path(__file__).resolve().parent.parent
# Set before anything reads settings: no hub access, converted models cached in the checkout.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["TQDM_DISABLE"] = "1"
os.environ.setdefault("HEARTLINE_MODEL_CACHE_DIR", str(ROOT / ".cache" / "models"))
# Replies are cut to a few speakable sentences anyway; shorter generation keeps the suite quick.
os.environ.setdefault("HEARTLINE_REPLY_MAX_NEW_TOKENS", "48")
# Piper samples its delivery from onnxruntime's generator, seeded as each voice loads. Fixed, a
# test file run alone hears the same audio every time; in the whole suite a voice's draws still
# depend on what it spoke before, so tests on pitch or words keep margins that hold over draws.
onnxruntime.set_seed(0)
_SESSION_DATA = Path(tempfile.mkdtemp(prefix="heartline-test-"))
os.environ["HEARTLINE_DATA_DIR"] = str(_SESSION_DATA)
for name in ("HEARTLINE_REDIS_URL", "HEARTLINE_DATABASE_URL", "TELEGRAM_BOT_TOKEN", "DISCORD_BOT_TOKEN"):
    os.environ.pop(name, None)

REDIS_URL = os.environ.get("HEARTLINE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
POSTGRES_URL = os.environ.get(
    "HEARTLINE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _answering(url: str, default_port: int) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname, parsed.port or default_port), timeout=2):
            return True
    except OSError:
        return False


def require_service(name: str, url: str, default_port: int) -> None:
    if _answering(url, default_port):
        return
    message = f"{name} is not answering at {urlparse(url).hostname}:{urlparse(url).port or default_port}"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message} (under CI a missing service is a failure, not a skip)")
    pytest.skip(f"{message}; start it to run this test")


@pytest.fixture(scope="session")
def settings():
    from config.settings import Settings

    return Settings()


@pytest.fixture(scope="session")
def pipeline(settings):
    """The process pipeline the job functions use, with every real offline model."""
    from workers.jobs import current_pipeline

    return current_pipeline()


@pytest.fixture(scope="session")
def say(pipeline):
    """Speak a sentence with Piper and return it as a real OGG/Opus voice note."""
    synthesizer, codec = pipeline.stages.synthesizer, pipeline.stages.codec
    from core.turn import VoiceStyle

    def speak(text: str) -> bytes:
        return codec.encode_voice_note(synthesizer.synthesize(text, VoiceStyle()))

    return speak


@pytest.fixture()
def redis_url():
    require_service("Redis", REDIS_URL, 6379)
    return REDIS_URL


@contextmanager
def fresh_database(prefix: str):
    """A new database on the real PostgreSQL server, dropped afterwards; yields its URL."""
    require_service("PostgreSQL", POSTGRES_URL, 5432)
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def postgres_url():
    """A fresh database for this test session."""
    with fresh_database("heartline_test") as url:
        yield url


@pytest.fixture()
def unused_port() -> int:
    """A loopback port nothing listens on (a server to start, or one that is not there)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture()
def data_dir(tmp_path, monkeypatch):
    """A data dir of this test's own, for tests that build their own storage."""
    monkeypatch.setenv("HEARTLINE_DATA_DIR", str(tmp_path))
    return tmp_path


def pytest_sessionfinish(session, exitstatus):
    import shutil

    shutil.rmtree(_SESSION_DATA, ignore_errors=True)

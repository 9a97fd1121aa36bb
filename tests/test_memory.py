"""Semantic memory in ChromaDB: per-user, persistent, recalled into the prompt, and forgettable."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import select

from core.turn import Turn
from fake_openai import FakeOpenAI
from test_cli import heartline


def user() -> str:
    return f"m-{uuid.uuid4().hex[:8]}"


def test_memories_are_kept_per_user_by_the_store(pipeline):
    memory = pipeline.stages.memory
    alice, bob = f"cli:{user()}", f"cli:{user()}"
    memory.remember(alice, "My dog is called Biscuit and she loves the beach.")
    memory.remember(alice, "ok")  # too short to be worth keeping
    memory.remember(bob, "I work night shifts at the hospital.")
    recalled = [m.text for m in memory.recall(alice, "what about my dog?") if m.role == "memory"]
    assert recalled == ["My dog is called Biscuit and she loves the beach."]
    assert all("Biscuit" not in m.text for m in memory.recall(bob, "tell me about dogs"))


def test_forget_empties_every_store(pipeline, settings):
    from config.wiring import open_storage
    from storage.tables import Message, User
    from workers.jobs import forget_user

    name = user()
    pipeline.run(Turn(user_id=name, text="My sister Ana is moving to Lisbon next month.", want_voice=False))
    key = f"cli:{name}"
    assert any("Lisbon" in m.text for m in pipeline.stages.memory.recall(key, "Lisbon"))
    forget_user(key)
    assert all("Lisbon" not in m.text for m in pipeline.stages.memory.recall(key, "Lisbon"))
    with open_storage(settings).sessions() as session:
        rows = session.scalars(select(Message).join(User).where(User.platform_user_id == name)).all()
    assert rows == []
    forget_user(key)  # nothing left to forget is no error


def test_a_ten_turn_conversation_recalls_turn_one_after_a_restart(tmp_path, data_dir):
    """Nine turns in this process, the tenth in a fresh one: what the user said at the start
    reaches the reply model's prompt."""
    from config.settings import Settings
    from config.wiring import build_pipeline

    name = user()
    with FakeOpenAI(api_key=None) as api:
        env = {"HEARTLINE_REPLY_BACKEND": "api", "HEARTLINE_REPLY_API_BASE_URL": api.base_url,
               "HEARTLINE_REPLY_API_MODEL": "m"}
        first = build_pipeline(Settings(**{k.removeprefix("HEARTLINE_").lower(): v for k, v in env.items()}))
        script = ["My dog is called Biscuit and she loves running on the beach.",
                  *[f"Today at work we had meeting number {i} about the new schedule." for i in range(8)]]
        for text in script:
            first.run(Turn(user_id=name, text=text, want_voice=False))
        # A fresh line the judge finds on topic and naming the dog ("my dog" leans on turn one):
        # the same line as the earlier turns, or one that forgets Biscuit, is not sent.
        api.reply_with("A new ball for Biscuit would make a lovely birthday present.")
        last = heartline("reply", "--user", name, "--text", "What present should I get for my dog's birthday?",
                         "--json", "--no-voice", env=env)
        assert json.loads(last.stdout)["metadata"]["models"]["reply"] == "api:m"
        system = api.requests[-1].json["messages"][0]["content"]
    assert "Biscuit" in system
    assert "Biscuit" not in json.dumps(api.requests[-1].json["messages"][1:])  # not a recent turn


@contextmanager
def chroma_server(path: Path, port: int):
    """A real `chroma run` on loopback, as production runs one for several workers."""
    from storage.memory import open_chroma

    chroma = shutil.which("chroma", path=str(Path(sys.executable).parent))
    server = subprocess.Popen([chroma, "run", "--path", str(path), "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                open_chroma(url=f"http://127.0.0.1:{port}")
                break
            except ValueError:  # not listening yet
                assert time.monotonic() < deadline, "the Chroma server did not start"
                time.sleep(0.2)
        yield server, f"http://127.0.0.1:{port}"
    finally:
        server.kill()
        server.wait(10)


def test_two_workers_on_one_chroma_server_share_what_users_said(pipeline, tmp_path, unused_port):
    from storage.memory import ChromaMemory, open_chroma

    memory = pipeline.stages.memory
    with chroma_server(tmp_path, unused_port) as (_, url):
        first, second = (ChromaMemory(open_chroma(url=url), memory.embed, memory.history) for _ in range(2))
        key, other = f"cli:{user()}", f"cli:{user()}"
        first.remember(key, "My grandmother Ines turns ninety in March.")
        assert any("Ines" in m.text for m in second.recall(key, "my grandmother's birthday"))
        assert not any("Ines" in m.text for m in second.recall(other, "my grandmother's birthday"))
        second.forget(key)
        assert not any("Ines" in m.text for m in first.recall(key, "my grandmother's birthday"))


def test_forget_fails_loudly_when_the_memory_server_has_gone(pipeline, tmp_path, unused_port):
    """A user told "forgotten" must have been: a Chroma server that died is an error, not a
    quiet success."""
    from storage.memory import ChromaMemory, open_chroma

    memory = pipeline.stages.memory
    with chroma_server(tmp_path, unused_port) as (server, url):
        served = ChromaMemory(open_chroma(url=url), memory.embed, memory.history)
        key = f"cli:{user()}"
        served.remember(key, "My brother Tomas lives in Porto with his two cats.")
        server.send_signal(signal.SIGKILL)
        server.wait(10)
        with pytest.raises(Exception):
            served.forget(key)

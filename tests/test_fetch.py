"""`heartline models fetch` against a Hub on loopback: the real huggingface_hub client, no internet."""

from __future__ import annotations

import pytest

from fake_hub import FakeHub
from test_cli import heartline


@pytest.fixture()
def hub():
    hub = FakeHub({"Systran/faster-whisper-small": {
        "config.json": b'{"x": 1}', "model.bin": b"\0" * 4096, "tokenizer.json": b"{}",
    }})
    yield hub
    hub.close()


def test_fetch_fills_the_folder_the_setting_reads(hub, tmp_path):
    done = heartline("models", "fetch", "--stt", "small", "--endpoint", hub.url,
                     env={"HF_HUB_OFFLINE": "0", "HEARTLINE_MODEL_CACHE_DIR": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    folder = tmp_path / "whisper-small"
    assert (folder / "model.bin").read_bytes() == b"\0" * 4096
    assert (folder / "tokenizer.json").is_file() and (folder / "config.json").is_file()
    assert any("/Systran/faster-whisper-small/resolve/" in r for r in hub.requests)

    from models.speech.whisper import resolve_model

    assert resolve_model("small", tmp_path) == (folder, "small")


def test_fetch_refuses_to_run_offline_or_without_a_choice(tmp_path):
    offline = heartline("models", "fetch", "--stt", "small", env={"HF_HUB_OFFLINE": "1"})
    assert offline.returncode == 2 and "needs the network" in offline.stderr
    nothing = heartline("models", "fetch", env={"HF_HUB_OFFLINE": "0"})
    assert nothing.returncode == 2 and "--stt small" in nothing.stderr


def test_release_assets_land_beside_the_hub_files(tmp_path, monkeypatch):
    import huggingface_hub.constants

    from models.tools.fetch import Download, fetch

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)  # fetch is online by nature

    hub = FakeHub({"unitary/toxic-bert": {"config.json": b"{}", "vocab.txt": b"[PAD]", "model.bin": b"big"}})
    try:
        item = Download("detoxify-original", "unitary/toxic-bert", files=("config.json", "vocab.txt"),
                        urls=(f"{hub.url}/unitary/toxic-bert/resolve/main/model.bin",))
        folder = fetch(item, tmp_path, endpoint=hub.url)
    finally:
        hub.close()
    assert sorted(p.name for p in folder.iterdir() if p.is_file()) == ["config.json", "model.bin", "vocab.txt"]
    assert (folder / "model.bin").read_bytes() == b"big"

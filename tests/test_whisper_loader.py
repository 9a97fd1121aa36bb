"""The settings path to any CTranslate2 Whisper directory, exercised on a random-weight model
built here in a second (the real weights are tested in test_speech.py)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from config import wiring
from config.settings import Settings
from core.turn import PcmAudio
from models.speech.whisper import packaged_model_dir, resolve_model


@pytest.fixture(scope="module")
def random_whisper(tmp_path_factory):
    from ctranslate2.converters import TransformersConverter
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    source = tmp_path_factory.mktemp("hf-whisper")
    config = WhisperConfig(
        vocab_size=51864, d_model=64, encoder_layers=1, decoder_layers=1,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=128,
        decoder_ffn_dim=128, num_mel_bins=80, max_source_positions=1500, max_target_positions=448,
    )
    WhisperForConditionalGeneration(config).save_pretrained(source)
    target = tmp_path_factory.mktemp("ct2") / "whisper-random"
    TransformersConverter(str(source)).convert(str(target), quantization="int8")
    # The tokenizer the English-only checkpoints share (faster-whisper needs it beside model.bin).
    shutil.copy(packaged_model_dir() / "tokenizer.json", target / "tokenizer.json")
    return target


def test_a_model_directory_setting_loads_that_model(random_whisper, monkeypatch):
    monkeypatch.setenv("HEARTLINE_WHISPER_MODEL", str(random_whisper))
    monkeypatch.setenv("HEARTLINE_WHISPER_BEAM_SIZE", "1")
    stt = wiring.transcriber(Settings())
    assert stt.name == "faster-whisper:whisper-random:int8"
    assert stt.beam_size == 1 and stt.english_only
    assert stt.transcribe(PcmAudio(np.zeros(16000 * 2, np.float32), 16000)).text == ""
    assert wiring.transcriber(Settings()) is stt  # loaded once per process


def test_names_resolve_to_packaged_or_fetched_models_or_say_how_to_get_them(tmp_path):
    assert resolve_model("tiny.en", tmp_path) == (packaged_model_dir(), "tiny.en")
    base, label = resolve_model("base", tmp_path)
    assert label == "base" and (base / "model.bin").stat().st_size > 100_000_000
    (tmp_path / "whisper-small").mkdir()
    (tmp_path / "whisper-small" / "model.bin").write_bytes(b"")
    assert resolve_model("small", tmp_path) == (tmp_path / "whisper-small", "small")
    with pytest.raises(FileNotFoundError, match="heartline models fetch --stt large-v3"):
        resolve_model("large-v3", tmp_path)

from pathlib import Path

from config.settings import Settings


def test_toml_file_is_read_and_the_environment_wins(tmp_path, monkeypatch):
    toml = tmp_path / "heartline.toml"
    toml.write_text('default_persona = "tutor"\nweb_port = 9001\n[fusion_weights]\ntext = 2.0\n')
    monkeypatch.setenv("HEARTLINE_CONFIG_FILE", str(toml))
    monkeypatch.setenv("HEARTLINE_WEB_PORT", "9002")
    settings = Settings()
    assert settings.default_persona == "tutor"
    assert settings.web_port == 9002
    assert settings.fusion_weights == {"text": 2.0}


def test_data_dir_holds_the_database_and_models_and_empty_tokens_are_unset(tmp_path, monkeypatch):
    monkeypatch.setenv("HEARTLINE_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.delenv("HEARTLINE_MODEL_CACHE_DIR", raising=False)
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "")
    settings = Settings()
    assert settings.sqlalchemy_url == f"sqlite:///{(tmp_path / 'd' / 'heartline.db').resolve()}"
    assert settings.models_dir == Path(tmp_path / "d" / "models")
    assert settings.telegram_bot_token is None


def test_a_typo_in_the_config_file_is_an_error_and_in_the_environment_a_warning(tmp_path):
    from test_cli import heartline

    toml = tmp_path / "heartline.toml"
    toml.write_text('defualt_persona = "tutor"\n')
    done = heartline("config", env={"HEARTLINE_CONFIG_FILE": str(toml)})
    assert done.returncode == 2
    assert "defualt_persona: not a setting (a typo?)" in done.stderr

    done = heartline("config", env={"HEARTLINE_DEFUALT_PERSONA": "tutor"})
    assert done.returncode == 0 and "HEARTLINE_DEFUALT_PERSONA is not a Heartline setting" in done.stderr


def test_a_device_is_cpu_a_gpu_by_number_or_auto(monkeypatch):
    import pytest
    from pydantic import ValidationError

    from models.speech.whisper import ctranslate2_device

    for asked, meant in (("cpu", "cpu"), ("CUDA", "cuda"), ("cuda:1", "cuda:1"), ("auto", "cpu")):
        monkeypatch.setenv("HEARTLINE_DEVICE", asked)
        assert Settings().device == meant  # no GPU here: auto is the CPU
    monkeypatch.setenv("HEARTLINE_DEVICE", "gpu")
    with pytest.raises(ValidationError, match="auto, cpu, cuda or cuda:N"):
        Settings()
    assert ctranslate2_device("cuda:1") == ("cuda", 1) and ctranslate2_device("cpu") == ("cpu", 0)

"""What a deployer reads and runs: .env.example names every setting, and the compose files
validate with Docker Compose itself, with and without the GPU worker."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
import yaml

from config.settings import Settings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _env_names(field: str) -> list[str]:
    names = [f"HEARTLINE_{field.upper()}"]
    alias = Settings.model_fields[field].validation_alias
    return names + (list(alias.choices) if alias is not None else [])


def test_env_example_documents_every_setting():
    with open(os.path.join(ROOT, ".env.example")) as file:
        lines = file.read().splitlines()
    written = {line.lstrip("# ").partition("=")[0] for line in lines if "=" in line}
    missing = [field for field in Settings.model_fields if not set(_env_names(field)) & written]
    assert missing == []
    unknown = {name for name in written if name.startswith("HEARTLINE_")} - {
        name for field in Settings.model_fields for name in _env_names(field)}
    assert unknown == set()  # no line for a setting that no longer exists


def _compose() -> list[str]:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    message = "Docker Compose is not installed (Debian: apt-get install docker-compose)"
    if os.environ.get("CI") == "true":
        pytest.fail(message + "; .ci/run installs it")
    pytest.skip(message)


@pytest.fixture()
def deployment(tmp_path):
    """The compose files as a deployer has them: beside a .env copied from .env.example."""
    for name in ("docker-compose.yml", "docker-compose.all-in-one.yml", "Dockerfile"):
        shutil.copy(os.path.join(ROOT, name), tmp_path)
    (tmp_path / "config").mkdir()
    shutil.copy(os.path.join(ROOT, "config", "prometheus.yml"), tmp_path / "config")
    shutil.copy(os.path.join(ROOT, ".env.example"), tmp_path / ".env")
    return tmp_path


def _config(deployment, *args: str) -> dict:
    done = subprocess.run([*_compose(), *args, "config"], cwd=deployment, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


def test_the_compose_files_validate_and_prometheus_scrapes_every_heartline_process(deployment):
    production = _config(deployment)["services"]
    assert {"redis", "postgres", "chroma", "bot", "worker", "rq-dashboard", "prometheus"} <= set(production)
    with_gpu = _config(deployment, "--profile", "gpu")["services"]
    gpu = with_gpu["gpu-worker"]
    assert gpu["profiles"] == ["gpu"]  # started only where asked for: it needs an NVIDIA GPU
    assert gpu["command"][-1] == "--gpu" and gpu["environment"]["HEARTLINE_DEVICE"] == "cuda"
    assert gpu["deploy"]["resources"]["reservations"]["devices"][0]["driver"] == "nvidia"
    assert "whl/cpu" not in str(gpu["build"])  # its image has CUDA torch

    heartline = [name for name, service in with_gpu.items() if service.get("image", "").startswith("heartline")]
    for name in heartline:
        environment = with_gpu[name]["environment"]
        assert environment["HEARTLINE_CHROMA_URL"] == "http://chroma:8000"  # one memory for all workers
        assert environment["HEARTLINE_METRICS_PORT"] == "9100" and "healthcheck" in with_gpu[name]
    with open(deployment / "config" / "prometheus.yml") as file:
        scraped = {target for job in yaml.safe_load(file)["scrape_configs"]
                   for group in job["static_configs"] for target in group["targets"]}
    assert scraped == {f"{name}:9100" for name in heartline}

    [alone] = _config(deployment, "-f", "docker-compose.all-in-one.yml")["services"].values()
    assert "HEARTLINE_REDIS_URL" not in alone["environment"] and alone["command"] == ["heartline", "run"]

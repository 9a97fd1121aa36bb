"""A stage on a GPU that runs out of memory goes on on the CPU.

A worker shares its GPU with every stage (and, in production, with other workers); a long
voice note or a busy card can exhaust it mid-turn. Failing the turn would lose the user's
answer, so the stage frees what CUDA cached for the failed call, is built once more on the
CPU, and the call is tried again there. It stays on the CPU for the life of the worker (a
stage that ran out once will again), and says so in its name, which the turn's metadata
carries, and in the log.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

ON_CPU = " (on cpu: CUDA ran out of memory)"


def is_cuda_out_of_memory(error: BaseException) -> bool:
    """torch's OutOfMemoryError, or CTranslate2's and cuBLAS's RuntimeError for the same."""
    if type(error).__name__ == "OutOfMemoryError":
        return True
    words = str(error).lower()
    return isinstance(error, RuntimeError) and (
        ("cuda" in words and "out of memory" in words) or "cublas_status_alloc_failed" in words)


def free_cuda_cache() -> None:
    gc.collect()  # the failed call's tensors go with their last reference
    try:
        import torch
    except ImportError:
        return
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class CpuFallback:
    """`build(device)` on the CUDA device, and on the CPU after CUDA runs out of memory. Every
    method of the backend is called through it; everything else is read from the backend."""

    def __init__(self, stage: str, build: Callable[[str], Any], device: str) -> None:
        self._stage, self._build = stage, build
        self._backend = build(device)
        self._moved = threading.Lock()
        self.on_cpu = False

    @property
    def name(self) -> str:
        return self._backend.name + (ON_CPU if self.on_cpu else "")

    def __getattr__(self, attribute: str) -> Any:
        value = getattr(self._backend, attribute)
        if not callable(value):
            return value

        def call(*args, **kwargs):
            backend = self._backend
            try:
                return getattr(backend, attribute)(*args, **kwargs)
            except Exception as error:
                if self.on_cpu or not is_cuda_out_of_memory(error):
                    raise
                what = type(error).__name__
            # Out of the except block: its traceback, which holds the failed call's tensors,
            # is gone before the cache is freed.
            failed, backend = id(backend), None
            self._to_cpu(failed, what)
            return getattr(self._backend, attribute)(*args, **kwargs)

        return call

    def _to_cpu(self, failed: int, what: str) -> None:
        with self._moved:
            if self.on_cpu or id(self._backend) != failed:  # another thread moved it already
                return
            log.warning("the %s stage ran out of CUDA memory (%s); freeing the cache and going on on "
                        "the CPU", self._stage, what)
            self._backend = None
            free_cuda_cache()
            self._backend = self._build("cpu")
            self.on_cpu = True

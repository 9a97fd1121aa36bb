"""The job functions every queue runs. The pipeline (and its models) is built once per process."""

from __future__ import annotations

import logging
import threading

from config.settings import Settings
from config.wiring import build_pipeline
from core.errors import InputError
from core.pipeline import Pipeline
from core.turn import Turn

log = logging.getLogger(__name__)

_pipeline: Pipeline | None = None
_lock = threading.Lock()


def current_pipeline() -> Pipeline:
    global _pipeline
    with _lock:
        if _pipeline is None:
            _pipeline = build_pipeline(Settings())
        return _pipeline


def process_turn(turn: Turn) -> dict:
    """One turn through the pipeline.

    A user error (corrupt audio, not an image...) is an answer, not a failure: it comes back as
    {"error": {...}} so the queue does not retry what can never succeed.
    """
    try:
        return current_pipeline().run(turn).to_dict()
    except InputError as error:
        log.info("turn from %s refused: %s", turn.platform, error)
        return {"error": {"kind": "input", "message": str(error)}}

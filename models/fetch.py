"""`heartline models fetch`: fill the model cache with production weights, on a connected machine.

Nothing else in Heartline downloads: the running bot loads only what is on disk. Copy the
filled cache (HEARTLINE_MODEL_CACHE_DIR, default data/models) to air-gapped hosts as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Download:
    repo_id: str
    folder: str  # under the model cache; the setting that uses it names the same folder
    note: str = ""


CATALOGUE: dict[str, dict[str, Download]] = {
    "stt": {
        size: Download(f"Systran/faster-whisper-{size}", f"whisper-{size}")
        for size in ("small", "medium", "large-v3")
    },
    "tts": {
        "xtts": Download("coqui/XTTS-v2", "xtts-v2",
                         "licence: Coqui Public Model License (non-commercial); set COQUI_TOS_AGREED=1"),
    },
}


def fetch(kind: str, name: str, models_dir: Path, endpoint: str | None = None) -> Path:
    """Download one model into `models_dir` and return its folder."""
    from huggingface_hub import snapshot_download

    item = CATALOGUE[kind][name]
    target = models_dir / item.folder
    snapshot_download(item.repo_id, local_dir=target, endpoint=endpoint)
    return target

"""`heartline models fetch`: fill the model cache with production weights, on a connected machine.

Nothing else in Heartline downloads: the running bot loads only what is on disk. Copy the
filled cache (HEARTLINE_MODEL_CACHE_DIR, default data/models) to air-gapped hosts as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DETOXIFY_RELEASES = "https://github.com/unitaryai/detoxify/releases/download"
TOKENIZER_FILES = ("config.json", "vocab.txt", "vocab.json", "merges.txt", "tokenizer.json",
                   "tokenizer_config.json", "special_tokens_map.json", "sentencepiece.bpe.model")


@dataclass(frozen=True)
class Download:
    folder: str  # under the model cache; the setting that uses it reads the same folder
    repo_id: str | None = None  # a Hugging Face Hub repository
    files: tuple[str, ...] = ()  # only these from the repository (empty: all of it)
    urls: tuple[str, ...] = ()  # plain files put beside them (release assets off the Hub)
    note: str = ""


CATALOGUE: dict[str, dict[str, Download]] = {
    "stt": {
        size: Download(f"whisper-{size}", f"Systran/faster-whisper-{size}")
        for size in ("small", "medium", "large-v3")
    },
    "tts": {
        "xtts": Download("xtts-v2", "coqui/XTTS-v2",
                         note="licence: Coqui Public Model License (non-commercial); set COQUI_TOS_AGREED=1"),
    },
    "text-emotion": {
        "goemotions": Download("goemotions", "SamLowe/roberta-base-go_emotions",
                               files=(*TOKENIZER_FILES, "model.safetensors")),
    },
    "face": {
        "deepface": Download("deepface/.deepface/weights", "serengil/deepface",
                             files=("facial_expression_model_weights.pth",)),
    },
    "toxicity": {
        "detoxify": Download("detoxify-original", "unitary/toxic-bert", files=TOKENIZER_FILES,
                             urls=(f"{DETOXIFY_RELEASES}/v0.1-alpha/toxic_original-c1212f89.ckpt",)),
        "detoxify-unbiased": Download(
            "detoxify-unbiased", "unitary/unbiased-toxic-roberta", files=TOKENIZER_FILES,
            urls=(f"{DETOXIFY_RELEASES}/v0.3-alpha/toxic_debiased-c7548aa0.ckpt",)),
        "detoxify-multilingual": Download(
            "detoxify-multilingual", "unitary/multilingual-toxic-xlm-roberta", files=TOKENIZER_FILES,
            urls=(f"{DETOXIFY_RELEASES}/v0.4-alpha/multilingual_debiased-0b549669.ckpt",)),
    },
}


def fetch(item: Download, models_dir: Path, endpoint: str | None = None) -> Path:
    """Download one model into `models_dir` and return its folder."""
    target = models_dir / item.folder
    if item.repo_id:
        from huggingface_hub import snapshot_download

        snapshot_download(item.repo_id, local_dir=target, endpoint=endpoint,
                          allow_patterns=list(item.files) or None)
    for url in item.urls:
        download_file(url, target / url.rsplit("/", 1)[-1])
    return target


def download_file(url: str, path: Path) -> None:
    import httpx

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with httpx.stream("GET", url, follow_redirects=True, timeout=60) as response:
        response.raise_for_status()
        with open(partial, "wb") as out:
            for chunk in response.iter_bytes(2**20):
                out.write(chunk)
    partial.rename(path)

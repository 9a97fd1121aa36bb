"""`heartline bench`: how long each stage takes on this machine, measured on real turns.

Text turns, then voice notes (the reply voice speaking the same sentences, encoded as OGG/Opus
like a phone would send them), then selfies if an image is given. Turns are kept in a
throwaway data directory, so a bench never touches real users' history; models load from the
usual cache.
"""

from __future__ import annotations

import resource
import statistics
import tempfile
import time
from pathlib import Path

from config.settings import Settings

SENTENCES = (
    "I just got the job I wanted!",
    "I'm so tired of everything going wrong this week.",
    "Can you help me plan a quiet weekend?",
    "My best friend is moving to another country and I'll miss her.",
    "I'm nervous about the exam tomorrow morning.",
)


def bench(settings: Settings, turns: int, image: bytes | None) -> dict:
    from core.turn import Turn, VoiceStyle
    from workers import jobs

    sentences = [SENTENCES[i % len(SENTENCES)] for i in range(turns)]
    with tempfile.TemporaryDirectory(prefix="heartline-bench-") as scratch:
        jobs.configure(settings.model_copy(update={
            "data_dir": Path(scratch), "model_cache_dir": settings.models_dir.resolve()}))
        started = time.perf_counter()
        pipeline = jobs.current_pipeline()
        report = {"load_seconds": round(time.perf_counter() - started, 2), "models": pipeline.models(),
                  "turns": {}}
        codec, voice = pipeline.stages.codec, pipeline.stages.synthesizer
        kinds = {"text": [Turn(user_id="bench", text=text) for text in sentences]}
        if voice is not None:
            notes = [codec.encode_voice_note(voice.synthesize(text, VoiceStyle())) for text in sentences]
            kinds["voice_note"] = [Turn(user_id="bench", audio=note, audio_mime="audio/ogg") for note in notes]
        if image is not None:
            kinds["selfie"] = [Turn(user_id="bench", text=text, image=image) for text in sentences]
        for kind, batch in kinds.items():
            report["turns"][kind] = _timings([pipeline.run(turn) for turn in batch])
    # What this process, a worker's equivalent, held at its peak (Linux reports kB).
    report["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return report


def _timings(results) -> dict:
    stages: dict[str, list[float]] = {}
    for result in results:
        for stage, seconds in result.metadata.stage_times.items():
            stages.setdefault(stage, []).append(seconds)
    totals = [result.metadata.processing_time for result in results]
    spoken = [r.reply_audio.duration_s for r in results if r.reply_audio]
    voiced = stages.get("synthesize_voice", [])
    return {
        "count": len(results),
        "total": median_and_p90(totals),
        "stages": {stage: median_and_p90(times) for stage, times in stages.items()},
        # Seconds of synthesis per second of reply voice: below 1 is faster than real time.
        "tts_real_time_factor": round(sum(voiced) / sum(spoken), 3) if spoken and voiced else None,
    }


def median_and_p90(times: list[float]) -> dict:
    ordered = sorted(times)
    return {"median": round(statistics.median(ordered), 3),
            "p90": round(ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))], 3)}


def describe(report: dict) -> str:
    lines = [f"models loaded in {report['load_seconds']:.1f} s; peak memory {report['peak_rss_mb']} MB"]
    for kind, figures in report["turns"].items():
        rtf = figures["tts_real_time_factor"]
        lines.append(f"\n{kind} turns ({figures['count']}): median {figures['total']['median']:.2f} s, "
                     f"p90 {figures['total']['p90']:.2f} s" + (f", TTS {rtf:.2f}x real time" if rtf else ""))
        for stage, spread in figures["stages"].items():
            lines.append(f"  {stage:<18} {spread['median']:>7.3f} s   p90 {spread['p90']:>7.3f} s")
    return "\n".join(lines)


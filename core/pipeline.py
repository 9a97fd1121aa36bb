"""One turn through every stage: hear, feel, remember, answer, check, speak, keep.

Each stage is reached through an interface from `core.stages`. A stage with no input is skipped
and says why in `metadata.skipped_stages`; every stage that runs reports its time.
"""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from time import perf_counter

from core import moderation
from core.emotions import Reading, fuse, shared_distribution
from core.errors import InputError, text_too_long
from core.mood import next_mood, trend_guidance
from core.personas import CUSTOM, PERSONAS, voice_style
from core.prompts import NO_WORDS_REPLY, clean_reply, reply_request
from core.reply_checks import ReplyJudge, insult, recalled_memory, register
from core.speakable import speakable
from core.stages import (
    AudioCodec,
    FaceEmotionReader,
    LanguageIdentifier,
    MemoryStore,
    ReplyGenerator,
    SpeechSynthesizer,
    TextEmotionReader,
    ToxicityChecker,
    Transcriber,
    TurnStore,
    UserState,
    VoiceEmotionReader,
    VoiceProfiles,
)
from core.turn import (
    EmotionAnalysis,
    EmotionScore,
    Metadata,
    PcmAudio,
    ReplyAudio,
    ReplyRequest,
    Safety,
    Turn,
    TurnResult,
    UserInput,
    VoiceStyle,
    clean_text,
)

log = logging.getLogger(__name__)


@dataclass
class Stages:
    codec: AudioCodec
    transcriber: Transcriber
    text_emotion: TextEmotionReader
    face_emotion: FaceEmotionReader | None
    voice_emotion: VoiceEmotionReader | None
    memory: MemoryStore
    replier: ReplyGenerator
    fallback: ReplyGenerator
    toxicity: ToxicityChecker
    synthesizer: SpeechSynthesizer | None
    store: TurnStore
    voices: VoiceProfiles | None = None
    languages: LanguageIdentifier | None = None
    judge: ReplyJudge = field(default_factory=ReplyJudge)


@dataclass(frozen=True)
class PipelineSettings:
    default_persona: str = "friend"
    fusion_weights: Mapping[str, float] = field(
        default_factory=lambda: {"text": 1.0, "image": 0.8, "voice": 0.6}
    )
    max_audio_seconds: float = 300.0
    max_text_chars: int = 4000
    toxicity_threshold: float = 0.5
    reply_max_sentences: int = 3
    reply_max_chars: int = 400
    reply_candidates: int = 3
    expressiveness: float = 1.0
    stage_timeout_s: float = 120.0  # a backend that takes longer costs its stage, not the turn


def readable_text(turn: Turn, settings: PipelineSettings) -> str:
    """The turn's words, cleaned; InputError when the turn holds nothing to answer or too much."""
    text = clean_text(turn.text)
    if not text and turn.audio is None and turn.image is None:
        raise InputError("Send me a message, a voice note or a selfie and I'll answer.")
    if len(text) > settings.max_text_chars:
        raise text_too_long(settings.max_text_chars)
    return text


class _Stopwatch:
    def __init__(self) -> None:
        self.times: dict[str, float] = {}
        self.skipped: dict[str, str] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = perf_counter()
        try:
            yield
        finally:
            self.times[name] = round(perf_counter() - start, 4)

    def skip(self, name: str, reason: str) -> None:
        self.skipped[name] = reason


class StageTimeout(RuntimeError):
    """A backend took longer than a stage may."""


def _renamed_since(models: dict[str, str], at_start: dict[str, str], now: dict[str, str]) -> dict[str, str]:
    """The backends that answered: a stage that changed during the turn (one that went on on the
    CPU when its GPU ran out of memory) under its new name, unless the turn named another."""
    return {key: now[key] if name == at_start.get(key) else name for key, name in models.items()}


class Pipeline:
    def __init__(self, stages: Stages, settings: PipelineSettings | None = None) -> None:
        self.stages = stages
        self.settings = settings or PipelineSettings()

    def models(self) -> dict[str, str]:
        s = self.stages
        named = {
            "audio": s.codec, "stt": s.transcriber, "text_emotion": s.text_emotion,
            "face_emotion": s.face_emotion, "voice_emotion": s.voice_emotion, "memory": s.memory,
            "reply": s.replier, "toxicity": s.toxicity, "tts": s.synthesizer,
        }
        models = {key: (backend.name if backend else "none") for key, backend in named.items()}
        models["toxicity"] += "+phrase-rules"
        return models

    def run(self, turn: Turn) -> TurnResult:
        started = perf_counter()
        s, cfg, clock = self.stages, self.settings, _Stopwatch()
        models, named_at_start = self.models(), self.models()
        text = readable_text(turn, cfg)

        audio, transcript, language = self._hear(turn, clock)
        heard = " ".join(part for part in (text, transcript) if part)
        if language is None and heard and s.languages is not None:
            language = s.languages.identify(heard)

        text_emotions = self._read_text(heard, clock)
        image_emotion = self._read_face(turn, clock)
        voice_emotion = self._read_voice(audio, clock)
        with clock.stage("fuse"):
            fused = fuse(
                [
                    Reading("text", tuple(text_emotions)),
                    Reading("image", (image_emotion,) if image_emotion else ()),
                    Reading("voice", (voice_emotion,) if voice_emotion else ()),
                ],
                cfg.fusion_weights,
            )

        with clock.stage("input_check"):
            input_scores = self.toxicity_scores(heard) if heard else {}
        input_verdict = moderation.judge(input_scores, cfg.toxicity_threshold)
        user = s.store.user_state(turn)
        persona = self._persona(turn, user)
        hostile = input_verdict.harmful and not input_verdict.crisis
        mood = next_mood(user.mood, fused, user.hours_since_mood, hostile)

        if input_verdict.crisis:
            clock.skip("generate_reply", "crisis language: answered with the care message")
            response, safety, models["reply"] = moderation.CRISIS_REPLY, None, "crisis-care"
        elif not heard and not turn.image:
            clock.skip("generate_reply", "no words heard")
            response, safety, models["reply"] = NO_WORDS_REPLY, None, "no-words"
        else:
            with clock.stage("recall_memory"):
                history = s.memory.recall(turn.user_key, heard)
            # The reply answers the register (a hard feeling when in doubt); the result still
            # reports what was read.
            feeling = register(fused.primary_emotion, fused.confidence, heard,
                               shared_distribution(text_emotions))
            request = reply_request(
                persona, replace(fused, primary_emotion=feeling), history, heard, turn.user_key,
                cfg.reply_max_sentences, language, custom_persona=user.custom_persona, mood=mood,
                trend=trend_guidance([*user.recent_emotions, fused.primary_emotion]),
                recall=lambda context: recalled_memory(context, s.judge.closeness))
            with clock.stage("generate_reply"):
                response, safety, models["reply"] = self._answer(request)
        if safety is None:
            safety = Safety(True, {}, "pass")
        safety.input_scores = _rounded(input_scores)
        safety.input_flags = list(input_verdict.reasons)
        if input_verdict.harmful:
            safety.action = "flagged_input"

        reply_audio = self._speak(turn, response, language, voice_style(
            fused, cfg.expressiveness, mood), clock, models)

        result = TurnResult(
            user_input=UserInput(heard, transcript, bool(turn.audio), bool(turn.image)),
            emotion_analysis=EmotionAnalysis(text_emotions, image_emotion, voice_emotion, fused),
            response=response,
            reply_audio=reply_audio,
            safety=safety,
            metadata=Metadata(
                processing_time=0.0,
                stage_times=clock.times,
                models=_renamed_since(models, named_at_start, self.models()),
                timestamp=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                skipped_stages=clock.skipped,
                persona=persona,
                language=language,
                bot_mood=mood.to_dict(),
            ),
        )
        with clock.stage("persist"):
            result.metadata.message_id = s.store.save_turn(
                turn, result.to_dict(), lambda now, hours: next_mood(now, fused, hours, hostile))
            if heard and not input_verdict.harmful:
                s.memory.remember(turn.user_key, heard)
        result.metadata.processing_time = round(perf_counter() - started, 4)
        return result

    # -- stages ---------------------------------------------------------------------------

    def _hear(self, turn: Turn, clock: _Stopwatch) -> tuple[PcmAudio | None, str | None, str | None]:
        if turn.audio is None:
            clock.skip("decode_audio", "no audio")
            clock.skip("transcribe", "no audio")
            return None, None, None
        with clock.stage("decode_audio"):
            audio = self.stages.codec.decode(
                turn.audio, turn.audio_mime, self.settings.max_audio_seconds
            )
        with clock.stage("transcribe"):
            try:
                transcript = self._bounded("transcribe", self.stages.transcriber.transcribe, audio)
            except Exception as error:
                # Still answered: as a voice note with no words heard, from how it sounded.
                log.exception("transcription failed; answering without the words")
                clock.skip("transcribe", f"{_what_went_wrong(error)}; answered without the words")
                return audio, None, None
        return audio, transcript.text.strip(), transcript.language

    def _read_text(self, text: str, clock: _Stopwatch) -> list[EmotionScore]:
        if not text:
            clock.skip("text_emotion", "no words")
            return []
        with clock.stage("text_emotion"):
            return self._optional("text_emotion", self.stages.text_emotion.read, text, clock) or []

    def _read_face(self, turn: Turn, clock: _Stopwatch) -> EmotionScore | None:
        reader = self.stages.face_emotion
        if turn.image is None:
            clock.skip("face_emotion", "no image")
            return None
        if reader is None:
            clock.skip("face_emotion", "no face-emotion model configured")
            return None
        with clock.stage("face_emotion"):
            reading = self._optional("face_emotion", reader.read, turn.image, clock)
        if reading is None and "face_emotion" not in clock.skipped:
            clock.skip("face_emotion", "no face found in the image")
        return reading

    def _read_voice(self, audio: PcmAudio | None, clock: _Stopwatch) -> EmotionScore | None:
        reader = self.stages.voice_emotion
        if audio is None:
            clock.skip("voice_emotion", "no audio")
            return None
        if reader is None:
            clock.skip("voice_emotion", "no voice-emotion model configured")
            return None
        with clock.stage("voice_emotion"):
            return self._optional("voice_emotion", reader.read, audio, clock)

    def _optional(self, stage: str, read, data, clock: _Stopwatch):
        """A reader that breaks or hangs costs its reading, not the user's message. Bad input
        still raises."""
        try:
            return self._bounded(stage, read, data)
        except InputError:
            raise
        except Exception as error:
            log.exception("%s failed; answering without it", stage)
            clock.skip(stage, f"{_what_went_wrong(error)}; answered without it")
            return None

    def _bounded(self, stage: str, call, *args):
        """`call(*args)`, given up on after the stage timeout. Python cannot stop the thread it
        runs on: a hung backend is logged and left to finish there (a daemon thread, so it does
        not hold the worker up when it exits), and the turn goes on."""
        future: Future = Future()

        def run() -> None:
            try:
                future.set_result(call(*args))
            except BaseException as error:  # handed to the caller, whatever it is
                future.set_exception(error)

        threading.Thread(target=run, name=f"heartline-{stage}", daemon=True).start()
        try:
            return future.result(self.settings.stage_timeout_s)
        except FutureTimeout:
            log.error("%s took over %.0f s; going on without it", stage, self.settings.stage_timeout_s)
            raise StageTimeout(f"{stage} took over {self.settings.stage_timeout_s:.0f} s") from None

    def _persona(self, turn: Turn, user: UserState) -> str:
        if turn.persona in PERSONAS:
            return turn.persona
        if user.persona in PERSONAS or (user.persona == CUSTOM and user.custom_persona):
            return user.persona
        return self.settings.default_persona

    def toxicity_scores(self, text: str) -> dict[str, float]:
        # The phrase rules add what a model misses; where both score a name, the higher wins.
        scores = self.stages.toxicity.scores(text)
        for name, value in moderation.rule_scores(text).items():
            scores[name] = max(scores.get(name, 0.0), value)
        return scores

    def _answer(self, request: ReplyRequest) -> tuple[str, Safety, str]:
        """Generate up to `reply_candidates` replies and send the first that is safe and passes
        the judge; when none does, the rule-based reply, unless it misses more than the best
        safe candidate did."""
        cfg, s = self.settings, self.stages
        feeling = request.emotion.primary_emotion
        best: tuple[str, dict, int, int] | None = None  # safe, no problem, but missing something
        for attempt in range(cfg.reply_candidates):
            try:
                reply = clean_reply(self._bounded("generate_reply", s.replier.generate, request),
                                    cfg.reply_max_sentences, cfg.reply_max_chars, feeling)
            except Exception:
                log.exception("reply generator %s failed; using the fallback", s.replier.name)
                break
            scores = self.toxicity_scores(reply) if reply else {}
            if reply and self._harmful(scores):
                log.info("generated reply failed the safety check (attempt %d)", attempt + 1)
                continue
            verdict = s.judge.judge(reply, feeling, request.context)
            if verdict.passed:
                return reply, Safety(True, _rounded(scores), "regenerated" if attempt else "pass"), \
                    s.replier.name
            log.info("generated reply %d set aside: %s", attempt + 1,
                     ", ".join(verdict.problems + verdict.misses))
            if not verdict.problems and (best is None or len(verdict.misses) < best[2]):
                best = (reply, scores, len(verdict.misses), attempt)
        reply, scores = self._rule_reply(request)
        rules = s.judge.judge(reply, feeling, request.context)
        if best is not None and (rules.problems or len(rules.misses) > best[2]):
            action = "regenerated" if best[3] else "pass"
            return best[0], Safety(True, _rounded(best[1]), action), s.replier.name
        if self._harmful(scores):
            # Even the words of our own reflection read as harmful: say the one line that is
            # checked to be safe, and keep why for the moderators.
            log.warning("every reply failed the safety check; sent the steady line")
            steady = self.toxicity_scores(moderation.STEADY_REPLY)
            return moderation.STEADY_REPLY, Safety(not self._harmful(steady), _rounded(steady),
                                                   "blocked_reply"), "steady-line"
        return reply, Safety(True, _rounded(scores), "fallback"), s.fallback.name

    def _harmful(self, scores: dict[str, float]) -> bool:
        return moderation.judge(scores, self.settings.toxicity_threshold).harmful

    def _rule_reply(self, request: ReplyRequest) -> tuple[str, dict[str, float]]:
        reply = self.stages.fallback.generate(request)
        scores = self.toxicity_scores(reply)
        if self._harmful(scores) or insult(reply):
            # It reflected the user's harsh words back: say something of its own instead.
            reply = self.stages.fallback.generate(
                replace(request, context=replace(request.context, user_text="")))
            scores = self.toxicity_scores(reply)
        return reply, scores

    def _speak(self, turn: Turn, text: str, language: str | None, style: VoiceStyle,
               clock: _Stopwatch, models: dict[str, str]) -> ReplyAudio | None:
        synthesizer = self.stages.synthesizer
        if not turn.want_voice:
            clock.skip("synthesize_voice", "voice replies are off")
            return None
        if synthesizer is None:
            clock.skip("synthesize_voice", "no speech synthesizer configured")
            return None
        spoken = speakable(text, language)
        if not spoken:
            clock.skip("synthesize_voice", "nothing in the reply to say aloud")
            return None
        codec, wav = self.stages.codec, turn.reply_format == "wav"
        try:
            with clock.stage("synthesize_voice"):
                voice = self.stages.voices.load(turn.user_key) if self.stages.voices else None
                models["tts"] = synthesizer.engine_for(voice)
                pcm = self._bounded("synthesize_voice", synthesizer.synthesize, spoken, style, voice)
                audio = codec.encode_wav(pcm) if wav else codec.encode_voice_note(pcm)
        except Exception as error:
            # The words still reach the user; a missing voice note must not lose the reply.
            log.exception("speech synthesis failed; replying with text only")
            clock.skip("synthesize_voice", f"synthesis {_what_went_wrong(error)}; text reply only")
            return None
        return ReplyAudio(
            data=audio,
            mime_type="audio/wav" if wav else "audio/ogg",
            duration_s=round(pcm.duration_s, 3),
            waveform=base64.b64encode(codec.waveform(pcm)).decode(),
        )


def _what_went_wrong(error: Exception) -> str:
    return "took too long" if isinstance(error, StageTimeout) else "failed"


def _rounded(scores: dict[str, float]) -> dict[str, float]:
    return {name: round(float(value), 4) for name, value in scores.items()}

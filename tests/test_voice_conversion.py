"""Offline voice styling: a stock voice moved toward a 'user' who is another stock voice.

The user here is eSpeak NG's female variant f3 (from the espeakng-loader wheel); replies come from
the packaged Piper voice 'joe', a low male voice, so every property checked starts far off.
"""

import json

import numpy as np
import pytest

from core.turn import PcmAudio, VoiceStyle
from models.voice import conversion, stock_voices
from models.voice.speaker import SpeakerEncoder, cosine
from models.tools.voice_eval import word_errors

USER_VOICE = "espeak:en-us+f3"
CLIP_TEXTS = [
    "I usually walk to work in the morning, unless it is raining hard.",
    "My grandmother taught me how to bake bread when I was about ten years old.",
    "Last weekend we drove up to the lake and watched the sunset from the pier.",
]
REPLY_TEXTS = [
    "That sounds wonderful, I'm so happy for you.",
    "Remember to drink some water and get a good night's sleep.",
    "Let's take it one day at a time.",
]


def median_pitch(audio: PcmAudio) -> float:
    """Median F0 by YIN, each recording in its own octave.

    Not WORLD's trackers: on joe's creaky voice they jump octaves. Over six of Piper's noise draws
    the same three replies read 90-97 Hz by YIN, 96-158 by Harvest and 152-192 by DIO.
    """
    f0 = conversion.Analysis(audio).f0
    return float(np.median(f0[f0 > 0]))


@pytest.fixture(scope="module")
def encoder():
    return SpeakerEncoder()


@pytest.fixture(scope="module")
def transcriber():
    from models.speech.whisper import FasterWhisperTranscriber, packaged_model_dir

    return FasterWhisperTranscriber(packaged_model_dir(), "tiny.en")


@pytest.fixture(scope="module")
def joe():
    return stock_voices.load_voice("piper:joe-us")


@pytest.fixture(scope="module")
def clips():
    user = stock_voices.load_voice(USER_VOICE)
    return [user.synthesize(text, VoiceStyle()) for text in CLIP_TEXTS]


@pytest.fixture(scope="module")
def stats(clips, joe):
    rendering = [joe.synthesize(text, VoiceStyle()) for text in CLIP_TEXTS]
    return conversion.fit(clips, CLIP_TEXTS, rendering)


@pytest.fixture(scope="module")
def replies(joe, stats):
    base = [joe.synthesize(text, VoiceStyle()) for text in REPLY_TEXTS]
    paced = [joe.synthesize(text, VoiceStyle(rate=stats["tempo"])) for text in REPLY_TEXTS]
    return base, [conversion.convert(audio, stats) for audio in paced]


def test_stats_are_json_safe_and_small(stats):
    text = json.dumps(stats)
    assert json.loads(text) == stats
    assert len(text) < 4096
    # The user (f3, ~200 Hz) is far above joe (~95 Hz): the fit must see that.
    assert stats["pitch"]["target"][0] - stats["pitch"]["source"][0] > np.log(1.6)
    assert 0.7 <= stats["tempo"] <= 1.4


def test_conversion_moves_pitch_to_the_user(clips, replies):
    base, converted = replies
    user = np.median([median_pitch(clip) for clip in clips])
    before = abs(np.log(np.median([median_pitch(a) for a in base]) / user))
    after = abs(np.log(np.median([median_pitch(a) for a in converted]) / user))
    assert before > np.log(1.6)
    assert after < np.log(1.15)


def test_conversion_moves_the_voice_toward_the_user(encoder, clips, replies):
    base, converted = replies
    user = encoder.embed_speaker(clips)
    before = cosine(encoder.embed_speaker(base), user)
    after = cosine(encoder.embed_speaker(converted), user)
    ceiling = np.mean([cosine(encoder.embed(clip), encoder.embed_speaker(clips[:i] + clips[i + 1:]))
                       for i, clip in enumerate(clips)])
    # Measured here: ~0.5 -> ~0.75 against a same-speaker ceiling of ~0.9.
    assert after - before > 0.4 * (ceiling - before)


def test_converted_replies_stay_intelligible(transcriber, replies):
    from models.audio.dsp import to_rate

    def errors(audios):
        heard = [transcriber.transcribe(PcmAudio(to_rate(a, 16_000), 16_000)).text for a in audios]
        return sum(word_errors(text, said)[0] for text, said in zip(REPLY_TEXTS, heard))

    base, converted = replies
    words = sum(len(text.split()) for text in REPLY_TEXTS)
    assert errors(converted) <= max(2 * errors(base), 0.1 * words)


def test_shift_pitch_scales_f0_and_keeps_timing(joe):
    audio = joe.synthesize(REPLY_TEXTS[0], VoiceStyle())
    raised = conversion.shift_pitch(audio, 1.3)
    assert abs(raised.duration_s - audio.duration_s) < 0.02
    assert median_pitch(raised) / median_pitch(audio) == pytest.approx(1.3, rel=0.1)
    assert np.abs(raised.samples).max() <= 1.0


def test_a_known_pitch_sets_the_octave(joe):
    # A short rendering of joe's sometimes reads an octave up on its own (4 of 240 here); the
    # converter passes the stock voice's pitch over all the clips, and the reading follows it.
    audio = joe.synthesize(REPLY_TEXTS[2], VoiceStyle())
    own = median_pitch(audio)
    for typical in (own / 2, own, own * 2):
        f0 = conversion.Analysis(audio, typical_hz=typical).f0
        assert np.median(f0[f0 > 0]) == pytest.approx(typical, rel=0.25)


def test_espeak_voices_speak_and_follow_the_rate():
    names = stock_voices.installed_voices()
    assert "piper:joe-us" in names and USER_VOICE in names
    voice = stock_voices.load_voice("espeak:en-us")
    normal = voice.synthesize("Good morning to you.", VoiceStyle())
    slow = voice.synthesize("Good morning to you.", VoiceStyle(rate=0.7))
    assert normal.sample_rate == 22050 and normal.samples.dtype == np.float32
    assert 0.8 < normal.duration_s < 3.0
    assert slow.duration_s > 1.25 * normal.duration_s
    with pytest.raises(KeyError):
        stock_voices.load_voice("espeak:no-such-voice").synthesize("hello", VoiceStyle())


def test_nearest_stock_voice_is_the_one_that_sounds_alike(encoder, clips):
    # f4 is another female eSpeak variant; m3 and joe are male.
    candidates = ["piper:joe-us", "espeak:en-us+m3", "espeak:en-us+f4"]
    ranked = stock_voices.nearest_voices(encoder.embed_speaker(clips), encoder, CLIP_TEXTS, candidates)
    assert [c.name for c in ranked][0] == "espeak:en-us+f4"
    assert ranked[0].similarity > ranked[-1].similarity + 0.2


def test_reference_embeddings_are_kept_for_the_next_process(encoder, tmp_path, monkeypatch):
    names = ["kokoro:af_heart", "piper:joe-us"]
    first = stock_voices.reference_embeddings(names, encoder, tmp_path)
    [kept] = tmp_path.glob("stock-voice-references-*.npz")

    def render(name, encoder):
        raise AssertionError(f"{name} was rendered again")

    monkeypatch.setattr(stock_voices, "_reference_embedding", render)  # as in a fresh process
    again = stock_voices.reference_embeddings(names, encoder, tmp_path)
    assert all(np.array_equal(first[name], again[name]) for name in names)
    with pytest.raises(AssertionError, match="bf_emma was rendered"):
        stock_voices.reference_embeddings([*names, "kokoro:bf_emma"], encoder, tmp_path)


def test_fit_needs_a_transcript_per_clip(clips):
    with pytest.raises(ValueError):
        conversion.fit(clips, CLIP_TEXTS[:1], None)


def test_kokoro_voices_are_reply_voices_and_say_the_words(transcriber):
    from models.audio.dsp import to_rate

    names = stock_voices.reply_voices()
    assert {"kokoro:af_heart", "kokoro:bm_george", "piper:joe-us"} <= set(names)
    voice = stock_voices.load_voice("kokoro:af_heart")
    text = "Please be gentle with yourself this weekend."
    normal, slow = voice.synthesize(text, VoiceStyle()), voice.synthesize(text, VoiceStyle(rate=0.7))
    assert normal.sample_rate == 24_000 and normal.samples.dtype == np.float32
    assert slow.duration_s > 1.2 * normal.duration_s
    heard = transcriber.transcribe(PcmAudio(to_rate(normal, 16_000), 16_000)).text
    assert word_errors(text, heard)[0] == 0, heard
    assert voice.synthesize("...", VoiceStyle()).duration_s == 0


def test_kokoro_install_refuses_parts_that_are_not_the_release(tmp_path, monkeypatch):
    from models.voice import kokoro

    monkeypatch.setattr(kokoro, "MODEL_SHA256", "0" * 64)
    with pytest.raises(RuntimeError, match="SHA-256"):
        kokoro.install(tmp_path)
    assert not (tmp_path / kokoro.MODEL_FILE).exists()


def test_a_profile_fitted_on_a_voice_this_install_lacks_is_answered_in_the_default_voice(joe):
    from core.turn import VoiceProfile
    from models.voice.reply_voice import ReplyVoice

    profile = VoiceProfile("web:1", (), conversion={"stock_voice": "kokoro:not_installed", "warp": 1.0})
    speaker = ReplyVoice(joe)
    assert speaker.engine_for(profile) == joe.name
    assert speaker.synthesize("Hello there.", VoiceStyle(), profile).duration_s > 0.3

"""XTTS-v2 voice cloning through coqui's real loading and synthesis code.

Most tests run on a tiny random-weight XTTS checkpoint built here (2 GPT layers x 256, a BPE
vocab trained on a few sentences), cloning from WAV clips spoken by the packaged Piper voice.
Random weights say nothing about quality, only that loading, cloning and the output contract
work. The last test runs on real XTTS-v2 weights when they are on disk.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from core.turn import VoiceProfile, VoiceStyle

# Not importorskip: without torchaudio, `import TTS` raises ImportError even when coqui-tts is
# installed (models.voice.xtts fills that gap), and importorskip would turn that into a skip.
if importlib.util.find_spec("TTS") is None:
    pytest.skip("coqui-tts is not installed (pip install -e '.[xtts]')", allow_module_level=True)

import torch  # noqa: E402

from models.voice.xtts import XttsSynthesizer, coqui_importable  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
# Whether whoever runs the tests accepted the CPML, read before the fixture below sets it.
OPERATOR_AGREED = os.environ.get("COQUI_TOS_AGREED") == "1"
VOCAB_TEXT = [
    "I hear you, and it sounds like today was really hard.",
    "Thank you for telling me how you feel.",
    "My sister is coming to visit me next week.",
    "Would you like to talk about what happened?",
    "That is wonderful news, I am so happy for you!",
]


@pytest.fixture(scope="module", autouse=True)
def _licence_agreed():
    # The tiny checkpoint is ours, not CPML weights; the class asks regardless.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("COQUI_TOS_AGREED", "1")
        yield


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> tuple[bytes, ...]:
    """Two WAV recordings of one speaker (the packaged Piper voice), ~1.5 s each (real clips are
    3-30 s; the speaker encoder's cost grows with their length)."""
    import soundfile

    from models.voice.piper import PiperSynthesizer, packaged_voice

    piper = PiperSynthesizer(packaged_voice())
    folder = tmp_path_factory.mktemp("clips")
    recordings = []
    for i, text in enumerate(("Hello, this is my voice.", "I like walking by the sea.")):
        audio = piper.synthesize(text, VoiceStyle())
        path = folder / f"clip{i}.wav"
        soundfile.write(path, audio.samples, audio.sample_rate, subtype="PCM_16")
        recordings.append(path.read_bytes())
    return tuple(recordings)


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A random-weight XTTS checkpoint laid out like XTTS-v2's: config.json, model.pth, vocab.json
    and speakers_xtts.pth with one stock speaker."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    with coqui_importable():
        from TTS.tts.configs.xtts_config import XttsConfig
        from TTS.tts.layers.xtts.tokenizer import VoiceBpeTokenizer
        from TTS.tts.models.xtts import Xtts

    folder = tmp_path_factory.mktemp("xtts-tiny")
    config = XttsConfig()

    # XTTS's tokenizer is a Hugging Face BPE with [SPACE], [START], [STOP], [UNK] and a
    # [lang] token per language; a small one trained on a few sentences has the same shape.
    tokenizer = Tokenizer(models.BPE(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    special = ["[STOP]", "[UNK]", "[SPACE]", "[START]"] + [f"[{lang}]" for lang in config.languages]
    trainer = trainers.BpeTrainer(vocab_size=200, special_tokens=special,
                                  initial_alphabet=list("abcdefghijklmnopqrstuvwxyz'.,!?-"))
    tokenizer.train_from_iterator(VOCAB_TEXT, trainer)
    tokenizer.save(str(folder / "vocab.json"))
    vocab = VoiceBpeTokenizer(folder / "vocab.json")

    args = config.model_args
    args.gpt_layers, args.gpt_n_model_channels, args.gpt_n_heads = 2, 256, 4
    args.decoder_input_dim = 256  # the HiFi-GAN decoder reads the GPT's latents
    # XTTS-v2's audio codebook and conditioning. At most 12 audio tokens (~0.55 s) a sentence:
    # the full-size HiFi-GAN decoder costs ~5 CPU-seconds per second of audio.
    args.gpt_num_audio_tokens, args.gpt_start_audio_token, args.gpt_stop_audio_token = 1026, 1024, 1025
    args.gpt_use_perceiver_resampler = True
    args.gpt_max_audio_tokens = 15
    # Known before the model is built, so it is built (and randomly initialised) once.
    args.gpt_number_text_tokens = vocab.get_number_tokens()
    args.gpt_start_text_token = vocab.tokenizer.token_to_id("[START]")
    args.gpt_stop_text_token = vocab.tokenizer.token_to_id("[STOP]")
    config.save_json(str(folder / "config.json"))

    torch.manual_seed(0)
    model = Xtts(config)
    model.mel_stats.uniform_(2.0, 6.0)  # a plausible per-band mel normaliser
    torch.save({"model": model.state_dict(), "config": config.to_dict()}, folder / "model.pth")

    # speakers_xtts.pth holds precomputed latents per stock voice: the perceiver's 32 latents
    # of model width, and a unit-length 512-d speaker embedding.
    stock = {"gpt_cond_latent": torch.randn(1, 32, 256),
             "speaker_embedding": torch.nn.functional.normalize(torch.randn(1, 512, 1), dim=1)}
    torch.save({"Test Speaker": stock}, folder / "speakers_xtts.pth")
    return folder


@pytest.fixture(scope="module")
def xtts(tiny_model_dir) -> XttsSynthesizer:
    return XttsSynthesizer(tiny_model_dir, device="cpu")


def speak(synth: XttsSynthesizer, text: str, voice: VoiceProfile | None, rate: float = 1.0):
    torch.manual_seed(1234)  # XTTS samples its audio tokens; the same seed gives the same tokens
    return synth.synthesize(text, VoiceStyle(rate=rate), voice)


def check_speech_shaped(audio, sample_rate: int) -> None:
    assert audio.sample_rate == sample_rate
    assert audio.samples.dtype == np.float32 and audio.samples.ndim == 1
    assert audio.duration_s > 0.2
    assert np.isfinite(audio.samples).all()
    assert np.abs(audio.samples).max() <= 1.0
    assert np.sqrt(np.mean(audio.samples**2)) > 1e-4  # not silence


@pytest.fixture(scope="module")
def cloned(xtts, clips):
    return speak(xtts, "Thank you for telling me.", VoiceProfile("web:1", clips))


def test_clones_from_the_users_clips_at_the_models_rate(xtts, cloned):
    assert xtts.name == "xtts-v2" and xtts.sample_rate == 24000
    check_speech_shaped(cloned, 24000)
    for name in ("torchaudio", "torchcodec"):  # stand-ins are only there while coqui loads
        module = sys.modules.get(name)
        assert module is None or getattr(module, "__file__", None), f"stand-in {name} left behind"


def test_faster_rate_gives_shorter_speech(xtts, clips, cloned):
    fast = speak(xtts, "Thank you for telling me.", VoiceProfile("web:1", clips), rate=2.0)
    assert 0.4 < fast.duration_s / cloned.duration_s < 0.6


def test_without_a_voice_the_stock_speaker_says_each_sentence_with_a_pause(xtts):
    assert xtts.speakers == ["Test Speaker"] and xtts.speaker == "Test Speaker"
    audio = speak(xtts, "I hear you. Thank you for telling me.", None)
    check_speech_shaped(audio, 24000)
    zero = np.concatenate([[0], (audio.samples == 0).astype(np.int8), [0]])
    starts, ends = np.flatnonzero(np.diff(zero) == 1), np.flatnonzero(np.diff(zero) == -1)
    longest = np.argmax(ends - starts)
    assert ends[longest] - starts[longest] >= int(0.3 * 24000)  # the pause, between two
    assert starts[longest] > 0.2 * 24000 and len(audio.samples) - ends[longest] > 0.2 * 24000


def test_a_checkpoint_without_stock_speakers_needs_a_voice_profile(tiny_model_dir, tmp_path):
    for name in ("config.json", "model.pth", "vocab.json"):
        (tmp_path / name).symlink_to(tiny_model_dir / name)
    synth = XttsSynthesizer(tmp_path)
    assert synth.speakers == [] and synth.speaker is None
    with pytest.raises(ValueError, match="voice profile is required"):
        synth.synthesize("Hello.", VoiceStyle())


def test_bad_voice_and_language_are_refused_clearly(xtts):
    with pytest.raises(ValueError, match="no clips"):
        xtts.synthesize("Hi.", VoiceStyle(), VoiceProfile("web:1", ()))
    with pytest.raises(ValueError, match="does not speak 'xx'"):
        xtts.language = "xx"
    xtts.language = "de"
    assert xtts.language == "de"
    xtts.language = "en"


def test_refuses_to_load_without_the_licence_agreement(tiny_model_dir, monkeypatch):
    monkeypatch.delenv("COQUI_TOS_AGREED")
    with pytest.raises(RuntimeError, match="COQUI_TOS_AGREED=1.*Piper"):
        XttsSynthesizer(tiny_model_dir)
    monkeypatch.setenv("COQUI_TOS_AGREED", "yes")
    with pytest.raises(RuntimeError, match="CPML"):
        XttsSynthesizer(tiny_model_dir)


def test_the_torchaudio_stand_in_computes_the_mel_spectrogram_xtts_was_trained_on():
    """A centred, reflect-padded power STFT through HTK mel filters with Slaney norm, checked
    against numpy's FFT and librosa's filter bank (torchaudio's own reference)."""
    import librosa

    from models.voice.xtts import _torchaudio_standin

    torchaudio = _torchaudio_standin()
    n_fft, hop, win = 2048, 256, 1024
    wav = np.random.default_rng(0).standard_normal(22050).astype(np.float32) * 0.1
    mel = torchaudio.transforms.MelSpectrogram(sample_rate=22050, n_fft=n_fft, hop_length=hop,
                                               win_length=win, f_min=0, f_max=8000, n_mels=80,
                                               norm="slaney")
    assert sorted(mel.state_dict()) == ["mel_scale.fb", "spectrogram.window"]  # checkpoint keys
    ours = mel(torch.from_numpy(wav)[None]).numpy()[0]

    window, left = np.zeros(n_fft), (n_fft - win) // 2  # periodic Hann, centred in the frame
    window[left:left + win] = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)
    padded = np.pad(wav.astype(np.float64), n_fft // 2, mode="reflect")
    starts = range(0, len(padded) - n_fft + 1, hop)
    power = np.abs(np.fft.rfft([padded[i:i + n_fft] * window for i in starts])) ** 2
    filters = librosa.filters.mel(sr=22050, n_fft=n_fft, n_mels=80, fmin=0, fmax=8000, htk=True,
                                  norm="slaney", dtype=np.float64)
    expected = filters @ power.T
    assert ours.shape == expected.shape
    assert np.allclose(ours, expected, rtol=1e-3, atol=1e-5 * expected.max())

    resampled = torchaudio.functional.resample(torch.from_numpy(wav)[None], 22050, 16000)
    assert resampled.shape == (1, 16000) and resampled.dtype == torch.float32


def real_model_dir() -> Path | None:
    from config.settings import Settings

    candidates = [Settings().models_dir / "xtts-v2", ROOT / "data" / "models" / "xtts-v2"]
    if os.environ.get("HEARTLINE_XTTS_MODEL_DIR"):
        candidates.insert(0, Path(os.environ["HEARTLINE_XTTS_MODEL_DIR"]))
    return next((path for path in candidates if (path / "model.pth").is_file()), None)


def test_real_xtts_v2_clones_a_voice_intelligibly(clips):
    model_dir = real_model_dir()
    if model_dir is None:
        pytest.skip("no XTTS-v2 weights: set HEARTLINE_XTTS_MODEL_DIR or run "
                    "`heartline models fetch --tts xtts` (model cache/xtts-v2)")
    if not OPERATOR_AGREED:
        pytest.skip("XTTS-v2 weights are CPML-licensed: set COQUI_TOS_AGREED=1 to run this test")
    import re

    import soxr

    from core.turn import PcmAudio
    from models.speech.whisper import FasterWhisperTranscriber, packaged_model_dir

    synth = XttsSynthesizer(model_dir, device="cuda" if torch.cuda.is_available() else "cpu")
    assert synth.sample_rate == 24000 and len(synth.speakers) > 10  # XTTS-v2 ships dozens
    text = "My sister is coming to visit me next week."
    voice = VoiceProfile("web:1", clips)
    cloned = speak(synth, text, voice)
    check_speech_shaped(cloned, 24000)
    assert 1.0 < cloned.duration_s < 8.0
    assert speak(synth, text, voice, rate=1.5).duration_s < 0.8 * cloned.duration_s
    check_speech_shaped(speak(synth, "Hello there.", None), 24000)

    # Intelligible: the packaged Whisper hears most of the words.
    whisper = FasterWhisperTranscriber(packaged_model_dir(), "tiny.en")
    heard = whisper.transcribe(PcmAudio(soxr.resample(cloned.samples, 24000, 16000), 16000)).text
    said, words = re.findall(r"[a-z']+", text.lower()), set(re.findall(r"[a-z']+", heard.lower()))
    assert sum(word in words for word in said) >= 0.7 * len(said), heard

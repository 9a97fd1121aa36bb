import io

import av
import numpy as np
import pytest

from audio_files import FORMATS, encode, tone
from core.errors import InputError
from core.turn import PcmAudio
from models.audio.codec import PyAvCodec

codec = PyAvCodec()


def test_voice_note_is_ogg_opus_48k_mono_and_keeps_its_length():
    note = codec.encode_voice_note(PcmAudio(tone(3.0, 22050), 22050))
    with av.open(io.BytesIO(note)) as container:
        stream = container.streams.audio[0]
        assert container.format.name == "ogg"
        assert (stream.codec_context.name, stream.rate, stream.channels) == ("opus", 48000, 1)
    assert len(note) < 3 * 32000 / 8 * 1.3  # ~32 kbit/s: a minute is far under 1 MB
    decoded = codec.decode(note, "audio/ogg", max_seconds=60)
    assert decoded.sample_rate == 16000
    assert decoded.duration_s == pytest.approx(3.0, abs=0.03)


@pytest.mark.parametrize("container", sorted(FORMATS))
def test_every_format_users_send_decodes_to_16k_mono(container):
    data = encode(tone(2.0, 16000), 16000, container)
    audio = codec.decode(data, None, max_seconds=60)
    assert audio.sample_rate == 16000 and audio.samples.dtype == np.float32
    assert audio.duration_s == pytest.approx(2.0, abs=0.1)
    assert 0.15 < np.abs(audio.samples).max() <= 1.0


@pytest.mark.parametrize("data", [b"", b"\x00" * 1000, b"OggS" + b"garbage" * 500,
                                  b"\x89PNG\r\n\x1a\n" + b"x" * 200])
def test_unreadable_audio_is_a_clear_input_error(data):
    with pytest.raises(InputError) as error:
        codec.decode(data, "audio/ogg", max_seconds=60)
    assert "audio" in str(error.value)


def test_a_ten_minute_voice_note_is_refused_with_its_length():
    note = codec.encode_voice_note(PcmAudio(np.zeros(16000 * 600, np.float32), 16000))
    with pytest.raises(InputError, match=r"is 10:00 long; I can listen to up to 5:00"):
        codec.decode(note, "audio/ogg", max_seconds=300)


def test_wav_on_request_and_a_discord_waveform():
    audio = PcmAudio(np.concatenate([tone(1.0, 22050), np.zeros(22050, np.float32)]), 22050)
    wav = codec.encode_wav(audio)
    assert wav[:4] == b"RIFF" and codec.decode(wav, "audio/wav", 60).duration_s == pytest.approx(2.0, abs=0.01)
    levels = codec.waveform(audio)
    assert len(levels) == 256 and max(levels) == 255
    assert min(levels[:128]) > 200 and max(levels[128:]) == 0  # loud first half, silent second

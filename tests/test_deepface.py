"""The production face reader (DeepFace, pytorch engine) on DeepFace's real loading and analyze code.

No real DeepFace weights are needed: the tests write weight files of exactly the shape DeepFace's
pytorch emotion model loads, with values chosen so that the answer is known: one network reports
how bright the face it was given is, another always answers "surprise" with a known confidence.
DeepFace's own detector finds the faces in the project's real photo. The network is off for the
whole module: any download attempt fails the test instead of going unnoticed.

With real weights in $HEARTLINE_DEEPFACE_HOME (as `heartline models fetch --face deepface` fills
it), one more test checks that the smiling face reads "happy".
"""

from __future__ import annotations

import io
import math
import os
import socket
import sys
from pathlib import Path

import pytest
from PIL import Image

pytest.importorskip(
    "deepface", reason="deepface is not installed (pip install --no-deps deepface==0.0.103 werkzeug gdown)"
)
torch = pytest.importorskip("torch")

from core.errors import InputError  # noqa: E402
from models.emotion.deepface_backend import EMOTION_WEIGHTS, LABELS, DeepFaceReader, weights_dir  # noqa: E402

SMILE = (Path(__file__).parent / "data" / "smiling_face.jpg").read_bytes()

# DeepFace 0.0.103's pytorch EmotionModel, layer by layer: (out, in, kh, kw) convs, (out, in) linears.
EMOTION_SHAPES = {
    "conv_1": (64, 1, 5, 5),
    "conv_2": (64, 64, 3, 3),
    "conv_3": (64, 64, 3, 3),
    "conv_4": (128, 64, 3, 3),
    "conv_5": (128, 128, 3, 3),
    "fc_1": (1024, 128),
    "fc_2": (1024, 1024),
    "fc_3": (7, 1024),
}
HAPPY, SAD, SURPRISE = LABELS.index("happy"), LABELS.index("sad"), LABELS.index("surprise")


def write_weights(home: Path, state: dict[str, torch.Tensor]) -> Path:
    folder = weights_dir(home)
    folder.mkdir(parents=True)
    torch.save(state, folder / EMOTION_WEIGHTS)
    return home


def brightness_network() -> dict[str, torch.Tensor]:
    """Channel 0 carries the face's mean grey level (0-1) through every layer to the output:
    bright faces read "happy", faces darker than about half of the photo's brightness read "sad".
    Every other weight is random, so the whole network really runs."""
    generator = torch.Generator().manual_seed(0)
    state = {}
    for layer, shape in EMOTION_SHAPES.items():
        weight = torch.randn(shape, generator=generator) * 0.01
        weight[0] = 0.0  # channel 0 listens to channel 0 only
        if layer == "conv_1":
            weight[0, 0] = 1 / 25  # a 5x5 mean
        elif layer.startswith("conv"):
            weight[0, 0, 1, 1] = 1.0  # pass-through
        elif layer == "fc_3":
            weight[:] = 0.0
            weight[HAPPY, 0], weight[SAD, 0] = 10.0, -10.0
        else:
            weight[0, 0] = 1.0
        bias = torch.zeros(shape[0])
        if layer == "fc_3":
            bias[SAD] = 11.4  # happy and sad swap at a grey level of 0.57
        state[f"{layer}.weight"], state[f"{layer}.bias"] = weight, bias
    return state


def constant_network(label: int, logit: float) -> dict[str, torch.Tensor]:
    """Whatever the face, softmax(one-hot logit): a known label with a known confidence."""
    state = {}
    for layer, shape in EMOTION_SHAPES.items():
        state[f"{layer}.weight"] = torch.zeros(shape)
        state[f"{layer}.bias"] = torch.zeros(shape[0])
    state["fc_3.bias"][label] = logit
    return state


def encoded(image: Image.Image, fmt: str = "JPEG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def face(size: int | None = None, brightness: float = 1.0) -> Image.Image:
    image = Image.open(io.BytesIO(SMILE)).convert("RGB")
    if size:
        image = image.resize((size, size))
    return image if brightness == 1.0 else image.point(lambda value: int(value * brightness))


def group(left: Image.Image, right: Image.Image) -> bytes:
    canvas = Image.new("RGB", (720, 400), "white")
    canvas.paste(left, (20, 80))
    canvas.paste(right, (440, 120))
    return encoded(canvas)


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any name look-up or connection (DeepFace fetching weights) fails loudly."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args} {kwargs}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)  # not even a DNS look-up


@pytest.fixture(scope="module")
def reader(tmp_path_factory):
    return DeepFaceReader(write_weights(tmp_path_factory.mktemp("deepface-bright"), brightness_network()))


def test_the_smiling_face_is_found_and_read_through_deepface(reader):
    reading = reader.read(SMILE)
    assert reading is not None and reading.faces == 1
    assert reading.emotion in LABELS and reading.emotion == "happy"  # a bright face, by construction
    assert 0.5 < reading.confidence <= 1.0
    assert reader.name == "deepface-emotion+opencv"
    assert "tensorflow" not in sys.modules


def test_the_largest_of_several_faces_is_read_and_all_are_counted(reader):
    big_bright_small_dark = reader.read(group(face(), face(170, brightness=0.45)))
    big_dark_small_bright = reader.read(group(face(brightness=0.45), face(170)))
    assert big_bright_small_dark.faces == big_dark_small_bright.faces == 2
    assert (big_bright_small_dark.emotion, big_dark_small_bright.emotion) == ("happy", "sad")


def test_png_webp_a_huge_photo_and_a_phone_rotated_one_are_decoded_safely(reader):
    sideways = face().rotate(90, expand=True)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to view": undoes the rotation above
    for data in (encoded(face(), "PNG"), encoded(face(), "WEBP"),
                 encoded(face(6000), "JPEG", quality=70), encoded(sideways, "JPEG", exif=exif)):
        reading = reader.read(data)
        assert reading is not None and reading.faces == 1 and reading.emotion == "happy"


def test_no_face_is_none_and_not_an_image_is_a_clear_error(reader):
    assert reader.read(encoded(Image.new("RGB", (300, 300), (90, 160, 200)), "PNG")) is None
    for junk in (b"", b"GIF89a not really", b"%PDF-1.7 a document", b"\xff\xd8\xff broken jpeg"):
        with pytest.raises(InputError, match="picture|image"):
            reader.read(junk)


def test_confidence_is_deepface_percent_scaled_to_one_and_each_reader_keeps_its_own_model(
        reader, tmp_path_factory):
    # DeepFace caches one emotion model per process: a second home must not leak into the first.
    surprised = DeepFaceReader(write_weights(tmp_path_factory.mktemp("deepface-surprise"),
                                             constant_network(SURPRISE, 2.0)))
    reading = surprised.read(SMILE)
    assert reading.emotion == "surprise" and reading.faces == 1
    assert reading.confidence == pytest.approx(math.exp(2) / (math.exp(2) + 6), abs=1e-4)
    assert reader.read(SMILE).emotion == "happy"
    assert surprised.read(SMILE).emotion == "surprise"


def test_missing_weights_are_refused_clearly_without_downloading(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"{EMOTION_WEIGHTS}.*models fetch --face deepface"):
        DeepFaceReader(tmp_path)
    assert list(tmp_path.iterdir()) == []  # nothing fetched, not even a folder made

    # The emotion weights alone are not enough for a detector that has its own model file.
    write_weights(tmp_path, constant_network(SURPRISE, 2.0))
    with pytest.raises(FileNotFoundError, match="face_detection_yunet_2023mar.onnx") as refused:
        DeepFaceReader(tmp_path, detector="yunet")
    assert EMOTION_WEIGHTS not in str(refused.value)
    assert sorted(p.name for p in weights_dir(tmp_path).iterdir()) == [EMOTION_WEIGHTS]

    with pytest.raises(ValueError, match="unsupported DeepFace detector"):
        DeepFaceReader(tmp_path, detector="retinaface")


REAL_HOME = os.environ.get("HEARTLINE_DEEPFACE_HOME", "")


@pytest.mark.skipif(
    not (REAL_HOME and (weights_dir(Path(REAL_HOME)) / EMOTION_WEIGHTS).is_file()),
    reason="real DeepFace weights not present: set HEARTLINE_DEEPFACE_HOME to a folder holding "
           f".deepface/weights/{EMOTION_WEIGHTS} (`heartline models fetch --face deepface`)",
)
def test_with_the_real_weights_the_smiling_face_reads_happy():
    reading = DeepFaceReader(Path(REAL_HOME)).read(SMILE)
    assert (reading.emotion, reading.faces) == ("happy", 1)


def test_the_setting_picks_deepface_from_the_model_cache(tmp_path):
    from config import wiring
    from config.settings import Settings

    write_weights(tmp_path / "deepface", brightness_network())
    reader = wiring.face_emotion_reader(Settings(face_backend="deepface", model_cache_dir=tmp_path))
    assert reader.name.startswith("deepface-emotion") and reader.read(SMILE) is not None

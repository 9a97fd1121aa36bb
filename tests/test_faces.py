"""The offline face reader on a real photo, in the ways users' phones send them."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from core.errors import InputError
from core.turn import Turn

SMILE = (Path(__file__).parent / "data" / "smiling_face.jpg").read_bytes()


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def reader(pipeline):
    return pipeline.stages.face_emotion


def test_a_smiling_face_reads_happy(reader):
    reading = reader.read(SMILE)
    assert (reading.emotion, reading.faces) == ("happy", 1) and reading.confidence > 0.8


def test_png_webp_and_a_huge_photo_work_too(reader):
    face = Image.open(io.BytesIO(SMILE))
    for data in (encoded(face, "PNG"), encoded(face, "WEBP"),
                 encoded(face.resize((6000, 6000)), "JPEG", quality=70)):
        assert reader.read(data).emotion == "happy"


def test_a_phone_photo_is_turned_upright_by_its_exif_orientation(reader):
    sideways = Image.open(io.BytesIO(SMILE)).rotate(90, expand=True)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to view": undoes the rotation above
    assert reader.read(encoded(sideways, "JPEG", exif=exif)).emotion == "happy"


def test_the_largest_of_several_faces_is_read_and_counted(reader):
    face = Image.open(io.BytesIO(SMILE))
    group = Image.new("RGB", (720, 400), "white")
    group.paste(face, (20, 80))
    group.paste(face.resize((170, 170)), (480, 120))
    assert reader.read(encoded(group, "JPEG")).faces == 2


def test_no_face_is_none_and_not_an_image_is_a_clear_error(reader):
    assert reader.read(encoded(Image.new("RGB", (300, 300), (90, 160, 200)), "PNG")) is None
    for junk in (b"", b"GIF89a not really", b"%PDF-1.7 a document", b"\xff\xd8\xff broken jpeg"):
        with pytest.raises(InputError, match="picture|image"):
            reader.read(junk)


def test_a_selfie_turn_reports_the_face_and_a_faceless_one_says_why(pipeline):
    result = pipeline.run(Turn(user_id="f1", image=SMILE, want_voice=False))
    assert result.emotion_analysis.image_emotion.emotion == "happy"
    assert result.emotion_analysis.fused_emotion.source == "image_only"
    assert result.emotion_analysis.fused_emotion.primary_emotion == "joy"
    assert result.response

    blank = encoded(Image.new("RGB", (200, 200), "grey"), "PNG")
    result = pipeline.run(Turn(user_id="f1", text="Look at this", image=blank, want_voice=False))
    assert result.emotion_analysis.image_emotion is None
    assert result.metadata.skipped_stages["face_emotion"] == "no face found in the image"


def test_a_face_that_contradicts_the_words_is_a_conflict_the_reply_is_asked_to_notice(pipeline):
    """No freely licensed photo of a sad face ships in any package here (see tests/data/README.md),
    so the mismatch runs the other way: "I'm fine." with a beaming face, and with a calm one."""
    mismatch = pipeline.run(Turn(user_id="f2", text="I'm fine.", image=SMILE, want_voice=False))
    assert mismatch.emotion_analysis.fused_emotion.source == "fused_conflict"
    calm = (Path(__file__).parent / "data" / "neutral_face.jpg").read_bytes()
    agreed = pipeline.run(Turn(user_id="f2", text="I'm fine.", image=calm, want_voice=False))
    assert agreed.emotion_analysis.image_emotion.emotion == "neutral"
    assert agreed.emotion_analysis.fused_emotion.source == "fused_aligned"


def _face_folders(root: Path, per_label: int = 8) -> Path:
    """FER2013's layout with small made-up 48x48 crops (bright low or high: learnable), and the
    real photo among the happy ones, where the face must be found first."""
    import numpy as np

    rng = np.random.default_rng(0)
    rows = np.linspace(0, 1, 48)[:, None] * np.ones((1, 48))
    for label, shade in (("happy", rows), ("sad", 1 - rows)):
        (root / label).mkdir(parents=True)
        for n in range(per_label):
            pixels = np.clip(shade * 200 + rng.normal(0, 20, (48, 48)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / label / f"{n}.png")
    (root / "happy" / "photo.jpg").write_bytes(SMILE)
    return root


def test_train_face_emotion_in_two_stages_resume_and_load_as_the_reader(tmp_path, pipeline, capsys, monkeypatch):
    import json

    from bots.cli import main
    from config import wiring
    from config.settings import Settings

    data, out = _face_folders(tmp_path / "faces"), tmp_path / "my-faces"
    common = ["train", "face-emotion", "--data", str(data), "--out", str(out), "--head-epochs", "1",
              "--batch-size", "4", "--validation", "0.25"]
    assert main([*common, "--epochs", "0"]) == 0
    assert "reading faces" in capsys.readouterr().err  # the progress bar
    assert main([*common, "--epochs", "2", "--json"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert "resuming after epoch 1 of 3" in captured.err
    assert [(e["epoch"], e["stage"]) for e in report["epochs"]] == [(1, "head"), (2, "all"), (3, "all")]
    assert report["labels"] == ["happy", "sad"] and (out / "confusion.png").is_file()

    monkeypatch.setenv("HEARTLINE_FACE_MODEL_DIR", str(out))
    reader = wiring.face_emotion_reader(Settings())
    reading = reader.read(SMILE)
    assert reader.name.endswith(":my-faces") and reading.emotion in ("happy", "sad") and reading.faces == 1

    (data / "sad" / "broken.png").write_bytes(b"\x89PNG not really")
    assert main([*common, "--out", str(tmp_path / "again")]) == 2
    assert "sad/broken.png: not an image" in capsys.readouterr().err
    (data / "sad" / "broken.png").unlink()
    Image.new("L", (400, 400), 128).save(data / "sad" / "wall.png")
    assert main([*common, "--out", str(tmp_path / "again")]) == 2
    assert "sad/wall.png: no face found in it" in capsys.readouterr().err

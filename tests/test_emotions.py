from core.emotions import FACE_LABELS, SHARED, TEXT_LABELS, VOICE_LABELS, Reading, fuse, to_shared
from core.turn import EmotionScore, FusedEmotion

WEIGHTS = {"text": 1.0, "image": 0.8, "voice": 0.6}


def test_every_reader_label_maps_into_the_shared_space():
    assert len(TEXT_LABELS) == 28
    for label in (*TEXT_LABELS, *FACE_LABELS, *VOICE_LABELS):
        assert to_shared(label) in SHARED
    assert to_shared("excitement") == "joy"
    assert to_shared("happy") == "joy"
    assert to_shared("grief") == "sadness"
    assert to_shared("nervousness") == "fear"
    assert to_shared("confusion") == "surprise"


def test_nothing_to_read_is_neutral_with_source_none():
    assert fuse([Reading("text", ())], WEIGHTS).source == "none"


def test_one_modality_sums_its_fine_labels_in_the_shared_space():
    text = Reading("text", (EmotionScore("excitement", 0.5), EmotionScore("joy", 0.3),
                            EmotionScore("sadness", 0.2)))
    fused = fuse([text], WEIGHTS)
    assert (fused.primary_emotion, fused.confidence, fused.source) == ("joy", 0.8, "text_only")


def test_agreeing_modalities_raise_confidence():
    text = Reading("text", (EmotionScore("joy", 0.6),))
    face = Reading("image", (EmotionScore("happy", 0.5),))
    fused = fuse([text, face], WEIGHTS)
    assert fused.source == "fused_aligned"
    assert fused.primary_emotion == "joy"
    assert fused.confidence == 0.8  # 1 - (1 - 0.6) * (1 - 0.5)


def test_smiling_face_with_sad_words_is_a_conflict():
    text = Reading("text", (EmotionScore("sadness", 0.9),))
    face = Reading("image", (EmotionScore("happy", 0.7),))
    fused = fuse([text, face], WEIGHTS)
    assert fused.source == "fused_conflict"
    assert fused.primary_emotion == "sadness"
    assert fused.confidence == round(0.9 / (0.9 + 0.8 * 0.7), 4)


def test_a_reader_with_nothing_to_go_on_does_not_vote():
    silent_voice = Reading("voice", (EmotionScore("neutral", 0.0),))
    words = Reading("text", (EmotionScore("sadness", 0.8),))
    assert fuse([words, silent_voice], {}) == FusedEmotion("sadness", 0.8, "text_only")

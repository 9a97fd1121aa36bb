from core.metrics import classification_report


def test_figures_match_a_hand_computed_example():
    gold = ["joy", "joy", "joy", "sadness", "sadness", "anger"]
    predicted = ["joy", "joy", "sadness", "sadness", "none", "joy"]
    report = classification_report(gold, predicted)
    assert report["accuracy"] == round(3 / 6, 4)
    # joy: precision 2/3, recall 2/3; sadness: precision 1/2, recall 1/2; anger: 0
    assert report["per_class"]["joy"] == {"precision": 0.6667, "recall": 0.6667, "f1": 0.6667, "support": 3}
    assert report["per_class"]["sadness"]["f1"] == 0.5
    assert report["per_class"]["anger"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert report["macro_f1"] == round((2 / 3 + 0.5 + 0) / 3, 4)
    assert report["confusion"]["sadness"] == {"anger": 0, "joy": 0, "none": 1, "sadness": 1}

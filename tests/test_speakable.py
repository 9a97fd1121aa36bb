import pytest

from core.speakable import number_words, ordinal_words, speakable


@pytest.mark.parametrize("n, words", [
    (0, "zero"), (7, "seven"), (21, "twenty-one"), (100, "one hundred"), (105, "one hundred and five"),
    (1999, "one thousand nine hundred and ninety-nine"), (2_000_024, "two million and twenty-four"),
])
def test_numbers(n, words):
    assert number_words(n) == words


@pytest.mark.parametrize("n, words", [(1, "first"), (2, "second"), (3, "third"), (12, "twelfth"),
                                      (20, "twentieth"), (21, "twenty-first"), (105, "one hundred and fifth")])
def test_ordinals(n, words):
    assert ordinal_words(n) == words


def test_a_reply_is_spelled_out_for_speaking():
    text = "Dr. Lee said 3:30 works 👍 — it costs $5.50, about 20% off, see https://x.example & the 2nd page."
    assert speakable(text) == (
        "doctor Lee said three thirty works — it costs five dollars fifty, about twenty percent off, "
        "see and the second page."
    )
    assert speakable("I have 1,250 steps to go, e.g. 2.5 km") == (
        "I have one thousand two hundred and fifty steps to go, for example two point five kilometres")


def test_other_languages_only_lose_links_and_emoji():
    assert speakable("Tengo 3 gatos 🐱 www.gatos.example", language="es") == "Tengo 3 gatos"

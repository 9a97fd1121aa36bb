import pytest

from core.moderation import judge, rule_scores


@pytest.mark.parametrize("text", [
    "I want to kill myself", "sometimes I think everyone would be better off without me",
    "I don't want to wake up tomorrow", "I've been cutting myself again",
])
def test_self_harm_is_recognised(text):
    assert rule_scores(text)["self_harm"] == 1.0
    assert judge(rule_scores(text), 0.5).crisis


@pytest.mark.parametrize("text", ["I'm going to kill you", "I know where you live", "you're dead"])
def test_threats_are_recognised(text):
    verdict = judge(rule_scores(text), 0.5)
    assert verdict.harmful and verdict.reasons == ("threat",) and not verdict.crisis


@pytest.mark.parametrize("text", [
    "this exam is killing me", "I could die laughing", "I'll find you a good book",
    "my back hurts", "that movie was sick",
])
def test_everyday_figures_of_speech_pass(text):
    assert not judge(rule_scores(text), 0.5).harmful


def test_admin_durations():
    from core.moderation import parse_duration

    assert parse_duration("30m") == 1800 and parse_duration("2h") == 7200
    assert parse_duration("1d12h") == 129600 and parse_duration("1w") == 604800
    for bad in ("soon", "10", "5 minutes", ""):
        with pytest.raises(ValueError):
            parse_duration(bad)

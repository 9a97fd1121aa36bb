"""The OpenAI-compatible reply backend against a fake server speaking the real wire format."""

from __future__ import annotations

import logging
import time
import traceback

import pytest

from core.pipeline import Pipeline, Stages
from core.turn import ChatMessage, FusedEmotion, ReplyRequest, Turn
from fake_openai import AUTH_MARKER, FakeOpenAI, error_body
from models.reply.openai_chat import OpenAIChatReplies, ReplyAPIError
from test_pipeline import Codec, Fallback, Memory, Store, Synthesizer, TextReader, Toxicity, Transcriber

KEY = "sk-or-v1-5f3c9a7e1d2b4c6a8e0f"
USER_TEXT = "My hamster Biscuit died this morning and I keep crying"
SYSTEM = "You are a warm friend. Answer in at most 3 short sentences."


@pytest.fixture()
def api():
    with FakeOpenAI(api_key=KEY) as server:
        yield server


def client(api, **options) -> OpenAIChatReplies:
    settings = {"api_key": KEY, "model": "test-model", "timeout_s": 2, "retries": 2,
                "backoff_s": 0.05, **options}
    return OpenAIChatReplies(api.base_url, **settings)


def request(user_text: str = USER_TEXT) -> ReplyRequest:
    messages = [ChatMessage("system", SYSTEM), ChatMessage("user", "I had a rough week."),
                ChatMessage("assistant", "I'm sorry. What happened?"), ChatMessage("user", user_text)]
    return ReplyRequest(messages, "friend", FusedEmotion("sadness", 0.9, "text"), "cli:u1")


def test_sends_the_chat_request_and_returns_the_reply(api):
    api.reply_with("  I'm so sorry about Biscuit.\n")
    replies = client(api, max_tokens=64, temperature=0.3,
                     extra_headers={"HTTP-Referer": "https://heartline.example", "X-Title": "Heartline"})
    assert replies.name == "api:test-model"
    assert replies.generate(request()) == "I'm so sorry about Biscuit."
    [sent] = api.requests
    assert (sent.method, sent.path) == ("POST", "/v1/chat/completions")
    assert sent.json == {
        "model": "test-model",
        "messages": [{"role": "system", "content": SYSTEM},
                     {"role": "user", "content": "I had a rough week."},
                     {"role": "assistant", "content": "I'm sorry. What happened?"},
                     {"role": "user", "content": USER_TEXT}],
        "max_tokens": 64,
        "temperature": 0.3,
    }
    assert sent.authorized and sent.headers["authorization"] == AUTH_MARKER
    assert sent.headers["content-type"] == "application/json"
    assert sent.headers["http-referer"] == "https://heartline.example"
    assert sent.headers["x-title"] == "Heartline"


def test_no_key_sends_no_authorization_header():
    with FakeOpenAI(api_key=None) as ollama:
        ollama.reply_with("Hello there.")
        assert client(ollama, api_key="").generate(request()) == "Hello there."
        assert "authorization" not in ollama.requests[0].headers


def test_one_client_is_kept_and_its_connection_reused(api):
    replies = client(api)
    for _ in range(3):
        replies.generate(request())
    assert len(api.requests) == 3
    assert len({sent.client_port for sent in api.requests}) == 1  # one kept-alive connection


def test_a_wrong_key_is_refused_without_retry_and_without_quoting_it():
    with FakeOpenAI(api_key="sk-the-right-key-0000") as server:
        with pytest.raises(ReplyAPIError) as caught:
            client(server).generate(request())
    assert caught.value.status == 401 and len(server.requests) == 1
    assert "HTTP 401" in str(caught.value) and "check the API key" in str(caught.value)
    assert KEY not in str(caught.value) and KEY[-4:] not in str(caught.value)


def test_rate_limit_waits_as_long_as_retry_after_says_then_succeeds(api):
    api.fail_next(429, retry_after=1)
    api.reply_with("Take your time.")
    replies = client(api, backoff_s=0.01)  # any wait near a second comes from Retry-After
    assert replies.generate(request()) == "Take your time."
    first, second = api.requests
    assert 0.95 <= second.at - first.at < 3


def test_a_long_retry_after_is_capped(api):
    api.fail_next(429, retry_after=30)
    started = time.monotonic()
    assert client(api, max_wait_s=0.2).generate(request())
    assert len(api.requests) == 2 and time.monotonic() - started < 3


def test_server_error_is_retried(api):
    api.fail_next(500)
    api.reply_with("Still here.")
    assert client(api).generate(request()) == "Still here."
    assert len(api.requests) == 2


def test_timeout_is_retried(api):
    api.delay_next(3)
    api.reply_with("Sorry for the wait.")
    started = time.monotonic()
    assert client(api, timeout_s=0.5).generate(request()) == "Sorry for the wait."
    assert len(api.requests) == 2 and time.monotonic() - started < 2.5


def test_bad_request_raises_at_once_with_the_providers_reason(api):
    api.fail_next(400, body=error_body("Invalid value for 'temperature'.", "invalid_request_error",
                                       "invalid_value", "temperature"))
    with pytest.raises(ReplyAPIError) as caught:
        client(api, retries=3).generate(request())
    assert len(api.requests) == 1
    assert caught.value.status == 400 and caught.value.code == "invalid_value"
    assert "HTTP 400" in str(caught.value) and "Invalid value for 'temperature'" in str(caught.value)


def test_the_fake_checks_the_body_like_the_real_api(api):
    replies = client(api, temperature=5)  # outside OpenAI's 0..2
    with pytest.raises(ReplyAPIError, match="HTTP 400.*temperature"):
        replies.generate(request())
    empty = ReplyRequest([], "friend", FusedEmotion("neutral", 1.0, "text"), "cli:u1")
    with pytest.raises(ReplyAPIError, match="HTTP 400.*empty array"):
        client(api).generate(empty)


def test_unknown_model_is_a_404_with_a_hint():
    with FakeOpenAI(api_key=KEY, models={"real-model"}) as server:
        with pytest.raises(ReplyAPIError, match="HTTP 404.*model_not_found.*check base_url and the model"):
            client(server, model="no-such-model").generate(request())
        assert len(server.requests) == 1


def test_retries_used_up_raise(api):
    api.fail_next(503, times=5)
    with pytest.raises(ReplyAPIError, match=r"after 3 attempts.*HTTP 503") as caught:
        client(api, retries=2).generate(request())
    assert caught.value.status == 503 and len(api.requests) == 3


def test_an_unreachable_server_raises_after_the_retries(unused_port):
    replies = OpenAIChatReplies(f"http://127.0.0.1:{unused_port}/v1", KEY, "m", retries=1, backoff_s=0.01)
    with pytest.raises(ReplyAPIError, match="after 2 attempts.*ConnectError") as caught:
        replies.generate(request())
    assert caught.value.status is None


def test_malformed_json_raises_without_retry(api):
    api.malformed_next()
    with pytest.raises(ReplyAPIError, match="not JSON"):
        client(api).generate(request())
    assert len(api.requests) == 1


@pytest.mark.parametrize("body", [
    {"id": "chatcmpl-1", "object": "chat.completion", "choices": []},
    {"error": {"message": "Upstream provider failed", "code": 502}},
    {"choices": [{"index": 0, "message": {"role": "assistant", "content": "   "},
                  "finish_reason": "length"}]},
    {"choices": [{"index": 0, "message": {"role": "assistant", "content": None},
                  "finish_reason": "content_filter"}]},
])
def test_an_answer_without_a_reply_raises(api, body):
    api.respond_next(200, body)
    with pytest.raises(ReplyAPIError, match="no choices|reported an error|empty reply"):
        client(api).generate(request())
    assert len(api.requests) == 1


def test_content_given_as_parts_is_joined(api):
    parts = [{"type": "text", "text": "Hello "}, {"type": "text", "text": "you."}]
    api.respond_next(200, {"choices": [{"index": 0, "finish_reason": "stop",
                                        "message": {"role": "assistant", "content": parts}}]})
    assert client(api).generate(request()) == "Hello you."


def test_the_key_and_the_users_words_never_reach_errors_or_logs(api, caplog):
    caplog.set_level(logging.DEBUG)
    api.reply_with("A secret-free reply about Biscuit's favourite seeds.")
    replies = client(api, timeout_s=0.4, retries=1, backoff_s=0.01, max_wait_s=0.05)
    quoting_errors = [
        # Providers that quote what they were sent, at their worst.
        (401, error_body(f"Incorrect API key provided: {KEY}.", "invalid_request_error", "invalid_api_key")),
        (400, error_body(f"Could not process message '{USER_TEXT}'.", "invalid_request_error", USER_TEXT)),
        (422, {"error": f"bad prompt: {USER_TEXT[5:40]}"}),
        (500, error_body(f"Crashed on {USER_TEXT.upper()} with key {KEY}", "server_error")),
    ]
    errors = []
    for status, body in quoting_errors:
        api.fail_next(status, body=body, times=2 if status >= 500 else 1)
        errors.append(_raised(replies))
    api.fail_next(429, retry_after=0.01, times=2)
    errors.append(_raised(replies))
    api.delay_next(1, times=2)
    errors.append(_raised(replies))
    api.malformed_next()
    errors.append(_raised(replies))
    assert replies.generate(request()) == "A secret-free reply about Biscuit's favourite seeds."

    assert all(isinstance(error, ReplyAPIError) for error in errors)
    assert "HTTP 400" in str(errors[1]) and "withheld" in str(errors[1])
    texts = ["".join(traceback.format_exception(error)) for error in errors]
    texts += [repr(replies)]
    texts += [record.getMessage() + (record.exc_text or "") for record in caplog.records]
    assert caplog.records, "expected the retries to be logged"
    for text in texts:
        for secret in (KEY, KEY[:12], USER_TEXT, USER_TEXT[5:40], USER_TEXT.upper(), "Biscuit"):
            assert secret.lower() not in text.lower(), text


def _raised(replies: OpenAIChatReplies) -> Exception:
    with pytest.raises(ReplyAPIError) as caught:
        replies.generate(request())
    return caught.value


def _pipeline(replier) -> Pipeline:
    return Pipeline(Stages(
        codec=Codec(), transcriber=Transcriber(), text_emotion=TextReader(), face_emotion=None,
        voice_emotion=None, memory=Memory(), replier=replier, fallback=Fallback(),
        toxicity=Toxicity(), synthesizer=Synthesizer(), store=Store(),
    ))


def test_the_pipeline_falls_back_when_the_api_keeps_failing(api, caplog):
    api.fail_next(500, times=10)
    pipeline = _pipeline(client(api, retries=1))
    result = pipeline.run(Turn(user_id="u1", text=USER_TEXT))
    assert (result.response, result.safety.action) == ("I'm listening.", "fallback")
    assert result.metadata.models["reply"] == "rules"
    assert len(api.requests) == 2
    assert api.requests[0].json["messages"][-1] == {"role": "user", "content": USER_TEXT}
    assert any("using the fallback" in r.getMessage() for r in caplog.records)
    assert not any(USER_TEXT in r.getMessage() + (r.exc_text or "") for r in caplog.records)


def test_the_pipeline_uses_the_api_reply_when_it_works(api):
    api.reply_with("Oh no, I'm so sorry. Biscuit was lucky to have you.")
    pipeline = _pipeline(client(api))
    result = pipeline.run(Turn(user_id="u1", text=USER_TEXT))
    assert result.response == "Oh no, I'm so sorry. Biscuit was lucky to have you."
    assert result.safety.action == "pass"
    assert result.metadata.models["reply"] == "api:test-model"
    [sent] = api.requests
    roles = [m["role"] for m in sent.json["messages"]]
    assert roles[0] == "system" and roles[-1] == "user"
    assert sent.json["messages"][-1]["content"] == USER_TEXT


def test_heartline_reply_on_the_api_backend_says_which_backend_answered(api, data_dir):
    import json

    from test_cli import heartline

    api.reply_with("Congratulations, that is wonderful news!")
    done = heartline("reply", "--user", "api1", "--text", "I just got the job I wanted!", "--json",
                     "--no-voice", env={
                         "HEARTLINE_REPLY_BACKEND": "api", "HEARTLINE_REPLY_API_BASE_URL": api.base_url,
                         "HEARTLINE_REPLY_API_KEY": KEY, "HEARTLINE_REPLY_API_MODEL": "test-model"})
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["response"] == "Congratulations, that is wonderful news!"
    assert result["metadata"]["models"]["reply"] == "api:test-model"
    [sent] = [r for r in api.requests if r.path.endswith("/chat/completions")]
    assert sent.json["messages"][-1] == {"role": "user", "content": "I just got the job I wanted!"}
    assert "The user sounds happy" in sent.json["messages"][0]["content"]  # the emotion modifier
    assert KEY not in done.stderr

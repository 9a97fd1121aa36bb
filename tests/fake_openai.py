"""An OpenAI-compatible chat API on loopback: `POST /v1/chat/completions`, as OpenAI, OpenRouter,
Ollama and llama.cpp's server answer it.

    with FakeOpenAI(api_key="sk-test") as api:
        client = OpenAIChatReplies(api.base_url, "sk-test", "test-model")
        api.reply_with("Hello!")
        api.fail_next(429, retry_after=1)     # then 500s, 400s, any status and body
        api.delay_next(2.0)                   # the next answer comes late (client timeouts)
        api.malformed_next()                  # the next answer is not JSON
        api.respond_next(200, {"choices": []})  # any status and body, verbatim
        api.requests[-1].json["messages"]     # what the client sent

Every request is recorded as it arrives, before any delay, with its headers (the Authorization
value replaced by a marker: the key is never stored) and its JSON body. Queued responses
(`fail_next`, `malformed_next`, `respond_next`) answer the next requests in order, ahead of the
authentication and body checks; otherwise a request with a wrong key gets OpenAI's 401, a bad body
OpenAI's 400, and a good one a `chat.completion` whose content is the `reply_with` text.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

ROLES = {"system", "developer", "user", "assistant", "tool"}
AUTH_MARKER = "Bearer <redacted>"


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names; "authorization" is AUTH_MARKER when sent
    json: Any  # the parsed body, None when it was not JSON
    authorized: bool  # the Authorization header carried the configured key (True if none is set)
    client_port: int  # the client's end of the connection: the same port means a reused connection
    at: float = field(default_factory=time.monotonic)


@dataclass
class _Canned:
    status: int
    body: bytes
    headers: dict[str, str]


def error_body(message: str, type_: str, code: str | None = None, param: str | None = None) -> dict:
    """OpenAI's error JSON."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


_DEFAULT_ERRORS = {
    400: ("Invalid request.", "invalid_request_error", None),
    401: ("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
    403: ("You are not allowed to use this model.", "invalid_request_error",
          "unsupported_country_region_territory"),
    404: ("The model does not exist or you do not have access to it.", "invalid_request_error",
          "model_not_found"),
    429: ("Rate limit reached for requests. Please try again later.", "requests", "rate_limit_exceeded"),
    500: ("The server had an error while processing your request. Sorry about that!", "server_error", None),
    502: ("Bad gateway.", "server_error", None),
    503: ("The engine is currently overloaded, please try again later.", "server_error", None),
}


class FakeOpenAI:
    """The fake server, in a background thread with its own event loop; `base_url` ends in /v1.

    `api_key=None` accepts any request, with or without an Authorization header (like Ollama).
    `models`, when given, is the set of model names it serves (others get a 404 model_not_found).
    """

    def __init__(self, api_key: str | None = "sk-test-fake-key", models: set[str] | None = None) -> None:
        self._api_key = api_key
        self.models = models
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        self._reply = "I'm here with you."
        self._canned: deque[_Canned] = deque()
        self._delays: deque[float] = deque()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fake-openai", daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(10)
        self._closed = False

    async def _serve(self) -> None:
        self._closing = asyncio.Event()  # set on close: delayed answers stop waiting
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
        self.base_url = f"{self.url}/v1"

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    async def _shutdown(self) -> None:
        self._closing.set()
        await asyncio.sleep(0)  # let delayed handlers see it and finish
        await self._runner.cleanup()

    def __enter__(self) -> FakeOpenAI:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ---- test controls ----

    def reply_with(self, text: str) -> None:
        """The assistant's content for every successful answer from now on."""
        with self._lock:
            self._reply = text

    def respond_next(self, status: int, body: Any, headers: dict[str, str] | None = None,
                     times: int = 1) -> None:
        """Answer the next `times` requests with this status and body (JSON unless str or bytes)."""
        if isinstance(body, str):
            data = body.encode()
        elif isinstance(body, bytes):
            data = body
        else:
            data = json.dumps(body).encode()
        kind = "text/plain; charset=utf-8" if isinstance(body, (str, bytes)) else "application/json"
        canned = _Canned(status, data, {"Content-Type": kind, **(headers or {})})
        with self._lock:
            self._canned.extend(canned for _ in range(times))

    def fail_next(self, status: int, times: int = 1, retry_after: float | None = None,
                  body: Any = None) -> None:
        """The next `times` requests get `status` with OpenAI's error JSON (or `body`), and a
        Retry-After header when `retry_after` is given."""
        if body is None:
            message, type_, code = _DEFAULT_ERRORS.get(status, ("Error.", "server_error", None))
            body = error_body(message, type_, code)
        headers = {} if retry_after is None else {"Retry-After": _seconds(retry_after)}
        self.respond_next(status, body, headers, times)

    def malformed_next(self, times: int = 1) -> None:
        """The next answers claim to be JSON and are not (a proxy's truncated page, say)."""
        truncated = b'{"id": "chatcmpl-x", "object": "chat.completion", "choices": [{"message": '
        with self._lock:
            self._canned.extend(_Canned(200, truncated, {"Content-Type": "application/json"})
                                for _ in range(times))

    def delay_next(self, seconds: float, times: int = 1) -> None:
        """The next `times` requests wait `seconds` before being answered."""
        with self._lock:
            self._delays.extend(seconds for _ in range(times))

    # ---- HTTP ----

    async def _chat(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        sent_auth = request.headers.get("Authorization")
        authorized = self._api_key is None or sent_auth == f"Bearer {self._api_key}"
        headers = {name.lower(): value for name, value in request.headers.items()}
        if "authorization" in headers:
            headers["authorization"] = AUTH_MARKER
        with self._lock:
            peer = request.transport.get_extra_info("peername") if request.transport else None
            self.requests.append(Received(request.method, request.path, headers, body, authorized,
                                          peer[1] if peer else 0))
            delay = self._delays.popleft() if self._delays else 0.0
            canned = self._canned.popleft() if self._canned else None
            reply = self._reply
        if delay:
            try:
                await asyncio.wait_for(self._closing.wait(), delay)
            except asyncio.TimeoutError:
                pass
        if canned is not None:
            return web.Response(status=canned.status, body=canned.body, headers=canned.headers)
        if not authorized:
            return self._unauthorized(sent_auth)
        problem = _invalid(body, raw, request.content_type)
        if problem is not None:
            return _error(400, error_body(*problem))
        if self.models is not None and body["model"] not in self.models:
            return _error(404, error_body(f"The model `{body['model']}` does not exist or you do not "
                                          "have access to it.", "invalid_request_error", "model_not_found"))
        return web.json_response(_completion(body, reply),
                                 headers={"x-request-id": f"req_{secrets.token_hex(12)}"})

    def _unauthorized(self, sent: str | None) -> web.Response:
        if not sent:
            return _error(401, error_body(
                "You didn't provide an API key. You need to provide your API key in an Authorization "
                "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                "invalid_request_error"))
        # Like OpenAI: quote the key that was sent, masked but for its ends.
        key = sent.removeprefix("Bearer ").strip()
        masked = key[:3] + "*" * max(len(key) - 7, 0) + key[-4:] if len(key) > 7 else "*" * len(key)
        return _error(401, error_body(
            f"Incorrect API key provided: {masked}. You can find your API key at "
            "https://platform.openai.com/account/api-keys.", "invalid_request_error", "invalid_api_key"))


def _error(status: int, body: dict) -> web.Response:
    return web.json_response(body, status=status)


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _invalid(body: Any, raw: bytes, content_type: str) -> tuple | None:
    """What OpenAI would answer with a 400 for this body: (message, type, code, param), or None."""
    bad = "invalid_request_error"
    if body is None:
        return ("We could not parse the JSON body of your request. (HINT: This likely means you aren't "
                "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was "
                "sent was not valid JSON.)", bad, None, None)
    if content_type != "application/json":
        return (f"Invalid Content-Type header ({content_type}), expected application/json.", bad, None, None)
    if not isinstance(body, dict):
        return ("Invalid type for request body: expected an object.", bad, "invalid_type", None)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return ("you must provide a model parameter", bad, None, "model")
    messages = body.get("messages")
    if not isinstance(messages, list):
        return ("Missing required parameter: 'messages'.", bad, "missing_required_parameter", "messages")
    if not messages:
        return ("Invalid 'messages': empty array. Expected an array with minimum length 1, but got an "
                "empty array instead.", bad, "empty_array", "messages")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            return (f"Invalid type for 'messages[{i}]': expected an object.", bad, "invalid_type",
                    f"messages[{i}]")
        if message.get("role") not in ROLES:
            return (f"Invalid value for 'messages[{i}].role': expected one of {sorted(ROLES)}.", bad,
                    "invalid_value", f"messages[{i}].role")
        content = message.get("content")
        if not (isinstance(content, str) or (isinstance(content, list) and content)):
            return (f"Invalid type for 'messages[{i}].content': expected a string or an array of "
                    "content parts.", bad, "invalid_type", f"messages[{i}].content")
    max_tokens = body.get("max_tokens")
    if max_tokens is not None and (type(max_tokens) is not int or max_tokens < 1):
        return ("Invalid 'max_tokens': expected an integer of at least 1.", bad, "invalid_value",
                "max_tokens")
    temperature = body.get("temperature")
    if temperature is not None and (isinstance(temperature, bool)
                                    or not isinstance(temperature, (int, float))
                                    or not 0 <= temperature <= 2):
        return ("Invalid 'temperature': expected a number between 0 and 2.", bad, "invalid_value",
                "temperature")
    return None


def _completion(body: dict, reply: str) -> dict:
    """A non-streamed chat.completion; a reply longer than max_tokens words is cut, as a model would be."""
    words = reply.split(" ")
    limit = body.get("max_tokens")
    finish = "stop"
    if limit is not None and len(words) > limit:
        reply, finish = " ".join(words[:limit]), "length"
    prompt_tokens = sum(len(str(m.get("content", "")).split()) + 4 for m in body["messages"])
    completion_tokens = len(reply.split())
    return {
        "id": f"chatcmpl-{secrets.token_hex(12)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body["model"],
        "system_fingerprint": "fp_fake",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": reply, "refusal": None},
            "logprobs": None,
            "finish_reason": finish,
        }],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }

"""Replies from any OpenAI-compatible chat API: OpenRouter, OpenAI, Gemini's OpenAI endpoint, Ollama,
a llama.cpp server.

One `POST {base_url}/chat/completions` per reply over a single `httpx.Client` kept for the process
(connections are reused). Rate limits (429, honouring Retry-After), server errors (5xx), timeouts
and dropped connections are retried a few times with a short wait; anything else raises
`ReplyAPIError`, which the pipeline answers with the rule-based fallback.

Privacy: the API key, the prompt and the reply are never logged and never put into an exception
message. What the provider says about an error is passed on only when it quotes neither.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from urllib.parse import urlsplit, urlunsplit

import httpx

from core.turn import ReplyRequest

log = logging.getLogger(__name__)

_DETAIL_CHARS = 300  # how much of the provider's own error message is passed on


class ReplyAPIError(RuntimeError):
    """The chat API gave no usable reply. `str()` names the endpoint, the model and what went wrong,
    never the API key or what the user said.

    `status` is the HTTP status when there was one; `code` the provider's error code or type.
    """

    def __init__(self, message: str, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class OpenAIChatReplies:
    """A `ReplyGenerator` for any `/v1/chat/completions` endpoint.

    `base_url` is the API root that `/chat/completions` is appended to, e.g.
    "https://openrouter.ai/api/v1", "https://api.openai.com/v1",
    "https://generativelanguage.googleapis.com/v1beta/openai", "http://localhost:11434/v1".
    An empty `api_key` sends no Authorization header (Ollama, a local llama.cpp server).
    `timeout_s` bounds each attempt; `retries` is how many more attempts follow a 429, a 5xx, a
    timeout or a connection error. `backoff_s` is the first wait between attempts (doubled each
    time), and no wait, including one a Retry-After header asks for, is longer than `max_wait_s`.
    `extra_headers` go with every request (OpenRouter's "HTTP-Referer" and "X-Title", say).
    """

    def __init__(self, base_url: str, api_key: str, model: str, timeout_s: float = 30,
                 retries: int = 2, max_tokens: int = 120, temperature: float = 0.7,
                 extra_headers: Mapping[str, str] | None = None, *,
                 backoff_s: float = 0.5, max_wait_s: float = 5.0) -> None:
        if not base_url.strip():
            raise ValueError("the reply API needs a base URL, e.g. https://openrouter.ai/api/v1")
        if not model.strip():
            raise ValueError("the reply API needs a model name")
        self.model = model.strip()
        self.name = f"api:{self.model}"
        self.url = base_url.strip().rstrip("/") + "/chat/completions"
        self.timeout_s = float(timeout_s)
        self.retries = max(0, int(retries))
        self.max_tokens = int(max_tokens)
        self.temperature = float(temperature)
        self.backoff_s = max(0.0, float(backoff_s))
        self.max_wait_s = max(0.0, float(max_wait_s))
        self._api_key = (api_key or "").strip()
        self._where = _safe_url(self.url)  # what error messages name: no credentials, no query
        headers = {"Accept": "application/json", "User-Agent": "heartline"}
        headers.update(extra_headers or {})
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        self._client = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(self.timeout_s, connect=min(self.timeout_s, 10.0)),
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"OpenAIChatReplies({self._where!r}, model={self.model!r})"

    def close(self) -> None:
        self._client.close()

    def generate(self, request: ReplyRequest) -> str:
        body = {
            "model": self.model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
        }
        redact = _Redactor(self._api_key, (m.content for m in request.messages))
        attempts = self.retries + 1
        for attempt in range(1, attempts + 1):
            started = time.monotonic()
            wait: float | None = None
            status: int | None = None
            try:
                response = self._client.post(self.url, json=body)
            except httpx.RequestError as exc:  # connection, timeout, protocol, decoding
                reason = redact(str(exc)) or "no detail"
                problem = f"{type(exc).__name__} ({reason})"
            else:
                status = response.status_code
                if 200 <= status < 300:
                    reply = self._read(response, redact)
                    log.debug("%s answered in %.2fs (attempt %d)", self.name,
                              time.monotonic() - started, attempt)
                    return reply
                if status != 429 and status < 500:
                    raise self._refused(response, redact)
                problem = f"HTTP {status}{self._detail(response, redact)}"
                wait = _retry_after(response.headers)
            if attempt == attempts:
                raise ReplyAPIError(
                    f"the reply API at {self._where} (model {self.model}) gave no reply after "
                    f"{attempts} attempt{'s' if attempts > 1 else ''}; the last: {problem}",
                    status=status,
                ) from None
            if wait is None:
                wait = self.backoff_s * 2 ** (attempt - 1) * random.uniform(1.0, 1.25)
            wait = min(max(wait, 0.0), self.max_wait_s)
            log.warning("reply API %s: %s; retrying in %.1fs (attempt %d of %d)",
                        self.name, problem, wait, attempt + 1, attempts)
            time.sleep(wait)
        raise AssertionError("unreachable")

    # -- answers --------------------------------------------------------------------------

    def _read(self, response: httpx.Response, redact: _Redactor) -> str:
        """choices[0].message.content of a successful answer, stripped."""
        where = f"the reply API at {self._where} (model {self.model})"
        try:
            data = response.json()
        except ValueError:
            kind = response.headers.get("content-type", "no content type").split(";")[0]
            raise ReplyAPIError(
                f"{where} answered HTTP {response.status_code} with a body that is not JSON "
                f"({redact(kind)}); is base_url the API root (ending in /v1 or similar)?",
                status=response.status_code) from None
        if not isinstance(data, dict):
            raise ReplyAPIError(f"{where} answered JSON that is not a chat completion",
                                status=response.status_code)
        choices = data.get("choices")
        if not choices:
            if data.get("error"):  # some gateways report a failed upstream call with a 200
                message, code = _error_fields(data)
                raise ReplyAPIError(f"{where} reported an error{_describe(message, code, redact)}",
                                    status=response.status_code, code=redact(code) or None)
            raise ReplyAPIError(f"{where} answered with no choices", status=response.status_code)
        first = choices[0] if isinstance(choices, list) else None
        message = first.get("message") if isinstance(first, dict) else None
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):  # content given as parts: [{"type": "text", "text": ...}]
            content = "".join(part.get("text") or "" for part in content
                              if isinstance(part, dict) and part.get("type") in ("text", None))
        if content is not None and not isinstance(content, str):
            raise ReplyAPIError(f"{where} answered a choice whose content is not text",
                                status=response.status_code)
        reply = (content or "").strip()
        if not reply:
            finish = first.get("finish_reason") if isinstance(first, dict) else None
            finish = redact(str(finish))[:40] if finish else "none given"
            raise ReplyAPIError(f"{where} answered an empty reply (finish_reason: {finish})",
                                status=response.status_code)
        return reply

    def _refused(self, response: httpx.Response, redact: _Redactor) -> ReplyAPIError:
        """A 4xx other than 429: retrying would not help."""
        status = response.status_code
        _, code = _error_fields(_json_or_none(response))
        if status in (401, 403):
            # Providers quote (part of) the key they were sent here; say nothing of theirs.
            hint = ": check the API key" + ("" if self._api_key else " (none is set)")
            detail = f" ({redact(code)})" if code and redact(code) == code else ""
        else:
            hint = {404: ": check base_url and the model name"}.get(status, "")
            detail = self._detail(response, redact)
        return ReplyAPIError(
            f"the reply API at {self._where} (model {self.model}) refused the request: "
            f"HTTP {status}{detail}{hint}",
            status=status, code=redact(code) or None,
        )

    def _detail(self, response: httpx.Response, redact: _Redactor) -> str:
        message, code = _error_fields(_json_or_none(response))
        return _describe(message, code, redact)


# -- helpers ----------------------------------------------------------------------------------


class _Redactor:
    """Passes text through only if it quotes neither the key nor any of the prompt's contents.

    A quote is any run of 16 characters (8 of the key; fewer when the secret is shorter) found in
    the text, ignoring case. Text that quotes is replaced whole: a partial scrub could leave the rest.
    """

    WITHHELD = "[withheld: it quoted the request]"

    def __init__(self, api_key: str, contents: Iterable[str]) -> None:
        self._secrets: list[tuple[str, int]] = []
        if len(api_key) >= 4:
            self._secrets.append((api_key.casefold(), min(8, len(api_key))))
        for content in contents:
            content = " ".join(content.split()).casefold()
            if len(content) >= 4:
                self._secrets.append((content, min(16, len(content))))

    def __call__(self, text: str | None) -> str:
        if not text:
            return ""
        folded = " ".join(text.split()).casefold()
        for secret, width in self._secrets:
            if len(folded) < width:
                continue
            windows = {folded[i:i + width] for i in range(len(folded) - width + 1)}
            if any(secret[i:i + width] in windows for i in range(len(secret) - width + 1)):
                return self.WITHHELD
        return text


def _json_or_none(response: httpx.Response) -> object:
    try:
        return response.json()
    except ValueError:
        return None


def _error_fields(data: object) -> tuple[str | None, str | None]:
    """`message` and `code` (or `type`) of an OpenAI-style error body, in any of its dialects."""
    if isinstance(data, list) and data:  # Gemini's OpenAI endpoint wraps the error in a list
        data = data[0]
    if not isinstance(data, dict):
        return None, None
    error = data.get("error", data)
    if isinstance(error, str):  # Ollama and llama.cpp sometimes answer {"error": "..."}
        return error, None
    if not isinstance(error, dict):
        return None, None
    message = error.get("message")
    code = error.get("code") or error.get("type") or error.get("status")
    return (str(message) if message else None), (str(code) if code else None)


def _describe(message: str | None, code: str | None, redact: _Redactor) -> str:
    parts = []
    if code:
        parts.append(redact(code)[:60])
    if message:
        text = " ".join(message.split())
        text = text[:_DETAIL_CHARS] + ("..." if len(text) > _DETAIL_CHARS else "")
        parts.append(redact(text))
    return f" ({': '.join(parts)})" if parts else ""


def _retry_after(headers: httpx.Headers) -> float | None:
    """Seconds the server asks us to wait: `retry-after-ms` (OpenAI), else `Retry-After`."""
    value = headers.get("retry-after-ms")
    if value:
        try:
            return float(value) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return (when - datetime.now(timezone.utc)).total_seconds()


def _safe_url(url: str) -> str:
    """The URL without user:password and query (where some keys travel)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))

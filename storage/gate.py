"""What every bot process must agree on before a message becomes a job: has it been seen, and is
its sender within their rate. Kept by the `limits` library in Redis when Heartline has one
(shared by all bot processes), in this process's memory otherwise (the embedded setup has one).
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItemPerDay, RateLimitItemPerMinute, parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

# A platform redelivers within minutes; a day is far past that, and the keys expire by themselves.
_ONCE = RateLimitItemPerDay(1)


class Gate:
    def __init__(self, storage_uri: str, messages_per_minute: int) -> None:
        self.limiter = MovingWindowRateLimiter(storage_from_string(storage_uri))
        self.rate = RateLimitItemPerMinute(messages_per_minute)

    def seen(self, message_key: str) -> bool:
        """Whether this platform message was already handled (a redelivery, to drop)."""
        return not self.limiter.test(_ONCE, "message", message_key)

    def handled(self, message_key: str) -> None:
        """Marked only once the message is handled (its job exists): a bot killed before that
        must not drop the platform's redelivery, which is then the only copy."""
        self.limiter.hit(_ONCE, "message", message_key)

    def wait_s(self, user_key: str, rate: str | None = None) -> int:
        """0 if the user may send this message now, else how many seconds until they may.
        `rate` is an admin's own for this user ("20/hour"), in place of the default."""
        item = parse(rate) if rate else self.rate
        if self.limiter.hit(item, "user", user_key):
            return 0
        reset_at = self.limiter.get_window_stats(item, "user", user_key).reset_time
        return max(1, math.ceil(reset_at - time.time()))

"""The contract between a front door and the workers: job in, one delivery out.

A door turns a platform message into a job (a `Turn`, or a command's arguments) and confirms the
platform only once the job exists. The worker that runs it writes exactly one `Delivery` for that
message into the outbox, keyed by `message_key`; the door's sender loop claims it, sends it, and
marks it sent. Nothing but these values crosses between the two sides, so a bot and its workers
can run on different hosts with no shared disk.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


def message_key(platform: str, chat_id: str, message_id: str) -> str:
    """One key per platform message: its job id and its outbox row's key."""
    digest = hashlib.sha256(f"{platform}\0{chat_id}\0{message_id}".encode()).hexdigest()
    return "msg-" + digest[:32]


# A chat id of this form is a private chat with the user of that id, which each door finds its
# own way (Telegram's is the user's id; Discord opens a DM channel): how admins are told.
DIRECT = "dm:"


@dataclass(frozen=True)
class VoiceNote:
    ogg: bytes
    duration_s: float
    waveform: bytes  # up to 256 loudness bytes, as Discord voice messages carry


@dataclass(frozen=True)
class Outgoing:
    """What Heartline says back: words, and maybe a voice note of them."""

    text: str | None = None
    voice: VoiceNote | None = None
    result: dict | None = None  # the whole turn result, for doors that show more of it
    problem: str | None = None  # "input" (what the user sent) or "internal" (our fault)
    # Set when the answer is being made by a worker: it arrives through the outbox under this key.
    queued: str | None = None


@dataclass(frozen=True)
class Delivery:
    """One outbox row: the answer to one platform message, and where it goes."""

    key: str
    platform: str
    chat_id: str
    user_key: str
    reply: Outgoing
    reply_to: str | None = None  # the message to quote (in groups), or None
    attempts: int = 0


@dataclass(frozen=True)
class Envelope:
    """The platform message a job answers: where its one delivery goes."""

    platform: str
    chat_id: str
    message_id: str
    user_key: str
    in_group: bool = False  # in a group chat the answer quotes the message it answers

    @property
    def key(self) -> str:
        return message_key(self.platform, self.chat_id, self.message_id)

    def answer(self, reply: Outgoing) -> Delivery:
        return Delivery(self.key, self.platform, self.chat_id, self.user_key, reply,
                        reply_to=self.message_id if self.in_group else None)

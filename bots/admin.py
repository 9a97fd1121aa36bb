"""Admin commands, said in chat (`/admin ban telegram:42 spam`) or typed on the command line
(`heartline admin ban telegram:42 --reason spam`): one place acts on them through
`storage.moderation` and words what was done, so both say the same.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

import limits

from config.settings import Settings
from core.moderation import parse_duration
from storage.moderation import Moderation, ReviewError

USAGE = """Admin commands (USER is platform:id, or an id on this platform):
/admin flagged - the newest open flags
/admin review ID approve|dismiss - approve warns the user, dismiss clears the flag
/admin warn USER [reason]
/admin mute USER DURATION [reason] - e.g. 30m, 2h, 1d
/admin ban USER [reason]
/admin unban USER - lifts a ban or a mute
/admin user USER - what is known of them
/admin forget USER - delete everything they gave me
/admin limits USER N/PERIOD - e.g. 20/hour; "default" to undo
/admin audit [USER] - the newest admin actions"""

# What each command needs after its name (a reason may follow).
FORMS = {
    "review": ("ID", "approve|dismiss"), "warn": ("USER",), "mute": ("USER", "DURATION"),
    "ban": ("USER",), "unban": ("USER",), "user": ("USER",), "forget": ("USER",),
    "limits": ("USER", "N/PERIOD"),
}
_USER_KEY = re.compile(r"[a-z]+:[\w.@-]{1,128}")
_ID = re.compile(r"[\w.@-]{1,128}")


class AdminError(ValueError):
    """The admin's words could not be acted on; the message says why."""


@dataclass(frozen=True)
class Done:
    result: dict | list
    words: str


def user_key(text: str, platform: str | None = None) -> str:
    """"telegram:42" as it is; a bare "42" on the admin's own platform, when there is one."""
    if _USER_KEY.fullmatch(text):
        return text
    if platform and _ID.fullmatch(text):
        return f"{platform}:{text}"
    raise AdminError(f"a user is platform:id, e.g. telegram:12345, not {text!r}")


def rate(text: str) -> str | None:
    """An admin's rate ("20/hour", "100 per day") as the limits library writes it; None for
    "default"."""
    if text.lower() in ("default", "none", "off"):
        return None
    try:
        item = limits.parse(text)
    except ValueError:
        raise AdminError(f"a limit is N/PERIOD, e.g. 20/hour or 100/day, not {text!r}") from None
    return f"{item.amount}/{item.multiples} {item.GRANULARITY.name}".replace("/1 ", "/")


def _when(moment: datetime) -> str:
    return f"{moment:%d %b %H:%M} UTC"


def _minute(iso: str) -> str:
    """"2026-12-03T10:00:41+00:00" as "2026-12-03 10:00"."""
    return iso[:16].replace("T", " ")


class AdminDesk:
    def __init__(self, moderation: Moderation, settings: Settings) -> None:
        self.moderation = moderation
        self.settings = settings

    @property
    def _warn_mute(self) -> timedelta:
        return timedelta(hours=self.settings.warn_mute_hours)

    def flagged(self, limit: int = 20, everything: bool = False) -> Done:
        flags = self.moderation.flagged(limit, everything)
        lines = []
        for flag in flags:
            scores = ", ".join(f"{name} {value:.2f}" for name, value in flag["scores"].items())
            status = "" if flag["status"] == "open" else f" [{flag['status']}]"
            lines.append(f"#{flag['id']} {_minute(flag['at'])} {flag['user']} "
                         f"{flag['kind']}: {', '.join(flag['reasons'])}"
                         + (f" ({scores})" if scores else "") + status)
        return Done(flags, "\n".join(lines) or "No open flags.")

    def review(self, actor: str, flag_id: str | int, verdict: str) -> Done:
        if verdict not in ("approve", "dismiss"):
            raise AdminError("review a flag with approve or dismiss")
        try:
            done = self.moderation.review(actor, int(flag_id), verdict, self.settings.warn_limit,
                                          self._warn_mute)
        except ValueError as error:  # ReviewError, or an id that is no number
            raise AdminError(str(error) if isinstance(error, ReviewError)
                             else f"a flag id is a number, not {flag_id!r}") from None
        words = f"Flag {flag_id} {done['status']}."
        if verdict == "approve":
            words += f" {done['user']} now has {done['warnings']} warning(s)" + (
                f" and is muted until {_minute(done['muted_until'])} UTC." if done["muted_until"] else ".")
        return Done(done, words)

    def warn(self, actor: str, target: str, reason: str | None) -> Done:
        count, until = self.moderation.warn(actor, target, reason, self.settings.warn_limit, self._warn_mute)
        words = f"{target} has {count} warning(s)" + (f"; muted until {_when(until)}" if until else "")
        return Done({"user": target, "warnings": count,
                     "muted_until": until.isoformat() if until else None}, words)

    def mute(self, actor: str, target: str, duration: str, reason: str | None) -> Done:
        try:
            seconds = parse_duration(duration)
        except ValueError as error:
            raise AdminError(str(error)) from None
        until = self.moderation.mute(actor, target, timedelta(seconds=seconds), reason)
        return Done({"user": target, "muted_until": until.isoformat()}, f"{target} muted until {_when(until)}")

    def ban(self, actor: str, target: str, reason: str | None) -> Done:
        self.moderation.ban(actor, target, reason)
        return Done({"user": target, "banned": True}, f"{target} banned")

    def unban(self, actor: str, target: str, reason: str | None = None) -> Done:
        self.moderation.unban(actor, target, reason)
        return Done({"user": target, "banned": False}, f"{target} may talk to me again")

    def user(self, target: str) -> Done:
        found = self.moderation.user(target)
        if not found["known"]:
            return Done(found, f"I don't know {target}.")
        today = found["today"]
        facts = {**found, "today": f"{today['turns']} messages, {today['voice_seconds']:.0f} s of voice, "
                                   f"{today['registrations']} voice registrations"}
        return Done(found, "\n".join(f"{key}: {value}" for key, value in facts.items() if key != "known"))

    def limits(self, actor: str, target: str, wanted: str) -> Done:
        chosen = rate(wanted)
        self.moderation.set_limit(actor, target, chosen)
        default = f"{self.settings.max_messages_per_minute}/minute"
        return Done({"user": target, "rate_limit": chosen or default},
                    f"{target} may send {chosen or default}" + ("" if chosen else " (the default)"))

    def forget(self, queue, actor: str, target: str) -> Done:
        """Everything the user gave, deleted by a worker (which holds their memories); waited for."""
        from workers import jobs

        queue.submit(jobs.forget_everything, target, actor,
                     description="admin forget").result(self.settings.job_timeout_s + 60)
        return Done({"forgotten": target}, f"Forgot everything {target} gave; their warnings and bans stay.")

    def audit(self, limit: int = 20, target: str | None = None) -> Done:
        rows = self.moderation.audit(limit, target)
        words = "\n".join(f"{_minute(r['at'])} {r['actor']} {r['action']} {r['target'] or '-'}"
                          + (f": {r['reason']}" if r["reason"] else "") for r in rows)
        return Done(rows, words or "No admin actions yet.")

    def said(self, actor: str, platform: str | None, words: list[str]) -> Done:
        """An admin command in chat, the words after "/admin" as typed. `forget` is not done
        here: it needs a worker, which holds the user's memories."""
        if not words:
            return Done({}, USAGE)
        action, rest = words[0].lower(), words[1:]
        if action == "flagged":
            return self.flagged(everything=rest[:1] == ["all"])
        if action == "audit":
            return self.audit(target=user_key(rest[0], platform) if rest else None)
        form = FORMS.get(action)
        if form is None or action == "forget":
            raise AdminError(f"I don't know /admin {action}.\n{USAGE}")
        if len(rest) < len(form):
            raise AdminError(f"Say /admin {action} {' '.join(form)}.")
        if action == "review":
            return self.review(actor, rest[0], rest[1].lower())
        target, after = user_key(rest[0], platform), " ".join(rest[len(form):]) or None
        if action == "user":
            return self.user(target)
        if action == "mute":
            return self.mute(actor, target, rest[1], after)
        if action == "limits":
            return self.limits(actor, target, " ".join(rest[1:]))
        return getattr(self, action)(actor, target, after)

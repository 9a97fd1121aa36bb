"""Errors that carry a message meant for the person who sent the message."""


class InputError(ValueError):
    """The user's input cannot be used (corrupt audio, not an image, too long...).

    `str(error)` is a sentence fit to show the user; it never contains their content.
    """


def audio_too_long(duration_s: float | None, limit_s: float) -> InputError:
    length = f"is {_minutes(duration_s)} long" if duration_s else "is too long"
    return InputError(
        f"That voice note {length}; I can listen to up to {_minutes(limit_s)}. "
        "Could you send a shorter one?"
    )


def text_too_long(limit: int) -> InputError:
    return InputError(f"That message is too long for me (over {limit} characters). "
                      "Could you send it in parts?")


def _minutes(seconds: float) -> str:
    """As a player shows a length: 4:05, or 3:00:00 past an hour."""
    hours, rest = divmod(int(round(seconds)), 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"

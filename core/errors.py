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


def _minutes(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"

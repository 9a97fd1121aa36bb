"""Reading users' pictures safely: any common format, phone rotation applied, huge ones shrunk."""

from __future__ import annotations

import io
import warnings

from PIL import Image, ImageOps, UnidentifiedImageError

from core.errors import InputError

# Past this, decoding is a memory risk rather than a photo (Pillow's own bomb limit is ~179 MP).
MAX_PIXELS = 50_000_000
TOO_LARGE = "That image is too large for me to look at; send a smaller photo."


def open_image(data: bytes, max_side: int = 1280) -> Image.Image:
    """An RGB image no larger than `max_side`, upright as the phone meant it; InputError if not a picture."""
    if not data:
        raise InputError("That image is empty.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.width * image.height > MAX_PIXELS:
                raise InputError(TOO_LARGE)
            image.draft("RGB", (max_side, max_side))  # JPEG: decode at a reduced scale directly
            image = ImageOps.exif_transpose(image).convert("RGB")
    except InputError:
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as error:
        raise InputError(TOO_LARGE) from error  # Pillow's own limit, met before ours while opening
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        raise InputError("That doesn't look like a picture I can open. JPEG, PNG and WebP work.") from error
    image.thumbnail((max_side, max_side))
    return image

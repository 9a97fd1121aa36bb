"""Reading users' pictures safely: any common format, phone rotation applied, huge ones shrunk."""

from __future__ import annotations

import io
import warnings

from PIL import Image, ImageOps, UnidentifiedImageError

from core.errors import InputError

# Past this, decoding is a memory risk rather than a photo (Pillow's own bomb limit is ~179 MP).
MAX_PIXELS = 50_000_000


def open_image(data: bytes, max_side: int = 1280) -> Image.Image:
    """An RGB image no larger than `max_side`, upright as the phone meant it; InputError if not a picture."""
    if not data:
        raise InputError("That image is empty.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.width * image.height > MAX_PIXELS:
                raise InputError("That image is too large for me to look at; send a smaller photo.")
            image.draft("RGB", (max_side, max_side))  # JPEG: decode at a reduced scale directly
            image = ImageOps.exif_transpose(image).convert("RGB")
    except InputError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombWarning,
            Image.DecompressionBombError, SyntaxError) as error:
        raise InputError("That doesn't look like a picture I can open. JPEG, PNG and WebP work.") from error
    image.thumbnail((max_side, max_side))
    return image

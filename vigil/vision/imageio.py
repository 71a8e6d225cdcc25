"""Safe image loading for user-supplied files (watchlist enrolment): size and pixel-count limits are
checked before anything is decoded, and every failure is a one-line error naming the file."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from vigil.errors import VigilError

MAX_FILE_BYTES = 20 * 1024 * 1024
MAX_PIXELS = 50_000_000


class ImageError(VigilError):
    """A user-supplied image cannot be used; the message names the file."""


def read_image_header(path: Path, max_bytes: int = MAX_FILE_BYTES, max_pixels: int = MAX_PIXELS) -> tuple[int, int]:
    """(width, height) from the header, after the file-size check and before any decoding."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: no such file")
    size = path.stat().st_size
    if size > max_bytes:
        raise ImageError(f"{path}: file too large ({size / 1e6:.1f} MB > {max_bytes / 1e6:.0f} MB)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:  # lazy: reads the header only
                width, height = image.size
    except Image.DecompressionBombError:
        raise ImageError(f"{path}: image declares too many pixels (decompression bomb)") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise ImageError(f"{path}: not an image (or an unsupported format)") from None
    if width * height > max_pixels:
        raise ImageError(f"{path}: image declares {width}×{height} = {width * height / 1e6:.0f} Mpx "
                         f"(> {max_pixels / 1e6:.0f} Mpx; decompression bomb?)")
    return width, height


def load_image(path: Path, max_bytes: int = MAX_FILE_BYTES, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """A BGR ``uint8`` image, upright per its EXIF orientation; ``ImageError`` naming the file otherwise."""
    path = Path(path)
    read_image_header(path, max_bytes, max_pixels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                upright = ImageOps.exif_transpose(image).convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageError(f"{path}: cannot decode the image ({str(exc).splitlines()[0] if str(exc) else 'corrupt'})") \
            from None
    return np.ascontiguousarray(np.asarray(upright)[:, :, ::-1])

"""A capture's thumbnail, rendered from the stored DICOM object for the compliance app.

The first frame of a cine; compressed transfer syntaxes are decoded by pydicom's pixel data
handlers with pylibjpeg (JPEG, JPEG-LS, JPEG 2000 via openjpeg, RLE). The window is the
object's own (WindowCenter/Width) when it has one, else the frame's range; colour stays
colour. The object is read where the imaging listener keeps it, never changed.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom import dcmread
from pydicom.errors import InvalidDicomError
from pydicom.pixels.processing import apply_voi_lut

MAX_SIDE = 320


class NoThumbnail(ValueError):
    """The object is missing, outside the store, or holds no image this can render."""


def stored_path(objects_root: Path, stored_as: str) -> Path:
    """The stored object's path, refusing anything that would leave the imaging store."""
    root = objects_root.resolve()
    path = (root / stored_as).resolve()
    if root not in path.parents or not path.is_file():
        raise NoThumbnail(f"no stored object at {stored_as!r}")
    return path


def render(path: Path, max_side: int = MAX_SIDE) -> bytes:
    """PNG bytes of the object's first frame, at most `max_side` pixels on its longer side."""
    try:
        ds = dcmread(path)
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        pixels = ds.pixel_array
    except (InvalidDicomError, OSError, ValueError, KeyError, TypeError, AttributeError,
            NotImplementedError, RuntimeError) as exc:  # no codec, no pixels: say so  # fmt: skip
        raise NoThumbnail(f"cannot decode the image: {exc}") from None
    frame = pixels[0] if frames > 1 else pixels
    colour = frame.ndim == 3 and frame.shape[-1] == 3
    if not colour:
        if "WindowCenter" in ds and "WindowWidth" in ds:
            frame = apply_voi_lut(frame, ds)
        frame = frame.astype(np.float64)
        low, high = float(frame.min()), float(frame.max())
        scaled = (frame - low) / (high - low) * 255 if high > low else np.zeros_like(frame)
        if str(ds.get("PhotometricInterpretation", "")) == "MONOCHROME1":
            scaled = 255 - scaled
        image = Image.fromarray(scaled.astype(np.uint8), mode="L")
    else:
        image = Image.fromarray(frame.astype(np.uint8), mode="RGB")
    image.thumbnail((max_side, max_side))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()

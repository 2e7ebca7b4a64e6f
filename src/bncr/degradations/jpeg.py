"""Real JPEG (libjpeg through Pillow): the data-side compression operator psi(x, q)."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image


def jpeg_pil(img: np.ndarray, quality: int) -> np.ndarray:
    """Compress and decompress an HxWx3 uint8 image with Pillow's libjpeg at integer `quality`.

    Pillow's defaults are kept on purpose: 4:2:0 chroma subsampling and the IJG tables scaled by
    quality, so q = 100 is still lossy (as the paper notes for CR-GAN's mask bypass).
    """
    return jpeg_decode(jpeg_encode(img, quality))


def jpeg_encode(img: np.ndarray, quality: int) -> bytes:
    """The JPEG file :func:`jpeg_pil` makes of `img` (e.g. to feed a deblocker the original bitstream)."""
    q = int(quality)
    if not 1 <= q <= 100:
        raise ValueError(f"JPEG quality must be an integer in [1, 100], got {quality}")
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"jpeg_pil expects an HxWx3 uint8 array, got {img.dtype} {img.shape}")
    buf = io.BytesIO()
    Image.fromarray(img, mode="RGB").save(buf, format="JPEG", quality=q)
    return buf.getvalue()


def jpeg_decode(data: bytes) -> np.ndarray:
    """HxWx3 uint8 RGB of a JPEG file's bytes (Pillow's libjpeg)."""
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()

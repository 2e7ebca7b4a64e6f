"""Preview grids: tile uint8 images into one PNG (written atomically)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence, Union

import numpy as np
from PIL import Image

from ..errors import UserError
from ..io import atomic_path

ImagesLike = Union[np.ndarray, Sequence[np.ndarray]]


def make_grid(images: ImagesLike, nrow: int = 8, padding: int = 2, pad_value: int = 0) -> np.ndarray:
    """Tile N images (N x H x W x 3 or N x H x W, uint8) into one array, `nrow` images per row.

    Rows are filled left to right, top to bottom; a missing tail of the last row and the `padding`
    pixels between and around tiles are `pad_value`. Grey images are replicated to RGB.
    """
    arr = np.asarray(images) if not isinstance(images, np.ndarray) else images
    if arr.dtype != np.uint8:
        raise UserError(f"save_grid needs uint8 images, got dtype {arr.dtype}")
    if arr.ndim == 3:
        arr = np.repeat(arr[..., None], 3, axis=-1)
    if arr.ndim != 4 or arr.shape[-1] not in (1, 3) or arr.shape[0] == 0:
        raise UserError(f"save_grid needs a non-empty N x H x W x 3 array, got shape {arr.shape}")
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    if nrow < 1 or padding < 0:
        raise UserError(f"save_grid needs nrow >= 1 and padding >= 0, got nrow={nrow}, padding={padding}")
    n, h, w, _ = arr.shape
    cols = min(nrow, n)
    rows = -(-n // cols)
    out = np.full((rows * (h + padding) + padding, cols * (w + padding) + padding, 3), pad_value, np.uint8)
    for k in range(n):
        r, c = divmod(k, cols)
        y, x = padding + r * (h + padding), padding + c * (w + padding)
        out[y:y + h, x:x + w] = arr[k]
    return out


def save_grid(images: ImagesLike, path: str | os.PathLike, nrow: int = 8, padding: int = 2,
              pad_value: int = 0, scale: int = 1) -> Path:
    """Save a grid of uint8 images as PNG at `path` (atomically; parent folders are created).

    scale > 1 enlarges each pixel to scale x scale (nearest), handy to look at 32 x 32 images.
    """
    grid = make_grid(images, nrow=nrow, padding=padding, pad_value=pad_value)
    if scale > 1:
        grid = np.repeat(np.repeat(grid, scale, axis=0), scale, axis=1)
    final = Path(path)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(final) as tmp:
            Image.fromarray(grid).save(tmp, format="PNG")
    except OSError as e:
        raise UserError(f"cannot write image grid {final}: {e.strerror or e}") from None
    return final

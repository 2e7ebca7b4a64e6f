"""Fashion-MNIST (70k real 28 x 28 grey photos of clothes) as a clean source x that works offline.

Files: the four IDX files of Zalando's release, raw or gzipped (``train-images-idx3-ubyte[.gz]``,
``t10k-images-idx3-ubyte[.gz]``; the MNIST-style ``train-images.idx3-ubyte`` spelling is accepted
too). Only the image files are read. They are looked for in `root` if given, else in
``$BNCR_DATA_ROOT/fashion-mnist``, ``<cache>/bncr/fashion-mnist`` and the folder that Debian's
package ``dataset-fashion-mnist`` installs, ``/usr/share/datasets/fashion-mnist``.

Conversion: 28 x 28 -> 32 x 32 by 2 pixels of zeros on every side (the background of
Fashion-MNIST is black, 0), the grey value replicated to R = G = B. Other resolutions: pad to 32,
then resize with Pillow's BILINEAR filter (antialiased when shrinking).
"""
from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from . import ArrayDataset, check_count, check_resolution, data_root
from ..errors import UserError

SYSTEM_DIRS = ("/usr/share/datasets/fashion-mnist", "/usr/local/share/datasets/fashion-mnist")
PAD = 2
IMAGE_STEMS = {"train": ("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
               "test": ("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte")}

# IDX type byte -> big-endian numpy dtype (Y. LeCun's MNIST file format).
IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def parse_idx(data: bytes, source: str = "<bytes>") -> np.ndarray:
    """Decode IDX bytes: 2 zero bytes, type byte, ndim byte, ndim big-endian uint32 sizes, then data.

    The sizes must account for every byte of the file; anything else is a UserError naming `source`.
    """
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise UserError(f"{source} is not an IDX file (bad magic number {data[:4].hex() or 'empty'})")
    code, ndim = data[2], data[3]
    if code not in IDX_DTYPES:
        raise UserError(f"{source} is not an IDX file (unknown data type 0x{code:02x})")
    if ndim < 1 or len(data) < 4 + 4 * ndim:
        raise UserError(f"{source} is not a valid IDX file (header with {ndim} dimensions is cut short)")
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(IDX_DTYPES[code])
    expected = 4 + 4 * ndim + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        raise UserError(f"{source} is a damaged IDX file: header says {dims} x {dtype.itemsize} bytes "
                        f"({expected} bytes in all) but the file has {len(data)} bytes")
    arr = np.frombuffer(data, dtype=dtype, offset=4 + 4 * ndim).reshape(dims)
    return arr.astype(dtype.newbyteorder("="), copy=False)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file, gzipped or not (recognised by content, not by name)."""
    p = Path(path)
    try:
        raw = p.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:
        raise UserError(f"cannot read IDX file {p}: {getattr(e, 'strerror', None) or e}") from None
    return parse_idx(raw, str(p))


def find_images_file(split: str, root: str | os.PathLike | None = None) -> Path:
    """The images IDX file of `split`, or a UserError saying where it was looked for and how to get it."""
    dirs = [Path(root).expanduser()] if root is not None else (
        [data_root() / "fashion-mnist"] + [Path(d) for d in SYSTEM_DIRS])
    for d in dirs:
        for stem in IMAGE_STEMS[split]:
            for name in (stem, stem + ".gz"):
                if (d / name).is_file():
                    return d / name
    where = ", ".join(str(d) for d in dirs)
    raise UserError(f"Fashion-MNIST {split} images ({IMAGE_STEMS[split][0]}[.gz]) not found in {where}: "
                    f"install them with 'apt-get install dataset-fashion-mnist' or pass the folder that "
                    f"holds them as root (--data-root)")


class FashionMnistDataset(ArrayDataset):
    """Fashion-MNIST images, padded to 32 x 32 and replicated to RGB (see module doc)."""

    def __init__(self, root: str | os.PathLike | None = None, split: str = "train", resolution: int = 32,
                 count: int | None = None) -> None:
        if split not in IMAGE_STEMS:
            raise UserError(f"split must be 'train' or 'test', got {split!r}")
        self.resolution = check_resolution(resolution)
        self.split = split
        self.name = "fashion-mnist"
        self.path = find_images_file(split, root)
        images = self._load()
        self.count = check_count(count, len(images), f"Fashion-MNIST {split} ({self.path})") or len(images)

    def _load(self) -> np.ndarray:
        arr = read_idx(self.path)
        if arr.ndim != 3 or arr.dtype != np.uint8 or 0 in arr.shape:
            raise UserError(f"{self.path} does not hold images: expected N x H x W unsigned bytes, "
                            f"got shape {arr.shape} of {arr.dtype}")
        self._images = arr
        return arr

    def _get(self, i: int) -> np.ndarray:
        images = self._array()
        g = np.pad(images[i], PAD)
        if g.shape[0] != self.resolution or g.shape[1] != self.resolution:
            g = np.asarray(Image.fromarray(g).resize((self.resolution, self.resolution),
                                                     Image.Resampling.BILINEAR))
        return np.repeat(g[..., None], 3, axis=-1)

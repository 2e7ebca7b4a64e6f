"""Image folders (e.g. FFHQ) as clean sources x: any PNG / JPEG / WebP / BMP files in a tree.

- Files: suffix .png .jpg .jpeg .webp .bmp (any case), found recursively (symlinked folders are
  followed once), hidden files and folders (name starting with ".", e.g. macOS "._x.jpg") skipped,
  sorted by their path relative to the folder (POSIX form, plain string order), so index i always
  names the same file.
- Colour: EXIF orientation is applied; every mode becomes 8-bit RGB. Grey ("L", "1") is replicated to
  3 channels; 16-bit grey ("I;16*", "I") is scaled by 255/65535 with rounding; palette ("P") images
  are expanded; images with alpha ("RGBA", "LA", "PA", or a transparency key) are composited over
  a white background: x = (c * a + 255 * (255 - a)) / 255, rounded.
- Size: the largest centred square is cropped (offset floor((W - side) / 2)), then resized to
  resolution x resolution with Pillow's LANCZOS filter (antialiased when shrinking). Same as
  "resize the shorter side, then centre-crop", with one resampling and nothing from outside the
  square (Pillow's resize(box=...) would blend in neighbouring pixels at the edges).
- Bad files: by default a file that cannot be decoded raises UserError naming it when it is read.
  With skip_bad=True all files are checked when the folder is opened (PNG: Pillow verify, which
  checks every chunk's CRC; JPEG: a draft (1/8 scale) decode of the whole stream; others: a full
  decode) and unreadable ones are left out and listed in ``.skipped`` (paths) and
  ``.skipped_reasons``.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from . import ImageDataset, check_count, check_resolution
from ..errors import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
RESIZE_FILTER = Image.Resampling.LANCZOS

# What Pillow raises for broken or hostile files.
_DECODE_ERRORS = (OSError, UnidentifiedImageError, ValueError, SyntaxError, EOFError, IndexError,
                  KeyError, TypeError, Image.DecompressionBombError)


def list_images(folder: Path) -> list[Path]:
    """All image files under `folder` (see module doc), sorted by relative POSIX path."""
    found: list[tuple[str, Path]] = []
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:  # a symlink loop or a second link to the same folder
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if name.startswith(".") or not name.lower().endswith(IMAGE_SUFFIXES):
                continue
            p = Path(dirpath) / name
            if p.is_file():
                found.append((p.relative_to(folder).as_posix(), p))
    found.sort(key=lambda t: t[0])
    return [p for _, p in found]


def _composite_on_white(rgba: np.ndarray) -> np.ndarray:
    """H x W x 4 uint8 -> H x W x 3 uint8 over white, exact integer rounding."""
    c = rgba[..., :3].astype(np.uint32)
    a = rgba[..., 3:4].astype(np.uint32)
    return ((c * a + 255 * (255 - a) + 127) // 255).astype(np.uint8)


def to_rgb_array(im: Image.Image) -> np.ndarray:
    """Any Pillow image -> H x W x 3 uint8 RGB (rules in the module doc)."""
    mode = im.mode
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info
    if has_alpha:
        return _composite_on_white(np.asarray(im.convert("RGBA")))
    if mode == "RGB":
        return np.asarray(im).copy()
    if mode.startswith("I;16") or mode == "I":
        g = np.clip(np.asarray(im).astype(np.int64), 0, 65535)
        g = ((g * 255 + 32767) // 65535).astype(np.uint8)
        return np.repeat(g[..., None], 3, axis=-1)
    if mode == "F":
        g = np.clip(np.floor(np.asarray(im, dtype=np.float64) + 0.5), 0, 255).astype(np.uint8)
        return np.repeat(g[..., None], 3, axis=-1)
    if mode in ("L", "1"):
        g = np.asarray(im.convert("L"))
        return np.repeat(g[..., None], 3, axis=-1)
    return np.asarray(im.convert("RGB")).copy()


def resize_square(img: np.ndarray, resolution: int, resample: int = RESIZE_FILTER) -> np.ndarray:
    """Centre-crop the largest square of H x W x 3 uint8 `img` and resize it to resolution x resolution."""
    h, w = img.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    if side == resolution:
        return np.ascontiguousarray(img[top:top + side, left:left + side])
    # Crop first: resize(box=...) would let pixels outside the square bleed in at its edges.
    square = Image.fromarray(np.ascontiguousarray(img[top:top + side, left:left + side]))
    return np.asarray(square.resize((resolution, resolution), resample)).copy()


def read_rgb(path: Path) -> np.ndarray:
    """Decode `path` at its own size to H x W x 3 uint8 RGB (rules in the module doc); UserError naming the file
    if it is unreadable."""
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            rgb = to_rgb_array(im)
    except _DECODE_ERRORS as e:
        raise UserError(f"cannot read image {path}: {e or type(e).__name__} "
                        f"(fix or remove the file, or skip unreadable files with skip_bad / --skip-bad)") from None
    if rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise UserError(f"cannot read image {path}: it is empty ({rgb.shape[1]}x{rgb.shape[0]})")
    return rgb


def load_image(path: Path, resolution: int) -> np.ndarray:
    """Decode `path` to resolution x resolution x 3 uint8 RGB; UserError naming the file if it is unreadable."""
    return resize_square(read_rgb(path), resolution)


def check_image(path: Path) -> str | None:
    """Fast readability check (see module doc); None if the file looks fine, else the reason."""
    try:
        with Image.open(path) as im:
            fmt = im.format
            if fmt == "PNG":
                im.verify()
                return None
            if fmt == "JPEG":
                im.draft("RGB", (max(1, im.width // 8), max(1, im.height // 8)))
            im.load()
        return None
    except _DECODE_ERRORS as e:
        return str(e) or type(e).__name__


class ImageFolderDataset(ImageDataset):
    """The images of a folder tree, each centre-cropped and resized to `resolution` (see module doc)."""

    def __init__(self, folder: str | os.PathLike, resolution: int = 128, *, skip_bad: bool = False,
                 count: int | None = None) -> None:
        self.resolution = check_resolution(resolution)
        check_count(count, None, "the folder")
        p = Path(folder).expanduser()
        if not p.exists():
            raise UserError(f"image folder {p} does not exist")
        if not p.is_dir():
            raise UserError(f"{p} is a file, not a folder of images")
        self.folder = p.resolve()
        self.name = f"folder:{self.folder}"
        files = list_images(self.folder)
        if not files:
            raise UserError(f"no images ({', '.join(IMAGE_SUFFIXES)}) found in folder {self.folder}")
        self.skipped: list[str] = []
        self.skipped_reasons: list[str] = []
        if skip_bad:
            good: list[Path] = []
            for f in files:
                reason = check_image(f)
                if reason is None:
                    good.append(f)
                    if count is not None and len(good) >= count:
                        break
                else:
                    self.skipped.append(str(f))
                    self.skipped_reasons.append(reason)
            if not good:
                raise UserError(f"all {len(files)} image files in {self.folder} are unreadable "
                                f"(first: {self.skipped[0]}: {self.skipped_reasons[0]})")
            files = good
        n = check_count(count, len(files), f"image folder {self.folder}")
        self.files: list[Path] = files[:n] if n is not None else files

    def __len__(self) -> int:
        return len(self.files)

    def _get(self, i: int) -> np.ndarray:
        return load_image(self.files[i], self.resolution)

"""Folders of images: restore one with a trained restorer (`bncr restore apply`), and LPIPS between two (`bncr lpips`).

Restoring writes every output into a hidden sibling folder and renames it onto the output folder at the end, so
a restored folder is complete or absent: an unreadable input (without ``skip_bad``), an interruption or a full
disk leaves nothing under the output name. Outputs keep the inputs' relative paths and file names; each image
is restored at its own size (the restorer is convolutional), as RGB. JPEG and WebP outputs are written at high
quality (JPEG 95 without chroma subsampling, lossless WebP) so that saving does not put back much of what
was removed; ``png=True`` writes PNG files instead (same names, suffix .png).
"""
from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from tqdm.auto import tqdm

from ..data.folder import list_images, read_rgb
from ..errors import UserError


@dataclass
class ApplyResult:
    out: Path
    written: int
    skipped: list[tuple[str, str]] = field(default_factory=list)   # (relative path, reason)


def _input_folder(path: str | Path, flag: str) -> Path:
    p = Path(path).expanduser()
    if not p.is_dir():
        raise UserError(f"{flag} {p}: {'not a folder' if p.exists() else 'no such folder'}")
    return p


def _save(img: np.ndarray, path: Path) -> None:
    from PIL import Image
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    im = Image.fromarray(img)
    if suffix in (".jpg", ".jpeg"):
        im.save(path, format="JPEG", quality=95, subsampling=0)
    elif suffix == ".webp":
        im.save(path, format="WEBP", lossless=True)
    else:
        im.save(path, format="BMP" if suffix == ".bmp" else "PNG")


def apply_folder(model: str | Path, in_dir: str | Path, out_dir: str | Path, *, png: bool = False,
                 skip_bad: bool = False, device: Any = None, progress: bool = True) -> ApplyResult:
    """Restore every image under `in_dir` with the restorer `model` into the new folder `out_dir` (see module doc)."""
    from .train import load_restorer, restore_uint8
    src = _input_folder(in_dir, "--in")
    out = Path(out_dir).expanduser()
    if out.exists():
        raise UserError(f"--out {out} already exists: choose a new folder (nothing is overwritten)")
    if not out.parent.is_dir():
        raise UserError(f"--out {out}: its parent folder {out.parent} does not exist")
    files = list_images(src)
    if not files:
        raise UserError(f"--in {src}: no images (.png .jpg .jpeg .webp .bmp) in this folder")
    dev = torch.device(device) if device else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    G, info = load_restorer(model, dev)
    dequantize = bool(info["config"]["dequantize"])
    try:
        tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.partial-"))
    except OSError as e:
        raise UserError(f"--out {out}: cannot write in {out.parent} ({e.strerror or e})") from None
    result = ApplyResult(out, 0)
    try:
        for f in tqdm(files, desc="restoring", unit="img", disable=not progress, mininterval=1.0):
            rel = f.relative_to(src)
            try:
                y = read_rgb(f)
            except UserError as e:
                if not skip_bad:
                    raise UserError(f"{e}; nothing was written to {out}") from None
                result.skipped.append((rel.as_posix(), str(e)))
                continue
            x_hat = restore_uint8(G, y[None], dequantize, device=dev)[0]
            _save(x_hat, tmp / (rel.with_suffix(".png") if png else rel))
            result.written += 1
        if result.written == 0:
            raise UserError(f"--in {src}: none of the {len(files)} images could be read; nothing was written")
        if out.exists():
            raise UserError(f"--out {out} appeared while restoring (another process?); nothing was written")
        tmp.rename(out)
    except BaseException:   # nothing half-written: the partial folder goes
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return result


def _pairs(dir_a: Path, dir_b: Path) -> list[tuple[str, Path, Path]]:
    """Same-named images of two folders (relative paths); UserError on any image present in only one."""
    a = {p.relative_to(dir_a).as_posix(): p for p in list_images(dir_a)}
    b = {p.relative_to(dir_b).as_posix(): p for p in list_images(dir_b)}
    if not a:
        raise UserError(f"{dir_a}: no images (.png .jpg .jpeg .webp .bmp) in this folder")
    only_a, only_b = sorted(set(a) - set(b)), sorted(set(b) - set(a))
    if only_a or only_b:
        first = (f"{dir_a / only_a[0]} has no counterpart in {dir_b}" if only_a
                 else f"{dir_b / only_b[0]} has no counterpart in {dir_a}")
        raise UserError(f"{first} ({len(only_a)} images only in {dir_a}, {len(only_b)} only in {dir_b}); "
                        f"LPIPS compares images of the same name")
    return [(k, a[k], b[k]) for k in sorted(a)]


def lpips_folders(dir_a: str | Path, dir_b: str | Path, net: str = "alex", model: Optional[Any] = None,
                  progress: bool = True) -> list[tuple[str, float]]:
    """Per-image LPIPS of the same-named images of two folders, as (relative path, distance), in path order."""
    from ..metrics.lpips import lpips_distance, lpips_model
    pairs = _pairs(_input_folder(dir_a, "DIR_A"), _input_folder(dir_b, "DIR_B"))
    model = model if model is not None else lpips_model(net)
    out = []
    for name, pa, pb in tqdm(pairs, desc="lpips", unit="img", disable=not progress, mininterval=1.0):
        ia, ib = read_rgb(pa), read_rgb(pb)
        if ia.shape != ib.shape:
            raise UserError(f"{pa} is {ia.shape[1]}x{ia.shape[0]} but {pb} is {ib.shape[1]}x{ib.shape[0]}; "
                            f"LPIPS compares images of the same size")
        t = [torch.from_numpy(i).permute(2, 0, 1)[None].float() / 127.5 - 1 for i in (ia, ib)]
        out.append((name, float(lpips_distance(t[0], t[1], model)[0])))
    return out

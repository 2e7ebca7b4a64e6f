"""Argument checks shared by the restoration baselines: one clear UserError line naming the argument."""
from __future__ import annotations

import numpy as np

from ..errors import UserError


def image_to_float(y: object, name: str = "y") -> tuple[np.ndarray, bool]:
    """HxWx3 uint8 (0..255) or float (0..1) image -> (float64 copy in [0, 1], input was uint8)."""
    if not isinstance(y, np.ndarray):
        raise UserError(f"{name} must be a numpy array (HxWx3 uint8 or float in [0, 1]), got {type(y).__name__}")
    if y.ndim != 3 or y.shape[2] != 3 or y.shape[0] < 1 or y.shape[1] < 1:
        raise UserError(f"{name} must be an HxWx3 image, got shape {y.shape}")
    if y.dtype == np.uint8:
        return y.astype(np.float64) / 255.0, True
    if not np.issubdtype(y.dtype, np.floating):
        raise UserError(f"{name} must be uint8 (0..255) or float (0..1), got dtype {y.dtype}")
    f = y.astype(np.float64)
    if not np.isfinite(f).all():
        raise UserError(f"{name} has NaN or infinite values")
    if f.min() < -1e-6 or f.max() > 1 + 1e-6:
        raise UserError(f"{name} is float, so its values must lie in [0, 1] (got {f.min():.3g}..{f.max():.3g})")
    return f, False


def float_to_like(x: np.ndarray, as_uint8: bool, dtype: np.dtype) -> np.ndarray:
    """Clip to [0, 1]; back to uint8 (rounded) or to the input's float dtype."""
    x = np.clip(x, 0.0, 1.0)
    if as_uint8:
        return np.round(x * 255.0).astype(np.uint8)
    return x.astype(dtype)


def check_kernel(kernel: object, name: str = "kernel") -> np.ndarray:
    """A 2-D, finite, non-negative blur kernel summing to 1 (within 1e-3) -> float64 copy normalised to 1."""
    k = np.asarray(kernel, dtype=np.float64) if not isinstance(kernel, str) else None
    if k is None or k.ndim != 2 or k.size == 0:
        raise UserError(f"{name} must be a 2-D array (K1 x K2), got "
                        f"{'shape ' + str(k.shape) if k is not None else type(kernel).__name__}")
    if not np.isfinite(k).all():
        raise UserError(f"{name} has NaN or infinite entries")
    if k.min() < 0:
        raise UserError(f"{name} must be non-negative (a blur PSF), its smallest entry is {k.min():.3g}")
    if abs(k.sum() - 1.0) > 1e-3:
        raise UserError(f"{name} must sum to 1 (a blur PSF preserves brightness), it sums to {k.sum():.6g}")
    return k / k.sum()


def check_quality(quality: object, name: str = "quality") -> int:
    """JPEG quality: an integer in 1..100."""
    if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)) \
            and not (isinstance(quality, (float, np.floating)) and float(quality).is_integer()):
        raise UserError(f"{name} must be an integer JPEG quality in 1..100, got {quality!r}")
    q = int(quality)
    if not 1 <= q <= 100:
        raise UserError(f"{name} must be an integer JPEG quality in 1..100, got {q}")
    return q


def positive(value: object, name: str, *, upper: float | None = None, upper_inclusive: bool = True) -> float:
    """A finite float > 0 (and <= upper, or < upper)."""
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise UserError(f"{name} must be a number, got {value!r}") from None
    ok = np.isfinite(v) and v > 0
    if ok and upper is not None:
        ok = v <= upper if upper_inclusive else v < upper
    if not ok:
        rng = "> 0" if upper is None else f"in (0, {upper}{']' if upper_inclusive else ')'}"
        raise UserError(f"{name} must be {rng}, got {value!r}")
    return v

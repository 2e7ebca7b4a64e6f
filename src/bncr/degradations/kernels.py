"""Blur kernels of the data side: out-of-focus (disk) and camera-shake (motion) PSFs.

Both return float64 arrays (K, K), non-negative, summing to 1, centred on the centre pixel.
Convention: pixel (i, j) of a K x K kernel covers the unit square centred at offset
(i - K//2, j - K//2) from the kernel centre.
"""
from __future__ import annotations

import math

import numpy as np


def _quadrant_area(r: float, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Signed area of the disc of radius r intersected with the rectangle between (0, 0) and (x, y).

    For x, y >= 0 the region under the circle is a rectangle [0, xc] x [0, y] (where the circle is
    above y) plus the area under the arc from xc to x; the sign handles the other quadrants, so a
    pixel square's area follows by inclusion-exclusion.
    """
    sx, sy = np.sign(x), np.sign(y)
    ax, ay = np.minimum(np.abs(x), r), np.minimum(np.abs(y), r)
    xc = np.minimum(ax, np.sqrt(np.maximum(r * r - ay * ay, 0.0)))

    def arc(u):  # integral_0^u sqrt(r^2 - t^2) dt
        return 0.5 * (u * np.sqrt(np.maximum(r * r - u * u, 0.0)) + r * r * np.arcsin(np.clip(u / r, -1, 1)))

    return sx * sy * (ay * xc + arc(ax) - arc(xc))


def disk_support(radius: float) -> int:
    """Smallest odd size K whose pixel squares cover a disc of `radius` centred on the centre pixel."""
    return 2 * math.ceil(radius + 0.5) - 1


def disk_kernel(radius: float, size: int | None = None) -> np.ndarray:
    """Out-of-focus blur kernel: entry = area of that pixel square covered by a disc of `radius`.

    Like MATLAB's ``fspecial('disk', r)`` but with exact areas (computed by 1-D quadrature of the
    circle's chord height), for any non-integer radius > 0. Normalised to sum 1. `size` (odd) pads
    the kernel with zeros; by default it is the smallest odd size holding the disc.
    """
    if not radius > 0:
        raise ValueError(f"disk radius must be > 0, got {radius}")
    need = disk_support(radius)
    size = need if size is None else int(size)
    if size % 2 == 0 or size < need:
        raise ValueError(f"disk kernel size must be odd and >= {need} for radius {radius}, got {size}")
    c = size // 2
    k = np.zeros((size, size), dtype=np.float64)
    h = need // 2
    i, j = np.meshgrid(np.arange(-h, h + 1, dtype=np.float64), np.arange(-h, h + 1, dtype=np.float64), indexing="ij")
    A = lambda x, y: _quadrant_area(float(radius), x, y)  # noqa: E731
    area = A(j + 0.5, i + 0.5) - A(j - 0.5, i + 0.5) - A(j + 0.5, i - 0.5) + A(j - 0.5, i - 0.5)
    k[c - h:c + h + 1, c - h:c + h + 1] = np.maximum(area, 0.0)
    return k / k.sum()


def motion_size(length: float) -> int:
    """Default odd kernel size for a camera-shake trajectory of `length` pixels (5 -> 7, 10 -> 13)."""
    n = int(math.ceil(length)) + 2
    return n if n % 2 == 1 else n + 1


def motion_trajectory(length: float, generator: np.random.Generator | None = None,
                      num_samples: int = 2000, anxiety: float = 0.005) -> np.ndarray:
    """Random camera-shake trajectory after Boracchi & Foi (2012), as complex positions (num_samples,).

    A particle moves with constant speed (total path `length` pixels). Each step its velocity gets
    an occasional near-reversal impulse (probability p_big * anxiety), a Gaussian shake term and a
    centripetal pull towards the start, then is renormalised to the step length. The random
    "personality" of the shake (centripetal c, Gaussian g, big-shake probability p, initial angle)
    is drawn per trajectory: c = 0.7 U, g = 10 U, p = 0.2 U.
    """
    rng = generator if generator is not None else np.random.default_rng()
    step = length / (num_samples - 1)
    centripetal = 0.7 * rng.uniform()
    gaussian = 10.0 * rng.uniform()
    p_big = 0.2 * rng.uniform()
    angle = 2 * math.pi * rng.uniform()
    v = complex(math.cos(angle), math.sin(angle)) * anxiety
    # Draw all random numbers up front (same stream order every time), then integrate.
    u_big = rng.uniform(size=num_samples - 1)
    u_phase = rng.uniform(size=num_samples - 1)
    shake = rng.standard_normal(size=(num_samples - 1, 2))
    big = (u_big < p_big * anxiety).tolist()
    phase = (math.pi + u_phase - 0.5).tolist()
    gx, gy = (gaussian * shake[:, 0]).tolist(), (gaussian * shake[:, 1]).tolist()
    # Plain Python floats: this sequential loop is ~10x faster than with numpy scalars.
    vx, vy, x, y, a = v.real, v.imag, 0.0, 0.0, anxiety * step
    xs, ys = [0.0], [0.0]
    for t in range(num_samples - 1):
        dvx = a * (gx[t] - centripetal * x)
        dvy = a * (gy[t] - centripetal * y)
        if big[t]:  # near-reversal impulse: 2 v e^{i phase}
            c, s = math.cos(phase[t]), math.sin(phase[t])
            dvx, dvy = dvx + 2 * (vx * c - vy * s), dvy + 2 * (vx * s + vy * c)
        vx, vy = vx + dvx, vy + dvy
        norm = math.hypot(vx, vy) / step
        vx, vy = vx / norm, vy / norm
        x, y = x + vx, y + vy
        xs.append(x)
        ys.append(y)
    return np.asarray(xs) + 1j * np.asarray(ys)


def render_psf(trajectory: np.ndarray, exposure: float, size: int) -> np.ndarray:
    """Render the first `exposure` fraction (T in (0, 1]) of a trajectory into a (size, size) PSF.

    Samples are bilinearly splatted; the PSF is shifted so that its centroid sits on the centre
    pixel (a global shift is not blur), cropped to `size` (mass outside is dropped) and normalised.
    """
    if not 0 < exposure <= 1:
        raise ValueError(f"exposure T must be in (0, 1], got {exposure}")
    n = max(1, int(math.ceil(exposure * len(trajectory))))
    p = trajectory[:n]
    p = p - p.mean()
    c = size // 2
    xs, ys = p.real + c, p.imag + c
    k = np.zeros((size, size), dtype=np.float64)
    x0, y0 = np.floor(xs).astype(int), np.floor(ys).astype(int)
    fx, fy = xs - x0, ys - y0
    for dx, dy, w in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        xi, yi = x0 + dx, y0 + dy
        ok = (xi >= 0) & (xi < size) & (yi >= 0) & (yi < size)
        np.add.at(k, (yi[ok], xi[ok]), w[ok])
    if k.sum() <= 0:  # pathological: nothing landed on the canvas
        k[c, c] = 1.0
    return k / k.sum()


def motion_kernel(length: float, exposure: float, size: int | None = None,
                  generator: np.random.Generator | None = None) -> np.ndarray:
    """Motion-blur kernel: a random Boracchi-Foi shake trajectory of `length` px seen for exposure T.

    The paper uses length 5 at 32x32 and 10 at 128x128, T in {0.1, 0.5, 1}.
    """
    if not length > 0:
        raise ValueError(f"motion length must be > 0, got {length}")
    size = motion_size(length) if size is None else int(size)
    if size % 2 == 0 or size < 3:
        raise ValueError(f"motion kernel size must be odd and >= 3, got {size}")
    return render_psf(motion_trajectory(length, generator), exposure, size)


def pad_kernel(k: np.ndarray, size: int) -> np.ndarray:
    """Zero-pad an odd (k, k) kernel symmetrically to (size, size)."""
    p = (size - k.shape[0]) // 2
    if p < 0 or (size - k.shape[0]) % 2:
        raise ValueError(f"cannot pad a {k.shape[0]}x{k.shape[0]} kernel to {size}x{size}")
    return np.pad(k, p)


def kernel_entropy_np(k: np.ndarray) -> float:
    """Shannon entropy (nats) of a kernel seen as a distribution over pixels; 0 for the identity."""
    p = k[k > 0]
    return float(-(p * np.log(p)).sum())

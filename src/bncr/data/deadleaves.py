"""Dead-leaves images: the built-in clean source x that needs no files.

The dead-leaves model (Matheron; used for camera texture-loss charts, Cao, Guichard & Hornung 2010,
IEEE 1858 / ISO 19567-2) stacks random opaque discs ("leaves"). Radii follow the scale-invariant
density p(r) ~ r^-3 on [r_min, r_max], centres are uniform (a Poisson process), and each new leaf
falls *under* the ones already there, so a pixel shows the first leaf that covers it. Leaves are
drawn until every (sub)pixel is covered, which gives the exact stationary model in the window.
Its radially averaged power spectrum falls roughly like 1/f^2, like natural images.

Rendering (all documented defaults are parameters of :class:`DeadLeavesDataset`):

- r_min = 1 output pixel, r_max = resolution / 2; centres uniform on the window grown by r_max on
  every side (a disc that misses the window is simply never visible).
- Anti-aliasing: the disc cover is evaluated at `supersample` x `supersample` (4 x 4) points per
  pixel, and the pixel is their rounded integer mean (box filter).
- Colours: each image draws a palette (base hue h0, hue spread in [0.08, 0.5], saturation scale);
  each leaf gets hue h0 +- spread/2, saturation (0.15..0.7) * (0.4..1), value 0.12..0.97 (HSV), so
  images look like muted natural scenes rather than confetti and differ from each other in colour.

Determinism: image i of split s is a pure function of (seed, s, i, resolution) and the parameters:
the random numbers come from ``numpy.random.default_rng([seed, s, i])`` (s = 0 train, 1 test) in a
fixed order (3 palette numbers, then 6 per leaf: r, cx, cy, h, s, v), and only IEEE-exact
operations (+ - * /, sqrt, floor, integer sums) turn them into pixels, so the bytes are identical
across processes and machines. The culling of hidden leaves only skips work; it never changes a
pixel (tests check this).

Measured with ``OMP_NUM_THREADS=1 python -m bncr.data.deadleaves --bench N --resolution R`` (seed 0,
one process on a shared 2-core CPU, numpy 2.4.6, Python 3.11):
10,000 images 32x32 in 25.5 s (2.5 ms/image); 500 at 64x64 5.6 ms/image; 100 at 128x128
21 ms/image. Power spectrum (:func:`radial_power_slope`, 64 images 64x64, seed 0): log-log slope
-2.07 over rings 2..16 cycles/image, -2.57 over 2..32 (the box filter of the anti-aliasing
steepens the top octave).
"""
from __future__ import annotations

import math

import numpy as np

from . import ImageDataset, SPLITS, check_resolution
from ..errors import UserError

_BIG = np.iinfo(np.int32).max  # "no leaf yet" in the z-buffer of leaf indices


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """HSV in [0, 1] -> RGB in [0, 1] (N x 3), with only exact arithmetic and floor."""
    h6 = h * 6.0
    k = np.floor(h6)
    f = h6 - k
    k = k.astype(np.int64) % 6
    p = v * (1.0 - s)
    q = v * (1.0 - s * f)
    t = v * (1.0 - s * (1.0 - f))
    r = np.choose(k, [v, q, p, p, t, v])
    g = np.choose(k, [t, v, v, q, p, p])
    b = np.choose(k, [p, p, t, v, v, q])
    return np.stack([r, g, b], axis=-1)


def _leaf_colours(u: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Map per-leaf uniforms u (N x 3: hue, sat, value) through the image palette to uint8 RGB."""
    h0, spread_u, sat_u = palette
    spread = 0.08 + 0.42 * spread_u
    h = np.remainder(h0 + spread * (u[:, 0] - 0.5), 1.0)
    s = (0.15 + 0.55 * sat_u) * (0.4 + 0.6 * u[:, 1])
    v = 0.12 + 0.85 * u[:, 2]
    return np.floor(_hsv_to_rgb(h, s, v) * 255.0 + 0.5).astype(np.uint8)


def _raster_discs(cx: np.ndarray, cy: np.ndarray, r: np.ndarray, order: np.ndarray,
                  size: int, ss: int, zbuf: np.ndarray) -> None:
    """z-buffer the discs: zbuf[p] = min(zbuf[p], order of every disc covering subpixel p).

    Subpixel (row j, col k) of the size x size grid samples the point ((k + 0.5)/ss, (j + 0.5)/ss) in
    output-pixel units; it is covered when its distance to the centre is <= r. Work is done per row
    span, so only covered subpixels are touched.
    """
    y0 = np.maximum(np.ceil((cy - r) * ss - 0.5), 0).astype(np.int64)
    y1 = np.minimum(np.floor((cy + r) * ss - 0.5), size - 1).astype(np.int64)
    nrows = np.maximum(y1 - y0 + 1, 0)
    total = int(nrows.sum())
    if total == 0:
        return
    d = np.repeat(np.arange(len(r)), nrows)
    first = np.cumsum(nrows) - nrows
    row = y0[d] + (np.arange(total) - first[d])
    dy = (row + 0.5) / ss - cy[d]
    hw2 = r[d] * r[d] - dy * dy
    hw = np.sqrt(np.maximum(hw2, 0.0))
    xa = np.maximum(np.ceil((cx[d] - hw) * ss - 0.5), 0).astype(np.int64)
    xb = np.minimum(np.floor((cx[d] + hw) * ss - 0.5), size - 1).astype(np.int64)
    length = np.where(hw2 >= 0.0, np.maximum(xb - xa + 1, 0), 0)
    npix = int(length.sum())
    if npix == 0:
        return
    base = row * size + xa - (np.cumsum(length) - length)
    pix = np.repeat(base, length) + np.arange(npix)
    np.minimum.at(zbuf, pix, np.repeat(order[d], length))


def render_dead_leaves(seed: int, index: int, resolution: int = 32, *, split: str = "train",
                       r_min: float = 1.0, r_max_frac: float = 0.5, supersample: int = 4,
                       _first_factor: float = 3.0, _chunk: int = 256) -> np.ndarray:
    """Render dead-leaves image `index` (H x W x 3 uint8, H = W = resolution); see the module doc.

    r_min is in output pixels, r_max = r_max_frac * resolution. `_first_factor` and `_chunk` only
    set how many leaves are drawn per vectorised step; they do not change the result.
    """
    res, ss = int(resolution), int(supersample)
    r_max = r_max_frac * res
    if not (0 < r_min <= r_max) or ss < 1 or res < 1:
        raise UserError(f"dead leaves needs 0 < r_min <= r_max, supersample >= 1 (got r_min={r_min}, "
                        f"r_max={r_max}, supersample={supersample}, resolution={resolution})")
    split_code = SPLITS.index(split)
    rng = np.random.default_rng([int(seed), split_code, int(index)])
    palette = rng.random(3)
    size = res * ss
    zbuf = np.full(size * size, _BIG, dtype=np.int32)
    a, b = r_min ** -2, r_max ** -2  # inverse CDF of p(r) ~ r^-3: r = (a - u (a - b))^-1/2
    lo, span = -r_max, res + 2.0 * r_max  # centre range: window grown by r_max
    # Chunk sizes (speed only): enough leaves for ~95% cover first, then growing chunks, each capped
    # so that one chunk rasterises about 4M subpixels at most.
    mean_r2 = 2.0 * math.log(r_max / r_min) / (a - b) if r_max > r_min else r_min ** 2
    per_leaf = max(math.pi * mean_r2 * ss * ss, 1.0)
    cap = max(_chunk, int(4e6 / per_leaf))
    n = min(cap, max(_chunk, int(_first_factor * span * span / (math.pi * mean_r2))))
    kept = []
    drawn = 0
    while True:
        u = rng.random((n, 6))
        r = 1.0 / np.sqrt(a - u[:, 0] * (a - b))
        cx = lo + u[:, 1] * span
        cy = lo + u[:, 2] * span
        order = np.arange(drawn, drawn + n, dtype=np.int32)
        keep = (cx + r > 0) & (cx - r < res) & (cy + r > 0) & (cy - r < res)
        if drawn:
            # Skip leaves whose bounding box holds no uncovered subpixel: they lie under earlier leaves.
            free = (zbuf == _BIG).reshape(res, ss, size).any(axis=1).reshape(res, res, ss).any(axis=2)
            sat = np.zeros((res + 1, res + 1), np.int32)
            np.cumsum(np.cumsum(free, axis=0, dtype=np.int32), axis=1, out=sat[1:, 1:])
            x0 = np.clip(np.floor(cx - r), 0, res - 1).astype(np.int64)
            x1 = np.clip(np.floor(cx + r), 0, res - 1).astype(np.int64)
            y0 = np.clip(np.floor(cy - r), 0, res - 1).astype(np.int64)
            y1 = np.clip(np.floor(cy + r), 0, res - 1).astype(np.int64)
            nfree = sat[y1 + 1, x1 + 1] - sat[y0, x1 + 1] - sat[y1 + 1, x0] + sat[y0, x0]
            keep &= nfree > 0
        k = np.nonzero(keep)[0]
        _raster_discs(cx[k], cy[k], r[k], order[k], size, ss, zbuf)
        kept.append((order[k], u[k, 3:]))  # only these leaves can be visible
        drawn += n
        if zbuf.max() < _BIG:
            break
        n = min(cap, max(_chunk, drawn // 2))
    # Box-downsample: gather packed RGB (16 bits per channel) and sum ss x ss blocks exactly.
    idx = np.concatenate([o for o, _ in kept])
    col = _leaf_colours(np.concatenate([c for _, c in kept]), palette).astype(np.uint64)
    packed = np.zeros(drawn, np.uint64)
    packed[idx] = col[:, 0] | (col[:, 1] << np.uint64(16)) | (col[:, 2] << np.uint64(32))
    sums = packed[zbuf].reshape(res, ss, size).sum(axis=1, dtype=np.uint64)
    sums = sums.reshape(res, res, ss).sum(axis=2, dtype=np.uint64)
    out = np.empty((res, res, 3), np.uint8)
    n2 = np.uint64(ss * ss)
    for c in range(3):
        out[..., c] = (((sums >> np.uint64(16 * c)) & np.uint64(0xFFFF)) + n2 // np.uint64(2)) // n2
    return out


class SyntheticDataset(ImageDataset):
    """Base of the generated sources (dead leaves, shapes): `count` images, image i a pure function of
    (seed, split, i, resolution); checks those four once."""

    name = "synthetic"

    def __init__(self, count: int = 50000, resolution: int = 32, seed: int = 0, split: str = "train") -> None:
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise UserError(f"seed must be a non-negative integer, got {seed!r}")
        if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
            raise UserError(f"count must be a positive integer, got {count!r}")
        if split not in SPLITS:
            raise UserError(f"split must be 'train' or 'test', got {split!r}")
        self.resolution = check_resolution(resolution)
        self.count, self.seed, self.split = int(count), int(seed), split

    def __len__(self) -> int:
        return self.count


class DeadLeavesDataset(SyntheticDataset):
    """`count` dead-leaves images at `resolution`; image i = render_dead_leaves(seed, i, resolution, split)."""

    def __init__(self, count: int = 50000, resolution: int = 32, seed: int = 0, split: str = "train", *,
                 r_min: float = 1.0, r_max_frac: float = 0.5, supersample: int = 4) -> None:
        super().__init__(count, resolution, seed, split)
        self.r_min, self.r_max_frac, self.supersample = float(r_min), float(r_max_frac), int(supersample)
        self.name = "deadleaves"
        if not (0 < self.r_min <= self.r_max_frac * self.resolution) or self.supersample < 1:
            raise UserError(f"dead leaves needs 0 < r_min <= r_max_frac * resolution and supersample >= 1 "
                            f"(got r_min={r_min}, r_max_frac={r_max_frac}, resolution={resolution}, "
                            f"supersample={supersample})")

    def _get(self, i: int) -> np.ndarray:
        return render_dead_leaves(self.seed, i, self.resolution, split=self.split, r_min=self.r_min,
                                  r_max_frac=self.r_max_frac, supersample=self.supersample)

    def batch(self, indices) -> np.ndarray:
        """Images for several indices as an N x H x W x 3 uint8 array."""
        return np.stack([self[i] for i in indices])


def radial_power_slope(images: np.ndarray, f_lo: int = 2, f_hi: int | None = None) -> float:
    """Log-log slope of the radially averaged mean power spectrum of `images` (N x H x H x 3 uint8).

    Grey = channel mean, per-image mean removed, Hann window (no edge leakage), power averaged over
    images, then averaged over rings |f| in [k - 0.5, k + 0.5) cycles per image for k = f_lo..f_hi
    (default H / 4, below the roll-off of the anti-aliasing box filter). A 1/f^2 law gives -2.
    """
    x = np.asarray(images, dtype=np.float64).mean(axis=-1)
    n = x.shape[1]
    x = x - x.mean(axis=(1, 2), keepdims=True)
    w = np.hanning(n)
    x = x * (w[:, None] * w[None, :])
    power = (np.abs(np.fft.fft2(x)) ** 2).mean(axis=0)
    f = np.fft.fftfreq(n) * n
    fr = np.sqrt(f[:, None] ** 2 + f[None, :] ** 2)
    ks = np.arange(f_lo, (f_hi or n // 4) + 1)
    ring = np.array([power[(fr >= k - 0.5) & (fr < k + 0.5)].mean() for k in ks])
    return float(np.polyfit(np.log(ks), np.log(ring), 1)[0])


def _main() -> None:  # pragma: no cover - benchmark / preview helper
    import argparse
    import time

    ap = argparse.ArgumentParser(description="dead-leaves speed, spectrum slope and preview")
    ap.add_argument("--bench", type=int, default=2000, help="images to time at --resolution")
    ap.add_argument("--resolution", type=int, default=32)
    ap.add_argument("--grid", default=None, help="save 64 images as an 8x8 PNG grid here")
    args = ap.parse_args()
    t, c = time.perf_counter(), time.process_time()
    for i in range(args.bench):
        render_dead_leaves(0, i, args.resolution)
    dt, dc = time.perf_counter() - t, time.process_time() - c
    print(f"{args.bench} images {args.resolution}x{args.resolution}: wall {dt:.2f} s "
          f"({1000 * dt / args.bench:.2f} ms/image), CPU {dc:.2f} s ({1000 * dc / args.bench:.2f} ms/image)")
    imgs = np.stack([render_dead_leaves(0, i, 64) for i in range(64)])
    print(f"power-spectrum slope, 64 images 64x64, rings 2..16: {radial_power_slope(imgs):.3f}; "
          f"rings 2..32: {radial_power_slope(imgs, 2, 32):.3f}")
    if args.grid:
        from .grid import save_grid
        save_grid([render_dead_leaves(0, i, args.resolution) for i in range(64)], args.grid, nrow=8)
        print(f"grid saved to {args.grid}")


if __name__ == "__main__":  # pragma: no cover
    _main()

import math

import numpy as np
import pytest

from bncr.degradations.kernels import disk_kernel, kernel_entropy_np, motion_kernel, pad_kernel


def covered_areas(r: float, size: int, n: int = 800) -> np.ndarray:
    """Independent reference: midpoint-rule area of each pixel square inside the disc."""
    c = size // 2
    t = (np.arange(n) + 0.5) / n - 0.5
    out = np.zeros((size, size))
    for i in range(size):
        for j in range(size):
            yy, xx = np.meshgrid(i - c + t, j - c + t, indexing="ij")
            out[i, j] = np.count_nonzero(xx**2 + yy**2 <= r * r) / n**2
    return out


@pytest.mark.parametrize("r", [0.5, 1.0, 1.5, 2.0, 3.7])
def test_disk_kernel_matches_covered_area(r):
    k = disk_kernel(r)
    assert k.shape[0] % 2 == 1
    ref = covered_areas(r, k.shape[0])
    # Kernel entries times the disc area are the covered areas themselves.
    np.testing.assert_allclose(k * math.pi * r * r, ref, atol=1e-3)
    assert abs(k.sum() - 1) < 1e-12 and (k >= 0).all()


def test_disk_kernel_sizes_and_padding():
    assert disk_kernel(0.5).shape == (1, 1)       # the disc fits inside the centre pixel
    assert disk_kernel(2.0).shape == (5, 5)
    k = disk_kernel(1.2, size=7)
    assert k.shape == (7, 7) and k[0].sum() == 0 and abs(k.sum() - 1) < 1e-12
    np.testing.assert_allclose(pad_kernel(disk_kernel(1.2), 7), k)
    with pytest.raises(ValueError):
        disk_kernel(2.0, size=3)
    with pytest.raises(ValueError):
        disk_kernel(0.0)


def _gyration(k: np.ndarray) -> float:
    c = np.arange(k.shape[0])
    yy, xx = np.meshgrid(c, c, indexing="ij")
    my, mx = (k * yy).sum(), (k * xx).sum()
    return float(np.sqrt((k * ((yy - my) ** 2 + (xx - mx) ** 2)).sum()))


def test_motion_kernels_valid_and_extent_grows_with_exposure():
    g = {}
    for T in (0.1, 0.5, 1.0):
        ks = [motion_kernel(5, T, generator=np.random.default_rng(s)) for s in range(40)]
        for k in ks:
            assert k.shape == (7, 7) and (k >= 0).all() and abs(k.sum() - 1) < 1e-9
        g[T] = np.mean([_gyration(k) for k in ks])
    assert g[0.1] < g[0.5] < g[1.0], g
    # Same trajectory (same seed): a longer exposure sees a longer part of it.
    for s in range(10):
        short = motion_kernel(5, 0.1, generator=np.random.default_rng(s))
        long = motion_kernel(5, 1.0, generator=np.random.default_rng(s))
        assert _gyration(short) <= _gyration(long) + 1e-9
    assert motion_kernel(10, 1.0, generator=np.random.default_rng(0)).shape == (13, 13)


def test_motion_kernel_deterministic_and_validated():
    a = motion_kernel(5, 0.5, generator=np.random.default_rng(7))
    b = motion_kernel(5, 0.5, generator=np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, motion_kernel(5, 0.5, generator=np.random.default_rng(8)))
    with pytest.raises(ValueError):
        motion_kernel(5, 0.0)


def test_entropy_identity_zero_and_disk_positive():
    assert kernel_entropy_np(disk_kernel(0.5)) == 0
    assert kernel_entropy_np(disk_kernel(2.0)) > kernel_entropy_np(disk_kernel(1.0)) > 0

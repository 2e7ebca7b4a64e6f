"""Dead-leaves source: determinism, the disc law, anti-aliasing, 1/f^2 spectrum, speed."""
from __future__ import annotations

import hashlib
import pickle
import subprocess
import sys
import time

import numpy as np
import pytest

from bncr.data import open_dataset
from bncr.data.deadleaves import (DeadLeavesDataset, _raster_discs, radial_power_slope,
                                  render_dead_leaves)
from bncr.errors import UserError


def _digest(images) -> str:
    h = hashlib.sha256()
    for x in images:
        h.update(np.ascontiguousarray(x).tobytes())
    return h.hexdigest()


def test_shape_dtype_and_repeatability():
    ds = open_dataset("deadleaves", count=20)
    assert len(ds) == 20 and ds.resolution == 32 and ds.name == "deadleaves"
    x = ds[3]
    assert x.shape == (32, 32, 3) and x.dtype == np.uint8
    assert np.array_equal(x, ds[3])
    assert np.array_equal(x, open_dataset("deadleaves", count=20)[3])  # a fresh object, same bytes
    assert np.array_equal(ds[-1], ds[19])
    with pytest.raises(IndexError):
        ds[20]
    assert len(open_dataset("deadleaves")) == 50000
    assert len(open_dataset("deadleaves", split="test")) == 10000


def test_index_seed_split_and_resolution_change_the_image():
    a = render_dead_leaves(0, 0, 32)
    assert not np.array_equal(a, render_dead_leaves(0, 1, 32))
    assert not np.array_equal(a, render_dead_leaves(1, 0, 32))
    assert not np.array_equal(a, render_dead_leaves(0, 0, 32, split="test"))
    assert render_dead_leaves(0, 0, 48).shape == (48, 48, 3)
    # images are not flat: many colours, every pixel covered by some leaf (leaf value >= 0.12)
    assert len(np.unique(a.reshape(-1, 3), axis=0)) > 30
    assert a.max(axis=-1).min() >= 20


def test_chunking_is_only_speed():
    """How many leaves are drawn per vectorised step must not change a single pixel."""
    for i in range(6):
        ref = render_dead_leaves(7, i, 32)
        for ff, chunk in [(0.3, 16), (1.0, 64), (6.0, 1024)]:
            assert np.array_equal(ref, render_dead_leaves(7, i, 32, _first_factor=ff, _chunk=chunk))


def test_same_bytes_in_another_process_and_after_pickle():
    ds = DeadLeavesDataset(count=8, resolution=24, seed=5)
    here = _digest(ds[i] for i in range(8))
    code = ("import hashlib, numpy as np; from bncr.data.deadleaves import DeadLeavesDataset as D; "
            "d = D(count=8, resolution=24, seed=5); h = hashlib.sha256(); "
            "[h.update(np.ascontiguousarray(d[i]).tobytes()) for i in range(8)]; print(h.hexdigest())")
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert there == here
    clone = pickle.loads(pickle.dumps(ds))
    assert _digest(clone[i] for i in range(8)) == here


def test_dataloader_workers_give_the_same_bytes():
    torch = pytest.importorskip("torch")
    ds = DeadLeavesDataset(count=8, resolution=16, seed=2)
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2, shuffle=False)
    got = torch.cat(list(loader)).numpy()
    assert np.array_equal(got, np.stack([ds[i] for i in range(8)]))


def test_disc_raster_covers_the_right_area():
    size, ss = 64, 4  # a 16 x 16 output pixel grid sampled 4 x 4 per pixel
    zbuf = np.full(size * size, np.iinfo(np.int32).max, np.int32)
    _raster_discs(np.array([8.0]), np.array([8.0]), np.array([5.0]), np.array([0], np.int32), size, ss, zbuf)
    covered = (zbuf == 0).reshape(size, size)
    area = covered.sum() / ss ** 2
    assert abs(area - np.pi * 25) < 0.02 * np.pi * 25
    yy, xx = (np.mgrid[0:size, 0:size] + 0.5) / ss
    assert np.array_equal(covered, (xx - 8) ** 2 + (yy - 8) ** 2 <= 25)
    # the first-drawn leaf stays on top where a later one overlaps it
    _raster_discs(np.array([10.0]), np.array([8.0]), np.array([5.0]), np.array([1], np.int32), size, ss, zbuf)
    assert np.array_equal(zbuf.reshape(size, size)[covered], np.zeros(covered.sum(), np.int32))
    assert (zbuf == 1).sum() > 0


def test_antialiasing_makes_mixed_edge_pixels():
    """With 4 x 4 supersampling, edge pixels mix leaf colours; with 1 sample they cannot."""
    mixed_aa, mixed_hard = 0, 0
    for i in range(4):
        aa = render_dead_leaves(0, i, 32, supersample=4)
        hard = render_dead_leaves(0, i, 32, supersample=1)
        mixed_aa += len(np.unique(aa.reshape(-1, 3), axis=0))
        mixed_hard += len(np.unique(hard.reshape(-1, 3), axis=0))
    assert mixed_aa > 1.5 * mixed_hard


def test_radius_law_is_r_minus_3():
    """The visible-leaf sizes come from p(r) ~ r^-3: check the sampler's inverse CDF empirically."""
    u = np.random.default_rng(0).random(200000)
    r_min, r_max = 1.0, 16.0
    a, b = r_min ** -2, r_max ** -2
    r = 1.0 / np.sqrt(a - u * (a - b))
    # P(r > t) = (t^-2 - r_max^-2) / (r_min^-2 - r_max^-2)
    for t in (1.5, 2.0, 4.0, 8.0):
        assert abs((r > t).mean() - (t ** -2 - b) / (a - b)) < 0.005


def test_power_spectrum_is_close_to_1_over_f2():
    imgs = np.stack([render_dead_leaves(0, i, 64) for i in range(64)])
    slope = radial_power_slope(imgs)
    print(f"dead-leaves power-spectrum slope (64 images 64x64, rings 2..16): {slope:.3f}")
    assert -2.6 <= slope <= -1.4
    # white noise (slope 0) must fail the same measure
    noise = np.random.default_rng(0).integers(0, 256, imgs.shape, dtype=np.uint8)
    assert abs(radial_power_slope(noise)) < 0.3


def test_speed_is_a_few_ms_per_image():
    t = time.perf_counter()
    for i in range(200):
        render_dead_leaves(3, i, 32)
    dt = time.perf_counter() - t
    print(f"dead leaves: {1000 * dt / 200:.2f} ms per 32x32 image")
    assert dt < 12.0  # measured 2.5 ms/image on one core (module doc): ~0.5 s; generous for a shared machine


def test_bad_parameters_are_user_errors():
    with pytest.raises(UserError, match="seed"):
        DeadLeavesDataset(count=4, seed=-1)
    with pytest.raises(UserError, match="count"):
        open_dataset("deadleaves", count=0)
    with pytest.raises(UserError, match="r_min"):
        DeadLeavesDataset(count=4, r_min=0.0)
    with pytest.raises(UserError, match="resolution"):
        open_dataset("deadleaves", resolution=0)

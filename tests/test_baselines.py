"""The restoration baselines: deblur (hyper-Laplacian, true kernel) and deblock (JPEG)."""
import io
import shutil
import sys

import numpy as np
import pytest
from PIL import Image

from bncr.baselines import deblock, deblur, hyper_laplacian_shrink, jpeg_sigma, quant_tables, resolve_method
from bncr.baselines.deblocking import rgb_to_ycbcr, ycbcr_to_rgb
from bncr.data.shapes import render_shapes
from bncr.degradations.jpeg import jpeg_pil
from bncr.degradations.settings import apply_degradation, blur_np, get_setting, sample_params
from bncr.errors import UserError


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0 ** 2 / max(mse, 1e-12)))


def photo_crop(size: int = 32) -> np.ndarray:
    skd = pytest.importorskip("skimage.data")
    a = np.asarray(Image.fromarray(skd.astronaut()).reduce(2))
    return np.ascontiguousarray(a[40:40 + size, 110:110 + size])   # face and helmet edge: textured


def blurred(x: np.ndarray, setting: str, index: int) -> tuple[np.ndarray, np.ndarray]:
    p, rn = sample_params(get_setting(setting), 0, index)
    return apply_degradation(x, p, rn), p.kernel


# ------------------------------------------------------------------------------------------ w-step
@pytest.mark.parametrize("alpha", [2 / 3, 0.5, 1.0])
@pytest.mark.parametrize("beta", [1.0, 8.0, 181.0])
def test_shrink_is_the_minimiser(alpha, beta):
    rng = np.random.default_rng(0)
    v = rng.normal(0, 1, 150) * rng.choice([0.01, 0.1, 1.0], 150)
    w = hyper_laplacian_shrink(v, beta, alpha)
    grid = np.linspace(-3, 3, 120001)
    cost = lambda t, vi: np.abs(t) ** alpha + beta / 2 * (t - vi) ** 2  # noqa: E731
    for vi, wi in zip(v, w):
        assert cost(wi, vi) <= cost(grid, vi).min() + 1e-9
        assert wi == 0 or np.sign(wi) == np.sign(vi)


def test_shrink_alpha_two_thirds_solves_the_quartic():
    v, beta = np.array([0.6, -0.8, 2.0]), 8.0
    w = np.abs(hyper_laplacian_shrink(v, beta))
    a = np.abs(v)
    quartic = w ** 4 - 3 * a * w ** 3 + 3 * a ** 2 * w ** 2 - a ** 3 * w + 8 / (27 * beta ** 3)
    assert (w > 0).all() and np.allclose(quartic, 0, atol=1e-10)


# ------------------------------------------------------------------------------------------ deblur
@pytest.mark.parametrize("setting", ["B", "C"])   # disk, motion kernels of the settings
def test_deblur_raises_psnr_with_the_true_kernel(setting):
    images = [render_shapes(0, i, 32, split="test") for i in range(3)] + [photo_crop(32)]
    gains = []
    for i, x in enumerate(images):
        y, k = blurred(x, setting, i)
        d = deblur(y, k)
        gains.append(psnr(d, x) - psnr(y, x))
    assert min(gains) > 0.5, gains
    assert np.mean(gains) > 3.0, gains


def test_deblur_border_is_not_wrapped():
    # left half dark, right half bright: a circular solve without padding smears one side onto the other
    x = np.zeros((32, 32, 3), np.uint8)
    x[:, 16:] = 220
    x[8:20, 4:10] = 120
    k = sample_params(get_setting("B"), 0, 1)[0].kernel
    y = np.round(np.clip(blur_np(x / 255.0, k), 0, 1) * 255).astype(np.uint8)
    d = deblur(y, k)
    ring = np.ones((32, 32), bool)
    ring[3:-3, 3:-3] = False
    assert psnr(d[ring], x[ring]) > psnr(y[ring], x[ring]) + 3
    assert np.abs(d[:, :3].astype(int) - x[:, :3]).max() < 40      # no bright wrap-in on the dark edge


def test_deblur_delta_kernel_returns_the_input():
    x = photo_crop(32)
    for k in (np.ones((1, 1)), np.pad(np.ones((1, 1)), 2)):
        assert psnr(deblur(x, k), x) > 40


def test_deblur_dtypes_and_shapes():
    x = render_shapes(0, 5, 32, split="test")[:20, :28]      # not square, not a multiple of 8
    k = sample_params(get_setting("C"), 0, 0)[0].kernel
    y = np.round(blur_np(x / 255.0, k) * 255).astype(np.uint8)
    d = deblur(y, k)
    assert d.dtype == np.uint8 and d.shape == x.shape
    f = deblur((y / 255.0).astype(np.float32), k)
    assert f.dtype == np.float32 and f.shape == x.shape and 0 <= f.min() and f.max() <= 1
    assert np.abs(f * 255 - d).max() <= 1.0                   # same result, just not rounded


def test_deblur_is_deterministic():
    y, k = blurred(photo_crop(32), "C", 2)
    assert np.array_equal(deblur(y, k), deblur(y, k))


@pytest.mark.parametrize("args, name", [
    ((np.zeros((8, 8), np.uint8), np.ones((1, 1))), "y"),
    ((np.zeros((8, 8, 4), np.uint8), np.ones((1, 1))), "y"),
    ((np.zeros((8, 8, 3), np.int32), np.ones((1, 1))), "y"),
    ((np.full((8, 8, 3), 2.0), np.ones((1, 1))), "y"),
    ((np.zeros((8, 8, 3), np.uint8), np.ones(3) / 3), "kernel"),
    ((np.zeros((8, 8, 3), np.uint8), np.ones((3, 3))), "kernel"),
    ((np.zeros((8, 8, 3), np.uint8), np.array([[-0.5, 1.0, 0.5]])), "kernel"),
    ((np.zeros((8, 8, 3), np.uint8), np.array([[np.nan, 1.0]])), "kernel"),
])
def test_deblur_bad_input(args, name):
    with pytest.raises(UserError) as e:
        deblur(*args)
    msg = str(e.value)
    assert msg.startswith(name + " ") and "\n" not in msg


@pytest.mark.parametrize("kw, name", [({"lam": -1}, "lam"), ({"alpha": 1.5}, "alpha"), ({"alpha": 0}, "alpha"),
                                      ({"pad": -2}, "pad"), ({"inner_iters": 0}, "inner_iters"),
                                      ({"beta0": 300}, "beta0")])
def test_deblur_bad_options(kw, name):
    with pytest.raises(UserError, match=f"^{name} "):
        deblur(np.zeros((8, 8, 3), np.uint8), np.ones((1, 1)), **kw)


def test_deblur_kernel_larger_than_the_padded_image():
    with pytest.raises(UserError, match="^kernel .*larger than the padded image"):
        deblur(np.zeros((4, 4, 3), np.uint8), np.full((9, 9), 1 / 81), pad=0)
    assert deblur(np.zeros((4, 4, 3), np.uint8), np.full((9, 9), 1 / 81)).shape == (4, 4, 3)


# ------------------------------------------------------------------------------------------ deblock
@pytest.mark.parametrize("q", [10, 50, 60, 80, 95, 100])
def test_quant_tables_are_pillows(q):
    buf = io.BytesIO()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(buf, format="JPEG", quality=q)
    buf.seek(0)
    with Image.open(buf) as im:
        qt = im.quantization
    lum, chrom = quant_tables(q)
    assert np.array_equal(np.reshape(qt[0], (8, 8)), lum) and np.array_equal(np.reshape(qt[1], (8, 8)), chrom)
    assert jpeg_sigma(lum) > 0


def test_ycbcr_round_trip():
    x = np.random.default_rng(0).uniform(0, 255, (4, 5, 3))
    assert np.allclose(ycbcr_to_rgb(rgb_to_ycbcr(x)), x)


def _needs(method: str) -> None:
    if method == "bm3d":
        pytest.importorskip("bm3d", reason="optional package bm3d not installed")
    elif method == "jpegqs" and shutil.which("jpegqs") is None:
        pytest.skip("optional program jpegqs not installed (apt-get install jpegqs)")


@pytest.mark.parametrize("method", ["dct", "jpegqs", "auto"])   # dct: the fallback that needs nothing
@pytest.mark.parametrize("q", [60, 80])
def test_deblock_raises_psnr(q, method):
    _needs(method)
    images = [render_shapes(0, i, 32, split="test") for i in range(3)] + [photo_crop(32), photo_crop(64)]
    gains = []
    for x in images:
        y = jpeg_pil(x, q)
        gains.append(psnr(deblock(y, q, method), x) - psnr(y, x))
    assert np.mean(gains) > 0.3, gains
    assert sum(g > 0 for g in gains) >= len(gains) - 1, gains


def test_resolve_method():
    assert resolve_method("auto") == ("jpegqs" if shutil.which("jpegqs") else "dct")
    assert resolve_method("dct") == "dct"
    with pytest.raises(UserError, match="^method "):
        resolve_method("sadct")


@pytest.mark.parametrize("method", ["dct", "jpegqs"])
def test_deblock_is_deterministic_and_keeps_shape(method):
    _needs(method)
    x = photo_crop(32)[:27, :30]                 # not a multiple of the 8x8 / 16x16 JPEG blocks
    y = jpeg_pil(np.ascontiguousarray(x), 60)
    a, b = deblock(y, 60, method), deblock(y, 60, method)
    assert a.dtype == np.uint8 and a.shape == y.shape and np.array_equal(a, b)


def test_deblock_jpegqs_uses_the_original_file():
    _needs("jpegqs")
    x = photo_crop(32)
    buf = io.BytesIO()
    Image.fromarray(x).save(buf, format="JPEG", quality=60)
    y = jpeg_pil(x, 60)
    out = deblock(y, 60, "jpegqs", jpeg=buf.getvalue())
    assert psnr(out, x) > psnr(y, x)
    with pytest.raises(UserError, match="shape"):
        deblock(y[:16], 60, "jpegqs", jpeg=buf.getvalue())


def test_deblock_bm3d():
    _needs("bm3d")
    x = render_shapes(0, 1, 32, split="test")
    y = jpeg_pil(x, 60)
    out = deblock(y, 60, "bm3d")
    assert out.shape == y.shape and out.dtype == np.uint8
    assert psnr(out, x) > psnr(y, x)


def test_deblock_missing_optional_backends_say_how_to_install(monkeypatch):
    y = jpeg_pil(render_shapes(0, 1, 32, split="test"), 60)
    monkeypatch.setitem(sys.modules, "bm3d", None)             # import bm3d -> ImportError
    with pytest.raises(UserError, match="pip install bm3d"):
        deblock(y, 60, "bm3d")
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(UserError, match="apt-get install jpegqs"):
        deblock(y, 60, "jpegqs")
    assert resolve_method("auto") == "dct"                      # the fallback needs nothing
    assert np.array_equal(deblock(y, 60), deblock(y, 60, "dct"))


@pytest.mark.parametrize("args, kw, name", [
    ((np.zeros((8, 8, 3), np.uint8), 0), {}, "quality"),
    ((np.zeros((8, 8, 3), np.uint8), 101), {}, "quality"),
    ((np.zeros((8, 8, 3), np.uint8), 60.5), {}, "quality"),
    ((np.zeros((8, 8, 3), np.uint8), "high"), {}, "quality"),
    ((np.zeros((8, 8, 3), np.float32), 60), {}, "y"),
    ((np.zeros((8, 8), np.uint8), 60), {}, "y"),
    ((np.zeros((8, 8, 3), np.uint8), 60), {"method": "sadct"}, "method"),
    ((np.zeros((8, 8, 3), np.uint8), 60), {"sigma_scale": 0}, "sigma_scale"),
    ((np.zeros((8, 8, 3), np.uint8), 60), {"step": 3.5}, "step"),
])
def test_deblock_bad_input(args, kw, name):
    with pytest.raises(UserError) as e:
        deblock(*args, **kw)
    msg = str(e.value)
    assert msg.startswith(name + " ") and "\n" not in msg

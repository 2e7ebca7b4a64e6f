"""Tests of the differentiable JPEG psi^g against Pillow's real JPEG (libjpeg) on natural images."""
from __future__ import annotations

import functools
import io

import numpy as np
import pytest
import torch
from PIL import Image, features
from scipy.stats import spearmanr

from bncr.degradations.diff_jpeg import diff_jpeg, jpeg_quant_tables
from bncr.degradations.jpeg import jpeg_pil
from bncr.errors import UserError

torch.set_num_threads(1)

libjpeg_turbo = pytest.mark.skipif(
    not features.check_feature("libjpeg_turbo"),
    reason="bit-exactness is established against Pillow built with libjpeg-turbo",
)


@functools.lru_cache(maxsize=1)
def _photos() -> tuple:
    """Colour photographs bundled with scikit-image (natural images, no download)."""
    skd = pytest.importorskip("skimage.data")
    out = []
    for name in ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "stereo_motorcycle"):
        a = getattr(skd, name)()
        a = a[0] if isinstance(a, tuple) else a
        out.append(np.ascontiguousarray(a[..., :3]))
    return tuple(out)


def natural_crops(n: int, h: int, w: int, seed: int) -> np.ndarray:
    """(n, h, w, 3) uint8 random crops of the bundled photos."""
    photos = _photos()
    rng = np.random.default_rng(seed)
    crops = []
    for i in range(n):
        a = photos[i % len(photos)]
        r, c = rng.integers(0, a.shape[0] - h), rng.integers(0, a.shape[1] - w)
        crops.append(a[r:r + h, c:c + w])
    return np.stack(crops)


def to_tensor(u8: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(u8).permute(0, 3, 1, 2).float() / 255.0


def to_uint8(y: torch.Tensor) -> np.ndarray:
    return torch.round(y.detach() * 255.0).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def pillow(u8: np.ndarray, qualities) -> np.ndarray:
    return np.stack([jpeg_pil(im, int(q)) for im, q in zip(u8, qualities)])


def test_tables_match_pillow_for_every_quality():
    q = torch.arange(1, 101, dtype=torch.float32)
    ours = jpeg_quant_tables(q).reshape(100, 2, 64).numpy()
    img = np.zeros((8, 8, 3), np.uint8)
    for i in range(100):
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=i + 1)
        buf.seek(0)
        with Image.open(buf) as im:
            tables = im.quantization
        np.testing.assert_array_equal(ours[i, 0], np.array(tables[0]), err_msg=f"luma table at q={i + 1}")
        np.testing.assert_array_equal(ours[i, 1], np.array(tables[1]), err_msg=f"chroma table at q={i + 1}")


@pytest.mark.parametrize("q", [60, 70, 80, 90, 100])
def test_psnr_against_pillow_at_least_45db(q):
    u8 = natural_crops(48, 32, 32, seed=q)
    ref = to_tensor(pillow(u8, [q] * len(u8)))
    y = diff_jpeg(to_tensor(u8), torch.full((len(u8),), float(q)))
    mse = ((y - ref) ** 2).flatten(1).mean(1).clamp_min(1e-10)  # PSNR capped at 100 dB
    psnr = (10 * torch.log10(1.0 / mse)).mean().item()
    assert psnr >= 45.0, f"mean PSNR vs Pillow at q={q}: {psnr:.2f} dB"


@libjpeg_turbo
@pytest.mark.parametrize("h,w", [(32, 32), (45, 37), (8, 21), (30, 46), (17, 3), (3, 5), (1, 1), (64, 48)])
def test_bit_exact_against_pillow_any_size(h, w):
    u8 = natural_crops(6, h, w, seed=h * 1000 + w)
    q = [100, 95, 75, 50, 23, 7]
    y = diff_jpeg(to_tensor(u8), torch.tensor(q, dtype=torch.float32))
    np.testing.assert_array_equal(to_uint8(y), pillow(u8, q))


@libjpeg_turbo
def test_bit_exact_on_saturated_and_noise_images():
    """Extreme content (random noise, black/white patterns) exercises the clamps of the codec."""
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, size=(4, 24, 40, 3), dtype=np.uint8)
    binary = (rng.integers(0, 2, size=(4, 24, 40, 3)) * 255).astype(np.uint8)
    u8 = np.concatenate([noise, binary])
    q = [100, 90, 50, 10] * 2
    y = diff_jpeg(to_tensor(u8), torch.tensor(q, dtype=torch.float32))
    np.testing.assert_array_equal(to_uint8(y), pillow(u8, q))


def test_per_sample_quality_is_per_sample():
    u8 = natural_crops(3, 24, 24, seed=1)
    x, q = to_tensor(u8), torch.tensor([20.0, 60.0, 95.0])
    batch = diff_jpeg(x, q)
    for i in range(3):
        torch.testing.assert_close(batch[i:i + 1], diff_jpeg(x[i:i + 1], q[i:i + 1]), rtol=0, atol=0)
    assert not torch.equal(diff_jpeg(x, torch.full((3,), 20.0)), diff_jpeg(x, torch.full((3,), 95.0)))


def test_fractional_and_out_of_range_quality_act_as_libjpeg_would():
    x = to_tensor(natural_crops(2, 16, 16, seed=4))

    def run(q):
        return diff_jpeg(x, torch.tensor([q, q]))

    assert torch.equal(run(72.4), run(72.0)) and torch.equal(run(72.6), run(73.0))
    assert torch.equal(run(0.0), run(1.0)) and torch.equal(run(130.0), run(100.0))
    assert torch.equal(diff_jpeg(x, 55), run(55.0))  # a Python number is broadcast


def test_quality_gradient_agrees_with_real_jpeg_slope():
    """dE/dq by autograd vs the finite-difference slope of real JPEG's error, E = ||y - x||^2."""
    n = 200
    u8 = natural_crops(n, 32, 32, seed=7)
    x = to_tensor(u8)
    q = np.random.default_rng(3).uniform(20, 95, size=n)
    qi = np.round(q).astype(int)

    def err_pillow(qq):
        return ((to_tensor(pillow(u8, qq)) - x) ** 2).flatten(1).sum(1).numpy()

    slope = (err_pillow(qi + 5) - err_pillow(qi - 5)) / 10.0
    qt = torch.tensor(q, dtype=torch.float32, requires_grad=True)
    err = ((diff_jpeg(x, qt) - x) ** 2).flatten(1).sum(1)
    (grad,) = torch.autograd.grad(err.sum(), qt)
    grad = grad.numpy()
    sign_agreement = float((np.sign(grad) == np.sign(slope)).mean())
    rho = spearmanr(grad, slope).correlation
    assert sign_agreement >= 0.95, sign_agreement
    assert rho >= 0.7, rho
    ratio = np.median(grad[slope < 0] / slope[slope < 0])
    assert 0.25 < ratio < 4.0, f"gradient / slope ratio {ratio}"  # right order of magnitude


@pytest.mark.parametrize("q_star,q_start", [(30, 75), (60, 20), (90, 40)])
def test_quality_is_recovered_by_gradient_descent(q_star, q_start):
    """Fit one q by Adam so that psi^g(x, q) distorts x as much as Pillow's JPEG at a hidden q*.

    The loss compares per-image distortion energies, (log E(q) - log E*)^2 with E = ||y - x||^2,
    the kind of statistic a discriminator sees; a pixel loss against one JPEG is not smooth in q.
    """
    u8 = natural_crops(8, 32, 32, seed=11)
    x = to_tensor(u8)
    e_star = ((to_tensor(pillow(u8, [q_star] * 8)) - x) ** 2).flatten(1).sum(1)
    q = torch.tensor(float(q_start), requires_grad=True)
    opt = torch.optim.Adam([q], lr=4.0)
    schedule = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.95)
    for _ in range(80):
        e = ((diff_jpeg(x, q.expand(8)) - x) ** 2).flatten(1).sum(1)
        loss = ((e.log() - e_star.log()) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        schedule.step()
        with torch.no_grad():
            q.clamp_(1.0, 100.0)
    assert abs(q.item() - q_star) <= 3.0, f"recovered q={q.item():.2f}, hidden q*={q_star}"


@pytest.mark.parametrize("rounding", ["none", "cubic"])
def test_gradcheck_x(rounding):
    torch.manual_seed(0)
    x = (0.3 + 0.4 * torch.rand(1, 3, 8, 8, dtype=torch.float64)).requires_grad_()
    q = torch.tensor([50.0], dtype=torch.float64)
    assert torch.autograd.gradcheck(
        lambda t: diff_jpeg(t, q, rounding=rounding), (x,), eps=1e-6, atol=1e-6, fast_mode=True
    )


def test_ste_x_gradient_is_the_linear_pipeline_gradient():
    """Away from the clamps, the straight-through x-gradient is exactly the unrounded codec's."""
    torch.manual_seed(0)
    x = 0.3 + 0.4 * torch.rand(2, 3, 21, 18, dtype=torch.float64)
    q = torch.tensor([40.0, 85.0], dtype=torch.float64)
    v = torch.randn(2, 3, 21, 18, dtype=torch.float64)
    grads = []
    for rounding in ("ste", "none"):
        xr = x.clone().requires_grad_()
        (g,) = torch.autograd.grad((diff_jpeg(xr, q, rounding=rounding) * v).sum(), xr)
        grads.append(g)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-9, atol=1e-12)
    assert grads[0].abs().sum() > 0


def test_quality_gradient_is_finite_and_points_to_more_distortion_at_lower_q():
    x = to_tensor(natural_crops(4, 16, 16, seed=2))
    q = torch.tensor([1.0, 37.0, 50.0, 100.0], requires_grad=True)
    err = ((diff_jpeg(x, q) - x) ** 2).flatten(1).sum(1)
    (g,) = torch.autograd.grad(err.sum(), q)
    assert torch.isfinite(g).all()
    assert (g[1:3] < 0).all()  # error grows as quality drops


def test_table_gradient_follows_the_libjpeg_scale_formula():
    q = torch.tensor([30.0, 70.0, 100.0], requires_grad=True)
    tables = jpeg_quant_tables(q)
    (g,) = torch.autograd.grad(tables[:, 0, 0, 0].sum(), q)  # luma DC, base entry 16
    expected = torch.tensor([16 * -5000.0 / 30.0**2 / 100.0, 16 * -2.0 / 100.0, 0.0])  # clamped at q=100
    torch.testing.assert_close(g, expected)


def test_half_precision_input_is_supported():
    x = to_tensor(natural_crops(2, 16, 16, seed=3))
    y16 = diff_jpeg(x.to(torch.bfloat16), torch.tensor([50.0, 80.0]))
    assert y16.dtype == torch.bfloat16
    y32 = diff_jpeg(x.to(torch.bfloat16).float(), torch.tensor([50.0, 80.0]))
    torch.testing.assert_close(y16.float(), y32, rtol=0, atol=1 / 255)


@pytest.mark.parametrize(
    "x,q,kwargs",
    [
        (torch.rand(2, 1, 8, 8), torch.tensor([50.0, 50.0]), {}),  # not RGB
        (torch.rand(3, 8, 8), torch.tensor([50.0]), {}),  # no batch dim
        (torch.rand(2, 3, 8, 8), torch.tensor([50.0, 50.0, 50.0]), {}),  # one q per image
        (torch.rand(2, 3, 8, 8), torch.tensor([50.0, 50.0]), {"rounding": "round"}),
        (torch.randint(0, 255, (2, 3, 8, 8)), torch.tensor([50.0, 50.0]), {}),  # uint8-like ints
    ],
)
def test_input_validation(x, q, kwargs):
    with pytest.raises(UserError):
        diff_jpeg(x, q, **kwargs)


def test_quality_one_is_a_dead_zone_and_two_is_not():
    """At quality 1 every table entry saturates at 255: JPEG no longer depends on q, so its q-gradient is 0
    (why G_q's clamp range starts at 2, nets/degradation_generators.Q_MIN). At q = 2 the gradient is large."""
    from bncr.nets.degradation_generators import Q_MIN
    x = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    w = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    grads = {}
    for qv in (1.0, Q_MIN):
        q = torch.full((4,), qv, requires_grad=True)
        (grads[qv],) = torch.autograd.grad((diff_jpeg(x, q) * w).sum(), q)
    assert torch.all(grads[1.0] == 0)
    assert Q_MIN == 2.0 and bool((grads[Q_MIN].abs() > 1e-2).all())


def test_autocast_does_not_reach_the_codec():
    """bf16 autocast around a caller (a faster G_x / D) leaves the JPEG stage in exact FP32."""
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    q = torch.tensor([50.0, 90.0])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = diff_jpeg(x, q)
    assert y.dtype == torch.float32 and torch.equal(y, diff_jpeg(x, q))


def test_ste0_is_the_same_jpeg_without_gradient_through_zero_coefficients():
    """rounding="ste0": forward bit-identical to "ste"; the x-gradient vanishes where every DCT coefficient
    quantises to zero (a flat mid-grey image: all coefficients 0) while "ste" passes it straight through."""
    torch.manual_seed(0)
    x = torch.rand(2, 3, 16, 16)
    w = torch.randn(2, 3, 16, 16)
    q = torch.tensor([50.0, 90.0])
    grads = {}
    for mode in ("ste", "ste0"):
        xi = x.clone().requires_grad_(True)
        y = diff_jpeg(xi, q, rounding=mode)
        (y * w).sum().backward()
        grads[mode] = (y.detach(), xi.grad)
    assert torch.equal(grads["ste"][0], grads["ste0"][0])
    assert grads["ste0"][1].abs().sum() > 0 and not torch.allclose(grads["ste"][1], grads["ste0"][1])
    flat = torch.full((1, 3, 16, 16), 128 / 255, requires_grad=True)
    (diff_jpeg(flat, 75.0, rounding="ste0") * w[:1]).sum().backward()
    assert flat.grad.abs().max() == 0
    flat.grad = None
    (diff_jpeg(flat, 75.0, rounding="ste") * w[:1]).sum().backward()
    assert flat.grad.abs().max() > 0

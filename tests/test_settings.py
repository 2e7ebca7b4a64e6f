import io
import math

import numpy as np
import pytest
from PIL import Image
from scipy import stats

from bncr.degradations.camera_noise import READ_INTERCEPT, READ_SLOPE, READ_STD, SHOT_MAX, SHOT_MIN
from bncr.degradations.jpeg import jpeg_pil
from bncr.degradations.kernels import kernel_entropy_np
from bncr.degradations.settings import (SETTINGS, apply_degradation, blur_np, decisions, degrade, get_setting,
                                        sample_params)
from bncr.errors import UserError

N_RATE = 10_000


def _img(seed=0, size=32):
    return (np.random.default_rng(seed).uniform(size=(size, size, 3)) * 255).astype(np.uint8)


@pytest.mark.parametrize("names,rate", [("EFG", None), ("KLM", None), ("OPQ", None)])
def test_partial_rates_on_10k_images(names, rate):
    for name, target in zip(names, (0.25, 0.5, 0.75)):
        s = get_setting(name)
        d = np.array([decisions(s, 0, i) for i in range(N_RATE)])
        applies = [s.blur is not None, s.noise, s.quality is not None]
        for col, on in enumerate(applies):
            if on:
                assert abs(d[:, col].mean() - target) <= 0.02, (name, col, d[:, col].mean())
            else:
                assert not d[:, col].any()
        if name in "OPQ":  # independent choice of each type: the joint rate is the product
            both = (d[:, 0] & d[:, 2]).mean()
            assert abs(both - target**2) <= 0.02, (name, both)


def test_sample_params_follow_decisions_and_full_settings():
    for name in ("E", "K", "O", "N", "A"):
        s = get_setting(name)
        for i in range(100):
            p, _ = sample_params(s, 3, i)
            assert (p.blurred, p.noised, p.compressed) == decisions(s, 3, i)
    s = get_setting("N")
    ps = [sample_params(s, 0, i)[0] for i in range(200)]
    assert all(p.blurred and p.noised and p.compressed for p in ps)
    assert all(60 <= p.quality <= 100 for p in ps)
    kinds = [p.kernel_type for p in ps]
    assert 0.35 < kinds.count("disk") / len(kinds) < 0.65
    assert {p.exposure for p in ps if p.kernel_type == "motion"} == {0.1, 0.5, 1.0}
    radii = [p.radius for p in ps if p.kernel_type == "disk"]
    assert 0.5 <= min(radii) and max(radii) <= 2.0


def test_setting_B_kernel_entropy_matches_reference_probe():
    # reference-facts §8: true kernels of setting B have mean entropy ~1.93 nats
    s = get_setting("B")
    h = np.mean([kernel_entropy_np(sample_params(s, 0, i)[0].kernel) for i in range(400)])
    assert 1.7 < h < 2.2, h


def test_brooks_noise_law_parameters():
    s = get_setting("noise")
    ps = [sample_params(s, 0, i)[0] for i in range(4000)]
    log_shot = np.log([p.shot for p in ps])
    log_read = np.log([p.read for p in ps])
    lo, hi = math.log(SHOT_MIN), math.log(SHOT_MAX)
    assert stats.kstest((log_shot - lo) / (hi - lo), "uniform").pvalue > 1e-3
    resid = log_read - (READ_SLOPE * log_shot + READ_INTERCEPT)
    assert stats.kstest(resid / READ_STD, "norm").pvalue > 1e-3
    # And the law is really the Brooks one: a fit of log read on log shot recovers slope and intercept.
    slope, intercept = np.polyfit(log_shot, log_read, 1)
    assert abs(slope - 2.18) < 0.05 and abs(intercept - 1.20) < 0.3


def test_noise_variance_is_linear_in_intensity():
    """Applied noise on flat images has variance x*shot + read (would fail for e.g. x^2*shot)."""
    s = get_setting("noise")
    ratios = {}
    for level in (40, 200):
        x = np.full((64, 64, 3), level, np.uint8)
        r = []
        for i in range(60):
            p, rng = sample_params(s, 1, i)
            if p.shot * 1 + p.read < 1e-4:  # too small to measure after uint8 rounding
                continue
            y = apply_degradation(x, p, rng).astype(np.float64) / 255
            # rounding to uint8 adds variance 1/12 * (1/255)^2; clipping is negligible at these levels
            expected = (level / 255) * p.shot + p.read + 1 / 12 / 255**2
            r.append(y.var() / expected)
        ratios[level] = np.median(r)
    for level, ratio in ratios.items():
        assert 0.85 < ratio < 1.15, ratios


def test_jpeg_byte_equal_to_pillow_and_order():
    s = get_setting("J")
    x = _img(1)
    for i in range(20):
        y, p = degrade(x, s, 0, i)
        buf = io.BytesIO()
        Image.fromarray(x).save(buf, format="JPEG", quality=p.quality)
        ref = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
        np.testing.assert_array_equal(y, ref)
    # Full model: blur, then noise, then clip, then JPEG.
    s = get_setting("N")
    p, rng = sample_params(s, 0, 5)
    y = apply_degradation(x, p, rng)
    _, rng2 = sample_params(s, 0, 5)
    f = blur_np(x / 255.0, p.kernel)
    f = f + rng2.standard_normal(f.shape) * np.sqrt(np.clip(f, 0, None) * p.shot + p.read)
    manual = jpeg_pil(np.round(np.clip(f, 0, 1) * 255).astype(np.uint8), p.quality)
    np.testing.assert_array_equal(y, manual)


def test_identity_and_blur_effect():
    x = _img(2)
    y, p = degrade(x, get_setting("A"), 0, 0)
    assert y is x or np.array_equal(y, x)
    y, p = degrade(x, get_setting("B"), 0, 0)
    grad = lambda a: np.abs(np.diff(a.astype(float), axis=1)).mean()  # noqa: E731
    assert grad(y) < 0.7 * grad(x)


def test_determinism_and_seed_dependence():
    x = _img(3)
    s = get_setting("N")
    a, pa = degrade(x, s, 0, 11)
    b, pb = degrade(x, s, 0, 11)
    np.testing.assert_array_equal(a, b)
    assert pa.to_json() == pb.to_json()
    c, pc = degrade(x, s, 1, 11)
    assert pc.to_json() != pa.to_json()


def test_get_setting_names_and_ffhq():
    for letter in "ABCDEFGHIJKLMNOPQ":
        assert get_setting(letter).name == letter
        assert get_setting(letter.lower()).name == letter
    f = get_setting("D-ffhq")
    assert f.blur.radius == (0.5, 4.0) and f.blur.motion_length == 10 and f.blur.size == 13
    assert get_setting("D").blur.size == 7
    assert get_setting("noise").noise and get_setting("A").is_clean
    with pytest.raises(UserError, match="unknown setting 'Z'"):
        get_setting("Z")
    assert len([k for k in SETTINGS if not k.endswith("-ffhq")]) == 18

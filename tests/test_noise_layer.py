"""Tests of the generator-side noise layer n = eps * sigma(x, g) under the NR-GAN and Brooks priors."""
from __future__ import annotations

import pytest
import torch

from bncr.degradations.noise_layer import NOISE_PRIORS, PRIOR_RANGES, generated_noise
from bncr.errors import UserError

torch.set_num_threads(1)


def test_prior_names_and_ranges():
    assert set(NOISE_PRIORS) == set(PRIOR_RANGES) == {"additive", "multiplicative", "poisson", "brooks"}
    assert PRIOR_RANGES["brooks"] == (0.0, 1.0) and PRIOR_RANGES["additive"] == (-1.0, 1.0)


def test_nrgan_priors_follow_their_formulas():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 4, 4) * 2 - 1
    g = torch.rand(2, 3, 4, 4) * 2 - 1
    eps = torch.randn(2, 3, 4, 4)
    torch.testing.assert_close(generated_noise(x, g, "additive", eps), eps * g)
    torch.testing.assert_close(generated_noise(x, g, "multiplicative", eps), eps * g * (x + 1))
    torch.testing.assert_close(generated_noise(x, g, "poisson", eps), eps * g * torch.sqrt((x + 1) / 2) * 2)


def test_noise_level_depends_on_signal_as_the_prior_says():
    """Multiplicative noise vanishes at x = -1 (black) and doubles g at x = 1; additive does not."""
    x = torch.cat([-torch.ones(1, 1, 64, 64), torch.ones(1, 1, 64, 64)])
    g = torch.full_like(x, 0.1)
    gen = torch.Generator().manual_seed(0)
    mult = generated_noise(x, g, "multiplicative", generator=gen)
    add = generated_noise(x, g, "additive", generator=gen)
    assert mult[0].abs().max() == 0
    assert 0.17 < mult[1].std() < 0.23
    assert 0.08 < add[0].std() < 0.12 and 0.08 < add[1].std() < 0.12


def test_gradients_reach_g_not_x():
    torch.manual_seed(0)
    for prior in ("additive", "multiplicative", "poisson"):
        x = (torch.rand(2, 3, 4, 4) * 2 - 1).requires_grad_()
        g = (torch.rand(2, 3, 4, 4) * 2 - 1).requires_grad_()
        n = generated_noise(x, g, prior)
        n.sum().backward()
        assert x.grad is None, prior
        assert g.grad is not None and g.grad.abs().sum() > 0, prior
    x = torch.rand(2, 3, 4, 4).requires_grad_()
    ab = torch.tensor([[1e-2, 1e-4], [5e-3, 2e-4]], requires_grad=True)
    generated_noise(x, ab, "brooks").square().sum().backward()
    assert x.grad is None and torch.isfinite(ab.grad).all() and (ab.grad != 0).all()


def test_brooks_variance_is_a_x_plus_b():
    """Empirical per-intensity variance of n matches a * x + b (the data-side camera noise model)."""
    x = torch.linspace(0, 1, 11).view(1, 1, 11, 1).expand(2, 3, 11, 4000).contiguous()
    ab = torch.tensor([[1.2e-2, 2e-4], [1e-3, 5e-5]])
    n = generated_noise(x, ab, "brooks", generator=torch.Generator().manual_seed(0))
    var = n.var(dim=(1, 3))  # (2, 11): over channels and the 4000 columns
    expected = ab[:, 0:1] * torch.linspace(0, 1, 11) + ab[:, 1:2]
    torch.testing.assert_close(var, expected, rtol=0.08, atol=0)


def test_brooks_matches_the_data_side_camera_noise():
    """Same (shot, read) and x: the generator-side noise has the data side's per-pixel variance."""
    camera_noise = pytest.importorskip("bncr.degradations.camera_noise")
    import numpy as np

    x = np.tile(np.linspace(0, 1, 6)[:, None], (1, 20000))  # 6 intensities x 20000 samples
    params = camera_noise.NoiseParams(shot=8e-3, read=3e-4)
    data_side = camera_noise.add_camera_noise(x, params, np.random.default_rng(0)) - x
    xt = torch.from_numpy(x).view(1, 1, 6, 20000)
    ours = generated_noise(xt, torch.tensor([[8e-3, 3e-4]], dtype=torch.float64), "brooks",
                           generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(ours[0, 0].var(dim=1), torch.from_numpy(data_side.var(axis=1)), rtol=0.06, atol=0)


def test_brooks_per_pixel_maps_and_reparameterised_gradient():
    """d E[n^2] / d a = x and d E[n^2] / d b = 1 for per-pixel maps (eps averaged out)."""
    x = torch.full((1, 3, 2, 2), 0.25)
    x[..., 0, :] = 0.75
    ab = torch.full((1, 2, 2, 2), 1e-3, requires_grad=True)
    eps = torch.randn(20000, 3, 2, 2, generator=torch.Generator().manual_seed(1))
    n = generated_noise(x.expand(20000, 3, 2, 2), ab.expand(20000, 2, 2, 2), "brooks", eps)
    (n.square().mean(dim=(0, 1)).sum()).backward()
    torch.testing.assert_close(ab.grad[0, 0], x[0, 0], rtol=0.05, atol=0)
    torch.testing.assert_close(ab.grad[0, 1], torch.ones(2, 2), rtol=0.05, atol=0)


def test_eps_and_generator_make_sampling_reproducible():
    x = torch.rand(2, 3, 8, 8) * 2 - 1
    g = torch.full_like(x, 0.5)
    a = generated_noise(x, g, "additive", generator=torch.Generator().manual_seed(3))
    b = generated_noise(x, g, "additive", generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert not torch.equal(a, generated_noise(x, g, "additive", generator=torch.Generator().manual_seed(4)))


def test_poisson_prior_is_nan_free_slightly_below_minus_one():
    x = torch.full((1, 1, 2, 2), -1.0001)
    n = generated_noise(x, torch.ones_like(x), "poisson")
    assert torch.isfinite(n).all() and n.abs().max() == 0


@pytest.mark.parametrize(
    "x,g,prior",
    [
        (torch.rand(2, 3, 4, 4), torch.rand(2, 3, 4, 4), "gaussian"),  # unknown prior
        (torch.rand(2, 3, 4, 4), torch.rand(2, 5, 4, 4), "additive"),  # g does not broadcast
        (torch.rand(2, 3, 4, 4), torch.rand(2, 3), "brooks"),  # brooks needs (N, 2)
        (torch.rand(2, 3, 4, 4), torch.tensor([[1e-3, -1e-4], [1e-3, 1e-4]]), "brooks"),  # negative variance
        (torch.rand(2, 3, 4, 4), torch.rand(2, 2, 3, 3), "brooks"),  # map of the wrong size
        (torch.rand(3, 4, 4), torch.rand(3, 4, 4), "additive"),  # x not 4-D
    ],
)
def test_input_validation(x, g, prior):
    with pytest.raises(UserError):
        generated_noise(x, g, prior)

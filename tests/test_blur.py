"""Tests of the differentiable per-sample blur x * k and the kernel helpers (k_I, H(k))."""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch

from bncr.degradations.blur import blur, identity_kernel, kernel_entropy
from bncr.errors import UserError

torch.set_num_threads(1)


@pytest.mark.parametrize("shape,size", [((4, 3, 32, 32), 7), ((3, 1, 9, 13), 9), ((2, 3, 5, 5), 3), ((2, 2, 4, 4), 1)])
def test_identity_kernel_returns_x_exactly(shape, size):
    torch.manual_seed(0)
    x = torch.randn(shape)
    k = identity_kernel(size).expand(shape[0], size, size)
    assert torch.equal(blur(x, k), x)


def test_identity_rows_stay_exact_in_a_mixed_batch():
    torch.manual_seed(0)
    x = torch.rand(3, 3, 16, 16)
    k = torch.stack([identity_kernel(5), torch.rand(5, 5), identity_kernel(5)])
    y = blur(x, k)
    assert torch.equal(y[0], x[0]) and torch.equal(y[2], x[2])
    assert not torch.allclose(y[1], x[1])


def test_matches_scipy_convolution_with_mirror_padding():
    """True convolution (flipped kernel) with reflect padding, per sample and per channel."""
    rng = np.random.default_rng(1)
    x = rng.random((3, 2, 11, 14))
    k = rng.random((3, 5, 5))  # asymmetric kernels: catches correlation vs convolution
    y = blur(torch.from_numpy(x), torch.from_numpy(k)).numpy()
    for i in range(3):
        for c in range(2):
            ref = ndi.convolve(x[i, c], k[i], mode="mirror")
            np.testing.assert_allclose(y[i, c], ref, rtol=1e-12, atol=1e-12)


def test_matches_the_data_side_blur():
    """Generator-side blur = the blur that degrades the training images (settings.blur_np)."""
    settings = pytest.importorskip("bncr.degradations.settings")
    if not hasattr(settings, "blur_np"):
        pytest.skip("data-side blur_np not available")
    rng = np.random.default_rng(2)
    x = rng.random((2, 3, 12, 10))
    k = rng.random((2, 5, 5))
    y = blur(torch.from_numpy(x), torch.from_numpy(k)).numpy()
    for i in range(2):
        ref = settings.blur_np(x[i].transpose(1, 2, 0), k[i]).transpose(2, 0, 1)
        np.testing.assert_allclose(y[i], ref, rtol=1e-12, atol=1e-12)


def test_each_sample_uses_its_own_kernel():
    torch.manual_seed(0)
    x = torch.rand(1, 3, 16, 16).expand(2, 3, 16, 16).contiguous()
    box = torch.full((5, 5), 1 / 25.0)
    shift = torch.zeros(5, 5)
    shift[2, 0] = 1.0
    y = blur(x, torch.stack([box, shift]))
    torch.testing.assert_close(y[0:1], blur(x[0:1], box[None]))
    torch.testing.assert_close(y[1:2], blur(x[1:2], shift[None]))
    assert (y[0] - y[1]).abs().max() > 0.05


def test_blur_preserves_mean_for_normalised_kernels_and_smooths():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 32, 32)
    k = torch.full((2, 5, 5), 1 / 25.0)
    y = blur(x, k)
    torch.testing.assert_close(y.mean(), x.mean(), rtol=0, atol=2e-3)
    assert y.diff(dim=-1).abs().mean() < 0.5 * x.diff(dim=-1).abs().mean()


def test_gradcheck_x_and_kernels():
    torch.manual_seed(0)
    x = torch.rand(2, 2, 6, 7, dtype=torch.float64, requires_grad=True)
    k = torch.rand(2, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(blur, (x, k), eps=1e-6, atol=1e-8)


def test_kernel_entropy_values():
    ident = identity_kernel(7).expand(2, 7, 7)
    assert torch.equal(kernel_entropy(ident), torch.zeros(2))
    torch.testing.assert_close(kernel_entropy(torch.ones(1, 5, 5)), torch.tensor([math.log(25.0)]))
    two = torch.zeros(1, 3, 3)
    two[0, 0, 0] = two[0, 2, 2] = 0.5
    torch.testing.assert_close(kernel_entropy(two), torch.tensor([math.log(2.0)]))
    # unnormalised kernels are normalised first (masked kernels of Eq. 3 need not sum to 1)
    torch.testing.assert_close(kernel_entropy(3.0 * two), kernel_entropy(two))
    assert not torch.allclose(kernel_entropy(3.0 * two, normalize=False), kernel_entropy(two))


def test_kernel_entropy_gradient_is_finite_with_zero_taps():
    k = torch.zeros(2, 5, 5)
    k[:, 2, 2] = 1.0
    k[1, 1:4, 1:4] += 0.2
    k.requires_grad_()
    kernel_entropy(k).sum().backward()
    assert torch.isfinite(k.grad).all()
    k64 = (torch.rand(2, 3, 3, dtype=torch.float64) + 0.1).requires_grad_()
    assert torch.autograd.gradcheck(kernel_entropy, (k64,), eps=1e-6, atol=1e-8)


@pytest.mark.parametrize(
    "x,k",
    [
        (torch.rand(2, 3, 8, 8), torch.rand(2, 4, 4)),  # even K
        (torch.rand(2, 3, 8, 8), torch.rand(3, 3, 3)),  # one kernel per image
        (torch.rand(2, 3, 4, 8), torch.rand(2, 9, 9)),  # reflect pad 4 >= H
        (torch.rand(3, 8, 8), torch.rand(3, 3, 3)),  # x not 4-D
        (torch.rand(2, 3, 8, 8), torch.rand(2, 3, 5)),  # kernel not square
    ],
)
def test_blur_input_validation(x, k):
    with pytest.raises(UserError):
        blur(x, k)


def test_kernel_helpers_validation():
    with pytest.raises(UserError):
        identity_kernel(4)
    with pytest.raises(UserError):
        kernel_entropy(-torch.ones(1, 3, 3))
    with pytest.raises(UserError):
        kernel_entropy(torch.zeros(1, 3, 3))

"""Differentiable blur x * k with per-sample kernels, and the kernel helpers of BR-GAN / BNCR-GAN.

`blur` is the generator-side blur of Eq. 2 / 6 (y^g = x^g * k^g, one kernel k^g = G_k(z_k) per
image), `identity_kernel` is k_I of the mask architecture (Eq. 3), and `kernel_entropy` is H(k) of
the adaptive consistency loss (Eq. 7).
"""
from __future__ import annotations

import contextlib
from typing import Optional

import torch
import torch.nn.functional as F

from bncr.errors import UserError, check_values

__all__ = ["blur", "identity_kernel", "kernel_entropy"]


def identity_kernel(size: int, *, device: Optional[torch.device] = None,
                    dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """k_I: the (size, size) kernel with a single 1 at the centre (size odd). `blur` with it is exact."""
    if not isinstance(size, int) or size < 1 or size % 2 == 0:
        raise UserError(f"identity_kernel: kernel size must be a positive odd integer, got {size!r}")
    k = torch.zeros(size, size, device=device, dtype=dtype)
    k[size // 2, size // 2] = 1.0
    return k


def _no_tf32(x: torch.Tensor):
    """cuDNN may run float32 convolutions in TF32 (10-bit mantissa); keep blur exact in float32."""
    if x.is_cuda and not torch.compiler.is_compiling():   # compiled: the trainer turns cuDNN TF32 off
        b = torch.backends.cudnn
        return b.flags(enabled=b.enabled, benchmark=b.benchmark, deterministic=b.deterministic, allow_tf32=False)
    return contextlib.nullcontext()


def blur(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """y = x * k per sample: kernel k_i (N, K, K) applied to every channel of image x_i (N, C, H, W).

    A true convolution (the kernel is flipped, as in scipy.ndimage.convolve), 'same' output size,
    reflect padding (the edge sample is not repeated: scipy's mode='mirror'), so K // 2 must be
    smaller than H and W. One grouped conv2d over all N * C planes. Differentiable with respect to
    x and to the kernels; the kernels are used as given (no normalisation), and the identity
    kernel returns x exactly. Works for any value range of x.
    """
    if not torch.is_tensor(x) or not x.is_floating_point() or x.dim() != 4:
        shape = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
        raise UserError(f"blur: x must be a float tensor of shape (N, C, H, W), got {shape}")
    if not torch.is_tensor(kernels) or kernels.dim() != 3 or kernels.shape[1] != kernels.shape[2]:
        shape = tuple(kernels.shape) if torch.is_tensor(kernels) else type(kernels).__name__
        raise UserError(f"blur: kernels must be a tensor of shape (N, K, K), got {shape}")
    n, c, h, w = x.shape
    size = kernels.shape[-1]
    if kernels.shape[0] != n:
        raise UserError(f"blur: need one kernel per image: x has N={n}, kernels has N={kernels.shape[0]}")
    if size % 2 == 0:
        raise UserError(f"blur: kernel size K must be odd (a centred kernel), got K={size}")
    pad = size // 2
    if pad >= h or pad >= w:
        raise UserError(
            f"blur: reflect padding needs K // 2 < H and W; got K={size} for images of {h}x{w}"
        )
    k = kernels.to(dtype=x.dtype, device=x.device)
    if pad == 0:
        return x * k.view(n, 1, 1, 1)
    xp = F.pad(x.reshape(1, n * c, h, w), (pad, pad, pad, pad), mode="reflect")
    weight = k.flip(-1, -2).repeat_interleave(c, dim=0).unsqueeze(1)  # (N*C, 1, K, K)
    with _no_tf32(x):
        y = F.conv2d(xp, weight, groups=n * c)
    return y.view(n, c, h, w)


def kernel_entropy(k: torch.Tensor, *, normalize: bool = True) -> torch.Tensor:
    """Shannon entropy H(k) in nats of each kernel, (N, K, K) -> (N,); 0 for the identity kernel.

    Entries must be non-negative. With normalize=True (default) each kernel is first divided by its
    sum, so H is the entropy of the kernel as a distribution over its K*K taps; this matters for the
    masked kernels of Eq. 3, k = m_k * k_hat + (1 - m_k) * k_I, whose sum is not 1 when the mask
    m_k is not constant. Zero taps contribute 0 and get a finite (zero) gradient, so the identity
    kernel and sparse kernels are safe to differentiate. Maximum: log(K*K) for the uniform kernel.
    """
    if not torch.is_tensor(k) or not k.is_floating_point() or k.dim() != 3:
        shape = tuple(k.shape) if torch.is_tensor(k) else type(k).__name__
        raise UserError(f"kernel_entropy: k must be a float tensor of shape (N, K, K), got {shape}")
    check_values(~(k < 0), "kernel_entropy: kernels must be non-negative (got a negative tap)")
    p = k.flatten(1)
    if normalize:
        total = p.sum(dim=1, keepdim=True)
        check_values(~(total <= 0), "kernel_entropy: a kernel sums to 0; cannot normalise it")
        p = p / total
    positive = p > 0
    safe = torch.where(positive, p, torch.ones_like(p))
    return 0.0 - torch.where(positive, p * torch.log(safe), torch.zeros_like(p)).sum(dim=1)

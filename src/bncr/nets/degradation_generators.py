"""Degradation generators of BNCR-GAN: blur kernel G_k, JPEG quality G_q, noise heads for G_n,
and the latent-free "parameter" versions used by P-AmbientGAN.

Common interface (so a pipeline can swap a generator for a parameter):

- ``z_dim`` (int): latent size; 0 for the parameter versions.
- ``sample_z(n, generator=None, device=None)``: z ~ N(0, I_z_dim) of shape (n, z_dim); an empty
  (n, 0) tensor for the parameter versions.
- ``forward(z)``: z is a (n, z_dim) tensor; the parameter versions ignore its values and only use
  its batch size (an int batch size is accepted too).

Outputs are NamedTuples (unpack like tuples, or use the field names):

- :class:`KernelOutput` (k, k_hat, m_k), each (N, K, K): Eq. 3, k = m_k * k_hat + (1 - m_k) * k_I.
- :class:`QualityOutput` (q, m_q), each (N,): q in (0, 100), m_q in [0, 1] (Eq. 5 mask).
- :class:`NoiseAB` (a, b), each (N,): non-negative per-image noise parameters (for example
  variance = a * x + b for Brooks-type shot/read noise; the noise prior decides their meaning).

G_k and G_q are three-layer MLPs (paper, Sec. 7.1): Linear(z_dim, hidden), ReLU,
Linear(hidden, hidden), ReLU, Linear(hidden, outputs). Latent size 128 like NR-GAN's G_x and
G_n (z ~ N(0, I)); hidden width 256 because at K = 13 the kernel head has 2*K*K = 338 outputs and a
narrower hidden layer would cap how many independent directions the kernel logits can take (at
K = 7, 98 outputs, 128 would do); both are options. Linear layers
use NR-GAN's init (Xavier-uniform, gain 1, zero bias) except the output bias, which sets the
starting point of the degradation (see each class).

Kernel size K: it must hold the largest true kernel of the setting. The data side
(``bncr.degradations.kernels``) needs 5 (disk r <= 2) and 7 (motion length 5) at 32x32, and 9
(disk r <= 4) and 13 (motion length 10) at 128x128, so :func:`default_kernel_size` gives 7 at 32
and 13 at 128.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Optional, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..train.config import default
from .resnet import NetConfigError, sample_normal

__all__ = [
    "KernelOutput",
    "QualityOutput",
    "NoiseAB",
    "DegradationGenerator",
    "KernelGenerator",
    "QualityGenerator",
    "NoiseParamGenerator",
    "KernelParameter",
    "QualityParameter",
    "NoiseParameter",
    "identity_kernel",
    "gaussian_logits",
    "compose_kernel",
    "default_kernel_size",
]

_DEFAULT_K = {32: 7, 128: 13}


class KernelOutput(NamedTuple):
    """Blur kernel of G_k. k: the kernel to blur with; k_hat: the raw softmax kernel; m_k: the mask."""
    k: torch.Tensor      # (N, K, K), >= 0, sums to 1
    k_hat: torch.Tensor  # (N, K, K), softmax over K*K logits
    m_k: torch.Tensor    # (N, K, K) in [0, 1]; all ones when mask=False


class QualityOutput(NamedTuple):
    """JPEG quality of G_q. q in (0, 100); m_q in [0, 1] weights compressed vs uncompressed (Eq. 5)."""
    q: torch.Tensor      # (N,)
    m_q: torch.Tensor    # (N,); all ones when mask=False


class NoiseAB(NamedTuple):
    """Two non-negative per-image noise parameters (e.g. shot and read variance)."""
    a: torch.Tensor      # (N,)
    b: torch.Tensor      # (N,)


# ----------------------------------------------------------------------------------------------
# Helpers


def default_kernel_size(resolution: int) -> int:
    """Default kernel size K of G_k: 7 at 32x32 (disk r <= 2, motion 5), 13 at 128x128
    (disk r <= 4, motion 10)."""
    if resolution not in _DEFAULT_K:
        raise NetConfigError(f"no default blur kernel size for resolution={resolution} "
                             f"(defaults: {_DEFAULT_K}); pass kernel_size explicitly")
    return _DEFAULT_K[resolution]


def identity_kernel(kernel_size: int, device=None, dtype=None) -> torch.Tensor:
    """k_I: (K, K) zeros with a one at the centre; blurring with it changes nothing."""
    k = torch.zeros(kernel_size, kernel_size, device=device, dtype=dtype)
    k[kernel_size // 2, kernel_size // 2].fill_(1.0)   # not `= 1.0`: that copies a host scalar (no CUDA graph capture)
    return k


def gaussian_logits(kernel_size: int, sigma: float) -> torch.Tensor:
    """(K*K,) logits whose softmax is an isotropic Gaussian kernel of std `sigma` px, centred."""
    c = kernel_size // 2
    r = torch.arange(kernel_size, dtype=torch.float32) - c
    d2 = r.view(-1, 1) ** 2 + r.view(1, -1) ** 2
    logits = -d2 / (2.0 * sigma * sigma)
    return (logits - logits.max()).reshape(-1)


def compose_kernel(k_hat: torch.Tensor, m_k: torch.Tensor, renormalize: bool = True) -> torch.Tensor:
    """Eq. 3: k = m_k * k_hat + (1 - m_k) * k_I, on (..., K, K) tensors.

    Eq. 3 alone does not keep sum(k) = 1: sum(k) = 1 - m_k[centre] + sum(m_k * k_hat), which is 1
    when m_k is spatially constant but otherwise may brighten or darken the image. With
    ``renormalize=True`` k is divided by its sum, which is > 0 since it is at least
    1 - m_c * (1 - k_hat_c) >= k_hat_c > 0 (softmax). So k is a valid blur kernel (>= 0, sums
    to 1), m_k = 0 gives exactly k_I (sum 1, divided by exactly 1), and m_k = 1 gives exactly k_hat
    up to rounding. The sum is clamped at 1e-12 only to avoid 0/0 if k_hat underflowed.
    """
    kk = k_hat.shape[-1]
    k_i = identity_kernel(kk, device=k_hat.device, dtype=k_hat.dtype)
    k = m_k * k_hat + (1.0 - m_k) * k_i
    if renormalize:
        k = k / k.sum(dim=(-2, -1), keepdim=True).clamp_min(1e-12)
    return k


def center_kernel(k: torch.Tensor) -> torch.Tensor:
    """Shift each kernel (N, K, K) so that its centroid sits on the centre pixel (bilinear, sub-pixel).

    A translated image is as likely as the original under shift-invariant image statistics, so the
    adversarial loss cannot tell a shifted delta from the identity kernel, and G_k was seen to learn
    pure shifts (a delta 3 px off-centre: zero entropy, no blur, but full AC weight). The data side
    centres every kernel at its centroid too (motion PSFs explicitly, disks by symmetry), so this
    removes an unidentifiable degree of freedom without restricting the blurs that exist in the
    data. Differentiable (bilinear weights); mass moved past the border is dropped and the kernel
    renormalised; a kernel already centred (e.g. k_I) is returned unchanged up to rounding.
    """
    n, K, _ = k.shape
    c = K // 2
    pos = torch.arange(K, dtype=k.dtype, device=k.device)
    mass = k.sum(dim=(1, 2)).clamp_min(1e-12)
    dy = (k.sum(dim=2) * pos).sum(dim=1) / mass - c        # centroid offset, rows
    dx = (k.sum(dim=1) * pos).sum(dim=1) / mass - c        # centroid offset, columns
    # out(i, j) = k(i + dy, j + dx): sample the kernel at the shifted grid (align_corners: pixel centres)
    base = pos * (2.0 / (K - 1)) - 1.0 if K > 1 else pos
    gy = base.view(1, K, 1) + (2.0 / max(K - 1, 1)) * dy.view(n, 1, 1)
    gx = base.view(1, 1, K) + (2.0 / max(K - 1, 1)) * dx.view(n, 1, 1)
    grid = torch.stack([gx.expand(n, K, K), gy.expand(n, K, K)], dim=-1)
    out = F.grid_sample(k.unsqueeze(1), grid, mode="bilinear", padding_mode="zeros", align_corners=True)[:, 0]
    return out / out.sum(dim=(1, 2), keepdim=True).clamp_min(1e-12)


def _logit(p: float, name: str) -> float:
    if not 0.0 < p < 1.0:
        raise NetConfigError(f"{name} must be strictly between 0 and 1, got {p!r}")
    return math.log(p / (1.0 - p))


def _check_pos_int(v, name: str, minimum: int = 1) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise NetConfigError(f"{name} must be an integer >= {minimum}, got {v!r}")
    return v


def _check_kernel_size(kernel_size) -> int:
    if kernel_size is None:        # the option's "auto": the 32x32 size (the pipeline resolves it per resolution)
        return default_kernel_size(32)
    _check_pos_int(kernel_size, "kernel_size", 1)
    if kernel_size % 2 == 0:
        raise NetConfigError(f"kernel_size must be odd (the identity kernel needs a centre), got {kernel_size}")
    return kernel_size


def _kernel_init_logits(kernel_size: int, kernel_init: str, sigma: Optional[float]) -> torch.Tensor:
    if kernel_init == "uniform":
        return torch.zeros(kernel_size * kernel_size)
    if kernel_init != "gaussian":
        raise NetConfigError(f"kernel_init must be 'gaussian' or 'uniform', got {kernel_init!r}")
    if sigma is None:
        sigma = max((kernel_size - 1) / 6.0, 0.5)
    if not sigma > 0:
        raise NetConfigError(f"kernel_init_sigma must be > 0, got {sigma!r}")
    return gaussian_logits(kernel_size, float(sigma))


def _mlp_trunk(z_dim: int, hidden: int) -> nn.Sequential:
    trunk = nn.Sequential(nn.Linear(z_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
    for m in trunk:
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight, gain=1.0)
            nn.init.zeros_(m.bias)
    return trunk


def _head(hidden: int, out: int, gain: float) -> nn.Linear:
    head = nn.Linear(hidden, out)
    if gain > 0:
        nn.init.xavier_uniform_(head.weight, gain=gain)
    else:
        nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    return head


@torch.no_grad()
def _center_head(trunk: nn.Module, head: nn.Linear, n: int = 4096) -> None:
    """Shift ``head``'s bias so that its output *averaged over z* equals the bias set before.

    With a random (Xavier) head, W E[h] adds a z-independent offset to every output (E[h] > 0 after the ReLUs);
    for G_q it moved the initial q from 50 to anywhere in 27-71 depending on the seed, and the warm-up holds that
    value (docs/research/cpu-scale.md section 13). E[h] is estimated on a fixed batch from a private generator, so
    the global random stream (every later initialisation, the run's draws) is unchanged.
    """
    z_dim = trunk[0].in_features
    z = torch.randn(n, z_dim, generator=torch.Generator().manual_seed(0)).to(head.weight)
    head.bias.sub_(head.weight @ trunk(z).mean(0))


class DegradationGenerator(nn.Module):
    """Base class: holds ``z_dim`` and draws latents with ``sample_z``."""

    z_dim: int = 0

    def sample_z(self, n: int, generator: Optional[torch.Generator] = None,
                 device: Optional[Union[torch.device, str]] = None) -> torch.Tensor:
        """z ~ N(0, I_z_dim) of shape (n, z_dim) (empty (n, 0) when z_dim == 0), on `device`
        (default: this module's device). Drawn with `generator` on its own device, then moved."""
        return sample_normal(n, self.z_dim, generator, device, self)

    def _check_z(self, z: torch.Tensor) -> None:
        if z.dim() != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"{type(self).__name__} expects z of shape (N, {self.z_dim}), got {tuple(z.shape)}")


class _ParameterBase(DegradationGenerator):
    """Latent-free degradation (P-AmbientGAN): z_dim = 0; forward(z or batch size)."""

    z_dim = 0

    def _batch(self, z: Union[torch.Tensor, int]) -> int:
        if isinstance(z, torch.Tensor):
            return int(z.shape[0])
        return _check_pos_int(z, "batch size", 0)


# ----------------------------------------------------------------------------------------------
# Blur kernel


class KernelGenerator(DegradationGenerator):
    """G_k: z_k (N, z_dim) -> KernelOutput(k, k_hat, m_k), each (N, K, K).

    k_hat = softmax over K*K logits (>= 0, sums to 1); m_k = sigmoid of K*K logits (Eq. 3 mask);
    k = compose_kernel(k_hat, m_k, renormalize). With ``mask=False`` (BR-GAN w/o mask) there are
    no mask outputs, m_k is all ones and k is exactly k_hat.

    Initialisation (a probe saw k collapse to the identity in joint training, so the start
    matters): the output bias of the kernel logits is the log of a centred Gaussian of std
    ``kernel_init_sigma`` (default (K - 1) / 6: 1 px at K = 7, 2 px at K = 13), so k_hat starts as
    a smooth blur rather than a uniform box or a delta; ``kernel_init="uniform"`` gives zero bias
    instead. The mask bias is logit(``mask_init``) (default 0.5: half blur, half identity; with a
    constant mask Eq. 3 already sums to 1). ``head_gain`` scales the Xavier init of the output
    weights, i.e. how much k and m_k vary with z at the start (1 = NR-GAN's linear init,
    logits vary by about +-0.5; 0 = every z gives the same initial kernel).

    Args:
        kernel_size: odd K (see :func:`default_kernel_size`: 7 at 32x32, 13 at 128x128).
        z_dim: latent size (128, like NR-GAN's generators).
        hidden: width of the two hidden layers (256).
        mask: use the Eq. 3 mask (False: BR-GAN w/o mask).
        renormalize: divide k by its sum (see :func:`compose_kernel`).
        center_init: shift the output bias so the *mean over z* of each output starts at its intended value
            (:func:`_center_head`; default False: the random head adds a seed-dependent offset).
    """

    def __init__(self, kernel_size: Optional[int] = default("kernel_size"), z_dim: int = default("z_dim"), hidden: int = 256, mask: bool = True,
                 mask_init: float = default("mask_init"), kernel_init: str = "gaussian",
                 kernel_init_sigma: Optional[float] = None, head_gain: float = 1.0,
                 renormalize: bool = True, center: bool = True, center_init: bool = False) -> None:
        super().__init__()
        self.center = bool(center)
        self.kernel_size = kernel_size = _check_kernel_size(kernel_size)
        self.z_dim = _check_pos_int(z_dim, "z_dim")
        _check_pos_int(hidden, "hidden")
        self.mask = bool(mask)
        self.renormalize = bool(renormalize)
        kk = kernel_size * kernel_size
        self.trunk = _mlp_trunk(z_dim, hidden)
        self.head = _head(hidden, 2 * kk if self.mask else kk, float(head_gain))
        with torch.no_grad():
            self.head.bias[:kk] = _kernel_init_logits(kernel_size, kernel_init, kernel_init_sigma)
            if self.mask:
                self.head.bias[kk:] = _logit(float(mask_init), "mask_init")
        if center_init:
            _center_head(self.trunk, self.head)

    def forward(self, z: torch.Tensor) -> KernelOutput:
        self._check_z(z)
        n, kk, ks = z.shape[0], self.kernel_size ** 2, self.kernel_size
        out = self.head(self.trunk(z))
        k_hat = torch.softmax(out[:, :kk], dim=1).view(n, ks, ks)
        if not self.mask:
            return KernelOutput(center_kernel(k_hat) if self.center else k_hat, k_hat, torch.ones_like(k_hat))
        m_k = torch.sigmoid(out[:, kk:]).view(n, ks, ks)
        k = compose_kernel(k_hat, m_k, self.renormalize)
        return KernelOutput(center_kernel(k) if self.center else k, k_hat, m_k)


class KernelParameter(_ParameterBase):
    """P-AmbientGAN blur: one learned kernel shared by all samples, same Eq. 3 composition and
    initialisation as :class:`KernelGenerator` (without the z-dependent part)."""

    def __init__(self, kernel_size: Optional[int] = default("kernel_size"), mask: bool = True, mask_init: float = default("mask_init"),
                 kernel_init: str = "gaussian", kernel_init_sigma: Optional[float] = None,
                 renormalize: bool = True, center: bool = True) -> None:
        super().__init__()
        self.center = bool(center)
        self.kernel_size = kernel_size = _check_kernel_size(kernel_size)
        self.mask = bool(mask)
        self.renormalize = bool(renormalize)
        self.kernel_logits = nn.Parameter(_kernel_init_logits(kernel_size, kernel_init, kernel_init_sigma))
        if self.mask:
            self.mask_logits = nn.Parameter(torch.full((kernel_size * kernel_size,),
                                                       _logit(float(mask_init), "mask_init")))
        else:
            self.register_parameter("mask_logits", None)

    def forward(self, z: Union[torch.Tensor, int]) -> KernelOutput:
        n, ks = self._batch(z), self.kernel_size
        k_hat = torch.softmax(self.kernel_logits, dim=0).view(1, ks, ks)
        if self.mask_logits is None:
            k = center_kernel(k_hat) if self.center else k_hat
            k, k_hat = k.expand(n, ks, ks).contiguous(), k_hat.expand(n, ks, ks).contiguous()
            return KernelOutput(k, k_hat, torch.ones_like(k_hat))
        m_k = torch.sigmoid(self.mask_logits).view(1, ks, ks)
        k = compose_kernel(k_hat, m_k, self.renormalize)
        k = center_kernel(k) if self.center else k
        return KernelOutput(*(t.expand(n, ks, ks).contiguous() for t in (k, k_hat, m_k)))


# ----------------------------------------------------------------------------------------------
# JPEG quality


Q_PARAMS = ("sigmoid", "clamp")
# Lowest quality of the "clamp" parametrisation. Not libjpeg's 1: at quality 1 (q < 1.5 after rounding) every
# quantisation-table entry saturates at 255, JPEG stops depending on q and dJPEG/dq is exactly 0, so a G_q
# that falls there can never leave (seen in the oracle runs, docs/research/oracle-diagnostic.md). At 2 the slope is large.
Q_MIN = 2.0


class _ProjectedClamp(torch.autograd.Function):
    """clamp(v, lo, hi) forward; backward passes the gradient unless v is outside [lo, hi] *and* the
    gradient-descent step would push it further out (a projected gradient). Unlike a sigmoid, whose
    gradient vanishes at both ends, a value at a bound can always come back when the loss asks."""

    @staticmethod
    def forward(ctx, v: torch.Tensor, lo: float, hi: float) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(v)
        ctx.lo, ctx.hi = lo, hi
        return v.clamp(lo, hi)

    @staticmethod
    def backward(ctx, g: torch.Tensor):  # type: ignore[override]
        (v,) = ctx.saved_tensors
        # descent moves v by -g: blocked below lo when g > 0 (pushes down), above hi when g < 0
        blocked = ((v < ctx.lo) & (g > 0)) | ((v > ctx.hi) & (g < 0))
        return torch.where(blocked, torch.zeros_like(g), g), None, None


def quality_from_logit(l: torch.Tensor, q_param: str) -> torch.Tensor:
    """The head's raw output -> q. "sigmoid": 100 sigmoid(l) in (0, 100) (its gradient vanishes at both
    ends, where G_q was seen to stick: docs/research/oracle-diagnostic.md); "clamp": 50 + 50 l clamped to
    [Q_MIN, 100] = [2, 100] with a projected gradient (:class:`_ProjectedClamp`), same value and slope 25-50 near q = 50."""
    if q_param == "sigmoid":
        return 100.0 * torch.sigmoid(l)
    return _ProjectedClamp.apply(50.0 + 50.0 * l, Q_MIN, 100.0)


def quality_logit(q: float, q_param: str) -> float:
    """Inverse of :func:`quality_from_logit` (for initial biases)."""
    if q_param == "sigmoid":
        return _logit(q / 100.0, "q_init / 100")
    if not Q_MIN <= q <= 100.0:
        raise NetConfigError(f"q_init must be in [{Q_MIN:g}, 100], got {q!r}")
    return (q - 50.0) / 50.0


def _check_q_param(q_param: str) -> str:
    if q_param not in Q_PARAMS:
        raise NetConfigError(f"q_param must be one of {', '.join(Q_PARAMS)}, got {q_param!r}")
    return q_param


class QualityGenerator(DegradationGenerator):
    """G_q: z_q (N, z_dim) -> QualityOutput(q, m_q), each (N,).

    q from the head's first output by :func:`quality_from_logit` (``q_param``: "sigmoid", q = 100 sigmoid(l)
    in (0, 100), or "clamp", q = 50 + 50 l in [2, 100] with a gradient that does not vanish at the bounds);
    m_q = sigmoid(l_m) in [0, 1], the Eq. 5 bypass weight. ``mask=False`` (CR-GAN w/o mask): m_q = 1.
    ``hard_mask``: m_q is 1[sigmoid(l_m) > 0.5] in the forward pass and sigmoid(l_m)'s gradient in the backward
    (straight-through), so each image is either compressed or not; a soft m_q can instead blend a strong JPEG
    with the uncompressed image into a weaker one (docs/research/cpu-scale.md, sections 17 and 19).
    Output biases start at the logit of ``q_init`` (None: bias 0, q near 50 but varying with z) and
    logit(mask_init) (0.5). The random head shifts the mean over z by a seed-dependent offset (initial mean q
    27-71 over seeds 0-7 at the laptop preset); ``center_init`` removes it (:func:`_center_head`).
    """

    def __init__(self, z_dim: int = default("z_dim"), hidden: int = 256, mask: bool = True,
                 q_init: Optional[float] = None, mask_init: float = default("mask_init"), head_gain: float = 1.0,
                 q_param: str = default("q_param"), center_init: bool = False, hard_mask: bool = False) -> None:
        super().__init__()
        self.z_dim = _check_pos_int(z_dim, "z_dim")
        _check_pos_int(hidden, "hidden")
        self.mask = bool(mask)
        self.hard_mask = bool(hard_mask)
        self.q_param = _check_q_param(q_param)
        self.trunk = _mlp_trunk(z_dim, hidden)
        self.head = _head(hidden, 2 if self.mask else 1, float(head_gain))
        with torch.no_grad():
            if q_init is not None:
                self.head.bias[0] = quality_logit(float(q_init), self.q_param)
            if self.mask:
                self.head.bias[1] = _logit(float(mask_init), "mask_init")
        if center_init:
            _center_head(self.trunk, self.head)

    def forward(self, z: torch.Tensor) -> QualityOutput:
        self._check_z(z)
        out = self.head(self.trunk(z))
        q = quality_from_logit(out[:, 0], self.q_param)
        if not self.mask:
            return QualityOutput(q, torch.ones_like(q))
        m_q = torch.sigmoid(out[:, 1])
        if self.hard_mask:   # value 0/1, gradient of the soft mask (straight-through)
            m_q = (m_q > 0.5).to(m_q.dtype) + (m_q - m_q.detach())
        return QualityOutput(q, m_q)


class QualityParameter(_ParameterBase):
    """P-AmbientGAN compression: one learned q and m_q shared by all samples (same ``q_param``)."""

    def __init__(self, mask: bool = True, q_init: Optional[float] = None, mask_init: float = default("mask_init"),
                 q_param: str = default("q_param")) -> None:
        super().__init__()
        self.mask = bool(mask)
        self.q_param = _check_q_param(q_param)
        q0 = 0.0 if q_init is None else quality_logit(float(q_init), self.q_param)
        self.q_logit = nn.Parameter(torch.tensor(q0))
        if self.mask:
            self.mask_logit = nn.Parameter(torch.tensor(_logit(float(mask_init), "mask_init")))
        else:
            self.register_parameter("mask_logit", None)

    def forward(self, z: Union[torch.Tensor, int]) -> QualityOutput:
        n = self._batch(z)
        q = quality_from_logit(self.q_logit, self.q_param).expand(n).contiguous()
        if self.mask_logit is None:
            return QualityOutput(q, torch.ones_like(q))
        return QualityOutput(q, torch.sigmoid(self.mask_logit).expand(n).contiguous())


# ----------------------------------------------------------------------------------------------
# Noise (the map version of G_n is a ResNetGenerator; these are the per-image-parameter heads)


# Bounds of the log-variance heads (variances on [0, 1] pixel values): exp(-25) ~ 1e-11 is "no
# noise", exp(0) = 1 a standard deviation as large as the whole pixel range.
LOG_VAR_MIN, LOG_VAR_MAX = -25.0, 0.0
# Initial (a, b): weaker than any camera of Brooks et al. (shot >= 1e-4), i.e. G_n starts near
# "clean", as G_k starts near the identity and G_q near a mild JPEG; the adversarial loss has to raise it.
NOISE_AB_INIT = (1e-4, 1e-5)


def _log_var(logits: torch.Tensor) -> torch.Tensor:
    return torch.exp(logits.clamp(LOG_VAR_MIN, LOG_VAR_MAX))


def _log_init(v: float, name: str) -> float:
    if not 0 < v <= 1:
        raise NetConfigError(f"{name} must be a variance in (0, 1], got {v!r}")
    return math.log(v)


class NoiseParamGenerator(DegradationGenerator):
    """Alternative G_n head for Brooks-type signal-dependent noise: z_n (N, z_dim) ->
    NoiseAB(a, b), each (N,), a = exp(l_a), b = exp(l_b) (log-variance heads, l clamped to [-25, 0]).

    Same three-layer MLP as G_k / G_q. Log-variance heads because camera variances span four orders of
    magnitude (Brooks: shot 1e-4..1.2e-2, read down to 1e-7): a step of Adam moves them by a
    constant *factor*, not a constant amount. The output biases start at log ``init`` (default
    :data:`NOISE_AB_INIT`, weaker than any camera noise); ``center_init``: as in :class:`QualityGenerator`.
    """

    def __init__(self, z_dim: int = default("z_dim"), hidden: int = 256, init: tuple[float, float] = NOISE_AB_INIT,
                 head_gain: float = 1.0, center_init: bool = False) -> None:
        super().__init__()
        self.z_dim = _check_pos_int(z_dim, "z_dim")
        _check_pos_int(hidden, "hidden")
        self.trunk = _mlp_trunk(z_dim, hidden)
        self.head = _head(hidden, 2, float(head_gain))
        with torch.no_grad():
            self.head.bias[0] = _log_init(float(init[0]), "init a")
            self.head.bias[1] = _log_init(float(init[1]), "init b")
        if center_init:
            _center_head(self.trunk, self.head)

    def forward(self, z: torch.Tensor) -> NoiseAB:
        self._check_z(z)
        out = _log_var(self.head(self.trunk(z)))
        return NoiseAB(out[:, 0], out[:, 1])


class NoiseParameter(_ParameterBase):
    """P-AmbientGAN noise: one learned noise level shared by all samples.

    kind="map": interchangeable with a ResNetGenerator G_n: returns the scale map
    g = tanh(theta_c) per channel, broadcast to (N, channels, resolution, resolution), in [-1, 1]
    (theta starts at atanh(``init``), default 0.1).
    kind="ab": interchangeable with :class:`NoiseParamGenerator`: returns NoiseAB(a, b), each (N,),
    exp of two learned log-variances starting at log ``init_ab``.
    """

    def __init__(self, kind: str = "map", channels: int = 3, resolution: int = 32, init: float = 0.1,
                 init_ab: tuple[float, float] = NOISE_AB_INIT) -> None:
        super().__init__()
        if kind not in ("map", "ab"):
            raise NetConfigError(f"NoiseParameter kind must be 'map' or 'ab', got {kind!r}")
        self.kind = kind
        if kind == "map":
            self.channels = _check_pos_int(channels, "channels")
            self.resolution = _check_pos_int(resolution, "resolution")
            if not -1.0 < init < 1.0:
                raise NetConfigError(f"NoiseParameter init must be in (-1, 1) (a tanh value), got {init!r}")
            self.theta = nn.Parameter(torch.full((channels,), math.atanh(float(init))))
        else:
            self.ab_logits = nn.Parameter(torch.tensor([_log_init(float(init_ab[0]), "init_ab a"),
                                                        _log_init(float(init_ab[1]), "init_ab b")]))

    def forward(self, z: Union[torch.Tensor, int]):
        n = self._batch(z)
        if self.kind == "map":
            g = torch.tanh(self.theta).view(1, -1, 1, 1)
            return g.expand(n, self.channels, self.resolution, self.resolution).contiguous()
        ab = _log_var(self.ab_logits)
        return NoiseAB(ab[0].expand(n).contiguous(), ab[1].expand(n).contiguous())

"""ResNet image generator G_x (also used as the noise generator G_n) and discriminator D_y.

The 32x32 networks follow NR-GAN (Kaneko & Harada 2020), which BNCR-GAN builds on:

- pre-activation residual blocks (ReLU, conv3x3, ReLU, conv3x3); output = shortcut + 0.1 * residual;
  no normalisation layers at all;
- a 1x1 conv shortcut only when the block changes the channel count or resamples;
- "up" = nearest-neighbour x2 then conv; "down" = conv then 2x2 average pooling;
- G_x: z ~ N(0, I_128) -> linear to (width, 4, 4) -> 3 up-blocks -> ReLU -> conv3x3 -> tanh;
- D_y: "optimized" first block (conv, ReLU, conv, pool; shortcut pool then 1x1 conv) 32 -> 16,
  a down-block 16 -> 8, two plain blocks at 8x8, ReLU, global *mean* pooling (NR-GAN's default
  ``--d_pooling mean``; ``pooling="sum"`` is offered as in NR-GAN), linear to one logit;
- Xavier-uniform init, gain sqrt(2) on the 3x3 convs of the residual path, gain 1 on the 1x1
  shortcut convs, the output conv and the linear layers; all biases zero.

At width 128 this gives 1,202,691 (G) and 1,053,825 (D) parameters.

128x128 (FFHQ): NR-GAN's public code has only the 32x32 networks (its G would start at
image_size // 8 with 3 up-blocks; its D is resolution-agnostic), and the paper does not list
its 128x128 layers. We therefore extend the 32x32 design with the same block types and the
usual channel multipliers (wider at coarse scales):

- G: linear to (4w, 4, 4); up-blocks 4x4 -> 8 -> 16 -> 32 -> 64 -> 128 with channels
  4w, 4w, 2w, 2w, w, w (``channel_multipliers=(4, 4, 2, 2, 1, 1)``); ReLU, conv3x3, tanh.
- D: optimized block 3 -> w (128 -> 64), down-blocks to 2w (32), 2w (16), 4w (8), then two plain
  blocks of 4w at 8x8 (as at 32x32, D descends to 8x8 and ends with two plain blocks),
  ReLU, mean pool, linear (``channel_multipliers=(1, 2, 2, 4, 4, 4)``).

``width`` is the base channel count w (128 in the paper; use 8-32 on a CPU). Widths below
:data:`MIN_WIDTH` raise :class:`NetConfigError` (a ``ValueError`` and a ``bncr.errors.UserError``).
Only standard PyTorch ops are used (conv2d, nearest interpolate, avg_pool2d), so
``model.to(memory_format=torch.channels_last)`` works unchanged.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import UserError
from ..train.config import default

__all__ = [
    "MIN_WIDTH",
    "UPSAMPLE_MODES",
    "NetConfigError",
    "ResBlock",
    "OptimizedResBlock",
    "ResNetGenerator",
    "ResNetDiscriminator",
    "default_generator_multipliers",
    "default_discriminator_multipliers",
    "sample_normal",
]

MIN_WIDTH = 4
"""Smallest allowed base width: below this a ResNet stage has 1-3 channels and cannot learn."""

RESIDUAL_GAIN = math.sqrt(2.0)   # Xavier gain of the 3x3 convs on the residual path (NR-GAN)
PLAIN_GAIN = 1.0                 # Xavier gain of shortcut / output convs and linear layers

_G_MULTIPLIERS = {32: (1, 1, 1, 1), 64: (2, 2, 1, 1, 1), 128: (4, 4, 2, 2, 1, 1)}
_D_MULTIPLIERS = {32: (1, 1, 1, 1), 64: (1, 2, 2, 2, 2), 128: (1, 2, 2, 4, 4, 4)}


class NetConfigError(UserError, ValueError):
    """A network option (resolution, width, multipliers, ...) that cannot build a network."""


def _xavier(layer: nn.Module, gain: float) -> None:
    nn.init.xavier_uniform_(layer.weight, gain=gain)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)


def _conv(cin: int, cout: int, ksize: int, gain: float) -> nn.Conv2d:
    conv = nn.Conv2d(cin, cout, ksize, padding=ksize // 2)
    _xavier(conv, gain)
    return conv


UPSAMPLE_MODES = ("nearest", "bilinear")


def _up(x: torch.Tensor, mode: str = "nearest") -> torch.Tensor:
    if mode == "bilinear":
        return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    return F.interpolate(x, scale_factor=2, mode="nearest")


def _down(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x, 2)


def sample_normal(n: int, dim: int, generator: Optional[torch.Generator] = None,
                  device: Optional[torch.device | str] = None,
                  module: Optional[nn.Module] = None) -> torch.Tensor:
    """z ~ N(0, I_dim), shape (n, dim).

    Drawn on the device of `generator` (CPU when none is given), then moved to `device`
    (default: the device of `module`'s first parameter or buffer, else CPU). So one CPU
    generator gives the same z on every device. dim == 0 gives an empty (n, 0) tensor.
    """
    if device is None and module is not None:
        t = next(module.parameters(), None)
        if t is None:
            t = next(module.buffers(), None)
        device = t.device if t is not None else None
    return drawn(torch.randn, (int(n), int(dim)), generator=generator, device=device)


def drawn(fn: Callable[..., torch.Tensor], *args: Any, generator: Optional[torch.Generator],
          device: Optional[torch.device | str] = None, **kw: Any) -> torch.Tensor:
    """``fn(*args, generator=generator, **kw)`` (torch.rand, randn, randint, ...) drawn on the generator's device
    (CPU without one), then moved to `device` (None: left there).

    The one rule for random draws: a training run's generator lives on its training device, so its draws need no
    host-to-device copy; a CPU generator gives the same numbers on every device (fixed latents, reports).
    """
    src = generator.device if generator is not None else torch.device("cpu")
    t = fn(*args, generator=generator, device=src, **kw)
    return t if device is None else t.to(device)


class ResBlock(nn.Module):
    """Pre-activation residual block: shortcut(x) + residual_factor * conv(relu(conv(relu(x)))).

    resample=None: plain block (1x1 shortcut only if channels change).
    resample="up": x2 (`upsample`: nearest, NR-GAN's, or bilinear) before the first conv; shortcut = x2 then 1x1 conv.
    resample="down": conv (in->in), conv (in->out), 2x2 avg pool; shortcut = 1x1 conv then pool.
    """

    def __init__(self, in_channels: int, out_channels: int, resample: Optional[str] = None,
                 residual_factor: float = default("residual"), upsample: str = default("g_upsample")) -> None:
        super().__init__()
        if resample not in (None, "up", "down"):
            raise ValueError(f"ResBlock resample must be None, 'up' or 'down', got {resample!r}")
        if upsample not in UPSAMPLE_MODES:
            raise NetConfigError(f"upsample must be one of {', '.join(UPSAMPLE_MODES)}, got {upsample!r}")
        self.resample = resample
        self.upsample = upsample
        self.residual_factor = float(residual_factor)
        mid = in_channels if resample == "down" else out_channels
        self.conv1 = _conv(in_channels, mid, 3, RESIDUAL_GAIN)
        self.conv2 = _conv(mid, out_channels, 3, RESIDUAL_GAIN)
        if in_channels != out_channels or resample is not None:
            self.shortcut: Optional[nn.Conv2d] = _conv(in_channels, out_channels, 1, PLAIN_GAIN)
        else:
            self.shortcut = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.resample == "up":
            s = _up(x, self.upsample)
            h = _up(F.relu(x), self.upsample)
        else:
            s = x
            h = F.relu(x)
        if self.shortcut is not None:
            s = self.shortcut(s)
        h = self.conv2(F.relu(self.conv1(h)))
        if self.resample == "down":
            s = _down(s)
            h = _down(h)
        return s + self.residual_factor * h


class OptimizedResBlock(nn.Module):
    """First block of D: conv, ReLU, conv, 2x2 avg pool (no leading ReLU on the raw image);
    shortcut = 2x2 avg pool then 1x1 conv."""

    def __init__(self, in_channels: int, out_channels: int, residual_factor: float = default("residual")) -> None:
        super().__init__()
        self.residual_factor = float(residual_factor)
        self.conv1 = _conv(in_channels, out_channels, 3, RESIDUAL_GAIN)
        self.conv2 = _conv(out_channels, out_channels, 3, RESIDUAL_GAIN)
        self.shortcut = _conv(in_channels, out_channels, 1, PLAIN_GAIN)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.shortcut(_down(x))
        h = _down(self.conv2(F.relu(self.conv1(x))))
        return s + self.residual_factor * h


def _log2_int(v: int) -> Optional[int]:
    if v < 1 or v & (v - 1):
        return None
    return v.bit_length() - 1


def _check_common(who: str, width: int, resolution: int, min_resolution: int) -> int:
    if isinstance(width, bool) or not isinstance(width, int):
        raise NetConfigError(f"{who}: width must be an integer, got {width!r}")
    if width < MIN_WIDTH:
        raise NetConfigError(f"{who}: width={width} is too small; use width >= {MIN_WIDTH} "
                             f"(the paper uses 128; 8-32 is fine for CPU runs)")
    if isinstance(resolution, bool) or not isinstance(resolution, int):
        raise NetConfigError(f"{who}: resolution must be an integer, got {resolution!r}")
    e = _log2_int(resolution)
    if e is None or resolution < min_resolution:
        raise NetConfigError(f"{who}: resolution={resolution} must be a power of two >= "
                             f"{min_resolution} (e.g. 32 for CIFAR-10, 128 for FFHQ)")
    return e


def _check_multipliers(who: str, mults: Optional[Sequence[int]], defaults: dict, resolution: int,
                       expected_len: int) -> tuple[int, ...]:
    if mults is None:
        if resolution not in defaults:
            raise NetConfigError(f"{who}: no default channel_multipliers for resolution={resolution} "
                                 f"(defaults exist for {sorted(defaults)}); pass channel_multipliers "
                                 f"with {expected_len} entries")
        return defaults[resolution]
    mults = tuple(mults)
    if len(mults) != expected_len:
        raise NetConfigError(f"{who}: channel_multipliers needs {expected_len} entries at "
                             f"resolution={resolution}, got {len(mults)}: {mults}")
    for m in mults:
        if isinstance(m, bool) or not isinstance(m, int) or m < 1:
            raise NetConfigError(f"{who}: channel_multipliers must be positive integers, got {mults}")
    return mults


def default_generator_multipliers(resolution: int) -> tuple[int, ...]:
    """Channel multipliers of G per stage (4x4, 8x8, ..., resolution); one more than up-blocks."""
    return _G_MULTIPLIERS[resolution]


def default_discriminator_multipliers(resolution: int) -> tuple[int, ...]:
    """Channel multipliers of D per block (optimized block, down-blocks, two plain 8x8 blocks)."""
    return _D_MULTIPLIERS[resolution]


class ResNetGenerator(nn.Module):
    """G_x: z (N, z_dim) -> image (N, out_channels, R, R) in [-1, 1] (tanh).

    Also the noise generator G_n of NR-GAN / BNCR-GAN ("G_n like G_x"): its tanh output g in
    [-1, 1] is the per-pixel noise scale map that a noise prior turns into noise (e.g. n = eps * g).

    Args:
        resolution: output size R (32 or 128 have defaults; any power of two >= 8 with
            explicit channel_multipliers).
        width: base channel count w (paper: 128).
        z_dim: latent size (paper: 128), z ~ N(0, I).
        out_channels: image channels (3).
        channel_multipliers: channels per stage as multiples of w, from 4x4 up to R x R
            (log2(R / 4) + 1 entries). Default (1, 1, 1, 1) at 32 (NR-GAN), (4, 4, 2, 2, 1, 1) at 128.
        residual_factor: scale of the residual branch (NR-GAN: 0.1).
        out_activation: "tanh" (default) or None (raw conv output, e.g. for a custom head).
        upsample: "nearest" (NR-GAN) or "bilinear" x2 in the up-blocks. Nearest x2 from the 4x4 map draws
            8x8 blocks early in training, on the very grid of JPEG's 8x8 blocks (docs/research/cpu-scale.md).
        padding: how the 3x3 convolutions pad: "zeros" (NR-GAN) or "reflect". Zeros pull the activations at the
            border towards 0, so a young G_x draws a frame along the image's border that only D's pressure
            removes; a degradation that hides it leaves it (docs/research/cpu-scale.md section 24).
    """

    def __init__(self, resolution: int = 32, width: int = 128, z_dim: int = 128, out_channels: int = 3,
                 channel_multipliers: Optional[Sequence[int]] = None, residual_factor: float = default("residual"),
                 out_activation: Optional[str] = "tanh", upsample: str = default("g_upsample"),
                 padding: str = default("g_pad")) -> None:
        super().__init__()
        e = _check_common("ResNetGenerator", width, resolution, 8)
        if padding not in ("zeros", "reflect"):
            raise NetConfigError(f"ResNetGenerator: padding must be 'zeros' or 'reflect', got {padding!r}")
        if isinstance(z_dim, bool) or not isinstance(z_dim, int) or z_dim < 1:
            raise NetConfigError(f"ResNetGenerator: z_dim must be a positive integer, got {z_dim!r}")
        if isinstance(out_channels, bool) or not isinstance(out_channels, int) or out_channels < 1:
            raise NetConfigError(f"ResNetGenerator: out_channels must be a positive integer, got {out_channels!r}")
        if out_activation not in ("tanh", None):
            raise NetConfigError(f"ResNetGenerator: out_activation must be 'tanh' or None, got {out_activation!r}")
        mults = _check_multipliers("ResNetGenerator", channel_multipliers, _G_MULTIPLIERS, resolution, e - 1)
        chans = [width * m for m in mults]
        self.resolution = resolution
        self.width = width
        self.z_dim = z_dim
        self.out_channels = out_channels
        self.channel_multipliers = mults
        self.out_activation = out_activation
        self.linear = nn.Linear(z_dim, chans[0] * 16)
        _xavier(self.linear, PLAIN_GAIN)
        self.blocks = nn.Sequential(*[ResBlock(chans[i], chans[i + 1], "up", residual_factor, upsample)
                                      for i in range(len(chans) - 1)])
        self.out_conv = _conv(chans[-1], out_channels, 3, PLAIN_GAIN)
        self.padding = padding
        for m in self.modules():                 # every 3x3 conv (1x1 shortcuts do not pad)
            if isinstance(m, nn.Conv2d) and m.padding != (0, 0):
                m.padding_mode = padding

    def sample_z(self, n: int, generator: Optional[torch.Generator] = None,
                 device: Optional[torch.device | str] = None) -> torch.Tensor:
        """z ~ N(0, I_z_dim), shape (n, z_dim), on `device` (default: this module's device)."""
        return sample_normal(n, self.z_dim, generator, device, self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.dim() != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"ResNetGenerator expects z of shape (N, {self.z_dim}), got {tuple(z.shape)}")
        h = self.linear(z).view(z.shape[0], -1, 4, 4)
        h = self.blocks(h)
        h = self.out_conv(F.relu(h))
        return torch.tanh(h) if self.out_activation == "tanh" else h


class ResNetDiscriminator(nn.Module):
    """D_y: image (N, in_channels, R, R) -> logit (N,).

    The optimized block and down-blocks halve the size down to 8x8, then two plain blocks,
    ReLU, global pooling over space and a linear layer.

    Args:
        resolution: input size R (32 or 128 have defaults; any power of two >= 16 with
            explicit channel_multipliers).
        width: base channel count w (paper: 128).
        in_channels: image channels (3).
        channel_multipliers: output channels of each block as multiples of w
            (log2(R / 8) + 2 entries). Default (1, 1, 1, 1) at 32 (NR-GAN), (1, 2, 2, 4, 4, 4) at 128.
        residual_factor: scale of the residual branch (NR-GAN: 0.1).
        pooling: "mean" (NR-GAN default) or "sum" over the final 8x8 feature map.
    """

    def __init__(self, resolution: int = 32, width: int = 128, in_channels: int = 3,
                 channel_multipliers: Optional[Sequence[int]] = None, residual_factor: float = default("residual"),
                 pooling: str = "mean") -> None:
        super().__init__()
        e = _check_common("ResNetDiscriminator", width, resolution, 16)
        if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
            raise NetConfigError(f"ResNetDiscriminator: in_channels must be a positive integer, got {in_channels!r}")
        if pooling not in ("mean", "sum"):
            raise NetConfigError(f"ResNetDiscriminator: pooling must be 'mean' or 'sum', got {pooling!r}")
        n_down = e - 3                       # halvings from R down to 8
        mults = _check_multipliers("ResNetDiscriminator", channel_multipliers, _D_MULTIPLIERS,
                                   resolution, n_down + 2)
        chans = [width * m for m in mults]
        self.resolution = resolution
        self.width = width
        self.in_channels = in_channels
        self.channel_multipliers = mults
        self.pooling = pooling
        blocks: list[nn.Module] = [OptimizedResBlock(in_channels, chans[0], residual_factor)]
        for i in range(1, len(chans)):
            blocks.append(ResBlock(chans[i - 1], chans[i], "down" if i < n_down else None, residual_factor))
        self.blocks = nn.Sequential(*blocks)
        self.linear = nn.Linear(chans[-1], 1)
        _xavier(self.linear, PLAIN_GAIN)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels or x.shape[2] != self.resolution \
                or x.shape[3] != self.resolution:
            raise ValueError(f"ResNetDiscriminator expects images of shape (N, {self.in_channels}, "
                             f"{self.resolution}, {self.resolution}), got {tuple(x.shape)}")
        if self.blocks[0].conv1.weight.is_contiguous(memory_format=torch.channels_last):
            # a channels-last D fed NCHW images (e.g. the degradation pipeline's output) would reorder them in
            # every convolution and run its slower NCHW kernels: one reorder here instead (no effect on values)
            x = x.contiguous(memory_format=torch.channels_last)
        h = F.relu(self.blocks(x))
        h = h.mean(dim=(2, 3)) if self.pooling == "mean" else h.sum(dim=(2, 3))
        return self.linear(h).view(-1)

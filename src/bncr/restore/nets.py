"""The restorer G: a full-resolution residual network with optional self-attention (UNIR's generator shape).

y -> conv3x3 -> `blocks` residual blocks at full resolution (NR-GAN's pre-activation ResBlock), a SAGAN
self-attention layer after the middle block -> ReLU -> conv3x3 -> r; x^ = clamp(y + r, -1, 1). The output
convolution starts at zero, so G starts as the identity (the degraded image is the first guess) and learns
the correction. Everything is convolutional, so a restorer trained on 32x32 crops applies to images of any
size; the attention's keys and values are pooled to at most 16x16 positions, so its cost stays linear in
the number of pixels (BigGAN pools its keys by 2 for the same reason).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..nets.resnet import PLAIN_GAIN, ResBlock, _conv
from .config import default

KV_GRID = 16  # keys/values of the attention: at most KV_GRID x KV_GRID positions
Q_CHUNK = 65536  # query positions per attention product


class SelfAttention(nn.Module):
    """SAGAN self-attention h + gamma * o (gamma starts at 0), keys/values max-pooled to <= KV_GRID^2 positions."""

    def __init__(self, channels: int):
        super().__init__()
        ck, cv = max(channels // 8, 1), max(channels // 2, 1)
        self.query, self.key = _conv(channels, ck, 1, PLAIN_GAIN), _conv(channels, ck, 1, PLAIN_GAIN)
        self.value, self.out = _conv(channels, cv, 1, PLAIN_GAIN), _conv(cv, channels, 1, PLAIN_GAIN)
        self.gamma = nn.Parameter(torch.zeros(()))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        n, _, H, W = h.shape
        pooled = F.adaptive_max_pool2d(h, (min(H, KV_GRID), min(W, KV_GRID)))
        q = self.query(h).flatten(2)                        # (N, ck, HW)
        k, v = self.key(pooled).flatten(2), self.value(pooled).flatten(2)   # (N, ck, M), (N, cv, M)
        # queries in chunks: a photo's (HW, M) attention matrix need not exist at once
        o = torch.cat([v @ torch.softmax(qc.transpose(1, 2) @ k, dim=-1).transpose(1, 2)
                       for qc in q.split(Q_CHUNK, dim=2)], dim=2).view(n, -1, H, W)
        return h + self.gamma * self.out(o)


class RestorationGenerator(nn.Module):
    """x^ = G(y) for degraded images y in [-1, 1] (N, 3, H, W), any H, W; see the module doc."""

    def __init__(self, width: int = default("width"), blocks: int = default("blocks"),
                 attention: bool = default("attention"), residual_factor: float = default("residual")):
        super().__init__()
        self.inp = _conv(3, width, 3, PLAIN_GAIN)
        layers: list[nn.Module] = []
        for i in range(blocks):
            layers.append(ResBlock(width, width, None, residual_factor))
            if attention and i == (blocks - 1) // 2:
                layers.append(SelfAttention(width))
        self.blocks = nn.Sequential(*layers)
        self.out_conv = _conv(width, 3, 3, PLAIN_GAIN)
        nn.init.zeros_(self.out_conv.weight)   # G starts as the identity

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        r = self.out_conv(F.relu(self.blocks(self.inp(y))))
        return (y + r).clamp(-1, 1)

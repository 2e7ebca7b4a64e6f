"""The degradation pipeline of every model: y = JPEG(x * k + n, q), each stage configurable.

Images are in [-1, 1] (G_x's tanh range); blur is applied there directly (kernels sum to 1, so
it commutes with the affine map to [0, 1]); noise and JPEG work on [0, 1] values. Fakes are
clamped to [-1, 1] at the end, like NR-GAN.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch
import torch.nn as nn

from ..degradations.blur import blur, kernel_entropy
from ..degradations.diff_jpeg import diff_jpeg
from ..degradations.noise_layer import generated_noise
from ..degradations.settings import Setting, sample_params
from ..errors import UserError
from ..nets.degradation_generators import (NOISE_AB_INIT, KernelGenerator, KernelParameter, NoiseParameter,
                                           NoiseParamGenerator,
                                           QualityGenerator, QualityParameter, default_kernel_size)
from ..nets.resnet import ResNetGenerator, drawn
from ..train.config import TrainConfig, default
from .pixels import levels_to_model, model_to_unit
from .registry import ModelSpec

BANK_SEED_OFFSET = 1_000_003  # the simulator's draws never coincide with the training images' draws
JPEG_MCU = 16                 # the period of JPEG's grid with 4:2:0 chroma (8x8 luma blocks, 16x16 chroma MCUs)


def jpeg_on_grid(jpeg, u: torch.Tensor, grid: Optional[torch.Tensor]) -> torch.Tensor:
    """jpeg(u) with each image's block grid moved by its offset grid[i] = (dy, dx) in [0, JPEG_MCU).

    The image is placed at (dy, dx) of a reflect-padded canvas JPEG_MCU larger on each axis, the canvas is
    compressed, and the image cut back out: the same codec, its 8x8 / 16x16 borders elsewhere in the image. With
    jpeg_grid="random" the fakes' blocks sit anywhere, so G_x gains nothing by aligning its structure with them
    (docs/research/cpu-scale.md section 24). grid None: jpeg(u), the grid at the image's corner like a real file."""
    if grid is None:
        return jpeg(u)
    n, _, h, w = u.shape
    m = JPEG_MCU
    padded = torch.nn.functional.pad(u, (m, m, m, m), mode="reflect")
    i = torch.arange(n, device=u.device)[:, None, None]
    def cut(img: torch.Tensor, top: torch.Tensor, left: torch.Tensor, hh: int, ww: int) -> torch.Tensor:
        rows = top[:, None] + torch.arange(hh, device=u.device)           # (N, hh)
        cols = left[:, None] + torch.arange(ww, device=u.device)          # (N, ww)
        return img[i, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)   # (N, C, hh, ww)
    dy, dx = grid[:, 0].long(), grid[:, 1].long()
    canvas = cut(padded, m - dy, m - dx, h + m, w + m)                    # u's pixel (0, 0) at (dy, dx)
    return cut(jpeg(canvas), dy, dx, h, w).contiguous()


@dataclass
class PipelineOutput:
    y: torch.Tensor                       # degraded fake y^g in [-1, 1]
    x: torch.Tensor                       # clean fake x^g (the pipeline's input)
    x_blur: torch.Tensor                  # x * k (= x when blur is off)
    u: torch.Tensor                       # x * k + n, the image before JPEG
    stats: dict = field(default_factory=dict)   # detached per-sample degradation values (for logs)
    k: Optional[torch.Tensor] = None      # (N, K, K) kernels applied
    q: Optional[torch.Tensor] = None      # (N,) qualities
    m_q: Optional[torch.Tensor] = None    # (N,) compression masks
    ds_outputs: dict = field(default_factory=dict)  # name -> (N, ...) outputs for the DS loss


class KnownBank(nn.Module):
    """AmbientGAN's true simulator: a bank of ground-truth draws of the setting (independent of the
    training images), sampled uniformly per fake. Kept as buffers, so it moves with .to(device)."""

    def __init__(self, setting: Setting, kernel_size: int, size: int, data_seed: int):
        super().__init__()
        K = kernel_size
        ks, shot, read, q, flags = [], [], [], [], []
        for i in range(size):
            p, _ = sample_params(setting, data_seed + BANK_SEED_OFFSET, i)
            k = np.zeros((K, K), np.float32)
            if p.blurred:
                pad = (K - p.kernel.shape[0]) // 2
                k[pad:K - pad, pad:K - pad] = p.kernel
            else:
                k[K // 2, K // 2] = 1.0
            ks.append(k)
            shot.append(p.shot or 0.0)
            read.append(p.read or 0.0)
            q.append(float(p.quality or 100))
            flags.append((p.blurred, p.noised, p.compressed))
        f = torch.tensor(flags, dtype=torch.float32)
        self.register_buffer("k", torch.from_numpy(np.stack(ks)))
        self.register_buffer("shot", torch.tensor(shot, dtype=torch.float32))
        self.register_buffer("read", torch.tensor(read, dtype=torch.float32))
        self.register_buffer("q", torch.tensor(q, dtype=torch.float32))
        self.register_buffer("compressed", f[:, 2])

    def draw(self, n: int, gen: Optional[torch.Generator]) -> torch.Tensor:
        return drawn(torch.randint, 0, self.k.shape[0], (n,), generator=gen, device=self.k.device)


class DegradationPipeline(nn.Module):
    """Stages blur -> noise -> JPEG, each fed by a parameter source: off / known / parameter / generator
    (the model registry picks them)."""

    def __init__(self, spec: ModelSpec, setting: Setting, resolution: int, *, z_dim: int = default("z_dim"),
                 kernel_size: Optional[int] = default("kernel_size"), noise_gen: str = default("noise_gen"),
                 noise_prior: str = default("noise_prior"), noise_width: int = default("width"),
                 mask_init: float = default("mask_init"), data_seed: int = default("data_seed"),
                 bank_size: int = 4096, dequantize: bool = default("dequantize"), q_param: str = default("q_param"),
                 q_grad: str = default("q_grad"), ds_ab: str = default("ds_ab"),
                 ds_q_target: str = default("ds_q_target"), ds_n_target: str = default("ds_n_target"),
                 noise_init: Optional[float] = default("noise_init"), q_init: Optional[float] = default("q_init"),
                 deg_center_init: bool = default("deg_center_init"), q_mask: str = default("q_mask"),
                 jpeg_round: str = default("jpeg_round"), jpeg_grid: str = default("jpeg_grid")):
        """Keyword defaults are the training options' (train/config.py); `from_config` passes a config's."""
        super().__init__()
        # How real pixels reach [-1, 1] (TrainConfig.dequantize); the JPEG stage maps the same way.
        self.dequantize = bool(dequantize)
        self.spec = spec = spec.resolve(setting)
        self.resolution = resolution
        if kernel_size is None:
            kernel_size = max(default_kernel_size(resolution) if resolution in (32, 128) else 7,
                              setting.blur.size if setting.blur else 1)
        self.kernel_size = kernel_size
        if setting.blur is not None and setting.blur.size > kernel_size:
            raise UserError(f"kernel_size={kernel_size} is smaller than setting {setting.name}'s kernels "
                            f"({setting.blur.size}x{setting.blur.size}); use --set kernel_size={setting.blur.size}")
        if noise_gen not in ("ab", "map"):
            raise UserError(f"noise_gen must be 'ab' or 'map', got {noise_gen!r}")
        self.noise_gen, self.noise_prior = noise_gen, noise_prior
        if ds_ab not in ("std", "logvar", "shot"):
            raise UserError(f"ds_ab must be 'std', 'logvar' or 'shot', got {ds_ab!r}")
        # What the DS term spreads for the (a, b) head: the noise stds sqrt(a), sqrt(b), the head's own
        # log-variances (scale-free: the same reward for a spread in every decade of a and b), or sqrt(a) alone.
        self.ds_ab = ds_ab
        if ds_n_target not in ("params", "sample"):
            raise UserError(f"ds_n_target must be 'params' or 'sample', got {ds_n_target!r}")
        # "sample": DS on the noise image n itself, as NR-GAN's trainer does (its eps differs between the
        # two halves, so the term rewards noise *magnitude*, not a spread of the parameters)
        self.ds_n_target = ds_n_target
        if ds_q_target not in ("both", "mask"):
            raise UserError(f"ds_q_target must be 'both' or 'mask', got {ds_q_target!r}")
        self.ds_q_target = ds_q_target
        if q_mask not in ("soft", "hard"):
            raise UserError(f"q_mask must be 'soft' or 'hard', got {q_mask!r}")
        if jpeg_round not in ("ste", "ste0"):
            raise UserError(f"jpeg_round must be 'ste' or 'ste0', got {jpeg_round!r}")
        self.jpeg_round = jpeg_round            # the differentiable JPEG's x-gradient (degradations/diff_jpeg.py)
        if jpeg_grid not in ("fixed", "random"):
            raise UserError(f"jpeg_grid must be 'fixed' or 'random', got {jpeg_grid!r}")
        self.jpeg_grid = jpeg_grid              # where the fakes' JPEG blocks sit (jpeg_on_grid below)
        if q_grad not in ("ste", "fd"):
            raise UserError(f"q_grad must be 'ste' or 'fd', got {q_grad!r}")
        # "fd": no gradient reaches q through the differentiable JPEG; the training loop supplies a finite-
        # difference estimate instead (degrade_at_quality; docs/research/oracle-diagnostic.md says why)
        self.q_grad = q_grad
        self.bank = KnownBank(setting, kernel_size, bank_size, data_seed) if "known" in spec.stages else None
        self.G_k = self.G_n = self.G_q = None
        if spec.blur == "generator":
            self.G_k = KernelGenerator(kernel_size, z_dim=z_dim, mask=spec.blur_mask, mask_init=mask_init,
                                       center_init=deg_center_init)
        elif spec.blur == "parameter":
            self.G_k = KernelParameter(kernel_size, mask=spec.blur_mask, mask_init=mask_init)
        if spec.noise == "generator":
            ab_init = NOISE_AB_INIT if noise_init is None else (noise_init, noise_init / 10)
            self.G_n = (NoiseParamGenerator(z_dim=z_dim, init=ab_init, center_init=deg_center_init) if noise_gen == "ab"
                        else ResNetGenerator(resolution, noise_width, z_dim))
        elif spec.noise == "parameter":
            self.G_n = NoiseParameter(kind="ab" if noise_gen == "ab" else "map", resolution=resolution)
        if spec.jpeg == "generator":
            self.G_q = QualityGenerator(z_dim=z_dim, mask=spec.jpeg_mask, mask_init=mask_init, q_param=q_param,
                                        q_init=q_init, center_init=deg_center_init, hard_mask=q_mask == "hard")
        elif spec.jpeg == "parameter":
            self.G_q = QualityParameter(mask=spec.jpeg_mask, mask_init=mask_init, q_param=q_param)

    @classmethod
    def from_config(cls, cfg: TrainConfig, spec: ModelSpec, setting: Setting, resolution: int) -> "DegradationPipeline":
        """The pipeline of model `spec` as the training options `cfg` describe it."""
        return cls(spec, setting, resolution, z_dim=cfg.z_dim, kernel_size=cfg.kernel_size, noise_gen=cfg.noise_gen,
                   noise_prior=cfg.noise_prior, noise_width=cfg.width, mask_init=cfg.mask_init,
                   data_seed=cfg.data_seed, dequantize=cfg.dequantize, q_param=cfg.q_param, q_grad=cfg.q_grad,
                   ds_ab=cfg.ds_ab, ds_q_target=cfg.ds_q_target, ds_n_target=cfg.ds_n_target,
                   noise_init=cfg.noise_init, q_init=cfg.q_init, deg_center_init=cfg.deg_center_init,
                   q_mask=cfg.q_mask, jpeg_round=cfg.jpeg_round, jpeg_grid=cfg.jpeg_grid)

    # ------------------------------------------------------------------ latents
    def generators(self) -> dict[str, nn.Module]:
        """The learned degradation modules by name (G_k, G_n, G_q), those that exist."""
        return {n: m for n, m in (("G_k", self.G_k), ("G_n", self.G_n), ("G_q", self.G_q)) if m is not None}

    def sample_latents(self, n: int, gen: Optional[torch.Generator], device) -> dict[str, torch.Tensor]:
        """z_k, z_n, z_q (empty for parameter stages) plus the bank indices of known stages, eps and the JPEG's
        dequantisation noise; drawn on `gen`'s device (no copy when it is `device`, as in training)."""
        lat, r = {}, self.resolution
        for name, g in self.generators().items():
            lat["z" + name[1:]] = drawn(torch.randn, (n, g.z_dim), generator=gen, device=device)
        if self.bank is not None:
            lat["bank"] = self.bank.draw(n, gen)
        if self.spec.noise != "off":
            lat["eps"] = drawn(torch.randn, (n, 3, r, r), generator=gen, device=device)
        if self.spec.jpeg != "off" and self.dequantize:
            lat["deq"] = drawn(torch.rand, (n, 3, r, r), generator=gen, device=device)
        if self.spec.jpeg != "off" and self.jpeg_grid == "random":
            lat["grid"] = drawn(torch.randint, JPEG_MCU, (n, 2), generator=gen, device=device)
        return lat

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor, lat: dict[str, torch.Tensor]) -> PipelineOutput:
        """y = JPEG(x * k + n, q): each stage applies the parameters its source draws (off stages pass x on)."""
        spec, n = self.spec, x.shape[0]
        out = PipelineOutput(y=x, x=x, x_blur=x, u=x)
        h = x
        if spec.blur != "off":                       # blur: x * k
            out.k = self._blur_source(lat, n, out)
            h = blur(h, out.k)
            out.stats["kernel_entropy"] = kernel_entropy(out.k.detach())
        out.x_blur = h
        if spec.noise != "off":                      # noise: + n (variance in [0, 1] units)
            nz = self._noise_source(h, lat, n, out)
            out.stats["noise_std"] = nz.detach().flatten(1).std(dim=1) / 2
            h = h + nz
        out.u = h
        if spec.jpeg != "off":                       # JPEG with the Eq. 5 bypass: m_q psi(u, q) + (1 - m_q) u
            q, m_q = self._jpeg_source(lat, n, out)
            h = self._compress(h, q.detach() if self.q_grad == "fd" else q, m_q, lat.get("deq"), lat.get("grid"))
            out.q, out.m_q = q, m_q
            out.stats["q"], out.stats["m_q"] = q.detach(), m_q.detach()
        out.y = h.clamp(-1, 1)
        return out

    # ------------------------------------------------------------------ parameter sources
    # Each stage's parameters come from its source: "known" (the setting's true simulator, a bank of draws),
    # "parameter" (one learned value, P-AmbientGAN) or "generator" (G_k / G_n / G_q of a latent). A source also
    # records its statistics and, for generators, the output the diversity-sensitive loss sees (ds_outputs).
    def _learned_input(self, mode: str, lat: dict[str, torch.Tensor], z: str, n: int):
        return lat[z] if mode == "generator" else n

    def _blur_source(self, lat: dict[str, torch.Tensor], n: int, out: PipelineOutput) -> torch.Tensor:
        """(N, K, K) kernels."""
        mode = self.spec.blur
        if mode == "known":
            return self.bank.k[lat["bank"]]
        ko = self.G_k(self._learned_input(mode, lat, "z_k", n))
        out.stats["m_k"] = ko.m_k.detach().mean(dim=(1, 2))
        if mode == "generator":
            out.ds_outputs["G_k"] = ko.k.flatten(1)
        return ko.k

    def _noise_source(self, h: torch.Tensor, lat: dict[str, torch.Tensor], n: int, out: PipelineOutput) -> torch.Tensor:
        """The noise image n in [-1, 1] units for the blurred images h."""
        mode, eps = self.spec.noise, lat["eps"]
        on_params = mode == "generator" and self.ds_n_target == "params"   # DS on G_n's own parameters
        if mode == "known" or self.noise_gen == "ab":
            # per-image Brooks-type variance a * x + b on [0, 1] values (x doubled into [-1, 1] units)
            if mode == "known":
                a, b = self.bank.shot[lat["bank"]], self.bank.read[lat["bank"]]
            else:
                a, b = self.G_n(self._learned_input(mode, lat, "z_n", n))
                out.stats["noise_a"], out.stats["noise_b"] = a.detach(), b.detach()
            ab = torch.stack([a, b], 1)
            nz = 2 * generated_noise(((h.detach() + 1) / 2).clamp(0, 1), ab, "brooks", eps=eps)
            if on_params:
                if self.ds_ab == "logvar":
                    out.ds_outputs["G_n"] = ab.log()
                elif self.ds_ab == "shot":   # sqrt(a) alone: the level of all but the darkest pixels (cpu-scale 26.5)
                    out.ds_outputs["G_n"] = ab[:, :1].sqrt()
                else:
                    out.ds_outputs["G_n"] = ab.sqrt()
        else:
            # NR-GAN's ResNet G_n: per-pixel scale map g in [-1, 1] under an NR-GAN prior
            g = self.G_n(self._learned_input(mode, lat, "z_n", n))
            nz = generated_noise(h, g, self.noise_prior, eps=eps)
            if on_params:
                out.ds_outputs["G_n"] = g.flatten(1)
        if mode == "generator" and not on_params:    # DS on the noise image, as NR-GAN's trainer does
            out.ds_outputs["G_n"] = nz.flatten(1)
        return nz

    def _jpeg_source(self, lat: dict[str, torch.Tensor], n: int, out: PipelineOutput) -> tuple[torch.Tensor, torch.Tensor]:
        """(N,) qualities q and compression masks m_q."""
        mode = self.spec.jpeg
        if mode == "known":
            i = lat["bank"]
            return self.bank.q[i], self.bank.compressed[i]
        q, m_q = self.G_q(self._learned_input(mode, lat, "z_q", n))
        if mode == "generator":
            # DS on (q, m_q), or on the mask alone (ds_q_target="mask": spread which images are compressed,
            # leave q to D; docs/research/oracle-diagnostic.md)
            out.ds_outputs["G_q"] = m_q.unsqueeze(1) if self.ds_q_target == "mask" else torch.stack([q / 100, m_q], 1)
        return q, m_q

    def psi(self, u: torch.Tensor, q: torch.Tensor, deq: Optional[torch.Tensor],
            grid: Optional[torch.Tensor] = None) -> torch.Tensor:
        """psi(u, q): the differentiable JPEG at qualities q, decoded like a file (multiples of 1/255) and mapped
        exactly like real pixels (models/pixels.py); no mask. grid: per-image block offsets (jpeg_on_grid)."""
        v = jpeg_on_grid(lambda w: diff_jpeg(w, q, rounding=self.jpeg_round), model_to_unit(u, self.dequantize), grid)
        return levels_to_model(v * 255, deq, self.dequantize)

    def _compress(self, u: torch.Tensor, q: torch.Tensor, m_q: torch.Tensor, deq: Optional[torch.Tensor],
                  grid: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Eq. 5: m_q psi(u, q) + (1 - m_q) u."""
        m = m_q.view(-1, 1, 1, 1)
        return m * self.psi(u, q, deq, grid) + (1 - m) * u

    @torch.no_grad()
    def degrade_at_quality(self, out: PipelineOutput, q: torch.Tensor, lat: dict[str, torch.Tensor]) -> torch.Tensor:
        """The degraded fake of `out` recomputed with qualities q (same u, mask and dequantisation noise), for
        finite differences of a loss in q. JPEG is the last stage, so this is the forward's JPEG stage and clamp.
        q may hold r qualities per image, (r * N,) as r stacked blocks: the images are tiled, one batch."""
        reps = q.numel() // out.u.shape[0]
        deq, grid = lat.get("deq"), lat.get("grid")
        def tile(t: torch.Tensor) -> torch.Tensor:
            return t.repeat(reps, *([1] * (t.dim() - 1)))
        return self._compress(tile(out.u), q, tile(out.m_q), None if deq is None else tile(deq),
                              None if grid is None else tile(grid)).clamp(-1, 1)

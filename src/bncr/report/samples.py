"""Degradation parameters of many images in one form, whether generated (G_k, G_n, G_q) or true.

A :class:`Degradations` holds, per image i: the blur kernel k_i (identity when not blurred), the
JPEG quality q_i with its compression weight m_q,i (a mask value in [0, 1] for generated images,
the 0/1 "compressed" flag for true ones), and the noise variance law

    var(x) = a_i x + b_i + c_i x^2        (x and the noise on [0, 1] values)

which holds Brooks-type camera noise (a = shot, b = read, c = 0), the "ab" G_n (a, b) and the NR-GAN
priors of a "map" G_n (see :func:`noise_law_of_map`). Generated and true parameters go through
the same statistics (bncr.report.recovery), so a perfect generator scores zero error.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from ..degradations.settings import Setting, get_setting, sample_params
from ..errors import UserError

STAGES = ("blur", "noise", "jpeg")
GENERATOR_OF = {"blur": "G_k", "noise": "G_n", "jpeg": "G_q"}


@dataclass
class Degradations:
    """Per-image degradation parameters of n images (see the module docstring).

    Fields are None for a stage that is absent. The flags `blurred`, `noised`, `compressed` are
    known for the ground truth only; for generated images they are estimated by rules
    (bncr.report.recovery), never stored here.
    """
    source: str                               # "generated" or a description of the truth
    n: int
    k: Optional[np.ndarray] = None            # (n, K, K) float64 kernels, sum 1
    m_k: Optional[np.ndarray] = None          # (n,) mean of the kernel mask m_k (generated, with mask)
    q: Optional[np.ndarray] = None            # (n,) JPEG quality q (truth: nan where not compressed)
    m_q: Optional[np.ndarray] = None          # (n,) compression weight m_q (truth: 0/1 flag)
    a: Optional[np.ndarray] = None            # (n,) noise variance law var(x) = a x + b + c x^2
    b: Optional[np.ndarray] = None
    c: Optional[np.ndarray] = None
    blurred: Optional[np.ndarray] = None      # (n,) bool, truth only
    noised: Optional[np.ndarray] = None       # (n,) bool, truth only
    compressed: Optional[np.ndarray] = None   # (n,) bool, truth only
    modes: dict = field(default_factory=dict)  # stage -> off | known | parameter | generator (generated)
    notes: list = field(default_factory=list)  # what could not be represented, for the report

    @property
    def has_blur(self) -> bool:
        return self.k is not None

    @property
    def has_noise(self) -> bool:
        return self.a is not None

    @property
    def has_jpeg(self) -> bool:
        return self.q is not None

    def noise_var(self, x: np.ndarray) -> np.ndarray:
        """(n, len(x)) noise variance of every image at intensities x in [0, 1]."""
        x = np.asarray(x, np.float64)[None, :]
        return self.a[:, None] * x + self.b[:, None] + self.c[:, None] * x * x


# ---------------------------------------------------------------------------------------------- generated
def noise_law_of_map(g2: np.ndarray, prior: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(a, b, c) of var(x) = a x + b + c x^2 on [0, 1] values for a "map" G_n whose squared scale
    g^2, averaged over pixels and channels, is `g2` (n,), under an NR-GAN prior.

    In [-1, 1] units the prior gives n = eps g (additive), eps g (x + 1) (multiplicative) or
    eps g sqrt((x + 1) / 2) * 2 (poisson); halved to [0, 1] units with x01 = (x + 1) / 2 this is a
    variance of g^2 / 4, g^2 x01^2 and g^2 x01. Averaging g^2 over pixels treats the scale map as
    independent of the image intensity (a population law, not a per-pixel one).
    """
    z = np.zeros_like(g2)
    if prior == "additive":
        return z, g2 / 4.0, z
    if prior == "multiplicative":
        return z, z, g2
    if prior == "poisson":
        return g2, z, z
    raise UserError(f"noise_prior {prior!r} of this run is not one of additive, multiplicative, poisson")


@torch.no_grad()
def sample_generated(pipe, n: int, seed: int = 0, batch: int = 512) -> Degradations:
    """Draw n degradations from a pipeline's learned G_k / G_n / G_q (z ~ N(0, I), CPU RNG `seed`).

    The latents are drawn in the order z_k (all n), z_q, z_n, so the result does not depend on
    `batch`. Stages that are "parameter" (P-AmbientGAN) give the same value n times; "known" and
    "off" stages are absent (nothing learned).
    """
    gens = pipe.generators()
    spec = pipe.spec
    out = Degradations("generated", n, modes={s: getattr(spec, s) for s in STAGES})
    gen = torch.Generator().manual_seed(int(seed))
    dev = next(pipe.parameters()).device

    def run(G, size):
        z = G.sample_z(n, gen, dev)
        return [G(z[i:i + size]) for i in range(0, n, size)]

    if "G_k" in gens:
        outs = run(gens["G_k"], batch)
        out.k = torch.cat([o.k for o in outs]).double().cpu().numpy()
        if getattr(gens["G_k"], "mask", True):
            out.m_k = torch.cat([o.m_k.mean(dim=(1, 2)) for o in outs]).double().cpu().numpy()
    if "G_q" in gens:
        outs = run(gens["G_q"], batch)
        out.q = torch.cat([o[0] for o in outs]).double().cpu().numpy()
        out.m_q = torch.cat([o[1] for o in outs]).double().cpu().numpy()
    if "G_n" in gens:
        G = gens["G_n"]
        ab = pipe.noise_gen == "ab"               # NoiseParamGenerator / NoiseParameter(kind="ab")
        outs = run(G, batch if ab else 32)        # a "map" G_n is a ResNet: image-sized outputs
        if ab:                                   # NoiseAB (a, b): variance a x + b on [0, 1] values
            out.a = torch.cat([o[0] for o in outs]).double().cpu().numpy()
            out.b = torch.cat([o[1] for o in outs]).double().cpu().numpy()
            out.c = np.zeros_like(out.a)
        else:                                    # scale map g in [-1, 1] under an NR-GAN prior
            g2 = torch.cat([o.double().pow(2).flatten(1).mean(1) for o in outs]).cpu().numpy()
            out.a, out.b, out.c = noise_law_of_map(g2, pipe.noise_prior)
            out.notes.append(f"G_n is a per-pixel scale map under the '{pipe.noise_prior}' prior: its noise law "
                             f"is the population law with g^2 averaged over pixels and channels")
    return out


# ---------------------------------------------------------------------------------------------- truth
def _identity(size: int) -> np.ndarray:
    k = np.zeros((size, size))
    k[size // 2, size // 2] = 1.0
    return k


def _from_records(records: Sequence[dict], kernels: Optional[np.ndarray], source: str,
                  kernel_size: int) -> Degradations:
    n = len(records)
    blurred = np.array([bool(r["blurred"]) for r in records])
    noised = np.array([bool(r["noised"]) for r in records])
    compressed = np.array([bool(r["compressed"]) for r in records])
    d = Degradations(source, n, blurred=blurred, noised=noised, compressed=compressed)
    # the truth is always complete: identity kernels where (or when the setting) nothing is blurred
    d.k = np.stack([kernels[i] if kernels is not None and blurred[i] else _identity(kernel_size)
                    for i in range(n)]).astype(np.float64)
    d.q = np.array([float(r["quality"]) if r["compressed"] else np.nan for r in records])
    d.m_q = compressed.astype(np.float64)
    d.a = np.array([float(r["shot"]) if r["noised"] else 0.0 for r in records])
    d.b = np.array([float(r["read"]) if r["noised"] else 0.0 for r in records])
    d.c = np.zeros(n)
    return d


def training_indices(count: int, limit: Optional[int]) -> np.ndarray:
    """The indices 0..count-1 of the training images, or `limit` of them evenly spaced (each image's
    degradation is an independent draw, so an evenly spaced subset is an unbiased sample)."""
    if limit is None or count <= limit:
        return np.arange(count)
    return np.unique(np.linspace(0, count - 1, limit).round().astype(int))


def true_degradations(setting: Setting, data_seed: int, indices: Sequence[int]) -> Degradations:
    """Ground truth of the training images `indices` of a setting (bncr.degradations.settings)."""
    records, kernels = [], []
    size = setting.blur.size if setting.blur else 1
    for i in indices:
        p, _ = sample_params(setting, data_seed, int(i))
        records.append(p.to_json())
        kernels.append(p.kernel if p.kernel is not None else np.zeros((size, size)))
    d = _from_records(records, np.stack(kernels) if setting.blur else None,
                      f"setting {setting.name}, data seed {data_seed}, {len(records)} training images", size)
    return d


def manifest_degradations(path: str | Path) -> tuple[Degradations, dict]:
    """Ground truth from a `bncr degrade` output (manifest.json, and kernels.npy next to it if the
    setting blurs; without it the kernels are redrawn from the manifest's setting and data seed).
    Returns (truth, the manifest without its per-image records)."""
    p = Path(path)
    if p.is_dir():
        p = p / "manifest.json"
    try:
        m = json.loads(p.read_text())
        records = m["images"]
        setting_d = m.get("setting") or {}
    except FileNotFoundError:
        raise UserError(f"--manifest {path}: no such file (a directory written by `bncr degrade` holds manifest.json)") from None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UserError(f"--manifest {p}: not a manifest written by `bncr degrade` ({type(e).__name__}: {e})") from None
    if not records:
        raise UserError(f"--manifest {p}: it lists no images")
    K = int(m.get("kernel_size") or 1)
    kernels = None
    if any(r.get("blurred") for r in records):
        kp = p.parent / "kernels.npy"
        if kp.is_file():
            kernels = np.load(kp, allow_pickle=False).astype(np.float64)
            if kernels.shape[0] != len(records):
                raise UserError(f"{kp}: {kernels.shape[0]} kernels for {len(records)} images in {p}")
            K = kernels.shape[-1]
        else:
            setting = get_setting(setting_d.get("name", "?"))
            seed = int(m.get("data_seed", 0))
            kernels = np.stack([sample_params(setting, seed, int(r["index"]))[0].kernel if r["blurred"]
                                else np.zeros((K, K)) for r in records])
    info = {k: v for k, v in m.items() if k != "images"}
    d = _from_records(records, kernels, f"manifest {p} ({len(records)} images)", K)
    return d, info

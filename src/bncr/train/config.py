"""Training options: one flat dataclass, fixed across settings as in the paper, overridable by --set."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, fields
from typing import Any, Optional, get_type_hints

from ..errors import UserError


@dataclass
class TrainConfig:
    # --- what to train
    model: str = "bncr-gan"          # name from `bncr models`
    setting: str = "N"               # paper setting letter (`bncr settings`)
    dataset: str = "shapes"          # shapes | deadleaves | cifar10 | fashion-mnist | image folder path
    data_root: Optional[str] = None  # where cifar10 / fashion-mnist files are
    resolution: Optional[int] = None  # None: the dataset's default (32; folders 128)
    count: Optional[int] = None      # number of training images (None: the whole dataset)
    skip_bad: bool = False           # image folders: skip unreadable files instead of stopping
    data_seed: int = 0               # seed of the degraded dataset (fixed per image)
    seed: int = 0                    # seed of the models, latents and batches
    oracle_clean: bool = False       # DIAGNOSIS ONLY: G_x replaced by real *clean* images
    # --- length and logging
    iters: int = 200_000             # generator updates (the paper: 200k)
    tick: int = 100                  # iterations between stats lines
    image_every: int = 1000          # iterations between image grids
    snap_every: int = 5000           # iterations between snapshots + training state
    # --- networks
    width: int = 128                 # base channels of G_x and D_y (NR-GAN: 128)
    d_width: Optional[int] = None    # base channels of D_y if different from width
    z_dim: int = 128                 # latent size of G_x (and of G_k, G_n, G_q)
    residual: float = 0.1            # scale of the residual branch in G_x and D_y blocks (NR-GAN: 0.1)
    g_upsample: str = "nearest"      # x2 upsampling in G_x's blocks: "nearest" (NR-GAN) | "bilinear"
    channels_last: bool = False      # G_x and D_y in channels-last memory format (faster convolutions on CPUs)
    kernel_size: Optional[int] = None  # K of G_k (None: covers the setting's kernels; 7 at 32, 13 at 128)
    noise_gen: str = "ab"            # G_n: "ab" per-image (a, b) of variance a*x + b, or "map" (ResNet like G_x)
    noise_prior: str = "poisson"     # prior of a "map" G_n: additive | multiplicative | poisson
    mask_init: float = 0.5           # initial m_k and m_q
    q_grad: str = "fd"               # gradient reaching q: "fd" finite differences of G_adv | "ste" through the diff. JPEG
    q_fd_step: float = 5.0           # half-step (quality units) of the "fd" estimate
    q_fd_sides: int = 1              # "fd" estimate: 1 one-sided, random sign (one extra D forward) | 2 central (two)
    q_param: str = "clamp"           # G_q's q: "clamp" 50+50l in [2, 100], gradient kept at the bounds | "sigmoid" 100*sigmoid(l)
    # --- optimisation (NR-GAN defaults)
    batch: int = 64                  # D batch (real and fake); summed over all ranks
    g_batch_mult: int = 2            # G batch = g_batch_mult * batch
    lr: float = 2e-4
    d_lr: Optional[float] = None     # learning rate of D_y if different from lr
    deg_lr: Optional[float] = None   # learning rate of G_k, G_n, G_q if different from lr
    deg_warmup: int = 0              # iterations during which G_k, G_n, G_q are not updated
    beta1: float = 0.0
    beta2: float = 0.99
    r1: float = 10.0                 # R1 weight: r1 * sum_pixels (dD/dy)^2, mean over batch
    ds: float = 0.02                 # diversity-sensitive weight on G_k, G_n, G_q
    ds_k: Optional[float] = None     # DS weight on G_k alone (None: ds); likewise ds_n, ds_q
    ds_n: Optional[float] = None
    ds_q: Optional[float] = None
    ds_q_target: str = "mask"        # DS on G_q's mask m_q alone (docs/oracle-diagnostic.md) | "both" (q, m_q)
    ds_tau: float = 0.0              # DSGAN bound on the batch's mean DS reward (0: unbounded, the paper's form)
    ds_k_tau: Optional[float] = None  # the bound for G_k alone (None: ds_tau); likewise ds_n_tau, ds_q_tau
    ds_n_tau: Optional[float] = None
    ds_q_tau: Optional[float] = 0.1  # G_q's bound: resists a collapse of the mask, demands little spread
    ds_n_target: str = "sample"      # DS on the noise image n as NR-GAN's trainer does, or on G_n's "params"
    ds_ab: str = "std"               # DS on the (a, b) noise head: "std" sqrt(a), sqrt(b) | "logvar" log a, log b
    ema: float = 0.999               # EMA decay of every generator
    ac: float = 1.0                  # weight of the adaptive consistency losses (when the model has them)
    ac_norm: str = "mean"            # ||.||^2 of Eq. 7-8: "sum" over the image's values (as written) | "mean" per value
    mu_k: float = 1.0                # scale of exp(-mu_k H(k)) (nats)
    mu_q: float = 10.0               # scale of exp(-mu_q (100 - q) / 100)
    dequantize: bool = True          # real pixels + U[0, 1/128) as in NR-GAN
    threads: Optional[int] = None    # torch CPU threads (None: torch's default)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        """A stored config; keys it lacks take the value they had when it was written (LEGACY_DEFAULTS)."""
        known = {f.name for f in fields(cls)}
        bad = sorted(set(d) - known)
        if bad:
            raise UserError(f"unknown config key(s) {', '.join(bad)}")
        return cls(**{**LEGACY_DEFAULTS, **d})

    def override(self, assignments: list[str]) -> "TrainConfig":
        """Apply `key=value` strings (values parsed by the field's type; 'none' for None)."""
        hints = get_type_hints(type(self))
        new = dataclasses.replace(self)
        for a in assignments:
            key, sep, raw = a.partition("=")
            key = key.strip().replace("-", "_")
            if not sep or key not in hints:
                names = ", ".join(f.name for f in fields(self))
                raise UserError(f"--set {a!r}: expected key=value with key one of: {names}")
            setattr(new, key, _parse(raw.strip(), hints[key], key))
        return new


# Options whose default changed: a stored config without the key was trained with these values.
# q_param / q_grad: "sigmoid" / "ste" until the fourth session; ds_n_target / ds_q_target / ds_q_tau: "params" /
# "both" / None until the fifth (docs/oracle-diagnostic.md says why each changed).
LEGACY_DEFAULTS: dict[str, Any] = {"q_param": "sigmoid", "q_grad": "ste", "q_fd_sides": 2, "ds_n_target": "params",
                                   "ds_q_target": "both", "ds_q_tau": None}

# Named option sets: name -> (what it is for, the values it sets over the dataclass defaults). Every preset
# starts from the dataclass defaults, which are the project's measured recipe at the paper's scale.
_PAPER_AS_WRITTEN = {
    "q_grad": "ste",            # Sec. 4.2: q^g reaches D through a differentiable JPEG (gradient through the codec)
    "q_param": "sigmoid",       # G_q outputs a quality in (0, 100)
    "ds_q_target": "both",      # Sec. 7.1: DS regularisation on G_q's outputs (q^g, m_q)
    "ds_q_tau": None,           #   unbounded, as DSGAN's form without a bound
    "ds_n_target": "sample",    #   and on G_n's output, the noise image (NR-GAN's trainer)
    "ac_norm": "sum",           # Eq. 7-8: the squared norm ||.||^2 of the whole image
}
# The CPU scale at which G_x converges on 2 cores (docs/research/cpu-scale.md): the embedded shapes data,
# narrow nets, a faster-learning D (residual 1, R1 1), a 5x learning rate, bilinear upsampling in G_x (nearest
# draws 8x8 blocks on JPEG's grid for the first thousands of iterations), channels-last nets, short EMA; the
# learned degradation generators are held at their initialisation for the first third and then learn 10x slower
# than G_x and D (without that G_x absorbs the blur and G_k fades to the identity; no effect on GAN/AmbientGAN).
_LAPTOP = {"dataset": "shapes", "width": 16, "d_width": 16, "batch": 16, "count": 5000, "iters": 3000,
           "lr": 1e-3, "g_upsample": "bilinear", "channels_last": True, "deg_warmup": 1000, "deg_lr": 1e-4,
           "ema": 0.99, "residual": 1.0, "r1": 1.0, "tick": 50, "image_every": 500, "snap_every": 500}

PRESETS: dict[str, tuple[str, dict[str, Any]]] = {
    "default": ("the project's recipe at the paper's scale: NR-GAN's nets and optimiser, with the measured "
                "departures of docs/oracle-diagnostic.md (finite-difference q-gradient, clamped q, bounded DS on "
                "m_q, per-value AC)", {}),
    "paper": ("the paper's method as written (straight-through q-gradient, sigmoid q, DS on the generators' "
              "outputs, AC as the squared norm of Eq. 7-8), NR-GAN's nets and optimiser", dict(_PAPER_AS_WRITTEN)),
    "laptop": ("the CPU scale where G_x converges on 2 cores in about 10 minutes: shapes data, width 16, "
               "batch 16, 4,000 iterations (docs/research/cpu-scale.md); never the paper's experiment", dict(_LAPTOP)),
    "cpu": ("narrow nets and short runs on dead leaves, the earlier CPU recipe (docs/cpu-recipe.md)",
            {"dataset": "deadleaves", "width": 16, "d_width": 16, "batch": 16, "count": 5000, "iters": 2400,
             "ema": 0.99, "residual": 1.0, "r1": 1.0, "tick": 50, "image_every": 500, "snap_every": 500}),
}


def preset(name: str) -> TrainConfig:
    if name not in PRESETS:
        raise UserError(f"unknown --preset {name!r}: choose one of {', '.join(PRESETS)} (`bncr presets` lists them)")
    return TrainConfig(**PRESETS[name][1])


def preset_differences(names: Optional[list[str]] = None) -> str:
    """A text table of the options whose value differs between the presets `names` (default: all)."""
    names = list(names or PRESETS)
    cfgs = {n: preset(n).to_dict() for n in names}
    keys = [k for k in cfgs[names[0]] if len({json.dumps(c[k]) for c in cfgs.values()}) > 1]
    w = max([len(k) for k in keys] + [6])
    cw = [max(len(n), *(len(json.dumps(cfgs[n][k])) for k in keys)) for n in names]
    lines = [f"{'option':<{w}}  " + "  ".join(f"{n:<{c}}" for n, c in zip(names, cw))]
    for k in keys:
        lines.append(f"{k:<{w}}  " + "  ".join(f"{json.dumps(cfgs[n][k]):<{c}}" for n, c in zip(names, cw)))
    return "\n".join(line.rstrip() for line in lines)


def _parse(raw: str, typ: Any, key: str) -> Any:
    s = str(typ)
    if raw.lower() == "none" and "Optional" in s:
        return None
    try:
        if "bool" in s:
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if "int" in s:
            return int(raw)
        if "float" in s:
            return float(raw)
        return raw
    except ValueError:
        raise UserError(f"--set {key}={raw}: not a valid {s.replace('typing.', '')}") from None

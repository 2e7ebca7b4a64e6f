"""Training options: one flat dataclass, fixed across settings as in the paper, overridable by --set."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, fields
from typing import Any, Optional, get_type_hints

from ..errors import UserError


@dataclass
class TrainConfig:
    """Every training option and its default, grouped by concern (GROUPS); the one place defaults live.

    Networks and the pipeline take their defaults from here (`default`); a run stores this complete in its
    config.json and checkpoints. The defaults are the project's measured recipe at the paper's scale (preset
    `default`); PRESETS lists the named departures from it.
    """
    # --- data: what the model learns from
    model: str = "bncr-gan"          # name from `bncr models`
    setting: str = "N"               # paper setting letter (`bncr settings`)
    dataset: str = "shapes"          # shapes | deadleaves | cifar10 | fashion-mnist | image folder path
    data_root: Optional[str] = None  # where cifar10 / fashion-mnist files are
    resolution: Optional[int] = None  # None: the dataset's default (32; folders 128)
    count: Optional[int] = None      # number of training images (None: the whole dataset)
    skip_bad: bool = False           # image folders: skip unreadable files instead of stopping
    data_seed: int = 0               # seed of the degraded dataset (fixed per image)
    dequantize: bool = True          # real pixels + U[0, 1/128) as in NR-GAN
    oracle_clean: bool = False       # DIAGNOSIS ONLY: G_x replaced by real *clean* images
    oracle_blur: float = 0.0         # DIAGNOSIS ONLY: those images softened by a Gaussian of this sigma (px), a
                                     # stand-in for a G_x less sharp than the data (cpu-scale.md section 25)
    # --- networks: G_x and D_y (NR-GAN's ResNets)
    width: int = 128                 # base channels of G_x and D_y (NR-GAN: 128)
    d_width: Optional[int] = None    # base channels of D_y if different from width
    z_dim: int = 128                 # latent size of G_x (and of G_k, G_n, G_q)
    residual: float = 0.1            # scale of the residual branch in G_x and D_y blocks (NR-GAN: 0.1)
    g_upsample: str = "nearest"      # x2 upsampling in G_x's blocks: "nearest" (NR-GAN) | "bilinear"
    g_pad: str = "zeros"             # padding of G_x's 3x3 convolutions: "zeros" (NR-GAN) | "reflect" (no frame)
    channels_last: bool = False      # G_x and D_y in channels-last memory format (faster convolutions on CPUs)
    # --- degradation generators: G_k, G_n, G_q and how q is parametrised and reached by gradients
    kernel_size: Optional[int] = None  # K of G_k (None: covers the setting's kernels; 7 at 32, 13 at 128)
    noise_gen: str = "ab"            # G_n: "ab" per-image (a, b) of variance a*x + b, or "map" (ResNet like G_x)
    noise_prior: str = "poisson"     # prior of a "map" G_n: additive | multiplicative | poisson
    mask_init: float = 0.5           # initial m_k and m_q
    noise_init: Optional[float] = None  # initial shot variance a of the "ab" G_n (b = a / 10; None: 1e-4, near clean)
    q_init: Optional[float] = None   # initial quality of G_q (None: the head's zero bias, q near 50)
    deg_center_init: bool = False    # G_k / G_n / G_q outputs start at their init values on average over z (no seed offset)
    q_grad: str = "fd"               # gradient reaching q: "fd" finite differences of G_adv | "ste" through the diff. JPEG
    q_fd_step: float = 5.0           # half-step (quality units) of the "fd" estimate
    q_fd_sides: int = 1              # "fd" estimate: 1 one-sided, random sign (one extra D forward) | 2 central (two)
    q_param: str = "clamp"           # G_q's q: "clamp" 50+50l in [2, 100], gradient kept at the bounds | "sigmoid" 100*sigmoid(l)
    jpeg_round: str = "ste"          # the diff. JPEG's x-gradient: "ste" straight-through | "ste0" none through zero coefficients
    jpeg_grid: str = "fixed"         # the fakes' JPEG blocks: "fixed" at the corner as in a file | "random" per-image
                                     # offset in [0, 16) (needs d_shift >= 16, else D tells fakes by their grid)
    q_mask: str = "soft"             # G_q's m_q: "soft" in [0, 1] (Eq. 5) | "hard" 0/1 forward, straight-through gradient
    # --- losses: R1, diversity-sensitive (DS) and adaptive consistency (AC) terms
    r1: float = 10.0                 # R1 weight: r1 * sum_pixels (dD/dy)^2, mean over batch
    r1_every: int = 1                # R1 on every r1_every-th D step, weighted r1 * r1_every (StyleGAN2's lazy R1)
    ds: float = 0.02                 # diversity-sensitive weight on G_k, G_n, G_q
    ds_k: Optional[float] = None     # DS weight on G_k alone (None: ds); likewise ds_n, ds_q
    ds_n: Optional[float] = None
    ds_q: Optional[float] = None
    ds_q_target: str = "mask"        # DS on G_q's mask m_q alone (docs/research/oracle-diagnostic.md) | "both" (q, m_q)
    ds_tau: float = 0.0              # DSGAN bound on the batch's mean DS reward (0: unbounded, the paper's form)
    ds_k_tau: Optional[float] = None  # the bound for G_k alone (None: ds_tau); likewise ds_n_tau, ds_q_tau
    ds_n_tau: Optional[float] = None
    ds_q_tau: Optional[float] = 0.1  # G_q's bound: resists a collapse of the mask, demands little spread
    ds_n_target: str = "sample"      # DS on the noise image n as NR-GAN's trainer does, or on G_n's "params"
    ds_ab: str = "std"               # DS on the (a, b) noise head: "std" sqrt(a), sqrt(b) | "logvar" log a, log b |
                                     # "shot" sqrt(a) alone
    ac: float = 1.0                  # weight of the adaptive consistency losses (when the model has them)
    ac_comp: Optional[float] = None  # weight of the compression term alone (None: ac); ac then weighs the blur term
    ac_comp_on: str = "x"            # Eq. 8's images: "x" as written, G_x(z) vs psi(G_x(z), q), gradient to G_x only |
                                     # "u" the JPEG stage's input x*k+n vs its masked output (gradient also to G_k, G_n) |
                                     # "u_x" the same images, the gradient to G_x alone (k and n held)
    ac_norm: str = "mean"            # ||.||^2 of Eq. 7-8: "sum" over the image's values (as written) | "mean" per value
    mu_k: float = 1.0                # scale of exp(-mu_k H(k)) (nats)
    mu_q: float = 10.0               # scale of exp(-mu_q (100 - q) / 100)
    d_shift: int = 0                 # D sees real and fake circularly shifted by one random (dy, dx) < d_shift per phase
                                     # (16: blind to JPEG's 4:2:0 grid, 8: to its luma blocks only; not in the paper; 0: off)
    tv: float = 0.0                  # weight of a total-variation prior on G_x's output (not in the paper; 0: off)
    # --- optimisation (NR-GAN defaults)
    iters: int = 200_000             # generator updates (the paper: 200k)
    batch: int = 64                  # D batch (real and fake); summed over all ranks
    g_batch_mult: int = 2            # G batch = g_batch_mult * batch
    lr: float = 2e-4
    d_lr: Optional[float] = None     # learning rate of D_y if different from lr
    deg_lr: Optional[float] = None   # learning rate of G_k, G_n, G_q if different from lr
    deg_warmup: int = 0              # iterations during which G_k, G_n, G_q are not updated
    deg_hold: str = "knq"            # which of them the warm-up holds: letters k (G_k), n (G_n), q (G_q)
    beta1: float = 0.0
    beta2: float = 0.99
    ema: float = 0.999               # EMA decay of every generator
    seed: int = 0                    # seed of the models, latents and batches
    # --- logging and machine
    tick: int = 100                  # iterations between stats lines
    image_every: int = 1000          # iterations between image grids
    snap_every: int = 5000           # iterations between snapshots + training state
    threads: Optional[int] = None    # torch CPU threads (None: torch's default)
    cuda_graph: str = "auto"         # whole step as one CUDA graph: "auto" (CUDA, when supported) | "true" | "false"
    compile: bool = False            # torch.compile G_x and the pipeline (CUDA only; convolutions then in full FP32)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        """A stored config. Configs are stored complete; one written before that (a key missing) is upgraded
        with the values its missing keys had then (train/upgrade.py, the one upgrade path)."""
        from .upgrade import upgrade
        cfg = cls(**upgrade(d, [f.name for f in fields(cls)]))
        cfg.validate()
        return cfg

    def validate(self) -> "TrainConfig":
        """Check every option's value in one place (UserError naming the option); returns self."""
        for key, allowed in CHOICES.items():
            if getattr(self, key) not in allowed:
                raise UserError(f"option {key}={getattr(self, key)!r} is not one of: {', '.join(map(str, allowed))}")
        for key in ("iters", "tick", "image_every", "snap_every", "width", "z_dim", "batch", "g_batch_mult", "r1_every"):
            if getattr(self, key) < 1:
                raise UserError(f"option {key} must be >= 1, got {getattr(self, key)}")
        for key in ("lr", "d_lr", "deg_lr", "q_fd_step"):
            if getattr(self, key) is not None and not getattr(self, key) > 0:
                raise UserError(f"option {key} must be > 0, got {getattr(self, key)}")
        for key in ("r1", "ds", "ds_k", "ds_n", "ds_q", "ds_tau", "ds_k_tau", "ds_n_tau", "ds_q_tau", "ac", "ac_comp", "deg_warmup",
                    "mu_k", "mu_q", "d_shift", "tv"):
            if (getattr(self, key) or 0) < 0:
                raise UserError(f"option {key} must be >= 0, got {getattr(self, key)}")
        if not 0 <= self.ema < 1:
            raise UserError(f"option ema must be in [0, 1), got {self.ema}")
        if self.noise_init is not None and not 0 < self.noise_init <= 1:
            raise UserError(f"option noise_init must be a variance in (0, 1], got {self.noise_init}")
        if self.q_init is not None and not 2 <= self.q_init <= 100:
            raise UserError(f"option q_init must be a JPEG quality in [2, 100], got {self.q_init}")
        if not set(self.deg_hold) <= set("knq"):
            raise UserError(f"option deg_hold must be letters of 'knq' (k: G_k, n: G_n, q: G_q), got {self.deg_hold!r}")
        if not 0 < self.mask_init < 1:
            raise UserError(f"option mask_init must be in (0, 1), got {self.mask_init}")
        if self.oracle_blur < 0 or (self.oracle_blur > 0 and not self.oracle_clean):
            raise UserError(f"option oracle_blur={self.oracle_blur} needs oracle_clean=true and a sigma >= 0 (px)")
        if self.jpeg_grid == "random" and self.d_shift < 16:
            raise UserError(f"option jpeg_grid=random needs d_shift >= 16 (got {self.d_shift}): else D tells the fakes "
                            "from the real images by where their JPEG grid sits")
        return self

    def override(self, assignments: list[str]) -> "TrainConfig":
        """Apply `key=value` strings (values parsed by the field's type; 'none' for None)."""
        return override_fields(self, assignments)


def override_fields(cfg: Any, assignments: list[str]) -> Any:
    """A copy of the options dataclass `cfg` with `key=value` strings applied (each value parsed by its field's
    type; 'none' for None); one UserError naming the assignment at fault. Shared by every options dataclass."""
    hints = get_type_hints(type(cfg))
    new = dataclasses.replace(cfg)
    for a in assignments:
        key, sep, raw = a.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in hints:
            names = ", ".join(f.name for f in fields(cfg))
            raise UserError(f"--set {a!r}: expected key=value with key one of: {names}")
        setattr(new, key, _parse(raw.strip(), hints[key], key))
    return new


# The allowed values of the options that name a choice (validate() checks them).
CHOICES: dict[str, tuple] = {
    "g_upsample": ("nearest", "bilinear"), "g_pad": ("zeros", "reflect"), "noise_gen": ("ab", "map"),
    "noise_prior": ("additive", "multiplicative", "poisson"), "q_grad": ("fd", "ste"), "q_fd_sides": (1, 2),
    "q_param": ("clamp", "sigmoid"), "q_mask": ("soft", "hard"), "jpeg_round": ("ste", "ste0"), "jpeg_grid": ("fixed", "random"), "ds_q_target": ("mask", "both"), "ds_n_target": ("sample", "params"),
    "ds_ab": ("std", "logvar", "shot"), "ac_norm": ("mean", "sum"), "ac_comp_on": ("u", "x", "u_x"), "cuda_graph": ("auto", "true", "false"),
}


# The groups of options (TrainConfig's sections), for listings.
GROUPS: dict[str, tuple[str, ...]] = {
    "data": ("model", "setting", "dataset", "data_root", "resolution", "count", "skip_bad", "data_seed", "dequantize",
             "oracle_clean", "oracle_blur"),
    "networks": ("width", "d_width", "z_dim", "residual", "g_upsample", "g_pad", "channels_last"),
    "degradation generators": ("kernel_size", "noise_gen", "noise_prior", "mask_init", "noise_init", "q_init", "deg_center_init", "q_grad", "q_fd_step",
                               "q_fd_sides", "q_param", "q_mask", "jpeg_round", "jpeg_grid"),
    "losses": ("r1", "r1_every", "ds", "ds_k", "ds_n", "ds_q", "ds_q_target", "ds_tau", "ds_k_tau", "ds_n_tau", "ds_q_tau",
               "ds_n_target", "ds_ab", "ac", "ac_comp", "ac_comp_on", "ac_norm", "mu_k", "mu_q", "d_shift", "tv"),
    "optimisation": ("iters", "batch", "g_batch_mult", "lr", "d_lr", "deg_lr", "deg_warmup", "deg_hold", "beta1", "beta2", "ema",
                     "seed"),
    "logging and machine": ("tick", "image_every", "snap_every", "threads", "cuda_graph", "compile"),
}


def default(key: str) -> Any:
    """The default of option `key`: constructors of the networks and the pipeline take theirs from here, so a
    library user who builds one directly gets the same method as `bncr train`."""
    return _DEFAULTS[key]


_DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(TrainConfig)}

# Named option sets: name -> (what it is for, the values it sets over the dataclass defaults).
# `paper` pins every option of the method explicitly (networks, degradation generators, losses, optimisation),
# each with where it comes from, so that no later change of a default can move it (stylegan2-ada's cfg_specs).
PAPER: dict[str, Any] = {
    # networks: NR-GAN's ResNets (Sec. 7.1 "we implemented GANs following the NR-GAN study")
    "width": 128, "d_width": None, "z_dim": 128,      # NR-GAN's CIFAR-10 ResNet: 128 channels, z of 128
    "residual": 0.1,                                  # NR-GAN's residual scale in G and D blocks
    "g_upsample": "nearest",                          # NR-GAN's upsampling in G's blocks
    "g_pad": "zeros",                                 # NR-GAN's convolutions pad with zeros
    "channels_last": False,                           # memory layout only, no effect on the result
    # degradation generators (Sec. 4-6): three-layer MLPs for G_k and G_q, G_n per image (Sec. 7.1)
    "kernel_size": None, "noise_gen": "ab", "noise_prior": "poisson", "mask_init": 0.5,
    "noise_init": None, "q_init": None,               # G_n near clean, G_q's zero output bias
    "deg_center_init": False,                         # the MLPs' default (Xavier) init, offsets included
    "q_grad": "ste",          # Sec. 5: q^g reaches D through a differentiable JPEG (gradient through the codec)
    "q_fd_step": 5.0, "q_fd_sides": 1,                #   (unused with "ste")
    "q_param": "sigmoid",     # G_q outputs a quality in (0, 100)
    "q_mask": "soft",         # Eq. 5: m_q a scalar in [0, 1]
    "jpeg_round": "ste",      # Sec. 5's differentiable JPEG: the project's, straight-through rounding
    "jpeg_grid": "fixed",     #   its blocks where a file's are
    # losses: non-saturating GAN + R1 (Sec. 7.1, NR-GAN's weight 10), DS on G_k, G_n, G_q (Sec. 7.1, NR-GAN's 0.02)
    "r1": 10.0, "r1_every": 1, "ds": 0.02, "ds_k": None, "ds_n": None, "ds_q": None,
    "ds_q_target": "both",    # DS on G_q's outputs (q^g, m_q)
    "ds_tau": 0.0, "ds_k_tau": None, "ds_n_tau": None,
    "ds_q_tau": None,         #   unbounded, DSGAN's form without a bound
    "ds_n_target": "sample",  #   and on G_n's output, the noise image (NR-GAN's trainer)
    "ds_ab": "std",
    "ac": 1.0,                # Eq. 6: L_AC added with weight 1
    "ac_comp": None,          #   both terms (blur and compression) with that weight
    "ac_norm": "sum",         # Eq. 7-8: the squared norm ||.||^2 of the whole image
    "ac_comp_on": "x",        # Eq. 8: G_x(z) against psi(G_x(z), q), the gradient to G_x alone
    "mu_k": 1.0, "mu_q": 10.0,  # scales of Eq. 7-8: the paper gives no values; the project's choice
    "d_shift": 0,             # D sees the images as they are
    "tv": 0.0,                # no prior on G_x's output
    # optimisation: NR-GAN's Adam and schedule, 200k iterations (Sec. 7.1)
    "iters": 200_000, "batch": 64, "g_batch_mult": 2, "lr": 2e-4, "d_lr": None, "deg_lr": None, "deg_warmup": 0,
    "deg_hold": "knq", "beta1": 0.0, "beta2": 0.99, "ema": 0.999,
}
# Where the project's measured recipe (preset `default`, the dataclass defaults) departs from `paper`, and why
# (docs/research/oracle-diagnostic.md): the diff JPEG's q-gradient points the wrong way, so q gets finite differences of
# the adversarial loss through the real codec; q clamped instead of a sigmoid that saturates; DS on the mask alone
# with a bound (resists a collapse of m_q without demanding a spread of q); AC per value, not summed over 3,072.
DEFAULT_DEPARTURES: dict[str, Any] = {"q_grad": "fd", "q_param": "clamp", "ds_q_target": "mask", "ds_q_tau": 0.1,
                                      "ac_norm": "mean"}

# The CPU scale at which G_x converges on 2 cores (docs/research/cpu-scale.md): the embedded shapes data,
# narrow nets, a faster-learning D (residual 1, R1 1), a 5x learning rate, bilinear upsampling in G_x (nearest
# draws 8x8 blocks on JPEG's grid for the first thousands of iterations), channels-last nets, short EMA; the
# learned degradation generators are held at their initialisation for the first 1,000 iterations and then learn
# 10x slower than G_x and D (without that G_x absorbs the blur and G_k fades to the identity; no effect on
# GAN/AmbientGAN). 6,000 iterations: GAN's KID on clean shapes flattens between 4,000 and 6,000, and at 3,000 the
# seed spread hid every difference between the models (AmbientGAN's margin over GAN appears at 6,000). D is twice
# as wide as G_x (32): with a width-16 D BNCR-GAN did not beat GAN (KID medians of 3 seeds 200 vs 197); with 32 it
# does (153 vs 180) and AmbientGAN's margin over GAN grows (111 vs 180), cpu-scale.md section 9. G_x's convolutions
# pad by reflection (g_pad="reflect"): with NR-GAN's zero padding every pipeline model's G_x drew a line along the
# image's border (section 24). With reflection both terms of the adaptive consistency loss weigh the paper's 1
# (ac=1, ac_comp=1): BNCR-GAN closed 80 % of the GAN-AmbientGAN gap (KID medians of 3 seeds 123.9 vs GAN 178.8,
# AmbientGAN 109.9) with the kernel and q recovered and the learned noise about 20 % weak (section 25); the blur
# weight 3 that zero padding needed (ac=3: 141.0 vs 180.0 / 111.2, sections 13-14) leaves the kernel 26-49 % too
# narrow with reflection (24.5). Only bncr-gan has AC losses. Its compression term compares the JPEG stage's input
# x * k + n with its output (ac_comp_on="u"), the form these weights were calibrated with; Eq. 8 as written ("x",
# G_x against its own JPEG) gave the same KID but q too mild in 2 of 3 seeds (section 23). The diversity-sensitive
# term on G_n acts on its per-image shot variance (ds_n_target="params", ds_ab="shot", ds_n=0.1) rather than on the
# noise image: on the image it left G_n's levels too narrow, its noisiest quarter drawn for 4-12 % of images and the
# population noise curve 23-38 % weak (section 26); at 0.1 every recovery target passed in each of 3 seeds (noise curve
# 19-22 %, kernel within 5 %); 0.2 gave a better KID but a kernel 12-17 % wide (section 27).
_LAPTOP = {"dataset": "shapes", "width": 16, "d_width": 32, "batch": 16, "count": 5000, "iters": 6000,
           "lr": 1e-3, "g_upsample": "bilinear", "channels_last": True, "deg_warmup": 1000, "deg_lr": 1e-4,
           "g_pad": "reflect", "ac": 1.0, "ac_comp": 1.0, "ac_comp_on": "u",
           "ds_n_target": "params", "ds_ab": "shot", "ds_n": 0.1,
           "ema": 0.99, "residual": 1.0, "r1": 1.0, "tick": 50, "image_every": 500, "snap_every": 500}

PRESETS: dict[str, tuple[str, dict[str, Any]]] = {
    "default": ("the project's recipe at the paper's scale: NR-GAN's nets and optimiser, with the measured "
                "departures of docs/research/oracle-diagnostic.md (finite-difference q-gradient, clamped q, bounded DS on "
                "m_q, per-value AC)", {}),
    "paper": ("the paper's method as written (straight-through q-gradient, sigmoid q, DS on the generators' "
              "outputs, AC as the squared norm of Eq. 7-8), NR-GAN's nets and optimiser, every value pinned",
              dict(PAPER)),
    "laptop": ("the CPU scale where G_x converges on 2 cores: shapes data, G_x width 16, D width 32, batch 16, "
               "6,000 iterations (about 25-35 minutes per run at one thread; docs/research/cpu-scale.md); never the "
               "paper's experiment",
               dict(_LAPTOP)),
    "cpu": ("narrow nets and short runs on dead leaves, the earlier CPU recipe (docs/research/cpu-recipe.md)",
            {"dataset": "deadleaves", "width": 16, "d_width": 16, "batch": 16, "count": 5000, "iters": 2400,
             "ema": 0.99, "residual": 1.0, "r1": 1.0, "tick": 50, "image_every": 500, "snap_every": 500}),
}


def preset(name: str) -> TrainConfig:
    if name not in PRESETS:
        raise UserError(f"unknown --preset {name!r}: choose one of {', '.join(PRESETS)} (`bncr presets` lists them)")
    return TrainConfig(**PRESETS[name][1]).validate()


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

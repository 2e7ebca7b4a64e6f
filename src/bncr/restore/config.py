"""Options of a restoration run (`bncr restore train`): one flat dataclass, like TrainConfig for BNCR-GAN.

Restoration is a different training (another network, other losses and optimiser), so its options live here
rather than in :class:`bncr.train.config.TrainConfig`; the mechanism is the same (defaults in one place, one
``validate``, groups, presets, ``--set key=value``), and a run stores them complete in its config.json.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, fields
from typing import Any, Optional

from ..errors import UserError
from ..train.config import override_fields

METHODS = ("unir", "cyclegan")


@dataclass
class RestoreConfig:
    """Every option of a restoration run and its default (GROUPS lists them by concern)."""
    # --- method and measurement model F
    method: str = "unir"             # "unir" (UNIR, F a degradation model) | "cyclegan" (set-level labels)
    run: Optional[str] = None        # BNCR-GAN run whose frozen G_k, G_n, G_q are F (BNCR-GAN+UNIR) and whose data is used
    known_setting: Optional[str] = None  # F = this setting's true simulator (UNIR-dagger) instead of a run's generators
    bank_size: int = 4096            # UNIR-dagger: draws of the true simulator F samples from (AmbientGAN's bank)
    # --- data: the degraded images restored (resolved from the run when not given)
    dataset: Optional[str] = None    # shapes | deadleaves | cifar10 | fashion-mnist | image folder (None: the run's, else shapes)
    data_root: Optional[str] = None
    resolution: Optional[int] = None
    count: Optional[int] = None      # the first N training images (None: the run's, else the whole dataset)
    setting: Optional[str] = None    # degradation of the training images (None: the run's, else known_setting)
    data_seed: Optional[int] = None  # (None: the run's, else 0)
    skip_bad: bool = False
    dequantize: bool = True          # real pixels + U[0, 1/128) as in training (a run's F keeps the run's value)
    # --- networks: restorer G (full resolution, residual) and discriminator D (NR-GAN's ResNet D)
    width: int = 64                  # channels of G's residual blocks
    blocks: int = 6                  # residual blocks of G (all at full resolution)
    attention: bool = True           # a self-attention layer after the middle block of G (UNIR's G has one)
    d_width: int = 64                # base channels of D
    residual: float = 1.0            # scale of the residual branch in G's and D's blocks
    # --- losses
    lambda_back: float = 2.0         # UNIR: weight of ||F(G(y^), theta') - sg(y^)||^2 (UNIR's code: 2)
    cycle: float = 10.0              # CycleGAN: weight of the L1 cycle losses
    identity: float = 0.5            # CycleGAN: identity loss weight, relative to `cycle` (CycleGAN's 0.5)
    pool: int = 50                   # CycleGAN: history of generated images shown to D (0: none)
    # --- optimisation (None: the method's default, UNIR 1e-4 / 4e-4, betas (0, 0.999); CycleGAN 2e-4, (0.5, 0.999))
    iters: int = 20_000
    batch: int = 16
    lr: Optional[float] = None       # learning rate of G
    d_lr: Optional[float] = None     # learning rate of D
    beta1: Optional[float] = None
    beta2: float = 0.999
    ema: float = 0.999               # EMA decay of the restorer (the snapshot holds the EMA weights)
    seed: int = 0
    # --- logging and machine
    tick: int = 100
    image_every: int = 1000
    snap_every: int = 5000
    threads: Optional[int] = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RestoreConfig":
        unknown = sorted(set(d) - {f.name for f in fields(cls)})
        if unknown:
            raise UserError(f"unknown restoration option(s) {', '.join(unknown)} (written by a newer bncr?)")
        return cls(**d).validate()

    def override(self, assignments: list[str]) -> "RestoreConfig":
        return override_fields(self, assignments)

    def method_defaults(self) -> tuple[float, float, float]:
        """(lr, d_lr, beta1) with the method's defaults filled in."""
        lr, d_lr, b1 = METHOD_DEFAULTS[self.method]
        return (self.lr if self.lr is not None else lr, self.d_lr if self.d_lr is not None else d_lr,
                self.beta1 if self.beta1 is not None else b1)

    def validate(self) -> "RestoreConfig":
        """Check every option's value (UserError naming the option); returns self."""
        for key, allowed in CHOICES.items():
            if getattr(self, key) not in allowed:
                raise UserError(f"option {key}={getattr(self, key)!r} is not one of: {', '.join(map(str, allowed))}")
        for key in ("iters", "batch", "width", "d_width", "blocks", "bank_size", "tick", "image_every", "snap_every"):
            if getattr(self, key) < 1:
                raise UserError(f"option {key} must be >= 1, got {getattr(self, key)}")
        for key in ("lr", "d_lr"):
            if getattr(self, key) is not None and not getattr(self, key) > 0:
                raise UserError(f"option {key} must be > 0, got {getattr(self, key)}")
        for key in ("lambda_back", "cycle", "identity", "pool", "residual"):
            if getattr(self, key) < 0:
                raise UserError(f"option {key} must be >= 0, got {getattr(self, key)}")
        for key in ("ema", "beta2"):
            if not 0 <= getattr(self, key) < 1:
                raise UserError(f"option {key} must be in [0, 1), got {getattr(self, key)}")
        if self.beta1 is not None and not 0 <= self.beta1 < 1:
            raise UserError(f"option beta1 must be in [0, 1), got {self.beta1}")
        if self.method == "unir" and self.run is None and self.known_setting is None:
            raise UserError("UNIR needs a measurement model: --run BNCR_RUN (its learned degradation) or "
                            "--known-setting X (the setting's true simulator)")
        if self.method == "cyclegan" and self.known_setting is not None:
            raise UserError("--known-setting is for UNIR; CycleGAN learns from set-level labels "
                            "(give the data's degradation with --setting)")
        return self


CHOICES: dict[str, tuple] = {"method": METHODS}

# method -> (lr of G, lr of D, beta1): UNIR's code (Adam 1e-4 / 4e-4, betas (0, 0.999)); CycleGAN's defaults
METHOD_DEFAULTS: dict[str, tuple[float, float, float]] = {"unir": (1e-4, 4e-4, 0.0), "cyclegan": (2e-4, 2e-4, 0.5)}

GROUPS: dict[str, tuple[str, ...]] = {
    "method": ("method", "run", "known_setting", "bank_size"),
    "data": ("dataset", "data_root", "resolution", "count", "setting", "data_seed", "skip_bad", "dequantize"),
    "networks": ("width", "blocks", "attention", "d_width", "residual"),
    "losses": ("lambda_back", "cycle", "identity", "pool"),
    "optimisation": ("iters", "batch", "lr", "d_lr", "beta1", "beta2", "ema", "seed"),
    "logging and machine": ("tick", "image_every", "snap_every", "threads"),
}

# Named option sets of `bncr restore train --preset`.
PRESETS: dict[str, tuple[str, dict[str, Any]]] = {
    "default": ("UNIR's recipe on a GPU: G of 6 residual blocks of 64 channels with self-attention, 20k iterations",
                {}),
    # D width 32 since 2026-12-04 (16 before): with it and 3,000 iterations UNIR-dagger beat its degraded inputs on
    # LPIPS, KID and FID, where width 16 at 2,000 iterations improved LPIPS only (docs/research/restoration-cpu.md)
    "laptop": ("a CPU scale (2 cores): G of 3 blocks of 16 channels with self-attention, D width 32, 3,000 "
               "iterations (the data are the run's, or give --count: e.g. 5000 as BNCR-GAN's laptop preset)",
               {"width": 16, "blocks": 3, "d_width": 32, "iters": 3000, "ema": 0.99, "tick": 50, "image_every": 500,
                "snap_every": 1000}),
}


def restore_preset(name: str) -> RestoreConfig:
    if name not in PRESETS:
        raise UserError(f"unknown --preset {name!r}: choose one of {', '.join(PRESETS)}")
    return RestoreConfig(**PRESETS[name][1])


def default(key: str) -> Any:
    """The default of restoration option `key` (network constructors take theirs from here)."""
    return _DEFAULTS[key]


_DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(RestoreConfig)}

"""The one upgrade path of stored configs (config.json and the "config" of checkpoints).

Since version 0.1.0 a run stores its config *complete*: every option with its resolved value (plus the package
version and git commit in config.json), so loading it needs no default of today. Configs written earlier lack
the options added after them; a missing option means the run trained with that option's behaviour *before it
existed*, listed here once and frozen (it must never follow later changes of the defaults):

    option           value before it existed   added with / why the default later changed
    residual         0.1                       NR-GAN's residual scale, made an option
    d_lr, deg_lr     None (= lr)               per-network learning rates
    deg_warmup       0                         the degradation-generator warm-up (CPU scale)
    q_param          "sigmoid"                 later "clamp" (docs/research: oracle diagnostic)
    q_grad           "ste"                     later "fd", the finite-difference q-gradient
    q_fd_step        5.0
    q_fd_sides       2                         later 1 (one extra D forward)
    ds_tau, ds_ab    0.0, "std"
    ac_norm          "mean"
    ds_k/n/q         None (= ds)
    ds_q_target      "both"                    later "mask"
    ds_n_target      "params"                  later "sample" (NR-GAN's trainer)
    ds_k/n/q_tau     None (= ds_tau)           ds_q_tau later 0.1
    g_upsample       "nearest"                 "bilinear" is the CPU scale's
    channels_last    False
    skip_bad         False
    cuda_graph       "false"                   the captured training step (eager before); later "auto"
    compile          False
    noise_init, q_init  None, None             initial G_n / G_q strength (CPU scale: start strong)
    tv               0.0                       the total-variation prior on G_x (CPU scale)
    r1_every         1                         lazy R1 (an option, off in every preset)
    deg_center_init  False                     degradation generators' outputs start at their init on average
    deg_hold         "knq"                     which generators the warm-up holds (all three before)
    ac_comp          None (= ac)               a separate weight for the compression AC term
    q_mask           "soft"                    G_q's mask as Eq. 5 (the "hard" straight-through mask came later)
    ac_comp_on       "u"                       Eq. 8 on the JPEG stage's input and output ("x", as written, came later)
    jpeg_round       "ste"                     the differentiable JPEG's straight-through x-gradient ("ste0" later)
    d_shift          0                         D's input shifted at random (a grid-blind D, later)
    jpeg_grid        "fixed"                   the fakes' JPEG blocks at the corner ("random" offsets later)
    g_pad            "zeros"                   G_x's convolutions padded with zeros ("reflect" later)
    oracle_blur      0.0                       the oracle's clean images as they are (softened later, diagnosis)

A config lacking an option *not* in this table is not one this package wrote: it is refused with the option named.
"""
from __future__ import annotations

from typing import Any, Iterable

from ..errors import UserError

# Frozen: the value a config written before complete configs was trained with, for each option it may lack.
BEFORE_OPTION_EXISTED: dict[str, Any] = {
    "residual": 0.1, "d_lr": None, "deg_lr": None, "deg_warmup": 0, "q_param": "sigmoid", "q_grad": "ste",
    "q_fd_step": 5.0, "q_fd_sides": 2, "ds_tau": 0.0, "ds_ab": "std", "ac_norm": "mean",
    "ds_k": None, "ds_n": None, "ds_q": None, "ds_q_target": "both", "ds_n_target": "params",
    "ds_k_tau": None, "ds_n_tau": None, "ds_q_tau": None, "g_upsample": "nearest", "channels_last": False,
    "skip_bad": False, "cuda_graph": "false", "compile": False, "tv": 0.0, "noise_init": None,
    "q_init": None, "r1_every": 1, "deg_center_init": False, "deg_hold": "knq",
    "ac_comp": None, "q_mask": "soft", "ac_comp_on": "u", "jpeg_round": "ste", "d_shift": 0,
    "jpeg_grid": "fixed", "g_pad": "zeros", "oracle_blur": 0.0,
}


def upgrade(stored: dict[str, Any], options: Iterable[str]) -> dict[str, Any]:
    """`stored` with every option in `options`: missing ones take BEFORE_OPTION_EXISTED; unknown keys or
    missing keys outside that table raise UserError."""
    options = list(options)
    unknown = sorted(set(stored) - set(options))
    if unknown:
        raise UserError(f"unknown config key(s) {', '.join(unknown)} (written by a newer bncr?)")
    missing = [k for k in options if k not in stored]
    bad = [k for k in missing if k not in BEFORE_OPTION_EXISTED]
    if bad:
        raise UserError(f"stored config lacks option(s) {', '.join(bad)}, which every bncr config has had: "
                        f"not a bncr run config")
    return {**{k: BEFORE_OPTION_EXISTED[k] for k in missing}, **stored}

"""One source of options: defaults, validation, presets, and the upgrade path of stored configs."""
import inspect
import json

import pytest
import torch

from bncr.errors import UserError
from bncr.models.pipeline import DegradationPipeline
from bncr.models.registry import MODELS, get_model
from bncr.degradations.settings import get_setting
from bncr.nets.degradation_generators import (KernelGenerator, KernelParameter, NoiseParamGenerator,
                                              QualityGenerator, QualityParameter)
from bncr.nets.resnet import ResNetDiscriminator, ResNetGenerator
from bncr.train.config import DEFAULT_DEPARTURES, GROUPS, PAPER, PRESETS, TrainConfig, preset
from bncr.train.loop import build_nets
from bncr.train.upgrade import BEFORE_OPTION_EXISTED

# constructor argument -> the option it takes its default from
SAME_AS_OPTION = {"z_dim": "z_dim", "mask_init": "mask_init", "q_param": "q_param", "q_grad": "q_grad",
                  "noise_gen": "noise_gen", "noise_prior": "noise_prior", "noise_width": "width",
                  "kernel_size": "kernel_size", "data_seed": "data_seed", "dequantize": "dequantize",
                  "ds_ab": "ds_ab", "ds_q_target": "ds_q_target", "ds_n_target": "ds_n_target",
                  "residual_factor": "residual", "upsample": "g_upsample", "norm": "ac_norm"}


@pytest.mark.parametrize("ctor", [DegradationPipeline, KernelGenerator, KernelParameter, NoiseParamGenerator,
                                  QualityGenerator, QualityParameter, ResNetGenerator, ResNetDiscriminator])
def test_constructor_defaults_are_the_options_defaults(ctor):
    cfg = TrainConfig()
    params = inspect.signature(ctor.__init__).parameters
    checked = [a for a in params if a in SAME_AS_OPTION]
    assert checked, f"{ctor.__name__} takes no option"
    for a in checked:
        assert params[a].default == getattr(cfg, SAME_AS_OPTION[a]), f"{ctor.__name__}({a}=...)"


def test_adaptive_consistency_default_norm_is_the_options():
    from bncr.models.losses import adaptive_consistency
    assert inspect.signature(adaptive_consistency).parameters["norm"].default == TrainConfig().ac_norm


def test_groups_hold_every_option_once():
    names = [f for f in TrainConfig().to_dict()]
    assert sorted(k for keys in GROUPS.values() for k in keys) == sorted(names)


@pytest.mark.parametrize("model", list(MODELS))
def test_paper_and_default_presets_differ_exactly_where_documented(model):
    """`paper` departs from `default` exactly in DEFAULT_DEPARTURES (documented there), pins every option of the
    method, and the built pipeline carries the preset's values."""
    d, p = preset("default"), preset("paper")
    d.model = p.model = model
    diff = {k for k, v in d.to_dict().items() if p.to_dict()[k] != v}
    assert diff == set(DEFAULT_DEPARTURES)
    assert {k: d.to_dict()[k] for k in diff} == DEFAULT_DEPARTURES
    method = [k for g in ("networks", "degradation generators", "losses", "optimisation") for k in GROUPS[g]]
    assert set(method) - {"seed"} <= set(PAPER), "paper must pin every option of the method"
    for cfg in (d, p):
        cfg.width, cfg.z_dim = 8, 16
        pipe = build_nets(cfg, get_model(model), get_setting("N"), 32).pipe
        assert (pipe.q_grad, pipe.ds_q_target, pipe.ds_n_target) == (cfg.q_grad, cfg.ds_q_target, cfg.ds_n_target)
        if pipe.G_q is not None:
            assert pipe.G_q.q_param == cfg.q_param


def test_every_preset_validates_and_bad_values_name_the_option():
    for name in PRESETS:
        preset(name).validate()
    for key, value in [("q_grad", "magic"), ("ema", 1.5), ("iters", 0), ("ds_q", -1.0), ("lr", 0.0),
                       ("noise_prior", "gauss"), ("mask_init", 1.0), ("noise_init", 2.0), ("q_init", 1.0),
                       ("tv", -1.0)]:
        cfg = TrainConfig()
        setattr(cfg, key, value)
        with pytest.raises(UserError, match=key):
            cfg.validate()


def test_stored_config_without_later_options_is_upgraded_with_their_earlier_values():
    """A config written before configs were complete lacks options added later: each takes the value that
    reproduces the run as trained (train/upgrade.py), never today's default."""
    full = TrainConfig().to_dict()
    old = {k: v for k, v in full.items() if k not in BEFORE_OPTION_EXISTED}
    cfg = TrainConfig.from_dict(old)
    assert (cfg.q_param, cfg.q_grad, cfg.q_fd_sides, cfg.ds_n_target, cfg.ds_q_target, cfg.ds_q_tau) == \
        ("sigmoid", "ste", 2, "params", "both", None)
    assert (TrainConfig().q_param, TrainConfig().q_grad) == ("clamp", "fd")       # today's differ
    assert TrainConfig.from_dict(full) == TrainConfig()                           # complete: as stored
    with pytest.raises(UserError, match="lacks option.*width"):
        TrainConfig.from_dict({k: v for k, v in full.items() if k != "width"})
    with pytest.raises(UserError, match="unknown config key.*colour"):
        TrainConfig.from_dict({**full, "colour": 1})


def test_old_stored_run_loads_samples_and_inspects(tmp_path):
    """The upgrade path on a stored run: a run whose config.json and snapshot predate complete configs (the
    later options stripped, G_q built the old way) loads, samples and resumes with the old behaviour."""
    import bncr
    from bncr.api import load_pipeline
    from bncr.metrics.evaluate import run_config
    from bncr.train.loop import train
    old_opts = {k: BEFORE_OPTION_EXISTED[k] for k in BEFORE_OPTION_EXISTED}
    cfg = TrainConfig(model="cr-gan", setting="J", iters=2, width=8, z_dim=16, batch=4, count=16, tick=1,
                      image_every=2, snap_every=2, threads=1, dataset="shapes", **old_opts)
    run = train(cfg, tmp_path / "old", progress=False)
    # make it look as written before complete configs
    cj = json.loads((run / "config.json").read_text())
    cj["config"] = {k: v for k, v in cj["config"].items() if k not in BEFORE_OPTION_EXISTED}
    (run / "config.json").write_text(json.dumps(cj))
    for f in (run / "snapshot-000002.pt", run / "training-state.pt"):
        s = torch.load(f, weights_only=True)
        s["config"] = {k: v for k, v in s["config"].items() if k not in BEFORE_OPTION_EXISTED}
        torch.save(s, f)
    assert run_config(run)["config"]["q_param"] == "sigmoid"
    G = bncr.load_generator(run)
    from bncr.api import sample_images
    assert sample_images(G, 4).shape == (4, 32, 32, 3)
    _, pipe, c = load_pipeline(run)
    assert pipe.G_q.q_param == "sigmoid" and pipe.q_grad == "ste" and c["q_param"] == "sigmoid"
    resumed = TrainConfig.from_dict(cj["config"])
    resumed.iters = 3
    train(resumed, run, resume="auto", progress=False)
    assert (run / "snapshot-000003.pt").is_file()


@pytest.mark.parametrize("name", list(PRESETS))
def test_dry_run_prints_every_presets_resolved_options(name, capsys):
    from bncr.cli import main
    assert main(["train", "--preset", name, "--model", "bncr-gan", "--setting", "N", "--dry-run"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert TrainConfig.from_dict(printed) == preset(name)      # complete, and exactly the preset


def test_noise_and_quality_init_set_the_generators_starting_point():
    from bncr.nets.degradation_generators import NOISE_AB_INIT
    base = TrainConfig(width=8, z_dim=16)
    pipe = build_nets(base, get_model("bncr-gan"), get_setting("N"), 32).pipe
    z = torch.zeros(4, 16)                                 # z = 0: the output biases alone
    a0, b0 = pipe.G_n(z)
    assert a0[0].item() == pytest.approx(NOISE_AB_INIT[0], rel=1e-4)
    strong = build_nets(TrainConfig(width=8, z_dim=16, noise_init=1e-2, q_init=30.0), get_model("bncr-gan"),
                        get_setting("N"), 32).pipe
    a, b = strong.G_n(z)
    assert a[0].item() == pytest.approx(1e-2, rel=1e-4) and b[0].item() == pytest.approx(1e-3, rel=1e-4)
    assert strong.G_q(z).q[0].item() == pytest.approx(30.0, abs=1e-3)

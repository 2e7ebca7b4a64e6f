"""The CPU scale (issue: make the robust GANs visibly work): shapes data, degradation statistics, presets,
`bncr train --like / --dry-run`, `bncr compare`."""
from __future__ import annotations

import json
import sys
import time

import numpy as np
import pytest
import torch

from bncr.cli import main
from bncr.data import open_dataset
from bncr.data.shapes import render_shapes
from bncr.degradations.jpeg import jpeg_pil
from bncr.errors import UserError
from bncr.metrics import imagestats as st
from bncr.train.config import PRESETS, TrainConfig, preset, preset_differences

torch.set_num_threads(1)


# ------------------------------------------------------------------------------------------- shapes
def test_shapes_are_deterministic_flat_and_varied():
    a, b = render_shapes(0, 5), render_shapes(0, 5)
    assert a.dtype == np.uint8 and a.shape == (32, 32, 3) and np.array_equal(a, b)
    assert not np.array_equal(a, render_shapes(0, 6)) and not np.array_equal(a, render_shapes(1, 5))
    assert not np.array_equal(a, render_shapes(0, 5, split="test"))
    ds = open_dataset("shapes", count=200)
    imgs = np.stack([ds[i] for i in range(200)])
    # flat regions (no noise) and visible edges in every image
    assert st.noise_std(imgs) < 0.2
    grey = imgs.astype(float).mean(-1)
    assert (np.abs(np.diff(grey, axis=2)).max(axis=(1, 2)) > 20).all()
    assert len({im.tobytes() for im in imgs}) == 200
    assert open_dataset("shapes", resolution=64, count=3)[0].shape == (64, 64, 3)


def test_shapes_bad_parameters_raise_one_line():
    with pytest.raises(UserError, match="n_min"):
        render_shapes(0, 0, n_min=3, n_max=1)


# ------------------------------------------------------------------------------------------- statistics
def _flat(n=64, value=128):
    return np.full((n, 32, 32, 3), value, np.uint8)


def test_noise_estimate_recovers_gaussian_std_and_ignores_edges():
    rng = np.random.default_rng(0)
    base = np.stack([render_shapes(0, i) for i in range(64)]).astype(float)
    for sigma in (2.0, 5.0, 10.0):
        noisy = np.clip(np.round(base + rng.normal(0, sigma, base.shape[:3])[..., None]), 0, 255).astype(np.uint8)
        assert st.noise_std(noisy) == pytest.approx(sigma, rel=0.1)
    assert st.noise_std(base.astype(np.uint8)) < 0.2


def test_sharpness_falls_with_blur_and_blockiness_rises_with_jpeg():
    from scipy import ndimage
    x = np.stack([render_shapes(0, i) for i in range(64)])
    blurred = np.stack([ndimage.uniform_filter(im.astype(float), size=(3, 3, 1)) for im in x]).round().astype(np.uint8)
    assert st.sharpness(blurred) < 0.8 * st.sharpness(x)
    assert st.hf_energy(blurred) < st.hf_energy(x)
    noisy = np.clip(x.astype(float) + np.random.default_rng(1).normal(0, 8, x.shape), 0, 255).astype(np.uint8)
    comp = np.stack([jpeg_pil(im, 20) for im in noisy])
    assert st.blocks(comp) > 1.15 * st.blocks(noisy)
    assert st.blocks(noisy) == pytest.approx(1.0, abs=0.05)
    assert st.blockiness(comp) > 1.15 * st.blockiness(noisy)      # the old global form, kept for old tables
    assert st.patch_swd(x, x) < st.patch_swd(x, blurred)
    with pytest.raises(ValueError, match="uint8"):
        st.sharpness(x.astype(np.float32))


def test_grid_phases_see_a_pattern_on_the_jpeg_grid_and_not_random_edges():
    rng = np.random.default_rng(0)
    flat = np.clip(128 + rng.normal(0, 10, (64, 32, 32, 3)), 0, 255).astype(np.uint8)
    assert np.allclose(st.grid_phases(flat), 1.0, atol=0.03) and abs(st.border_excess(flat)) < 0.03
    patterned = flat.astype(float)
    patterned[:, :, 1::8] += 12      # a step up at column 1 and down at 2 of each block: differences at phases 0, 1
    patterned[:, :, 7::8] += 12      # and at column 7: differences at phases 6, 7
    patterned = np.clip(patterned, 0, 255).astype(np.uint8)
    ph = st.grid_phases(patterned)
    assert ph[0] > 1.1 and ph[6] > 1.1 and ph[3] < 1.0 and st.border_excess(patterned) > 0.1
    assert st.border_excess(patterned, inner=True) > 0.1          # a pattern on the grid stays without the border
    comp = np.stack([jpeg_pil(im, 20) for im in flat])
    assert int(np.argmax(st.grid_phases(comp))) == 7           # JPEG's own blocks: phase 7


def test_a_frame_reads_as_frame_not_as_blocks_or_a_grid_pattern():
    """A line along the image's border (what G_x draws through the pipeline, cpu-scale.md section 24) raises
    `frame` and folds into grid phases 0 and 6 with the outermost differences in; `blocks` and the inner phases do
    not see it. Centred content (edges in the middle, as shapes) moves the old global blockiness, not `blocks`."""
    rng = np.random.default_rng(0)
    flat = np.clip(128 + rng.normal(0, 10, (64, 32, 32, 3)), 0, 255)
    framed = flat.copy()
    framed[:, 0, :] += 40
    framed[:, -1, :] += 40
    framed[:, :, 0] += 40
    framed[:, :, -1] += 40
    flat, framed = flat.astype(np.uint8), np.clip(framed, 0, 255).astype(np.uint8)
    assert st.frame(flat) == pytest.approx(1.0, abs=0.05) and st.frame(framed) > 1.5
    assert st.border_excess(framed) > 0.1 and abs(st.border_excess(framed, inner=True)) < 0.03
    assert st.blocks(framed) == pytest.approx(st.blocks(flat), abs=0.03)
    yy, xx = np.mgrid[:32, :32]
    centred = flat.astype(float) * 0 + 100
    for i in range(64):            # one disc per image near the centre: the edges' density falls off to the border
        cy, cx, r = 16 + rng.normal(0, 2), 16 + rng.normal(0, 2), rng.uniform(4, 9)
        centred[i][(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = 200
    centred = centred.astype(np.uint8)
    assert abs(st.blockiness(centred) - 1) > 0.1               # the old form reads content placement as blocks
    assert st.blocks(centred) == pytest.approx(1.0, abs=0.1)


# ------------------------------------------------------------------------------------------- presets
def test_presets_explicit_and_documented_differences():
    assert set(PRESETS) >= {"default", "paper", "laptop", "cpu"}
    d, p, lap = preset("default"), preset("paper"), preset("laptop")
    assert d == TrainConfig()
    # the paper's method as written differs from the default recipe exactly in the documented keys
    diff = {k for k, v in d.to_dict().items() if p.to_dict()[k] != v}
    assert diff == {"q_grad", "q_param", "ds_q_target", "ds_q_tau", "ac_norm"}
    assert (lap.dataset, lap.width, lap.d_width, lap.batch) == ("shapes", 16, 32, 16)
    table = preset_differences()
    assert "q_grad" in table and "laptop" in table and "beta2" not in table   # same in every preset
    with pytest.raises(UserError, match="unknown --preset"):
        preset("nope")


def test_train_dry_run_and_like_replays_options(tmp_path, capsys):
    assert main(["train", "--preset", "laptop", "--model", "gan", "--setting", "N", "--dry-run",
                 "--set", "lr=3e-4"]) == 0
    cfg = json.loads(capsys.readouterr().out)
    assert cfg["lr"] == 3e-4 and cfg["dataset"] == "shapes" and cfg["model"] == "gan"
    run = tmp_path / "a"
    assert main(["train", "--preset", "laptop", "--model", "gan", "--setting", "B", "--iters", "2", "--count", "16",
                 "--set", "batch=4", "--set", "width=8", "--set", "z_dim=16", "--set", "threads=1", "--no-progress",
                 "--set", "lr=5e-4", "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["train", "--like", str(run), "--model", "br-gan", "--seed", "3", "--dry-run"]) == 0
    like = json.loads(capsys.readouterr().out)
    stored = json.loads((run / "config.json").read_text())["config"]
    assert {k for k in stored if stored[k] != like[k]} == {"model", "seed"}
    assert like["model"] == "br-gan" and like["seed"] == 3 and like["lr"] == 5e-4
    # --like trains too, with the overrides
    assert main(["train", "--like", str(run), "--model", "br-gan", "--out", str(tmp_path / "b"), "--no-progress"]) == 0
    assert json.loads((tmp_path / "b" / "config.json").read_text())["config"]["model"] == "br-gan"
    assert main(["train", "--like", str(run), "--preset", "laptop", "--dry-run"]) == 2
    assert main(["train", "--preset", "laptop", "--dry-run"]) == 2          # no model / setting
    assert main(["train", "--preset", "laptop", "--model", "gan", "--setting", "N"]) == 2   # no --out
    assert "--out is required" in capsys.readouterr().err
    assert main(["presets"]) == 0 and "paper" in capsys.readouterr().out


def test_compare_rows_for_data_and_runs(tmp_path):
    from test_eval import FakeFeatures
    from bncr.metrics.compare import compare_runs, markdown
    runs = []
    for model in ("gan", "ambientgan"):
        out = tmp_path / model
        main(["train", "--preset", "laptop", "--model", model, "--setting", "B", "--iters", "2", "--count", "24",
              "--set", "batch=4", "--set", "width=8", "--set", "z_dim=16", "--set", "threads=1", "--no-progress",
              "--out", str(out)])
        runs.append(out)
    rows = compare_runs(runs, num=20, extractor=FakeFeatures(), progress=False, cache_dir=tmp_path / "c")
    assert [r.name for r in rows] == ["clean data", "degraded data (B)", "gan", "ambientgan"]
    clean, degraded = rows[0].values, rows[1].values
    assert "images 20..23 (not the reference)" in rows[0].source   # held-out images, not the reference itself
    assert degraded["sharpness"] < clean["sharpness"]           # setting B blurs
    assert all(np.isfinite(list(r.values.values())).all() for r in rows)
    text = markdown(rows)
    assert "KID x1e3" in text and "| gan (it 2) |" in text
    other = tmp_path / "other"
    main(["train", "--preset", "laptop", "--model", "gan", "--setting", "B", "--iters", "2", "--count", "30",
          "--set", "batch=4", "--set", "width=8", "--set", "z_dim=16", "--set", "threads=1", "--no-progress",
          "--out", str(other)])
    with pytest.raises(UserError, match="same data"):
        compare_runs([runs[0], other], num=20, extractor=FakeFeatures(), progress=False, cache_dir=tmp_path / "c")


def test_bilinear_channels_last_generator_trains_and_reloads(tmp_path):
    from bncr.api import load_generator
    from bncr.train.loop import Trainer, build_generator
    cfg = preset("laptop").override(["model=bncr-gan", "setting=N", "iters=2", "count=16", "batch=4", "width=8",
                                     "z_dim=16", "threads=1", "g_upsample=bilinear", "channels_last=true"])
    t = Trainer(cfg, tmp_path / "r", progress=False)
    assert t.nets.G_x.blocks[0].upsample == "bilinear"
    assert t.nets.D_y.blocks[0].conv1.weight.is_contiguous(memory_format=torch.channels_last)
    t.run()
    G = load_generator(tmp_path / "r")
    z = torch.randn(3, 16)
    assert torch.allclose(G(z), t.nets.G_x_ema(z), atol=1e-6)
    # the upsampling changes the function: same weights under nearest give other images
    G2 = build_generator(cfg.override(["g_upsample=nearest"]), 32)
    G2.load_state_dict(G.state_dict())
    assert not torch.allclose(G2(z), G(z), atol=1e-3)
    with pytest.raises(UserError, match="upsample"):
        build_generator(cfg.override(["g_upsample=cubic"]), 32)


def test_demo_length_note_claims_the_seeds_only_for_the_options_they_were_measured_with():
    """The demo's summary cites the 5 seeds of cpu-scale.md section 15 only for `laptop` + DEMO_SETS."""
    from bncr.demo import DEMO_SETS, _length_note
    demo = preset("laptop").override(list(DEMO_SETS)).to_dict()
    assert "ahead of GAN in each of 5 seeds measured" in _length_note(demo)
    for change in ({"ac": 3.0}, {"setting": "B"}, {"iters": 1200}, {"width": 32},
                   {"g_pad": "reflect"}, {"ac_comp_on": "x"}, {"ds_n_target": "params"}, {"ds_n": 0.1}):
        assert "ahead of GAN in each of 5 seeds measured" not in _length_note({**demo, **change}), change
    assert "has not been measured across seeds" in _length_note({**demo, "iters": 1200})
    assert _length_note({**demo, "iters": 6000, "deg_warmup": 1000, "ac": 3.0}) == ""


def test_demo_shortens_laptop_unless_full(tmp_path, monkeypatch):
    """`bncr demo` trains `laptop` + DEMO_SETS (the measured demo); --full trains the preset as it is; --set last."""
    import bncr.demo as demo
    seen = []

    def stop(out, models, preset, setting, sets, on_early_finish=None):
        seen.append(tuple(sets))
        raise SystemExit(0)
    monkeypatch.setattr(demo, "train_side_by_side", stop)
    for argv in (["demo"], ["demo", "--full", "--set", "seed=3"]):
        with pytest.raises(SystemExit):
            main(argv + ["--out", str(tmp_path / "d")])
    assert seen == [demo.DEMO_SETS, ("seed=3",)]
    assert "g_pad=zeros" in demo.DEMO_SETS and preset("laptop").g_pad == "reflect"
    assert "ds_n_target=sample" in demo.DEMO_SETS and preset("laptop").ds_n_target == "params"


def test_demo_trains_both_side_by_side_and_reports(tmp_path, monkeypatch, capsys):
    """`bncr demo` end to end at a tiny size (a fake feature network stands in for Inception)."""
    from test_eval import FakeFeatures
    import bncr.metrics.inception as inc
    monkeypatch.setattr(inc, "InceptionFeatures", lambda *a, **k: FakeFeatures())
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--num", "12", "--set", "iters=2", "--set", "count=32",
                 "--set", "width=8", "--set", "batch=4", "--set", "z_dim=16"]) == 0
    text = (out / "summary.md").read_text()
    assert (out / "demo.png").stat().st_size > 10_000
    assert "| bncr-gan (it 2) |" in text and "| gan (it 2) |" in text and "| degraded data (N) |" in text
    assert "mean kernel entropy" in text and "W1 of q" in text
    assert "At 2 iterations with these options the comparison has not been measured" in text  # not the measured demo
    for m in ("bncr-gan", "gan"):
        cfg = json.loads((out / m / "config.json").read_text())["config"]
        assert cfg["model"] == m and cfg["dataset"] == "shapes" and cfg["threads"] == 1
    # re-running re-uses the finished runs (no new training)
    before = (out / "gan" / "stats.jsonl").read_text()
    assert main(["demo", "--out", str(out), "--num", "12", "--set", "iters=2", "--set", "count=32",
                 "--set", "width=8", "--set", "batch=4", "--set", "z_dim=16"]) == 0
    assert (out / "gan" / "stats.jsonl").read_text() == before
    # GAN's rows measured early (on the core it frees) give the same summary as measuring both at the end
    from bncr.demo import summary
    from bncr.metrics.compare import compare_runs
    both = summary(out, out / "bncr-gan", out / "gan", 12)
    early = summary(out, out / "bncr-gan", out / "gan", 12, gan_rows=compare_runs([out / "gan"], num=12, progress=False))
    assert early == both and both.index("| bncr-gan (it 2) |") < both.index("| gan (it 2) |")


def test_demo_measures_the_run_that_ends_first_while_the_other_trains(tmp_path, monkeypatch):
    import bncr.demo as demo
    times = {"slow": 3.0, "fast": 0.2, "broken": -1}

    def cmd(model, out, preset, setting, sets):
        t = times[model]
        return [sys.executable, "-c", f"import time, sys; time.sleep({max(t, 0)}); sys.exit({int(t < 0)})"]
    monkeypatch.setattr(demo, "_train_cmd", cmd)
    seen = []
    t0 = time.time()
    demo.train_side_by_side(tmp_path, ["slow", "fast"], "laptop", "N", (),
                            on_early_finish=lambda m: seen.append((m, time.time() - t0)))
    assert [m for m, _ in seen] == ["fast"] and seen[0][1] < 2.5       # called while "slow" still ran
    with pytest.raises(UserError, match="broken"):
        demo.train_side_by_side(tmp_path, ["slow", "broken"], "laptop", "N", (), on_early_finish=seen.append)
    assert len(seen) == 1                                                # no early measurement after a failure


def test_metric_takes_several_values_and_train_skips_bad_files(tmp_path, capsys):
    from bncr.cli import build_parser
    a = build_parser().parse_args(["eval", "runs/x", "--metric", "fid", "kid"])
    assert a.metric == ["fid", "kid"]
    assert build_parser().parse_args(["eval", "runs/x", "--metric", "fid", "--metric", "kid"]).metric == ["fid", "kid"]
    from PIL import Image
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(6):
        Image.fromarray(render_shapes(0, i)).save(folder / f"{i}.png")
    (folder / "bad.png").write_bytes(b"not a png")
    base = ["train", "--model", "gan", "--setting", "A", "--dataset", str(folder), "--resolution", "32",
            "--preset", "laptop", "--set", "count=none", "--set", "batch=2", "--set", "width=8", "--iters", "1",
            "--set", "z_dim=8", "--no-progress"]
    assert main(base + ["--out", str(tmp_path / "r1")]) == 2
    assert "--skip-bad" in capsys.readouterr().err
    assert main(base + ["--skip-bad", "--out", str(tmp_path / "r2")]) == 0
    assert json.loads((tmp_path / "r2" / "config.json").read_text())["config"]["skip_bad"] is True


def test_run_config_records_version_and_commit(tmp_path):
    from bncr import __version__
    main(["train", "--preset", "laptop", "--model", "gan", "--setting", "A", "--iters", "1", "--count", "8",
          "--set", "batch=2", "--set", "width=8", "--set", "z_dim=8", "--no-progress", "--out", str(tmp_path / "r")])
    c = json.loads((tmp_path / "r" / "config.json").read_text())
    assert c["bncr_version"] == __version__
    assert c["git_commit"] is None or len(c["git_commit"].split("-")[0]) == 40


def _tiny_laptop_run(out, model: str, setting: str, *sets: str):
    """A 2-iteration `laptop` run of `model` on `setting` at a tiny size (24 images, width 8), for the benchmark's
    subcommands."""
    args = ["train", "--preset", "laptop", "--model", model, "--setting", setting, "--iters", "2", "--count", "24",
            "--no-progress", "--out", str(out)]
    for kv in ("batch=4", "width=8", "z_dim=16", "threads=1") + sets:
        args += ["--set", kv]
    main(args)
    return out


def test_curve_kid_every_measures_only_those_snapshots(tmp_path, monkeypatch, capsys):
    """benchmarks/cpu_scale.py curve --kid-every K: statistics of every snapshot, KID at multiples of K only."""
    from test_eval import FakeFeatures
    import bncr.metrics.inception as inc
    monkeypatch.setattr(inc, "InceptionFeatures", lambda *a, **k: FakeFeatures())
    monkeypatch.syspath_prepend(str(__import__("pathlib").Path(__file__).parents[1] / "benchmarks"))
    import cpu_scale
    out = _tiny_laptop_run(tmp_path / "gan", "gan", "A", "snap_every=1")
    capsys.readouterr()
    cpu_scale.main(["curve", str(out), "--num", "12", "--kid-every", "2"])
    lines = [ln.split() for ln in capsys.readouterr().out.splitlines() if ln.split() and ln.split()[0].isdigit()]
    assert [ln[0] for ln in lines] == ["1", "2"]
    assert len(lines[0]) == 7 and len(lines[1]) == 8            # iteration + 6 statistics (+ KID at 2 only)
    assert np.isfinite(float(lines[1][6]))


def test_read_noise_probe_compares_true_and_zero_read_noise(monkeypatch):
    """benchmarks/cpu_scale.py readnoise: same draws but the read variance; only the noise pixels can differ."""
    monkeypatch.syspath_prepend(str(__import__("pathlib").Path(__file__).parents[1] / "benchmarks"))
    import re
    import cpu_scale
    text = cpu_scale.read_noise_probe(n=40, dark=0.3)
    qs = [float(v) for v in re.search(r"= ([\d. /]+);", text).group(1).split(" / ")]
    assert qs == sorted(qs) and 0 <= qs[0] and qs[-1] <= 1
    rms = {k: float(v) for k, v in re.findall(r"(true|read0) *: residual .* rms ([\d.]+)", text)}
    assert set(rms) == {"true", "read0"} and rms["true"] > 0 and rms["read0"] > 0
    differ = re.search(r"true - read0 at those pixels: rms ([\d.]+) grey levels, ([\d.]+)% of them differ", text)
    assert float(differ.group(1)) > 0 and 0 < float(differ.group(2)) < 100   # the read noise changes some pixels
    # with no read noise in the setting (setting B: blur only) nothing can differ
    text = cpu_scale.read_noise_probe(n=10, setting="B", dark=0.3)
    assert "rms 0.000 grey levels, 0.00% of them differ" in text


def test_dgrad_reports_each_phase_of_the_final_ds_gradient(tmp_path, capsys, monkeypatch):
    """benchmarks/cpu_scale.py dgrad: for a run with a JPEG stage, one row through the pipeline and one at D's
    input, 8 phases each, normalised to a mean absolute value of 1."""
    monkeypatch.syspath_prepend(str(__import__("pathlib").Path(__file__).parents[1] / "benchmarks"))
    import cpu_scale
    out = _tiny_laptop_run(tmp_path / "amb", "ambientgan", "N", "d_width=8")
    capsys.readouterr()
    rows = [ln for ln in cpu_scale.d_grad_phases([str(out)], n=16).splitlines() if ln.startswith(f"| {out}")]
    assert len(rows) == 2 and "pipeline" in rows[0] and "degraded fake" in rows[1]
    for ln in rows:
        v = np.array([float(c) for c in ln.strip("| ").split(" | ")[2:]])
        assert v.shape == (8,) and np.all(np.isfinite(v)) and abs(np.abs(v).mean() - 1) < 0.02


def test_profile_gives_each_set_one_normalised_value_per_position(tmp_path, capsys, monkeypatch):
    """benchmarks/cpu_scale.py profile: the clean data's and each run's mean neighbour difference at each of the
    W - 1 positions, over its mean; a frame shows at the ends (zero padding at init), reflection padding has none."""
    monkeypatch.syspath_prepend(str(__import__("pathlib").Path(__file__).parents[1] / "benchmarks"))
    import cpu_scale
    runs = [_tiny_laptop_run(tmp_path / p, "gan", "A", f"g_pad={p}") for p in ("zeros", "reflect")]
    capsys.readouterr()
    lines = cpu_scale.edge_profiles([str(r) for r in runs], num=64).splitlines()
    assert [ln.split(":")[0] for ln in lines] == ["clean data", str(runs[0]), str(runs[1])]
    prof = [np.array([float(v) for v in ln.split(":")[1].split()]) for ln in lines]
    assert all(p.shape == (31,) and abs(p.mean() - 1) < 0.01 for p in prof)
    ends = [(p[0] + p[-1]) / (p[1] + p[-2]) for p in prof[1:]]
    assert ends[0] > 1.2 and ends[0] > ends[1] + 0.2                   # the zero-padded G_x's frame, not the other's


def test_trajectory_bins_the_live_noise_and_q_of_stats_jsonl(tmp_path, monkeypatch):
    """benchmarks/cpu_scale.py trajectory: per stretch of iterations, the mean of the logged noise std (grey levels)
    and q; a run that logs neither is refused with its path."""
    import json
    monkeypatch.syspath_prepend(str(__import__("pathlib").Path(__file__).parents[1] / "benchmarks"))
    import cpu_scale
    run = tmp_path / "r"
    run.mkdir()
    rows = [{"iteration": i, "noise_std_mean": 0.01 * i, "q_mean": 50.0 + i} for i in (1, 2, 3, 4)]
    (run / "stats.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    lines = cpu_scale.trajectory([str(run)], bins=2).splitlines()
    assert lines[0].split("|")[3:5] == [" 0-2 ", " 2-4 "]
    noise = [c.strip() for c in lines[2].split("|")[3:5]]
    q = [c.strip() for c in lines[3].split("|")[3:5]]
    assert noise == [f"{255 * 0.015:.1f}", f"{255 * 0.035:.1f}"] and q == ["51.5", "53.5"]
    short = tmp_path / "short"                                  # a run still at iteration 2: the same stretches
    short.mkdir()
    (short / "stats.jsonl").write_text("\n".join(json.dumps(r) for r in rows[:2]) + "\n")
    both = cpu_scale.trajectory([str(short), str(run)], bins=2).splitlines()
    assert both[0] == lines[0] and [c.strip() for c in both[3].split("|")[3:5]] == ["51.5", ""]
    gan = tmp_path / "gan"
    gan.mkdir()
    (gan / "stats.jsonl").write_text(json.dumps({"iteration": 1, "G_adv": 0.7}) + "\n")
    with pytest.raises(SystemExit, match="gan"):
        cpu_scale.trajectory([str(gan)])


def test_noise_levels_show_a_distribution_narrower_than_the_truths(tmp_path, monkeypatch):
    """benchmarks/cpu_scale.py noiselevels: quantiles and 5-95 % spread of log10 a, and E[a] learned / true; a
    distribution with the truth's median but half its spread has a smaller E[a]. A run without noise is refused."""
    monkeypatch.syspath_prepend(str(__import__("pathlib").Path(__file__).parents[1] / "benchmarks"))
    import cpu_scale
    rng = np.random.default_rng(0)
    true = rng.uniform(-4.0, -2.0, 20000)
    narrow = -3.0 + 0.5 * (true + 3.0)
    learned, truth = cpu_scale.level_rows("r", narrow, true)
    cells = [c.strip() for c in learned.strip("|").split("|")]
    tcells = [c.strip() for c in truth.strip("|").split("|")]
    assert abs(float(cells[4]) - float(tcells[4])) < 0.02                      # the same median
    assert abs(float(cells[7]) - 0.5 * float(tcells[7])) < 0.02                # half the spread
    assert float(cells[8]) == 0 and tcells[8] == "0.25"                        # none in the truth's top quarter
    assert 0.4 < float(cells[9]) < 0.8 and tcells[9] == "1"                    # E[a] smaller
    same = [c.strip() for c in cpu_scale.level_rows("r", true, true)[0].strip("|").split("|")]
    assert same[-1] == "1.00" and abs(float(same[-2]) - 0.25) < 0.01
    gan = _tiny_laptop_run(tmp_path / "gan", "gan", "A")
    with pytest.raises(UserError, match="learns no degradation"):
        cpu_scale.noise_levels([str(gan)])


def test_spread_places_the_degraded_data_beside_the_clean(tmp_path, monkeypatch):
    """benchmarks/cpu_scale.py spread: k sets of the clean data, the same sets degraded by the runs' setting, and each
    run; setting N's camera noise shows as a higher flat-region noise in the degraded rows than in the clean."""
    monkeypatch.syspath_prepend(str(__import__("pathlib").Path(__file__).parents[1] / "benchmarks"))
    import cpu_scale
    run = _tiny_laptop_run(tmp_path / "amb", "ambientgan", "N", "d_width=8")
    lines = cpu_scale.sampling_spread([str(run)], num=6, k=2).splitlines()
    rows = {ln.split("|")[1].strip(): [c.strip() for c in ln.strip("|").split("|")] for ln in lines[2:5]}
    assert list(rows) == ["clean data", "degraded data (N)", "ambientgan"]
    noise = {name: float(cells[2].split("±")[0]) for name, cells in rows.items()}
    assert noise["degraded data (N)"] > noise["clean data"] + 1.0
    assert rows["degraded data (N)"][-1] == "the same 2 sets degraded by setting N"


def test_jpegnoise_shows_jpeg_reading_weak_noise_down(monkeypatch):
    """benchmarks/cpu_scale.py jpegnoise: the flat-region noise statistic grows with the added noise without JPEG and
    at q 100, and strong JPEG reads it down (q 60 sees less of std 4 than q 100 does)."""
    monkeypatch.syspath_prepend(str(__import__("pathlib").Path(__file__).parents[1] / "benchmarks"))
    import cpu_scale
    lines = cpu_scale.jpeg_hides_noise([0.0, 4.0], [60, 100], num=40).splitlines()
    rows = [[float(c) for c in ln.strip("|").split("|")] for ln in lines[2:]]
    (s0, raw0, q60_0, q100_0), (s4, raw4, q60_4, q100_4) = rows
    assert (s0, s4) == (0.0, 4.0)
    assert raw4 > raw0 + 1.5 and q100_4 > q100_0 + 1.5
    assert q60_4 - q60_0 < 0.5 * (q100_4 - q100_0)

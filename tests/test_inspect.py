"""`bncr inspect` (bncr.report): statistics, parameter recovery, the report and its rendering."""
import argparse
import math
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser

import numpy as np
import pytest
import torch

from bncr.degradations.kernels import disk_kernel, kernel_entropy_np
from bncr.degradations.noise_layer import generated_noise
from bncr.degradations.settings import get_setting, sample_params
from bncr.errors import UserError
from bncr.models.pipeline import DegradationPipeline
from bncr.models.registry import get_model
from bncr.report import add_args, inspect_run, run
from bncr.report.recovery import (BLUR_ENTROPY_NATS, kernel_entropy, kernel_offset, parse_markdown_table,
                                  radius_of_gyration, recovery)
from bncr.report.samples import (Degradations, manifest_degradations, noise_law_of_map, sample_generated,
                                 training_indices, true_degradations)
from bncr.train.config import TrainConfig
from bncr.train.loop import train

TINY = ["width=8", "z_dim=16", "batch=4", "count=32", "tick=1", "image_every=2", "snap_every=2", "threads=1"]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _args(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_args(p)
    return p.parse_args(list(argv))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Tiny trained runs: bncr-gan on setting N, gan on clean A (2 iterations each)."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("runs")
    out = {}
    for model, setting in (("bncr-gan", "N"), ("gan", "A")):
        cfg = TrainConfig(model=model, setting=setting, iters=2).override(TINY)
        out[model] = train(cfg, root / model, progress=False)
    return out


@pytest.fixture(scope="module")
def report(runs, tmp_path_factory):
    """`bncr inspect` of the bncr-gan run: (HTML path, the markdown table it printed, stdout)."""
    import contextlib
    import io
    out = tmp_path_factory.mktemp("report") / "report.html"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert run(_args(str(runs["bncr-gan"]), "--out", str(out), "--n", "256")) == 0
    return out, parse_markdown_table(buf.getvalue()), buf.getvalue()


# ---------------------------------------------------------------------------------------------- statistics
def test_kernel_entropy_and_radius_of_gyration_known_values():
    ident = np.zeros((1, 7, 7))
    ident[0, 3, 3] = 1
    box = np.zeros((1, 7, 7))
    box[0, 2:5, 2:5] = 1 / 9
    pair = np.zeros((1, 7, 7))
    pair[0, 3, 2] = pair[0, 3, 4] = 0.5
    k = np.concatenate([ident, box, pair])
    assert np.allclose(kernel_entropy(k), [0.0, math.log(9), math.log(2)])
    # R_g^2 = E|r - c|^2: box 3x3 -> 2 * (2/3); pair at +-1 -> 1
    assert np.allclose(radius_of_gyration(k), [0.0, math.sqrt(4 / 3), 1.0])
    # translation and zero padding do not change R_g or H
    shifted = np.roll(np.pad(box, [(0, 0), (3, 3), (3, 3)]), (1, -2), axis=(1, 2))
    assert np.allclose(radius_of_gyration(shifted), radius_of_gyration(box))
    assert np.allclose(kernel_offset(k), 0) and np.allclose(kernel_offset(shifted), math.hypot(1, 2))
    top = np.zeros((1, 7, 7))
    top[0, 0, 3] = 1                                   # a delta 3 px above the centre: a shift, no blur
    assert kernel_offset(top)[0] == 3 and radius_of_gyration(top)[0] == 0 and kernel_entropy(top)[0] == 0
    rng = np.random.default_rng(0)
    rk = rng.random((5, 7, 7)) ** 4
    rk /= rk.sum(axis=(1, 2), keepdims=True)
    assert np.allclose(kernel_entropy(rk), [kernel_entropy_np(x) for x in rk])
    # a disk of radius 2: R_g close to the continuous disk's r / sqrt(2)
    d = disk_kernel(2.0)[None]
    assert abs(radius_of_gyration(d)[0] - 2 / math.sqrt(2)) < 0.1


@pytest.mark.parametrize("prior", ["additive", "multiplicative", "poisson"])
def test_noise_law_of_a_map_generator_matches_the_sampled_noise(prior):
    """The variance law given for a "map" G_n equals the variance of the noise the pipeline adds."""
    g = torch.full((1, 3, 1, 1), 0.3)
    x01 = torch.tensor([0.1, 0.5, 0.9]).view(1, 1, 3, 1).expand(1, 3, 3, 40000).contiguous()
    torch.manual_seed(0)
    n01 = generated_noise(x01 * 2 - 1, g.expand_as(x01), prior) / 2       # pipeline units -> [0, 1]
    measured = n01.var(dim=(0, 1, 3)).numpy()
    a, b, c = noise_law_of_map(np.array([0.09]), prior)
    x = np.array([0.1, 0.5, 0.9])
    assert np.allclose(measured, a * x + b + c * x * x, rtol=0.03)


def test_true_degradations_follow_the_settings_module():
    s = get_setting("O")
    d = true_degradations(s, 3, range(40))
    for i in (0, 7, 39):
        p, _ = sample_params(s, 3, i)
        assert d.blurred[i] == p.blurred and d.noised[i] == p.noised and d.compressed[i] == p.compressed
        assert (d.q[i] == p.quality) if p.compressed else np.isnan(d.q[i])
        assert d.a[i] == (p.shot or 0.0) and d.b[i] == (p.read or 0.0)
        if p.blurred:
            assert np.array_equal(d.k[i], p.kernel)
        else:
            assert kernel_entropy(d.k[i:i + 1])[0] == 0
    assert 0 < d.blurred.mean() < 1  # setting O blurs a quarter of the images
    assert list(training_indices(10, None)) == list(range(10))
    idx = training_indices(5000, 100)
    assert len(idx) == 100 and idx[0] == 0 and idx[-1] == 4999


def _as_generated(t: Degradations) -> Degradations:
    """The truth as if a generator had produced it (no flags: estimated by the rules)."""
    q = np.where(t.compressed, t.q, 50.0)
    return Degradations("generated", t.n, k=t.k, q=q, m_q=t.m_q, a=t.a, b=t.b, c=t.c)


def test_a_perfect_generator_recovers_the_truth_and_a_wrong_one_does_not():
    truth = true_degradations(get_setting("P"), 0, range(400))
    r = recovery(_as_generated(truth), truth)
    frac_tiny = np.mean(truth.blurred & (kernel_entropy(truth.k) <= BLUR_ENTROPY_NATS))
    assert r.row("frac_blurred").error == pytest.approx(-frac_tiny)
    assert r.row("frac_entropy_rule").error == 0
    for key in ("entropy_w1", "rg_w1", "offset_mean", "q_w1", "q_w1_weighted", "noise_curve_maxrel", "log10_a_q", "log10_b_q"):
        assert r.row(key).error == pytest.approx(0, abs=1e-9), key
    for key in ("frac_compressed", "frac_compressed_w", "frac_mask_soft", "frac_noised", "q_mean", "noise_std_mid"):
        assert r.row(key).error == pytest.approx(0, abs=1e-9), key
    # a generator that is wrong by known amounts
    g = _as_generated(truth)
    g.q = g.q + 10.0                          # every quality 10 too high
    g.m_q = 0.3 * truth.m_q                   # nothing counts as compressed; weights only on the compressed
    g.a, g.b = 4 * truth.a, 4 * truth.b       # noise std twice the truth
    r = recovery(g, truth)
    assert r.row("frac_compressed").generated == 0
    assert r.row("frac_mask_soft").generated == pytest.approx(truth.compressed.mean())  # 0.3: soft
    assert r.row("frac_mask_soft").true == 0                                             # flags are 0 or 1
    assert r.row("frac_compressed_w").error == pytest.approx(-0.7 * truth.compressed.mean())
    assert r.row("q_w1").error is None and r.row("q_w1_weighted").error == pytest.approx(10.0)
    assert r.row("noise_curve_maxrel").error == pytest.approx(1.0)
    assert r.row("log10_a_q").error == pytest.approx(math.log10(4))
    # cells are what both renderers print
    assert r.row("noise_curve_maxrel").cells()[1:] == ("n/a", "n/a", "100.0%")
    # a truth without noise or JPEG (setting B): those comparisons are "n/a", not a crash
    r = recovery(_as_generated(truth), true_degradations(get_setting("B"), 0, range(30)))
    assert r.row("frac_noised").true == 0 and r.row("frac_compressed").true == 0
    assert r.row("q_w1").error is None and r.row("noise_curve_maxrel").error is None
    assert r.row("log10_a_q").cells()[2:] == ("n/a", "n/a")


def test_noise_curve_on_the_data_range_ignores_the_extrapolated_dark_end():
    truth = true_degradations(get_setting("N"), 0, range(400))
    g = _as_generated(truth)
    g.b = np.zeros_like(truth.b)              # no read noise: wrong only where the shot term x * a is small
    assert "noise_curve_maxrel_data" not in [r.key for r in recovery(g, truth).rows]   # no range, no row
    r = recovery(g, truth, x_range=(0.1, 0.95))
    assert r.row("noise_curve_maxrel").error == pytest.approx(1.0)        # at x = 0 the curve is 0 against > 0
    ea, eb = truth.a.mean(), truth.b.mean()   # population std sqrt(E[a] x + E[b]), worst at x = 0.1
    want = 1 - math.sqrt(ea * 0.1 / (ea * 0.1 + eb))
    assert r.row("noise_curve_maxrel_data").error == pytest.approx(want, rel=1e-6)
    assert 0 < want < 0.25 and "[0.10, 0.95]" in r.row("noise_curve_maxrel_data").label
    g.a = 4 * truth.a                         # and a std twice too large over the data range: 100 %
    r = recovery(g, truth, x_range=(0.5, 0.95))
    assert r.row("noise_curve_maxrel_data").error == pytest.approx(2 * math.sqrt(ea * 0.95 / (ea * 0.95 + eb)) - 1,
                                                                     rel=1e-6)


def test_manifest_ground_truth_equals_the_settings_module(tmp_path):
    from bncr.data import open_dataset
    from bncr.data.export import write_degraded
    s = get_setting("Q")
    write_degraded(open_dataset("deadleaves", 32, count=6), s, tmp_path / "deg", data_seed=5, progress=False)
    m, info = manifest_degradations(tmp_path / "deg")
    t = true_degradations(s, 5, range(6))
    assert info["setting"]["name"] == "Q" and m.n == 6
    for f in ("blurred", "noised", "compressed", "a", "b", "m_q"):
        assert np.array_equal(getattr(m, f), getattr(t, f)), f
    assert np.allclose(m.k, t.k, atol=1e-7)
    assert np.array_equal(np.isnan(m.q), np.isnan(t.q)) and np.allclose(m.q[~np.isnan(m.q)], t.q[~np.isnan(t.q)])
    with pytest.raises(UserError, match="no such file"):
        manifest_degradations(tmp_path / "nowhere")


def _snapshot(run_dir, model: str, setting: str, edit=None, **pipe_kw):
    """An untrained run directory with one snapshot (no training needed to inspect it)."""
    from bncr.nets.resnet import ResNetGenerator
    from bncr.train.checkpoint import SNAPSHOT_FORMAT, save_atomic
    torch.manual_seed(0)
    cfg = TrainConfig(model=model, setting=setting, iters=1).override(TINY)
    pipe_kw.setdefault("q_param", cfg.q_param)      # the stored config must describe the pipeline saved
    cfg.q_param = pipe_kw["q_param"]
    pipe = DegradationPipeline(get_model(model), get_setting(setting), 32, z_dim=16, **pipe_kw)
    if edit is not None:
        with torch.no_grad():
            edit(pipe)
    run_dir.mkdir()
    save_atomic({"format": SNAPSHOT_FORMAT, "iteration": 0, "config": cfg.to_dict(), "resolution": 32,
                 "G_x": ResNetGenerator(32, 8, 16).state_dict(), "pipe": pipe.state_dict()},
                run_dir / "snapshot-000000.pt")
    return pipe


def test_p_ambientgan_is_one_learned_value_and_map_noise_is_sampled(tmp_path):
    from bncr.report import render_html
    # q = 100 sigmoid(1) = 73.1, m_q = 0.7
    _snapshot(tmp_path / "pamb", "p-ambientgan", "N", edit=lambda p: p.G_q.q_logit.fill_(1.0), mask_init=0.7,
              q_param="sigmoid")
    rep = inspect_run(tmp_path / "pamb", n=64, images=False, n_true=50)
    assert np.all(rep.generated.q == rep.generated.q[0]) and rep.generated.q[0] == pytest.approx(73.1059, abs=1e-3)
    single = rep.single_values()
    assert set(single) == {"blur", "noise", "jpeg"} and "q = 73.1, m_q = 0.700" in single["jpeg"]
    assert rep.recovery.row("frac_compressed").generated == 1.0    # m_q = 0.7 > 0.5
    assert "a single learned value: q = 73.1" in render_html(rep)
    # setting A (images used as they are): no ground truth, the generated column only
    _snapshot(tmp_path / "clean", "bncr-gan", "A")
    rep = inspect_run(tmp_path / "clean", n=32, images=False)
    assert rep.truth is None and rep.table().splitlines()[0] == "| quantity | generated |"
    assert "<h2>Learned degradation</h2>" in render_html(rep) and "--manifest" in rep.truth_source
    # a "map" G_n (ResNet scale map, poisson prior): var = mean(g^2) x
    mp = DegradationPipeline(get_model("nr-gan"), get_setting("noise"), 32, z_dim=16, noise_gen="map", noise_width=8)
    d = sample_generated(mp, 6, seed=1)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        g = mp.G_n(mp.G_n.sample_z(6, gen))
    assert np.allclose(d.a, g.double().pow(2).flatten(1).mean(1).numpy()) and not d.b.any() and d.notes


# ---------------------------------------------------------------------------------------------- runs
class _Rows(HTMLParser):
    """label -> (generated, true, error) of the <tr data-key> rows of the recovery table."""

    def __init__(self):
        super().__init__()
        self.rows, self.cur, self.cell, self.body = {}, None, None, {}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "tr" and "data-key" in a:
            self.cur = []
        elif tag == "td" and self.cur is not None:
            self.cell = ""
        elif tag == "body":
            self.body = a

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data

    def handle_endtag(self, tag):
        if tag == "td" and self.cell is not None:
            self.cur.append(self.cell.strip())
            self.cell = None
        elif tag == "tr" and self.cur is not None:
            self.rows[self.cur[0]] = tuple(self.cur[1:])
            self.cur = None


def _html_rows(text: str) -> tuple[dict, dict]:
    p = _Rows()
    p.feed(text)
    return p.rows, p.body


def _w1(u, v):
    """W1 of two samples as the integral of |F_u - F_v| (independent of scipy's implementation)."""
    xs = np.sort(np.concatenate([u, v]))
    Fu = np.searchsorted(np.sort(u), xs[:-1], side="right") / len(u)
    Fv = np.searchsorted(np.sort(v), xs[:-1], side="right") / len(v)
    return float(np.sum(np.abs(Fu - Fv) * np.diff(xs)))


def test_inspect_bncr_gan_prints_the_numbers_of_its_report(runs, report):
    from bncr.api import load_pipeline
    out, printed, stdout = report
    assert "model bncr-gan, setting N" in stdout and "ground truth: setting N, data seed 0, 32 training images" in stdout
    # the numbers, recomputed independently from the snapshot
    _, pipe, _ = load_pipeline(runs["bncr-gan"])
    gen = torch.Generator().manual_seed(0)
    pipe.G_k(pipe.G_k.sample_z(256, gen))              # same latent order as bncr.report: G_k, G_q, G_n
    q, m_q = (v.double().numpy() for v in pipe.G_q(pipe.G_q.sample_z(256, gen)))
    tq = np.array([sample_params(get_setting("N"), 0, i)[0].quality for i in range(32)], float)
    assert printed["fraction compressed (m_q > 0.5)"] == (f"{np.mean(m_q > 0.5):.3f}", "1.000",
                                                          f"{np.mean(m_q > 0.5) - 1:+.3f}")
    assert printed["fraction compressed (mean m_q)"][0] == f"{m_q.mean():.3f}"
    if (m_q > 0.5).any():
        assert float(printed["W1 of q over compressed images (m_q > 0.5)"][2]) == pytest.approx(
            _w1(q[m_q > 0.5], tq), abs=0.006)
    assert printed["fraction noised (std at x=0.5 > 1/255)"][1] == "1.000"
    # the noise curve is also judged on the intensities the 32 training images have (1-99 % of their pixels)
    from bncr.data import open_dataset
    px = np.stack([open_dataset("shapes", count=32)[i] for i in range(32)]) / 255.0
    lo, hi = np.quantile(px, [0.01, 0.99])
    assert f"std curve, max relative error on the data's intensities [{lo:.2f}, {hi:.2f}] (1-99 %)" in printed
    # the report: self-contained, same numbers
    text = out.read_text()
    rows, _ = _html_rows(text)
    assert rows == printed and len(rows) >= 15
    assert text.count("src='data:image/png;base64,") >= 6 and "http://" not in text and "https://" not in text
    assert "Training statistics" in text and "G_adv" in text


def test_regenerated_images_are_the_training_images_of_final_png(runs):
    from bncr.data import open_dataset
    from bncr.train.loop import materialise
    rep = inspect_run(runs["bncr-gan"], n=8, n_true=8)
    (_, real), (_, y_fake), (_, x_fake) = rep.panels
    assert real.shape == y_fake.shape == x_fake.shape == (32, 32, 32, 3)
    from bncr.api import load_pipeline
    _, pipe, _ = load_pipeline(runs["bncr-gan"])
    g = torch.Generator().manual_seed(12345)          # the training loop's fixed latents: z, pipe, real
    torch.randn(32, 16, generator=g)
    pipe.sample_latents(32, g, "cpu")
    idx = torch.randint(0, 32, (32,), generator=g)
    y, _ = materialise(open_dataset(rep.config["dataset"], None, count=32), get_setting("N"), 0, False)
    assert np.array_equal(real, y[idx.numpy()])


def test_live_weights_come_from_the_training_state(runs):
    from bncr.train.checkpoint import STATE_FORMAT, load_checked
    from bncr.api import load_pipeline
    ema = inspect_run(runs["bncr-gan"], n=16, n_true=4, images=False)
    live = inspect_run(runs["bncr-gan"], n=16, n_true=4, images=False, live=True)
    assert any("EMA weights (decay 0.999) after 2 iterations" in n for n in ema.notes) and live.live
    _, pipe, _ = load_pipeline(runs["bncr-gan"])
    pipe.load_state_dict(load_checked(runs["bncr-gan"] / "training-state.pt", STATE_FORMAT)["pipe"])
    want = sample_generated(pipe, 16, seed=0)
    assert np.array_equal(live.generated.q, want.q) and not np.array_equal(live.generated.q, ema.generated.q)
    assert np.array_equal(live.generated.a, want.a) and np.array_equal(live.generated.k, want.k)


def test_runs_without_learned_degradation_get_one_clear_line(runs, tmp_path):
    with pytest.raises(UserError, match=r"model gan learns no degradation \(stages blur=off noise=off jpeg=off\)"):
        run(_args(str(runs["gan"]), "--out", str(tmp_path / "x.html")))
    with pytest.raises(UserError, match="--n must be"):
        inspect_run(runs["bncr-gan"], n=1)
    with pytest.raises(UserError, match="no snapshot"):
        inspect_run(tmp_path)


@pytest.mark.skipif(CHROMIUM is None, reason="needs headless Chromium (Debian package: chromium)")
def test_report_renders_in_headless_chromium(report, tmp_path):
    from PIL import Image
    out, printed, _ = report
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-dev-shm-usage"]
    with tempfile.TemporaryDirectory() as prof:
        dom = subprocess.run(flags + [f"--user-data-dir={prof}", "--dump-dom", out.as_uri()],
                             capture_output=True, text=True, timeout=120).stdout
    rows, body = _html_rows(dom)
    assert rows == printed                                      # the rendered DOM shows the printed numbers
    loaded, total = map(int, body["data-images"].split("/"))   # set by the page's onload script
    assert loaded == total >= 6
    shot = tmp_path / "shot.png"
    with tempfile.TemporaryDirectory() as prof:
        subprocess.run(flags + [f"--user-data-dir={prof}", f"--screenshot={shot}", "--window-size=1200,3000",
                                "--hide-scrollbars", out.as_uri()], capture_output=True, timeout=120)
    im = np.asarray(Image.open(shot).convert("L"), float)
    assert im.shape == (3000, 1200)
    rows_with_ink = (im < 200).any(axis=1).mean()
    assert rows_with_ink > 0.5                                  # figures and tables down the page, not blank


# ---------------------------------------------------------------------------------------------- stage strengths
class _FixedQuality(torch.nn.Module):
    """A stand-in G_q: every image at quality q with mask m (Eq. 5's blend weight)."""

    def __init__(self, q: float, m: float, z_dim: int):
        super().__init__()
        self.q, self.m, self.z_dim = q, m, z_dim

    def forward(self, z):
        n = z.shape[0]
        return z.new_full((n,), self.q), z.new_full((n,), self.m)


def test_stage_strengths_measure_the_blend_and_the_identity():
    """A JPEG stage at half mask changes each image exactly half as much as at full mask (Eq. 5 is linear in m_q);
    an identity kernel does not change G_x's images at all; the true stages are the same in every call."""
    from bncr.report.strength import stage_strengths, strength_rows
    from bncr.train.loop import build_nets
    torch.manual_seed(0)
    cfg = TrainConfig(model="bncr-gan", setting="N").override(TINY)
    nets = build_nets(cfg, get_model("bncr-gan"), get_setting("N"), 32)
    G_x, pipe = nets.G_x_ema, nets.pipe_ema
    out = {}
    for m in (1.0, 0.5):
        pipe.G_q = _FixedQuality(70.0, m, cfg.z_dim)
        out[m] = stage_strengths(G_x, pipe, cfg.to_dict(), get_setting("N"), n=16, seed=3)
    full, half = out[1.0]["jpeg"], out[0.5]["jpeg"]
    assert np.allclose(half[0], 0.5 * full[0], rtol=1e-4, atol=1e-4) and full[0].mean() > 1.0
    assert np.array_equal(full[1], half[1]) and full[1].mean() > 1.0      # the truth does not depend on the model
    rows = {r.key: r for r in strength_rows(out[0.5])}
    assert rows["jpeg_strength"].error == pytest.approx(half[0].mean() / half[1].mean() - 1)
    # blur: G_k replaced by one that returns the identity kernel k_I for every image
    from bncr.nets.degradation_generators import KernelOutput, identity_kernel

    class _Identity(torch.nn.Module):
        z_dim = cfg.z_dim

        def forward(self, z):
            k = identity_kernel(K, z.device).expand(z.shape[0], -1, -1)
            return KernelOutput(k, k, torch.zeros_like(k))
    K = pipe.G_k.kernel_size
    pipe.G_k = _Identity()
    s = stage_strengths(G_x, pipe, cfg.to_dict(), get_setting("N"), n=16, seed=3)
    assert s["blur"][0].max() < 1e-3 and s["blur"][1].mean() > 0.5

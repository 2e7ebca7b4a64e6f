import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from bncr.cli import main
from bncr.data.degraded import DegradedDataset
from bncr.data.export import write_degraded
from bncr.degradations.settings import get_setting


class ListDataset(list):
    """A picklable in-memory dataset (DataLoader workers get a copy)."""
    name = "random"
    resolution = 32


def _images(n=40):
    rng = np.random.default_rng(0)
    return ListDataset((rng.uniform(size=(32, 32, 3)) * 255).astype(np.uint8) for _ in range(n))


def _digest(d: Path) -> dict[str, str]:
    return {p.relative_to(d).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(d.rglob("*")) if p.is_file()}


def test_runs_and_workers_give_identical_files(tmp_path):
    imgs, s = _images(), get_setting("N")
    write_degraded(imgs, s, tmp_path / "a", progress=False)
    write_degraded(imgs, s, tmp_path / "b", progress=False)
    write_degraded(imgs, s, tmp_path / "c", workers=2, progress=False)
    da, db, dc = _digest(tmp_path / "a"), _digest(tmp_path / "b"), _digest(tmp_path / "c")
    assert set(da) == {"degraded.npy", "kernels.npy", "manifest.json", "preview.png", "params.png"}
    assert da == db == dc
    ys = np.load(tmp_path / "a" / "degraded.npy")
    ds = DegradedDataset(imgs, s)
    for i in (0, 17, 39):
        np.testing.assert_array_equal(ys[i], ds[i][0])
    m = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert m["count"] == 40 and len(m["images"]) == 40
    r = m["images"][3]
    assert r["blurred"] and r["noised"] and r["compressed"] and 60 <= r["quality"] <= 100 and r["shot"] > 0
    assert r["kernel_type"] in ("disk", "motion")
    k = np.load(tmp_path / "a" / "kernels.npy")
    assert k.shape == (40, 7, 7) and np.allclose(k.sum((1, 2)), 1, atol=1e-5)


def test_png_format_and_other_seed(tmp_path):
    imgs, s = _images(6), get_setting("J")
    write_degraded(imgs, s, tmp_path / "p", fmt="png", progress=False)
    assert len(list((tmp_path / "p" / "images").glob("*.png"))) == 6
    m0 = json.loads((tmp_path / "p" / "manifest.json").read_text())
    write_degraded(imgs, s, tmp_path / "q", data_seed=1, progress=False)
    m1 = json.loads((tmp_path / "q" / "manifest.json").read_text())
    assert [r["quality"] for r in m0["images"]] != [r["quality"] for r in m1["images"]]


def test_cli_degrade_deadleaves_and_bad_inputs(tmp_path, capsys):
    assert main(["degrade", "--setting", "B", "--limit", "8", "--out", str(tmp_path / "dl")]) == 0
    assert (tmp_path / "dl" / "manifest.json").is_file()
    capsys.readouterr()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    cases = [
        (["--setting", "Z", "--out", str(tmp_path / "z")], "unknown setting"),
        (["--setting", "B", "--limit", "4", "--out", str(blocker / "sub")], "not writable"),
        (["--setting", "B", "--dataset", str(tmp_path / "empty"), "--out", str(tmp_path / "e")], "empty"),
        (["--setting", "B", "--dataset", "cifar10", "--data-root", str(tmp_path / "nocifar"),
          "--out", str(tmp_path / "c")], "cifar"),
    ]
    (tmp_path / "empty").mkdir()
    for args, needle in cases:
        rc = main(["degrade", *args])
        err = capsys.readouterr().err.strip()
        assert rc == 2 and len(err.splitlines()) == 1 and needle in err.lower(), (args, err)
    # corrupt image in a folder: named in the error, or skipped with --skip-bad
    folder = tmp_path / "imgs"
    folder.mkdir()
    from PIL import Image
    Image.fromarray(np.zeros((40, 50, 3), np.uint8)).save(folder / "ok.png")
    (folder / "bad.jpg").write_bytes(b"not a jpeg")
    rc = main(["degrade", "--setting", "B", "--dataset", str(folder), "--resolution", "32", "--out", str(tmp_path / "f")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "bad.jpg" in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "f" / "manifest.json").exists()   # nothing looks complete
    rc = main(["degrade", "--setting", "B", "--dataset", str(folder), "--resolution", "32", "--skip-bad",
               "--out", str(tmp_path / "f")])
    assert rc == 0 and (tmp_path / "f" / "manifest.json").is_file()

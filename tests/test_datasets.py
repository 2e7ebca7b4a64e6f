"""Dataset sources: CIFAR-10 batches, image folders, Fashion-MNIST IDX, the factory, preview grids."""
from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import bncr.data.cifar10 as cifar
from bncr.data import default_resolution, open_dataset
from bncr.data.fashion_mnist import parse_idx, read_idx
from bncr.data.grid import make_grid, save_grid
from bncr.errors import UserError


@pytest.fixture(autouse=True)
def _isolated_data_root(tmp_path, monkeypatch):
    """Never pick up a real ~/.cache/bncr or $BNCR_DATA_ROOT in these tests."""
    monkeypatch.setenv("BNCR_DATA_ROOT", str(tmp_path / "data-root"))


# ----------------------------------------------------------------------------- CIFAR-10

def _cifar_rows(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 3072), dtype=np.uint8)


def _write_cifar(folder: Path, per_batch: int = 10, protocol: int = 2) -> dict[str, np.ndarray]:
    """Small CIFAR-format batches (same dict layout as the real files); returns the rows written."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = {}
    for k, name in enumerate(cifar.ALL_FILES):
        data = _cifar_rows(per_batch, k)
        rows[name] = data
        d = {b"batch_label": name.encode(), b"labels": list(range(per_batch)), b"data": data,
             b"filenames": [f"img{i}.png".encode() for i in range(per_batch)]}
        (folder / name).write_bytes(pickle.dumps(d, protocol=protocol))
    return rows


def _as_hwc(rows: np.ndarray) -> np.ndarray:
    return rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_cifar_reads_batches_in_order(tmp_path, protocol):
    rows = _write_cifar(tmp_path / cifar.BATCH_DIR, protocol=protocol)
    ds = open_dataset("cifar10", root=str(tmp_path))
    assert len(ds) == 50 and ds.resolution == 32 and ds.name == "cifar10"
    want = _as_hwc(np.concatenate([rows[f] for f in cifar.SPLIT_FILES["train"]]))
    got = np.stack(list(ds))
    assert got.dtype == np.uint8 and np.array_equal(got, want)
    # the red plane is the first 1024 values of a row
    assert np.array_equal(ds[0][..., 0].ravel(), rows["data_batch_1"][0, :1024])
    test = open_dataset("cifar10", root=str(tmp_path / cifar.BATCH_DIR), split="test")
    assert len(test) == 10 and np.array_equal(test[9], _as_hwc(rows["test_batch"])[9])


def test_cifar_python2_module_names_load(tmp_path):
    """The real files name numpy.core.multiarray (numpy 1.x, Python 2); that must be allowed."""
    d = {b"data": _cifar_rows(3, 9), b"labels": [0, 1, 2]}
    raw = pickle.dumps(d, protocol=2).replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert b"numpy.core.multiarray" in raw
    (tmp_path / "b").write_bytes(raw)
    assert np.array_equal(cifar.load_batch(tmp_path / "b"), _as_hwc(d[b"data"]))


def test_cifar_count_resolution_and_pickle(tmp_path):
    _write_cifar(tmp_path)
    ds = open_dataset("cifar10", 16, root=str(tmp_path), count=12)
    assert len(ds) == 12 and ds[11].shape == (16, 16, 3)
    blob = pickle.dumps(ds)
    assert len(blob) < 10_000  # the image array is not shipped to workers
    assert np.array_equal(pickle.loads(blob)[5], ds[5])
    with pytest.raises(UserError, match="count=60"):
        open_dataset("cifar10", root=str(tmp_path), count=60)


def test_cifar_refuses_code_in_pickles(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.getcwd, ())  # harmless if it ran, but it must not even be looked up

    folder = tmp_path / cifar.BATCH_DIR
    _write_cifar(folder)
    (folder / "data_batch_3").write_bytes(pickle.dumps({b"data": Evil()}, protocol=2))
    with pytest.raises(UserError, match=r"data_batch_3.*refusing to load global posix\.getcwd|"
                                        r"data_batch_3.*refusing to load global os\.getcwd"):
        open_dataset("cifar10", root=str(tmp_path))


def test_cifar_bad_contents_are_user_errors(tmp_path):
    folder = tmp_path / cifar.BATCH_DIR
    _write_cifar(folder)
    (folder / "data_batch_2").write_bytes(pickle.dumps({b"data": np.zeros((4, 100), np.uint8)}))
    with pytest.raises(UserError, match="data_batch_2.*N x 3072"):
        open_dataset("cifar10", root=str(tmp_path))
    (folder / "data_batch_2").write_bytes(b"not a pickle at all")
    with pytest.raises(UserError, match="data_batch_2 is not a CIFAR-10 python batch"):
        open_dataset("cifar10", root=str(tmp_path))


def test_cifar_missing_says_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.setenv("BNCR_DATA_ROOT", str(tmp_path / "dr"))
    with pytest.raises(UserError) as e:
        open_dataset("cifar10")
    msg = str(e.value)
    assert str(tmp_path / "dr" / "cifar10" / cifar.BATCH_DIR) in msg and "--download" in msg
    assert "\n" not in msg
    # one batch missing is still "not found" for that split, but test works
    _write_cifar(tmp_path / "c")
    (tmp_path / "c" / "data_batch_4").unlink()
    with pytest.raises(UserError, match="CIFAR-10 not found"):
        open_dataset("cifar10", root=str(tmp_path / "c"))
    assert len(open_dataset("cifar10", root=str(tmp_path / "c"), split="test")) == 10


def _cifar_archive(tmp_path: Path) -> tuple[Path, str]:
    src = tmp_path / "src"
    _write_cifar(src / cifar.BATCH_DIR)
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src / cifar.BATCH_DIR, arcname=cifar.BATCH_DIR)
    return archive, hashlib.md5(archive.read_bytes()).hexdigest()


def test_cifar_download_checks_md5_and_extracts_atomically(tmp_path, monkeypatch):
    archive, md5 = _cifar_archive(tmp_path)
    monkeypatch.setattr(cifar, "CIFAR10_URL", archive.as_uri())
    root = tmp_path / "root"
    monkeypatch.setattr(cifar, "CIFAR10_MD5", "0" * 32)
    with pytest.raises(UserError, match="MD5"):
        open_dataset("cifar10", root=str(root), download=True)
    assert not (root / cifar.BATCH_DIR).exists() and list(root.iterdir()) == []  # no leftovers
    monkeypatch.setattr(cifar, "CIFAR10_MD5", md5)
    with pytest.raises(UserError, match="not found"):
        open_dataset("cifar10", root=str(root))  # no download unless asked
    ds = open_dataset("cifar10", root=str(root), download=True)
    assert len(ds) == 50 and sorted(p.name for p in root.iterdir()) == [cifar.BATCH_DIR]
    monkeypatch.setattr(cifar, "CIFAR10_URL", (tmp_path / "gone.tar.gz").as_uri())
    assert len(open_dataset("cifar10", root=str(root), download=True)) == 50  # present: no download


def test_cifar_download_failure_is_a_user_error(tmp_path, monkeypatch):
    monkeypatch.setattr(cifar, "CIFAR10_URL", (tmp_path / "missing.tar.gz").as_uri())
    with pytest.raises(UserError, match="could not download CIFAR-10"):
        open_dataset("cifar10", root=str(tmp_path / "r"), download=True)


def test_cifar_archive_members_outside_the_batch_folder_are_ignored(tmp_path):
    archive = tmp_path / "a.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name in ("../escape.txt", "/abs.txt", f"{cifar.BATCH_DIR}/ok", "other/x"):
            info = tarfile.TarInfo(name)
            info.size = 2
            tar.addfile(info, io.BytesIO(b"hi"))
    with tarfile.open(archive) as tar:
        assert [m.name for m in cifar._safe_members(tar)] == [f"{cifar.BATCH_DIR}/ok"]


# ----------------------------------------------------------------------------- image folders

def _save(path: Path, im: Image.Image, **kw) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, **kw)


def test_folder_lists_sorted_recursively_and_skips_other_files(tmp_path):
    colours = {"b.png": (0, 0, 255), "a.jpg": (255, 0, 0), "sub/c.webp": (0, 255, 0), "sub/z/d.BMP": (9, 9, 9)}
    for name, c in colours.items():
        _save(tmp_path / name, Image.new("RGB", (8, 8), c), **({"quality": 100} if name.endswith("jpg") else {}))
    (tmp_path / "notes.txt").write_text("x")
    _save(tmp_path / ".hidden.png", Image.new("RGB", (8, 8)))
    (tmp_path / "sub" / "._d.png").write_bytes(b"AppleDouble junk")
    ds = open_dataset(str(tmp_path), 8)
    assert [p.relative_to(tmp_path).as_posix() for p in ds.files] == ["a.jpg", "b.png", "sub/c.webp", "sub/z/d.BMP"]
    assert ds.name == f"folder:{tmp_path.resolve()}" and len(ds) == 4
    for x, name in zip(ds, ["a.jpg", "b.png", "sub/c.webp", "sub/z/d.BMP"]):
        assert x.shape == (8, 8, 3) and np.abs(x.astype(int) - colours[name]).max() <= 3
    assert len(open_dataset(ds.name, 8)) == 4  # the name opens the same folder again
    assert len(open_dataset(str(tmp_path), 8, count=2)) == 2


def test_folder_modes_become_rgb(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[0, 0, 3] = 0      # fully transparent -> white
    rgba[0, 1, 3] = 255    # opaque -> its colour
    rgba[0, 2, 3] = 128    # half -> halfway to white
    _save(tmp_path / "01_rgba.png", Image.fromarray(rgba))
    _save(tmp_path / "02_l.png", Image.fromarray(np.full((4, 4), 77, np.uint8), "L"))
    la = np.zeros((4, 4, 2), np.uint8)
    la[..., 1] = 255
    la[0, 0, 1] = 0
    _save(tmp_path / "03_la.png", Image.fromarray(la))
    i16 = np.array([[0, 32768, 65535, 257]] * 4, np.uint16)
    _save(tmp_path / "04_i16.png", Image.fromarray(i16))
    _save(tmp_path / "05_one.png", Image.fromarray(np.eye(4, dtype=bool)))
    pal = Image.new("P", (4, 4), 1)
    pal.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    _save(tmp_path / "06_p.png", pal)
    ptr = Image.new("P", (4, 4), 1)
    ptr.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    ptr.putpixel((0, 0), 0)
    _save(tmp_path / "07_ptrans.png", ptr, transparency=0)
    ds = open_dataset(str(tmp_path), 4)
    assert ds.files[3].name == "04_i16.png" and Image.open(ds.files[3]).mode.startswith("I")
    x = [ds[i] for i in range(len(ds))]
    assert all(a.shape == (4, 4, 3) and a.dtype == np.uint8 for a in x)
    assert tuple(x[0][0, 0]) == (255, 255, 255) and tuple(x[0][0, 1]) == (200, 0, 0)
    assert tuple(x[0][0, 2]) == (round((200 * 128 + 255 * 127) / 255), 127, 127)
    assert (x[1] == 77).all()
    assert tuple(x[2][0, 0]) == (255, 255, 255) and tuple(x[2][1, 1]) == (0, 0, 0)
    assert list(x[3][0, :, 0]) == [0, 128, 255, 1] and (x[3][..., 0] == x[3][..., 2]).all()
    assert x[4][0, 0, 1] == 255 and x[4][0, 1, 1] == 0
    assert (x[5] == [10, 20, 30]).all()
    assert tuple(x[6][0, 0]) == (255, 255, 255) and tuple(x[6][1, 1]) == (10, 20, 30)


def test_folder_centre_crop_and_resize(tmp_path):
    img = np.zeros((40, 60, 3), np.uint8)
    img[:, :] = (0, 0, 255)
    img[:, 10:50] = (255, 0, 0)  # the centred 40 x 40 square
    _save(tmp_path / "wide.png", Image.fromarray(img))
    tall = np.zeros((61, 21, 3), np.uint8)
    tall[20:41] = (0, 255, 0)  # centred 21 x 21 square of a 21 x 61 image: rows 20..40
    _save(tmp_path / "tall.png", Image.fromarray(tall))
    assert [p.name for p in open_dataset(str(tmp_path), 8).files] == ["tall.png", "wide.png"]
    exact = open_dataset(str(tmp_path), 40)[1]
    assert (exact == (255, 0, 0)).all()
    small = open_dataset(str(tmp_path), 10)
    assert small[1].shape == (10, 10, 3) and (small[1] == (255, 0, 0)).all()  # no blue bleeds in
    assert (open_dataset(str(tmp_path), 21)[0] == (0, 255, 0)).all()
    up = open_dataset(str(tmp_path), 64)[0]
    assert up.shape == (64, 64, 3) and (np.abs(up.astype(int) - (0, 255, 0)) <= 1).all()


def test_folder_applies_exif_orientation(tmp_path):
    img = np.zeros((10, 20, 3), np.uint8)
    img[:, 10:] = 255  # left half black, right half white
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display": left half ends up on top
    _save(tmp_path / "rot.jpg", Image.fromarray(img), exif=exif, quality=95)
    x = open_dataset(str(tmp_path), 10)[0].astype(int)
    assert x[0].mean() < 60 and x[-1].mean() > 200


def test_folder_bad_files(tmp_path):
    _save(tmp_path / "a.png", Image.new("RGB", (16, 16), (1, 2, 3)))
    _save(tmp_path / "d.png", Image.new("RGB", (16, 16), (4, 5, 6)))
    good = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(good, "JPEG")
    (tmp_path / "b.jpg").write_bytes(good.getvalue()[: len(good.getvalue()) // 2])  # truncated JPEG
    png = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(png, "PNG")
    (tmp_path / "c.png").write_bytes(png.getvalue()[: len(png.getvalue()) // 2])  # truncated PNG
    (tmp_path / "e.webp").write_bytes(b"garbage")
    ds = open_dataset(str(tmp_path), 8)
    assert len(ds) == 5 and ds[0].shape == (8, 8, 3)
    with pytest.raises(UserError, match=r"b\.jpg.*skip"):
        ds[1]
    with pytest.raises(UserError, match=r"c\.png"):
        ds[2]
    with pytest.raises(UserError, match=r"e\.webp"):
        ds[4]
    ok = open_dataset(str(tmp_path), 8, skip_bad=True)
    assert [p.name for p in ok.files] == ["a.png", "d.png"]
    assert sorted(Path(p).name for p in ok.skipped) == ["b.jpg", "c.png", "e.webp"]
    assert len(ok.skipped_reasons) == 3 and tuple(ok[1][0, 0]) == (4, 5, 6)


def test_folder_user_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        open_dataset(str(tmp_path / "nope"))
    with pytest.raises(UserError, match="unknown dataset 'cifar100'"):
        open_dataset("cifar100")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no images"):
        open_dataset(str(tmp_path / "empty"))
    (tmp_path / "txt").mkdir()
    (tmp_path / "txt" / "a.txt").write_text("x")
    with pytest.raises(UserError, match="no images"):
        open_dataset(str(tmp_path / "txt"))
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.png").write_bytes(b"nope")
    with pytest.raises(UserError, match="all 1 image files.*unreadable"):
        open_dataset(str(tmp_path / "bad"), skip_bad=True)
    with pytest.raises(UserError, match="is a file"):
        open_dataset(str(tmp_path / "txt" / "a.txt"))
    with pytest.raises(UserError, match="no 'test' split"):
        open_dataset(str(tmp_path / "bad"), split="test")
    with pytest.raises(UserError, match="count=3"):
        open_dataset(str(tmp_path / "bad"), count=3)


def test_folder_is_picklable(tmp_path):
    _save(tmp_path / "a.png", Image.new("RGB", (30, 20), (10, 20, 30)))
    ds = open_dataset(str(tmp_path), 16)
    assert np.array_equal(pickle.loads(pickle.dumps(ds))[0], ds[0])


# ----------------------------------------------------------------------------- Fashion-MNIST

def _idx_bytes(arr: np.ndarray, code: int = 0x08) -> bytes:
    head = bytes([0, 0, code, arr.ndim]) + np.array(arr.shape, ">u4").tobytes()
    return head + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def _write_fashion(folder: Path, n_train: int = 6, n_test: int = 3, gz: bool = False) -> dict[str, np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, stem, n in (("train", "train-images-idx3-ubyte", n_train), ("test", "t10k-images-idx3-ubyte", n_test)):
        arr = np.random.default_rng(n).integers(0, 256, (n, 28, 28), dtype=np.uint8)
        raw = _idx_bytes(arr)
        if gz:
            (folder / (stem + ".gz")).write_bytes(gzip.compress(raw))
        else:
            (folder / stem).write_bytes(raw)
        out[split] = arr
    return out


@pytest.mark.parametrize("gz", [False, True])
def test_fashion_mnist_pads_and_replicates(tmp_path, gz):
    arrs = _write_fashion(tmp_path, gz=gz)
    ds = open_dataset("fashion-mnist", root=str(tmp_path))
    assert len(ds) == 6 and ds.resolution == 32 and ds.name == "fashion-mnist"
    x = ds[4]
    assert x.shape == (32, 32, 3) and x.dtype == np.uint8
    assert np.array_equal(x[2:30, 2:30, 1], arrs["train"][4])
    assert (x[..., 0] == x[..., 2]).all()
    border = np.ones((32, 32), bool)
    border[2:30, 2:30] = False
    assert (x[border] == 0).all()
    test = open_dataset("fashion_mnist", root=str(tmp_path), split="test")
    assert len(test) == 3 and np.array_equal(test[2][2:30, 2:30, 0], arrs["test"][2])
    big = open_dataset("fashion-mnist", 64, root=str(tmp_path), count=2)
    assert len(big) == 2 and big[1].shape == (64, 64, 3)
    assert len(pickle.dumps(ds)) < 10_000 and np.array_equal(pickle.loads(pickle.dumps(ds))[4], x)


def test_fashion_mnist_found_under_data_root(tmp_path, monkeypatch):
    monkeypatch.setenv("BNCR_DATA_ROOT", str(tmp_path))
    _write_fashion(tmp_path / "fashion-mnist", gz=True)
    assert len(open_dataset("fashion-mnist")) == 6


def test_idx_parser(tmp_path):
    a = np.arange(24, dtype=np.int16).reshape(2, 3, 4) - 5
    assert np.array_equal(parse_idx(_idx_bytes(a, 0x0B)), a)
    with pytest.raises(UserError, match="bad magic"):
        parse_idx(b"\x01\x02\x08\x03" + b"\x00" * 20, "f")
    with pytest.raises(UserError, match="unknown data type 0x07"):
        parse_idx(b"\x00\x00\x07\x01\x00\x00\x00\x01x", "f")
    good = _idx_bytes(np.zeros((3, 28, 28), np.uint8))
    with pytest.raises(UserError, match=r"damaged IDX file.*\(3, 28, 28\)"):
        parse_idx(good[:-1], "f")
    with pytest.raises(UserError, match="cut short"):
        parse_idx(good[:9], "f")
    p = tmp_path / "x.gz"
    p.write_bytes(gzip.compress(good)[:-8])
    with pytest.raises(UserError, match="cannot read IDX file"):
        read_idx(p)


def test_fashion_mnist_wrong_or_missing_files(tmp_path):
    with pytest.raises(UserError, match="apt-get install dataset-fashion-mnist"):
        open_dataset("fashion-mnist", root=str(tmp_path))
    labels = np.zeros(5, np.uint8)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(_idx_bytes(labels))
    with pytest.raises(UserError, match="does not hold images"):
        open_dataset("fashion-mnist", root=str(tmp_path))


DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.skipif(not (DEBIAN_FASHION / "t10k-images-idx3-ubyte.gz").is_file(),
                    reason="Debian package dataset-fashion-mnist is not installed (apt-get install dataset-fashion-mnist)")
def test_fashion_mnist_real_debian_files():
    ds = open_dataset("fashion-mnist", split="test")  # found in the system folder
    assert len(ds) == 10000 and ds.path.parent == DEBIAN_FASHION
    x = np.stack([ds[i] for i in range(0, 10000, 500)])
    assert x.shape == (20, 32, 32, 3) and (x[:, :2] == 0).all() and (x[:, :, -2:] == 0).all()
    assert 20 < x.mean() < 120 and x.max() == 255  # real clothes on black
    assert len(open_dataset("fashion-mnist", root=str(DEBIAN_FASHION))) == 60000


# ----------------------------------------------------------------------------- factory and grid

def test_factory_names_and_default_resolution(tmp_path):
    for spec in ("deadleaves", "Dead-Leaves", "cifar10", "CIFAR-10", "fashion-mnist", "fashion_mnist"):
        assert default_resolution(spec) == 32
    assert default_resolution(str(tmp_path)) == 128
    assert open_dataset("dead_leaves", count=3).resolution == 32
    with pytest.raises(UserError, match="split"):
        open_dataset("deadleaves", split="val")
    with pytest.raises(UserError, match="resolution"):
        open_dataset("deadleaves", resolution=2.5)
    _save(tmp_path / "a.png", Image.new("RGB", (200, 150)))
    assert open_dataset(str(tmp_path))[0].shape == (128, 128, 3)


def test_grid(tmp_path):
    imgs = np.stack([np.full((2, 3, 3), 10 * (k + 1), np.uint8) for k in range(5)])
    g = make_grid(imgs, nrow=3, padding=1)
    assert g.shape == (2 * 3 + 1, 3 * 4 + 1, 3)
    assert (g[1:3, 1:4] == 10).all() and (g[1:3, 5:8] == 20).all() and (g[4:6, 5:8] == 50).all()
    assert (g[4:6, 9:12] == 0).all() and (g[0] == 0).all()  # empty slot and padding
    out = save_grid(list(imgs), tmp_path / "sub" / "grid.png", nrow=3, padding=1)
    assert np.array_equal(np.asarray(Image.open(out)), g)
    assert sorted(p.name for p in out.parent.iterdir()) == ["grid.png"]  # no temp file left
    grey = save_grid(imgs[..., 0], tmp_path / "g.png", nrow=5, padding=0, scale=2)
    assert np.asarray(Image.open(grey)).shape == (4, 30, 3)
    with pytest.raises(UserError, match="uint8"):
        save_grid(imgs.astype(np.float32), tmp_path / "f.png")

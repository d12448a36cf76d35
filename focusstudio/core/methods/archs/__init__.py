"""Pure ``nn.Module`` networks of the deep methods, plus checkpoint loading.

Checkpoints come in three shapes, all read with ``torch.load(..., weights_only=True)``:

* ours, as written by the trainer: ``{"state_dict": ..., "arch": {"name": ..., ...}, ...}``;
* a plain state_dict with our key names;
* the authors' released state_dicts (legacy pickle ``.pkl``) — recognised by their key names and
  translated with the tables below. The authors' files are never shipped with the project.
"""

from __future__ import annotations

import pickle
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from focusstudio.core.errors import WeightsError
from focusstudio.core.methods.archs.gacn_arch import BoundaryFilterConfig, GACNNet
from focusstudio.core.methods.archs.sesf_arch import SESF_MEAN, SESF_STD, SESFNet

__all__ = [
    "SESF_MEAN",
    "SESF_STD",
    "GACNNet",
    "SESFNet",
    "build_network",
    "convert_official_state_dict",
    "is_official_state_dict",
    "load_network",
    "load_official_gacn",
    "load_official_sesf",
    "read_checkpoint",
]

# (pattern on the authors' key, replacement in our module tree). Groups are renumbered where the
# authors' numbering differs from ours (their ``conv_decode_1`` is our ``decoder.blocks.0``).
_SESF_RULES: tuple[tuple[str, str], ...] = (
    (r"^features\.0\.(weight|bias)$", r"encoder.blocks.0.conv.\1"),
    (r"^features\.2\.(.+)$", r"encoder.blocks.0.bn.\1"),
    (r"^se_f\.fc\.0\.weight$", r"encoder.se.0.fc1.weight"),
    (r"^se_f\.fc\.2\.weight$", r"encoder.se.0.fc2.weight"),
    (r"^conv_encode_([1-3])\.0\.(weight|bias)$", r"encoder.blocks.\1.conv.\2"),
    (r"^conv_encode_([1-3])\.2\.(.+)$", r"encoder.blocks.\1.bn.\2"),
    (r"^se_([1-3])\.fc\.0\.weight$", r"encoder.se.\1.fc1.weight"),
    (r"^se_([1-3])\.fc\.2\.weight$", r"encoder.se.\1.fc2.weight"),
    (r"^conv_decode_([1-4])\.0\.(weight|bias)$", r"decoder.blocks.{\1-1}.conv.\2"),
    (r"^conv_decode_([1-4])\.2\.(.+)$", r"decoder.blocks.{\1-1}.bn.\2"),
)

_GACN_RULES: tuple[tuple[str, str], ...] = (
    (r"^feature_extraction_conv([0-3])\.feature_extraction_conv\1_Conv2d\.(.+)$",
     r"feature_path.blocks.\1.conv.\2"),
    (r"^feature_extraction_conv([0-3])\.feature_extraction_conv\1_BatchNorm\.(.+)$",
     r"feature_path.blocks.\1.bn.\2"),
    (r"^se_([0-3])\.fc\.0\.weight$", r"feature_path.se.\1.fc1.weight"),
    (r"^se_([0-3])\.fc\.2\.weight$", r"feature_path.se.\1.fc2.weight"),
    # se_4 .. se_8 are the decision path's 7×7 spatial SE layers.
    (r"^se_([4-8])\.fc\.0\.weight$", r"decision_se.{\1-4}.conv.weight"),
    (r"^decision_path_conv([1-4])\.decision_path_conv\1_Conv2d\.(.+)$", r"decision_blocks.{\1-1}.conv.\2"),
    (r"^decision_path_conv([1-4])\.decision_path_conv\1_BatchNorm\.(.+)$", r"decision_blocks.{\1-1}.bn.\2"),
)

OFFICIAL_KEY_RULES: dict[str, tuple[tuple[str, str], ...]] = {"sesf": _SESF_RULES, "gacn": _GACN_RULES}

# A key that only the authors' files have, to recognise them.
_OFFICIAL_MARKERS = {
    "sesf": "se_f.fc.0.weight",
    "gacn": "feature_extraction_conv0.feature_extraction_conv0_Conv2d.weight",
}

_DECREMENT = re.compile(r"\{(\d+)-(\d+)\}")


def _translate(key: str, rules: tuple[tuple[str, str], ...]) -> str | None:
    for pattern, replacement in rules:
        if re.match(pattern, key):
            renamed = re.sub(pattern, replacement, key)
            return _DECREMENT.sub(lambda m: str(int(m.group(1)) - int(m.group(2))), renamed)
    return None


def is_official_state_dict(method: str, state: Mapping[str, Any]) -> bool:
    return _OFFICIAL_MARKERS[method] in state


def convert_official_state_dict(method: str, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The authors' state_dict with our key names; every key must be known (no silent drops)."""
    rules = OFFICIAL_KEY_RULES[method]
    converted: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for key, value in state.items():
        ours = _translate(key, rules)
        if ours is None:
            unknown.append(key)
        else:
            converted[ours] = value
    if unknown:
        raise WeightsError(f"unrecognised {method} checkpoint keys: {', '.join(unknown[:5])}")
    return converted


def build_network(method: str, arch: Mapping[str, Any] | None = None) -> nn.Module:
    """A fresh network for ``method`` built from a stored architecture config (or defaults)."""
    arch = dict(arch or {})
    if method == "sesf":
        return SESFNet(reduction=int(arch.get("reduction", 8)))
    if method == "gacn":
        bgf = BoundaryFilterConfig(**arch["bgf"]) if "bgf" in arch else BoundaryFilterConfig()
        return GACNNet(
            reduction=int(arch.get("reduction", 8)), se_kernel=int(arch.get("se_kernel", 7)), bgf=bgf
        )
    raise WeightsError(f"no network called {method!r}")


def read_checkpoint(path: str | Path) -> Any:
    """``torch.load`` with ``weights_only=True`` (never unpickles arbitrary objects)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError("weights file not found", path)
    try:
        with warnings.catch_warnings():  # torch warns about foreign pickle protocols: the error says it
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # corrupt file, foreign pickle, truncated download ...
        raise WeightsError(checkpoint_problem(error), path) from None


def checkpoint_problem(error: Exception) -> str:
    """One line saying why ``torch.load`` could not read a file (its own messages run to a
    dozen lines of advice that does not apply: weights are never unpickled as code here)."""
    text = str(error)
    if "Unsupported global" in text:
        found = re.search(r"GLOBAL (\S+)", text)
        name = f" ({found.group(1)})" if found else ""
        return f"holds Python objects besides tensors{name}; weights are read as plain tensors only"
    if isinstance(error, pickle.UnpicklingError) or "Weights only load failed" in text:
        return "not a PyTorch checkpoint (unreadable as saved tensors)"
    if "zip archive" in text or "central directory" in text:
        return "damaged or truncated checkpoint (its archive cannot be read)"
    lines = text.strip().splitlines()
    return f"cannot read weights ({type(error).__name__}: {lines[0] if lines else 'no details'})"


def check_finite_state(state: Mapping[str, Any], path: str | Path) -> None:
    """Refuse weights holding NaN or infinite values (a diverged training run, a damaged file)
    when they are loaded, naming the file: run with them, every output pixel would be NaN and
    the failure would surface only at the writer, minutes later, without the file's name."""
    damaged = [
        name for name, tensor in state.items()
        if isinstance(tensor, torch.Tensor) and tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())
    ]
    if damaged:
        more = f" and {len(damaged) - 1} more" if len(damaged) > 1 else ""
        raise WeightsError(
            f"holds NaN or infinite values (in {damaged[0]}{more}); the training that wrote it "
            "diverged or the file is damaged",
            path,
        )


def load_network(method: str, path: str | Path) -> tuple[nn.Module, str]:
    """Load ``path`` (our format, a plain state_dict or the authors' release) into a network in
    eval mode. Returns (network, format) with format in {"focusstudio", "state_dict", "official"}."""
    checkpoint = read_checkpoint(path)
    arch: Mapping[str, Any] | None = None
    if isinstance(checkpoint, Mapping) and "state_dict" in checkpoint:
        state = checkpoint["state_dict"]
        arch = checkpoint.get("arch")
        kind = "focusstudio"
        if isinstance(arch, str):
            # The trainer's layout (manifest.save_weights): {"arch": "<method>", "config": {...}}.
            if arch != method:
                raise WeightsError(f"these are {arch} weights, not {method}", path)
            stored = checkpoint.get("config")
            arch = dict(stored) if isinstance(stored, Mapping) else None
        if isinstance(arch, Mapping) and arch.get("name") not in (None, method):
            raise WeightsError(f"these are {arch.get('name')} weights, not {method}", path)
    elif isinstance(checkpoint, Mapping):
        state, kind = checkpoint, "state_dict"
    else:
        raise WeightsError(f"not a {method} checkpoint (a {type(checkpoint).__name__})", path)
    if not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"not a {method} checkpoint (the state_dict holds non-tensors)", path)
    check_finite_state(state, path)
    if is_official_state_dict(method, state):
        state, kind = convert_official_state_dict(method, state), "official"
    network = build_network(method, arch)
    # SESF's decoder is only needed for training; an encoder-only export is fine for fusion.
    check_state_fits(network, state, method, path, optional_prefixes=("decoder.",) if method == "sesf" else ())
    network.load_state_dict(state, strict=False)
    network.eval()
    return network, kind


def load_official_sesf(path: str | Path) -> SESFNet:
    """The authors' released SESF-Fuse ``.pkl`` in our :class:`SESFNet` (eval mode)."""
    network, _ = load_network("sesf", path)
    assert isinstance(network, SESFNet)
    return network


def load_official_gacn(path: str | Path) -> GACNNet:
    """The authors' released GACN ``.pkl`` in our :class:`GACNNet` (eval mode)."""
    network, _ = load_network("gacn", path)
    assert isinstance(network, GACNNet)
    return network


def check_state_fits(
    network: nn.Module, state: Mapping[str, Any], method: str, path: Path | None,
    optional_prefixes: tuple[str, ...] = (),
) -> None:
    """Raise a one-line :class:`WeightsError` naming the first key or shape of ``state`` that does
    not fit ``network`` (keys under ``optional_prefixes`` may be missing)."""
    expected = network.state_dict()
    missing = [k for k in expected if k not in state and not k.startswith(optional_prefixes)]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        detail = f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}"
        raise WeightsError(f"does not fit the {method} network ({detail})", path)
    for key, value in state.items():
        if tuple(value.shape) != tuple(expected[key].shape):
            shapes = f"{tuple(value.shape)} vs {tuple(expected[key].shape)}"
            raise WeightsError(f"does not fit the {method} network ({key}: {shapes})", path)

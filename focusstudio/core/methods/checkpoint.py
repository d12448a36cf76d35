"""The one checkpoint loader of the deep methods (fusion and training) and its one cache.

Checkpoints come in three shapes, all read with ``torch.load(..., weights_only=True)``
(:func:`read_checkpoint`: weights are never unpickled as code):

* ours, written by the trainer: ``{"arch": "<method>", "config": {...}, "state_dict": ...}`` —
  ``config`` holds the constructor arguments, so a narrower trained configuration rebuilds itself
  (``{"state_dict": ..., "arch": {"name": <method>, ...}}`` is read as well);
* a plain state_dict with our key names (default configuration, or the one its shapes imply:
  the spec's ``infer_arch``);
* an authors' release, recognised and translated by the spec's ``convert_official``.

What differs per method — the network builder, arch inference, the official key translation and
the keys a file may leave out — comes from the method's
:class:`~focusstudio.core.methods.registry.NetworkSpec`; everything else is here once: the finite
check, the fit check with one-line :class:`WeightsError` messages, the digest check, the cancel
hooks and the cache. Weights are found by :func:`focusstudio.core.weights.resolve_weights`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from focusstudio.core.errors import WeightsError
from focusstudio.core.lazy import lazy_import
from focusstudio.core.methods.registry import get_spec
from focusstudio.core.weights import WeightsChoice, check_digest, read_checkpoint, resolve_weights, stored_arch

if TYPE_CHECKING:
    import torch
    from torch import nn
else:
    torch = lazy_import("torch")


# ------------------------------------------------------------------------------------- reading
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


@dataclass(frozen=True)
class CheckpointState:
    """A checkpoint's weights in our key names, with the arch to build their network from."""

    state: dict[str, torch.Tensor]
    arch: dict[str, Any]
    kind: str  # "focusstudio", "state_dict" or "official"


def read_state(method: str, path: str | Path) -> CheckpointState:
    """The weights of ``method`` in ``path`` (any of the three shapes), checked to be tensors and
    finite, translated to our key names, with their arch (stored, official or inferred)."""
    path = Path(path)
    network = get_spec(method).network
    if network is None:
        raise WeightsError(f"method {method} has no network")
    checkpoint = read_checkpoint(path)
    if not isinstance(checkpoint, Mapping):
        raise WeightsError(f"not a {method} checkpoint (a {type(checkpoint).__name__})", path)
    arch: dict[str, Any] = {}
    if isinstance(checkpoint.get("state_dict"), Mapping):
        name, arch = stored_arch(checkpoint)
        if name not in (None, method):
            raise WeightsError(f"these are {name} weights, not {method}", path)
        state, kind = dict(checkpoint["state_dict"]), "focusstudio"
    else:
        state, kind = dict(checkpoint), "state_dict"
    if not state:
        raise WeightsError(f"not a {method} checkpoint (no tensors in its state dict)", path)
    if not all(isinstance(value, torch.Tensor) for value in state.values()):
        raise WeightsError(f"not a {method} checkpoint (the state_dict holds non-tensors)", path)
    check_finite_state(state, path)
    official = network.convert_official(state) if network.convert_official is not None else None
    if official is not None:
        state, official_arch = official
        arch, kind = {**official_arch, **arch}, "official"
    elif kind == "state_dict" and network.infer_arch is not None:
        arch = network.infer_arch(state)
    return CheckpointState(state, arch, kind)


# ------------------------------------------------------------------------------------- loading
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


def load_network(method: str, path: str | Path) -> tuple[nn.Module, str]:
    """The network of ``method`` filled from the file ``path`` (not cached), in eval mode on the
    CPU, and the checkpoint's shape: "focusstudio", "state_dict" or "official"."""
    path = Path(path)
    spec = get_spec(method)
    checkpoint = read_state(method, path)
    network = spec.build_network(checkpoint.arch)
    assert spec.network is not None  # read_state checked it
    check_state_fits(network, checkpoint.state, method, path, spec.network.optional_prefixes)
    # Fits: only optional keys (a training-only part) may be missing, so strict=False drops nothing.
    network.load_state_dict(checkpoint.state, strict=False)
    network.eval()
    return network, checkpoint.kind


@dataclass(frozen=True)
class LoadedNetwork:
    """A network read for a run, with where its weights came from."""

    network: nn.Module  # eval mode, on the CPU (callers move it)
    choice: WeightsChoice
    kind: str  # "focusstudio", "state_dict" or "official"

    @property
    def label(self) -> str:
        """Provenance of the weights (shown to the user, and keying cached analyses)."""
        return self.choice.label + (" [authors' release]" if self.kind == "official" else "")


# Loaded networks, keyed by (method, path, size, mtime): a GUI re-run does not reload the file.
_CACHE: dict[tuple[str, str, int, int], LoadedNetwork] = {}
_CACHE_SIZE = 8


def load_method_network(method: str, weights: str | Path | None = None) -> LoadedNetwork:
    """The network of ``method`` with ``weights`` (a file, installed weights' name, or None for the
    shipped ones), digest-checked, with cancel checks, cached while the file is unchanged."""
    choice = resolve_weights(method, weights)
    stat = choice.path.stat()
    key = (method, str(choice.path.resolve()), stat.st_size, stat.st_mtime_ns)
    cached = _CACHE.get(key)
    if cached is not None:
        return cached
    check_digest(choice)
    network, kind = load_network(method, choice.path)
    add_cancel_checks(network)
    if len(_CACHE) >= _CACHE_SIZE:
        _CACHE.clear()
    loaded = _CACHE[key] = LoadedNetwork(network, choice, kind)
    return loaded


def clear_cache() -> None:
    """Forget every loaded network (tests; a host that wants the memory back)."""
    _CACHE.clear()


def _check_cancelled_hook(_module: Any, _inputs: Any) -> None:
    from focusstudio.core.progress import check_cancelled

    check_cancelled()


def add_cancel_checks(network: Any) -> None:
    """Check the cancel scope (:func:`focusstudio.core.progress.check_cancelled`) before every
    layer: a forward pass over a megapixel frame takes seconds on a CPU, and a Cancel must not wait
    for it. Outside a scope the check is a no-op; it never touches the arithmetic."""
    modules = getattr(network, "modules", None)
    if modules is None:
        return
    for module in modules():
        if not any(True for _ in module.children()):
            module.register_forward_pre_hook(_check_cancelled_hook)

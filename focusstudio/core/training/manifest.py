"""Weights files and their manifest, both written by code (never by hand).

A weights file is ``torch.save({'arch': name, 'config': {...}, 'state_dict': {...}})`` — plain
containers and tensors, so it loads with ``torch.load(path, weights_only=True)``. The manifest
(``manifest.json`` next to the weights by default) maps each weights file name to a description of
how it was made; it is updated read-modify-write under a lock and replaced atomically, so two
training processes can share one manifest. The lock is taken on the manifest's folder itself
(``flock`` on the directory), so no ``manifest.json.lock`` file is ever left next to the user's
weights; only where directories cannot be locked (Windows) a lock file exists while the update runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import torch

from focusstudio.core.errors import OutputError, WeightsError
from focusstudio.core.io.output_policy import OutputPlan
from focusstudio.core.io.writers import atomic_output

MANIFEST_FORMAT = 1


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def atomic_torch_save(payload: Any, path: str | Path) -> Path:
    """``torch.save`` through :func:`~focusstudio.core.io.atomic_output` (never half a file)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(target) as stream:
        torch.save(payload, stream)
    return target


def atomic_write_text(text: str, path: str | Path) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(target, text=True) as stream:
        stream.write(text)
    return target


@contextlib.contextmanager
def _locked(path: Path, timeout_s: float = 30.0) -> Iterator[None]:
    """Exclusive advisory lock for updating ``path``: ``flock`` on its folder where possible,
    else an exclusive-create ``<path>.lock`` file removed afterwards."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:
        fcntl = None  # type: ignore[assignment]
    if fcntl is not None:
        folder = os.open(path.parent, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            fcntl.flock(folder, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(folder, fcntl.LOCK_UN)
        finally:
            os.close(folder)
        return
    lock_path = path.with_name(path.name + ".lock")
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            descriptor = os.open(lock_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            break
        except FileExistsError:
            if time.monotonic() > deadline:
                raise OutputError("the manifest is locked by another process", lock_path) from None
            time.sleep(0.05)
    try:
        yield
    finally:
        os.close(descriptor)
        with contextlib.suppress(OSError):
            os.unlink(lock_path)


def read_manifest(path: str | Path) -> dict[str, Any]:
    """The manifest as a dict ``{"format": 1, "weights": {name: entry}}`` (empty if absent)."""
    manifest_path = Path(path)
    if not manifest_path.is_file():
        return {"format": MANIFEST_FORMAT, "weights": {}}
    try:
        data = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:  # ValueError: not JSON, not even text
        raise WeightsError("cannot read the weights manifest (not a JSON text file)" if isinstance(error, ValueError)
                           else f"cannot read the weights manifest ({error})", manifest_path) from error
    if not isinstance(data, dict) or not isinstance(data.get("weights"), dict):
        raise WeightsError("not a FocusStudio weights manifest", manifest_path)
    return data


def manifest_key(weights_path: str | Path, manifest_path: str | Path) -> str:
    """Entry name: the weights path relative to the manifest's folder when inside it."""
    weights = Path(weights_path).resolve()
    folder = Path(manifest_path).resolve().parent
    try:
        return weights.relative_to(folder).as_posix()
    except ValueError:
        return str(weights)


def portable_name(path: str | Path | None) -> str | None:
    """What a manifest records of a local file or folder (training data, run folder, initial
    weights): its name only. The manifest ships with the weights, where this machine's absolute
    paths mean nothing (and would disclose its folder layout)."""
    if path is None:
        return None
    return Path(path).name or str(path)


def update_manifest(manifest_path: str | Path, key: str, entry: dict[str, Any]) -> dict[str, Any]:
    """Set ``weights[key] = entry`` (read-modify-write under a lock, atomic replace)."""
    path = Path(manifest_path)
    with _locked(path):
        data = read_manifest(path)
        data["format"] = MANIFEST_FORMAT
        data["weights"][key] = entry
        data["weights"] = dict(sorted(data["weights"].items()))
        atomic_write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", path)
    return data


def edit_manifest(manifest_path: str | Path, edit: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
    """Apply ``edit`` to the manifest dict (e.g. remove or rename entries) under the same lock
    and atomic replace as :func:`update_manifest`."""
    path = Path(manifest_path)
    with _locked(path):
        data = read_manifest(path)
        data["format"] = MANIFEST_FORMAT
        edit(data)
        data["weights"] = dict(sorted(data["weights"].items()))
        atomic_write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", path)
    return data


def save_weights(
    path: str | Path, arch: str, config: dict[str, Any], state_dict: dict[str, torch.Tensor],
    *, overwrite: bool = True, protected: Iterable[str | Path | None] = (),
) -> str:
    """Write a weights file atomically and return its sha256.

    With ``overwrite=False`` it goes through the output policy: never replaces an existing file
    (published with a no-clobber link), never one of ``protected``.
    """
    payload = {"arch": arch, "config": config, "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()}}
    if overwrite and not protected:
        atomic_torch_save(payload, path)
    else:
        with OutputPlan(protected, force=overwrite) as plan:
            plan.folder(Path(path).parent, "the weights")
            plan.file(path, "the weights")
            with plan.open(path, "the weights") as stream:
                torch.save(payload, stream)
            plan.commit()
    return sha256_of(path)


def load_weights(path: str | Path) -> dict[str, Any]:
    """Read a weights file written by :func:`save_weights` (``weights_only=True``)."""
    from focusstudio.core.weights import read_checkpoint  # the one reader: one-line reasons

    weights_path = Path(path)
    payload = read_checkpoint(weights_path)
    if not isinstance(payload, dict) or "state_dict" not in payload or "arch" not in payload:
        raise WeightsError("not a FocusStudio weights file (expected arch, config, state_dict)", weights_path)
    return payload

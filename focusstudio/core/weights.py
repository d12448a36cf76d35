"""Finding, checking and loading the weights of the deep methods.

Our shipped weights are ``weights/<method>.pt`` (see :func:`focusstudio.resources.weights_dir`:
source checkout, frozen app or ``FOCUSSTUDIO_WEIGHTS_DIR``) with an entry in
``weights/manifest.json`` written by the trainer. A user may pass any compatible checkpoint
instead (``--weights PATH`` / ``RunContext.weights``), including the authors' released files.
Everything is read with ``torch.load(..., weights_only=True)`` by :func:`read_checkpoint` here;
the one checkpoint loader, :mod:`focusstudio.core.methods.checkpoint`, builds and caches the
networks from what it reads.

User-trained weights (the training wizard, or any weights file the user installs) live in the
user data folder, ``platformdirs.user_data_dir("FocusStudio")/weights/<name>.pt``, never in the
install folder, with their entries in ``manifest.json`` there (the trainer's manifest format).
:func:`list_installed_weights` lists shipped and user weights by name, and every ``weights``
argument (``--weights``, ``run_fusion(weights=...)``, the window's weights choice) accepts such a
name as well as a path: :func:`resolve_weights` resolves it.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import pickle
import re
import shutil
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from focusstudio.core.errors import InputError, WeightsError
from focusstudio.core.lazy import lazy_import

if TYPE_CHECKING:
    import torch
else:
    torch = lazy_import("torch")

MANIFEST_NAME = "manifest.json"


@dataclass(frozen=True)
class WeightsChoice:
    """Which checkpoint a run uses and why."""

    path: Path
    shipped: bool  # True = our default weights from the weights folder
    sha256: str | None = None  # expected digest from the manifest, when it has one
    name: str | None = None  # set when the weights were chosen by their installed name

    @property
    def label(self) -> str:
        if self.shipped:
            return f"{self.path.name} (shipped)"
        return f"{self.name} (user weights)" if self.name else str(self.path)


def default_weights_dir() -> Path:
    from focusstudio.resources import weights_dir

    return weights_dir()


def default_weights_path(method: str) -> Path:
    return default_weights_dir() / f"{method}.pt"


def read_manifest(folder: Path) -> dict[str, Any]:
    """The manifest in ``folder`` ({} when there is none); a corrupt one is an error."""
    path = folder / MANIFEST_NAME
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise WeightsError(f"cannot read the weights manifest ({error})", path) from None
    return data if isinstance(data, dict) else {}


def manifest_entry(manifest: Mapping[str, Any], method: str, filename: str) -> dict[str, Any] | None:
    """The manifest entry of ``method``/``filename``.

    Accepted layouts (the trainer owns the format): ``{"sesf": {...}}``, ``{"weights": {"sesf":
    {...}}}`` or a list of entries under ``"weights"``/``"entries"`` carrying ``method``/``file``.
    """
    containers: list[Any] = [manifest, *(manifest.get(k) for k in ("weights", "entries", "methods"))]
    for container in containers:
        if isinstance(container, Mapping):
            for key in (method, filename):
                entry = container.get(key)
                if isinstance(entry, Mapping):
                    return dict(entry)
        if isinstance(container, list):
            for entry in container:
                if not isinstance(entry, Mapping):
                    continue
                names = {str(entry.get(k)) for k in ("method", "name", "file", "filename", "path")}
                if method in names or filename in names or any(n.endswith("/" + filename) for n in names):
                    return dict(entry)
    return None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve_weights(method: str, override: str | Path | None = None) -> WeightsChoice:
    """The checkpoint to use: ``override`` (a file, or the name of installed weights of ``method``)
    if given, else the shipped ``weights/<method>.pt``, else the user weights made the method's
    default (:func:`set_default_user_weights`).

    Raises :class:`WeightsError` with a one-line reason when nothing usable is found.
    """
    if override is not None:
        path = Path(override).expanduser()
        if path.is_file():
            return WeightsChoice(path, shipped=False)
        installed = find_installed_weights(method, str(override)) if _looks_like_name(str(override)) else None
        if installed is not None:
            return installed.choice()
        names = [w.name for w in list_installed_weights(method)]
        known = f"; installed {method} weights: {', '.join(names)}" if names else ""
        raise WeightsError(f"weights file not found (and no installed {method} weights of that name{known})", path)
    folder = default_weights_dir()
    path = folder / f"{method}.pt"
    if not path.is_file():
        # No shipped weights: the user's own are the default only when the user made them so (a
        # short, unusable training run once silently became UFA's default).
        chosen = default_user_weights(method)
        if chosen is not None:
            return chosen.choice()
        user = [w.name for w in list_installed_weights(method) if w.source == "user"]
        if user:
            raise WeightsError(
                f"no default {method} weights: pass --weights NAME (installed: {', '.join(user)}) or make yours"
                f" the default (focusstudio window: Weights → Manage… → Make default)"
            )
        raise WeightsError(
            f"weights missing: weights/{method}.pt (train with focusstudio train --method {method} ...,"
            " or pass --weights PATH|NAME)"
        )
    entry = manifest_entry(read_manifest(folder), method, path.name)
    expected = entry.get("sha256") if entry else None
    return WeightsChoice(path, shipped=True, sha256=str(expected) if expected else None)


def check_digest(choice: WeightsChoice) -> None:
    """Fail when the manifest records a sha256 and the file does not match it."""
    if choice.sha256 is None:
        return
    actual = sha256_of(choice.path)
    if actual.lower() != choice.sha256.lower():
        raise WeightsError(
            f"sha256 mismatch with {MANIFEST_NAME} (file {actual[:12]}…, manifest {choice.sha256[:12]}…)",
            choice.path,
        )


def weights_availability(method: str, override: str | Path | None = None) -> tuple[bool, str]:
    """(can run, reason) without loading the network; installed user weights make a method usable
    (chosen by name) even when none is its default."""
    try:
        resolve_weights(method, override)
    except WeightsError as error:
        if override is None and any(w.source == "user" for w in list_installed_weights(method)):
            return True, ""
        return False, str(error)
    return True, ""


# ============================================================================ installed weights
USER_WEIGHTS_FOLDER = "weights"
WEIGHTS_SUFFIX = ".pt"
#: Names become file names: letters, digits, space, dot, dash, underscore; no path separators.
_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$")

WeightsSource = Literal["shipped", "user"]


def user_data_dir() -> Path:
    """FocusStudio's per-user data folder (the trainer keeps its runs there too)."""
    import platformdirs

    return Path(platformdirs.user_data_dir("FocusStudio", appauthor=False))


def user_weights_dir() -> Path:
    """Where user-trained weights and their ``manifest.json`` live."""
    return user_data_dir() / USER_WEIGHTS_FOLDER


@dataclass(frozen=True)
class InstalledWeights:
    """Weights that can be chosen by name: shipped with FocusStudio or trained/installed by the user."""

    name: str
    method: str
    path: Path
    source: WeightsSource
    entry: dict[str, Any] | None = field(default=None, compare=False, hash=False)

    @property
    def label(self) -> str:
        return f"{self.name} (shipped)" if self.source == "shipped" else f"{self.name} (yours)"

    @property
    def summary(self) -> str:
        """One line from the manifest: how long it was trained, when, and its validation score."""
        entry = self.entry or {}
        parts: list[str] = []
        if entry.get("steps"):
            parts.append(f"{entry['steps']} steps")
        if entry.get("init_weights"):
            parts.append(f"fine-tuned from {Path(str(entry['init_weights'])).stem}")
        metric = entry.get("validation_primary_metric")
        validation = entry.get("validation")
        if isinstance(validation, Mapping) and metric in validation:
            parts.append(f"validation {metric} {float(validation[metric]):.4g}")
        date = entry.get("installed") or entry.get("date")
        if date:
            parts.append(str(date)[:10])
        return ", ".join(parts)

    def choice(self) -> WeightsChoice:
        expected = (self.entry or {}).get("sha256")
        return WeightsChoice(self.path, shipped=self.source == "shipped",
                             sha256=str(expected) if expected else None, name=self.name)


def _looks_like_name(text: str) -> bool:
    return bool(text) and "/" not in text and "\\" not in text and not text.startswith("~")


def _folder_entries(manifest: Mapping[str, Any]) -> Mapping[str, Any]:
    weights = manifest.get("weights")
    return weights if isinstance(weights, Mapping) else manifest


# ------------------------------------------------------------ reading a weights file (no network)
# Here, below the methods, so that listing installed weights and the manifest writer read files
# with the same one-line reasons as the loader (methods.checkpoint) without importing it.
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


def stored_arch(checkpoint: Mapping[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """(method name, constructor arguments) of a checkpoint of ours.

    The trainer writes ``{"arch": "<method>", "config": {...}}``
    (:func:`focusstudio.core.training.manifest.save_weights`); ``{"arch": {"name": ..., ...}}`` is
    accepted too. Builders pick the keys they know, so bookkeeping entries may stay.
    """
    stored = checkpoint.get("arch")
    if isinstance(stored, Mapping):
        config = dict(stored)
        return (str(config["name"]) if config.get("name") is not None else None), config
    config = dict(checkpoint["config"]) if isinstance(checkpoint.get("config"), Mapping) else {}
    name = stored if isinstance(stored, str) else config.get("method")
    return (str(name) if name is not None else None), config


# (path, size, mtime) → arch of files without a manifest entry (reading them is not free).
_ARCH_CACHE: dict[tuple[str, int, int], str | None] = {}


def _arch_of_file(path: Path) -> str | None:
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _ARCH_CACHE:
        try:
            payload = read_checkpoint(path)
        except WeightsError:  # unreadable or foreign file: not listed
            payload = None
        arch = stored_arch(payload)[0] if isinstance(payload, Mapping) else None
        _ARCH_CACHE[key] = arch
    return _ARCH_CACHE[key]


def _scan_weights_folder(folder: Path, source: WeightsSource) -> list[InstalledWeights]:
    if not folder.is_dir():
        return []
    try:
        entries = _folder_entries(read_manifest(folder))
    except WeightsError:
        entries = {}  # a damaged manifest must not hide the weights themselves
    found = []
    for path in sorted(folder.glob(f"*{WEIGHTS_SUFFIX}")):
        if not path.is_file() or path.name.startswith("."):
            continue
        entry = entries.get(path.name)
        entry = dict(entry) if isinstance(entry, Mapping) else None
        method = None
        if entry is not None:
            method = entry.get("arch") if isinstance(entry.get("arch"), str) else entry.get("method")
        if not method:
            method = _arch_of_file(path)
        if method:
            found.append(InstalledWeights(path.stem, str(method), path, source, entry))
    return found


def list_installed_weights(method: str | None = None) -> list[InstalledWeights]:
    """Shipped then user weights (of ``method``, or all), each usable by its name."""
    shipped = _scan_weights_folder(default_weights_dir(), "shipped")
    user = _scan_weights_folder(user_weights_dir(), "user")
    every = shipped + sorted(user, key=lambda w: w.name.casefold())
    return [w for w in every if method is None or w.method == method]


def find_installed_weights(method: str | None, name: str) -> InstalledWeights | None:
    """Installed weights called ``name`` (``name.pt`` accepted too); shipped ones win a tie."""
    wanted = name[: -len(WEIGHTS_SUFFIX)] if name.endswith(WEIGHTS_SUFFIX) else name
    for weights in list_installed_weights(method):
        if weights.name == wanted:
            return weights
    return None


def validate_weights_name(name: str) -> str:
    """The cleaned name, or an InputError saying what is wrong with it."""
    cleaned = name.strip()
    if cleaned.endswith(WEIGHTS_SUFFIX):
        cleaned = cleaned[: -len(WEIGHTS_SUFFIX)]
    if not _NAME_PATTERN.match(cleaned):
        raise InputError(
            f"weights name {name!r}: use 1–64 letters, digits, spaces, dots, dashes or underscores "
            "(starting with a letter or digit)"
        )
    if any(w.name == cleaned for w in _scan_weights_folder(default_weights_dir(), "shipped")):
        raise InputError(f"weights name {cleaned!r} is taken by shipped weights; choose another")
    return cleaned


def _copy_atomically(source: Path, target: Path) -> None:
    from focusstudio.core.io.writers import atomic_output

    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(target) as stream, source.open("rb") as original:
        shutil.copyfileobj(original, stream, 1 << 20)


def install_user_weights(
    source: str | Path,
    name: str,
    method: str,
    entry: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> InstalledWeights:
    """Copy a weights file into the user weights folder as ``<name>.pt`` and record its manifest
    entry (``entry``, e.g. the trainer's, plus the name, digest and install date)."""
    from focusstudio.core.training.manifest import load_weights, update_manifest

    source_path = Path(source)
    cleaned = validate_weights_name(name)
    payload = load_weights(source_path)  # also rejects files that are not FocusStudio weights
    stored = payload.get("arch")
    arch = stored.get("name") if isinstance(stored, Mapping) else stored
    if arch not in (None, method):
        raise WeightsError(f"these are {arch} weights, not {method}", source_path)
    folder = user_weights_dir()
    target = folder / f"{cleaned}{WEIGHTS_SUFFIX}"
    existing = find_installed_weights(None, cleaned)
    if existing is not None and not overwrite:
        raise InputError(f"weights named {cleaned!r} already exist ({existing.method}); choose another name")
    if source_path.resolve() != target.resolve():
        _copy_atomically(source_path, target)
    record = {
        **dict(entry or {}), "arch": method, "name": cleaned, "sha256": sha256_of(target),
        "bytes": target.stat().st_size,
        "installed": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    update_manifest(folder / MANIFEST_NAME, target.name, record)
    return InstalledWeights(cleaned, method, target, "user", record)


def _user_weights_named(name: str) -> InstalledWeights:
    found = find_installed_weights(None, name)
    if found is None:
        raise InputError(f"no installed weights named {name!r}")
    if found.source != "user":
        raise InputError(f"{name!r} are shipped weights; only your own weights can be renamed or deleted")
    return found


def rename_user_weights(name: str, new_name: str) -> InstalledWeights:
    """Rename user weights (file and manifest entry)."""
    from focusstudio.core.training.manifest import edit_manifest

    weights = _user_weights_named(name)
    cleaned = validate_weights_name(new_name)
    if cleaned == weights.name:
        return weights
    if find_installed_weights(None, cleaned) is not None:
        raise InputError(f"weights named {cleaned!r} already exist; choose another name")
    target = weights.path.with_name(f"{cleaned}{WEIGHTS_SUFFIX}")
    os.replace(weights.path, target)
    entry = {**(weights.entry or {}), "arch": weights.method, "name": cleaned}

    def rename_entry(data: dict[str, Any]) -> None:
        data["weights"].pop(weights.path.name, None)
        data["weights"][target.name] = entry

    edit_manifest(weights.path.parent / MANIFEST_NAME, rename_entry)
    if _read_defaults().get(weights.method) == weights.name:  # the default follows its weights
        set_default_user_weights(weights.method, cleaned)
    return InstalledWeights(cleaned, weights.method, target, "user", entry)


def delete_user_weights(name: str) -> None:
    """Delete user weights (file and manifest entry); shipped weights cannot be deleted."""
    from focusstudio.core.training.manifest import edit_manifest

    weights = _user_weights_named(name)
    weights.path.unlink(missing_ok=True)
    edit_manifest(weights.path.parent / MANIFEST_NAME, lambda data: data["weights"].pop(weights.path.name, None))


# ============================================================================ the user's default weights
DEFAULTS_NAME = "defaults.json"


def _read_defaults() -> dict[str, str]:
    path = user_weights_dir() / DEFAULTS_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def default_user_weights(method: str) -> InstalledWeights | None:
    """The user weights the user made ``method``'s default (used when no weights are shipped)."""
    name = _read_defaults().get(method)
    found = find_installed_weights(method, name) if name else None
    return found if found is not None and found.source == "user" else None


def set_default_user_weights(method: str, name: str | None) -> None:
    """Make installed user weights ``name`` the default of ``method`` (None: no user default)."""
    from focusstudio.core.io.writers import atomic_output

    defaults = _read_defaults()
    if name is None:
        defaults.pop(method, None)
    else:
        found = find_installed_weights(method, name)
        if found is None or found.source != "user":
            raise InputError(f"no installed {method} weights of yours named {name!r}")
        defaults[method] = found.name
    folder = user_weights_dir()
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_output(folder / DEFAULTS_NAME) as stream:
        stream.write(json.dumps(defaults, indent=2).encode("utf-8"))

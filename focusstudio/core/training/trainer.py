"""The training loop shared by every trainable method, the CLI and the training wizard.

:func:`train` and :func:`resume` are generators: they yield a :class:`TrainEvent` after every
step (and for validation, checkpoints, exports, pause) and return a :class:`TrainResult`. Drive
them from a worker thread; a :class:`~focusstudio.core.progress.CancelToken` stops the run cleanly
(a checkpoint is written first) and a :class:`PauseToken` suspends it between steps.

Reproducibility: the batch of step s is a pure function of (seed, s) (see ``datasets``), the
learning rate is a pure function of s, and a checkpoint holds the model, optimizer state, RNG state,
loss history and best weights; so ``resume`` continues exactly where an uninterrupted run would be.
"""

from __future__ import annotations

import datetime as _dt
import math
import threading
import time
import uuid
from collections.abc import Generator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from focusstudio.core.device import resolve_device
from focusstudio.core.errors import FocusStudioError, InputError
from focusstudio.core.io.output_policy import OutputPlan
from focusstudio.core.progress import CancelToken
from focusstudio.core.training.datasets import (
    PairFolderDataset,
    SyntheticPairDataset,
    load_batch,
    scan_pair_folder,
    split_train_validation,
)
from focusstudio.core.training.manifest import (
    atomic_torch_save,
    manifest_key,
    portable_name,
    read_manifest,
    save_weights,
    update_manifest,
)
from focusstudio.core.training.recipe import (
    Batch,
    TrainRecipe,
    count_parameters,
    get_recipe,
    load_initial_state,
)
from focusstudio.core.training.synthesis import (
    IMAGE_SUFFIXES,
    TRAIN_STREAM,
    VALIDATION_STREAM,
    ImageSource,
    PairSynthesizer,
    scan_image_folder,
)

CHECKPOINT_FORMAT = 1
CHECKPOINT_NAME = "checkpoint.pt"
DATA_FORMATS = ("auto", "images", "pairs")

#: Config fields a resumed run may change without breaking exact continuation.
RESUMABLE_OVERRIDES = frozenset(
    {"steps", "device", "out", "manifest", "run_dir", "data", "masks", "segs", "checkpoint_every",
     "checkpoint_interval_s", "export_every", "log_every", "val_every"}
)


class TrainingError(FocusStudioError):
    """Training cannot continue (diverged loss, unusable checkpoint...)."""


@dataclass
class TrainConfig:
    """Everything that defines a training run (stored in every checkpoint and the manifest).

    Build it with :func:`make_config`, which fills the method's defaults for unset fields.
    """

    method: str
    data: str
    out: str | None = None
    manifest: str | None = None
    run_dir: str | None = None
    masks: str | None = None
    segs: str | None = None
    steps: int = 1000
    batch_size: int = 16
    crop: int = 156
    resize: int | None = 256
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    lr_schedule: dict[str, Any] = field(default_factory=lambda: {"kind": "constant"})
    seed: int = 1
    device: str = "auto"
    val_fraction: float = 0.1
    val_every: int = 250
    val_samples: int = 64
    checkpoint_every: int = 0
    checkpoint_interval_s: float = 120.0
    export_every: int = 0
    log_every: int = 10
    synthesis: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    min_background_sharpness_ratio: float = 0.2
    #: Start from these weights (a file or the name of installed weights) instead of a random
    #: initialisation: fine-tuning. Only read when a run starts, never on resume.
    init_weights: str | None = None
    #: ``auto``: what the recipe trains on; ``pairs``: a folder of real ``<scene>/1.*, 2.*, gt.*``
    #: (plus ``mask.*`` for methods that learn a decision map) instead of synthesized pairs.
    data_format: str = "auto"
    #: A random name given when a run starts and kept on resume: the manifest records it, so a
    #: resumed run recognises its own earlier export (and may replace it) without the manifest
    #: holding this machine's paths.
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["betas"] = list(self.betas)
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        config = cls(**{k: v for k, v in values.items() if k in known})
        config.betas = (float(config.betas[0]), float(config.betas[1]))
        return config


def make_config(method: str, data: str | Path, **overrides: Any) -> TrainConfig:
    """A config with ``method``'s defaults, then ``overrides`` (None values are ignored;
    ``resize=0`` means keep the images' size)."""
    recipe = get_recipe(method)
    defaults = recipe.defaults()
    values: dict[str, Any] = {
        "method": method, "data": str(data), "steps": defaults.steps, "batch_size": defaults.batch_size,
        "crop": defaults.crop, "resize": defaults.resize, "lr": defaults.lr, "betas": defaults.betas,
        "lr_schedule": dict(defaults.lr_schedule), "val_every": defaults.val_every,
        "val_samples": defaults.val_samples, "options": dict(defaults.options),
    }
    for key, value in overrides.items():
        if value is None:
            continue
        if key == "options":
            values["options"] = {**values["options"], **value}
        elif key == "resize" and value == 0:
            values["resize"] = None
        else:
            values[key] = value
    config = TrainConfig.from_dict(values)
    validate_config(config)
    return config


def validate_config(config: TrainConfig) -> None:
    """One-line InputErrors for settings that cannot work."""
    checks = [
        (config.steps >= 1, f"steps must be ≥ 1, got {config.steps}"),
        (config.batch_size >= 1, f"batch size must be ≥ 1, got {config.batch_size}"),
        (config.crop >= 8, f"crop must be ≥ 8 pixels, got {config.crop}"),
        (config.resize is None or config.resize >= config.crop,
         f"crop {config.crop} is larger than the resize {config.resize}"),
        (config.lr > 0, f"learning rate must be > 0, got {config.lr}"),
        (0.0 <= config.val_fraction < 1.0, f"validation fraction must be in [0, 1), got {config.val_fraction}"),
        (config.val_every >= 1, f"validation interval must be ≥ 1 step, got {config.val_every}"),
        (config.data_format in DATA_FORMATS,
         f"data format must be one of {', '.join(DATA_FORMATS)}, got {config.data_format!r}"),
    ]
    for ok, message in checks:
        if not ok:
            raise InputError(message)


def lr_factor(schedule: dict[str, Any], step: int, steps_per_epoch: float, total_steps: int) -> float:
    """Learning-rate multiplier at ``step`` (0-based).

    Kinds: ``constant``; ``epoch_step`` (× gamma every ``every`` epochs: SESF/GACN's 0.8 per 2
    epochs); ``milestones`` (× gamma at each listed step: two-stream's /10 at 50k and 150k);
    ``epoch_milestones`` (the same in epochs: UFA's /10 every 200 epochs via ``every``);
    ``linear_tail`` (constant, then linear decay to ``final`` over the last ``tail`` steps).
    """
    kind = schedule.get("kind", "constant")
    gamma = float(schedule.get("gamma", 0.1))
    if kind == "constant":
        return 1.0
    if kind == "epoch_step":
        epoch = step / max(steps_per_epoch, 1e-12)
        return gamma ** math.floor(epoch / float(schedule.get("every", 1)) + 1e-9)
    if kind == "milestones":
        return gamma ** sum(step >= int(m) for m in schedule.get("milestones", []))
    if kind == "linear_tail":
        tail = int(schedule.get("tail", total_steps // 10))
        start = total_steps - tail
        if step < start or tail <= 0:
            return 1.0
        final = float(schedule.get("final", 0.0))
        return 1.0 - (1.0 - final) * (step - start) / tail
    raise InputError(f"unknown learning-rate schedule {kind!r}")


class PauseToken:
    """Thread-safe pause switch, checked by the trainer between steps."""

    def __init__(self) -> None:
        self._paused = threading.Event()
        self._running = threading.Event()
        self._running.set()

    def pause(self) -> None:
        self._running.clear()
        self._paused.set()

    def resume(self) -> None:
        self._paused.clear()
        self._running.set()

    @property
    def paused(self) -> bool:
        return self._paused.is_set()

    def wait_until_resumed(self, timeout_s: float) -> bool:
        return self._running.wait(timeout_s)


@dataclass(frozen=True)
class TrainEvent:
    """One progress report of a training run.

    ``phase``: prepare, train, validate, checkpoint, export, paused, resumed, done, cancelled.
    ``step`` counts completed optimisation steps; ``losses`` are those of the latest step; ``val``
    is set on validate events (and carried on the following ones until the next validation).
    """

    phase: str
    step: int
    total_steps: int
    losses: dict[str, float]
    lr: float
    val: dict[str, float] | None
    eta_s: float | None
    seconds_per_step: float | None
    message: str = ""
    path: str | None = None

    @property
    def fraction(self) -> float:
        return self.step / self.total_steps if self.total_steps else 0.0


@dataclass(frozen=True)
class TrainResult:
    """How a run ended: ``completed`` or ``cancelled``, with the files it left."""

    status: str
    step: int
    total_steps: int
    checkpoint: Path | None
    weights: Path | None
    manifest_entry: dict[str, Any] | None
    best_metric: float | None
    validation: dict[str, float] | None


def default_runs_root() -> Path:
    """Where runs keep checkpoints unless told otherwise (the user data folder)."""
    import platformdirs

    return Path(platformdirs.user_data_dir("FocusStudio", appauthor=False)) / "training-runs"


def list_runs(root: str | Path | None = None) -> list[dict[str, Any]]:
    """Runs under ``root`` that have a checkpoint (for a "resume" list): newest first."""
    folder = Path(root) if root is not None else default_runs_root()
    runs = []
    for checkpoint in sorted(folder.glob(f"*/{CHECKPOINT_NAME}")):
        try:
            summary = read_checkpoint_summary(checkpoint)
        except FocusStudioError:
            continue
        runs.append(summary)
    return sorted(runs, key=lambda run: run["modified"], reverse=True)


def read_checkpoint_summary(path: str | Path) -> dict[str, Any]:
    state = _load_checkpoint(path)
    config = state["config"]
    return {
        "checkpoint": str(path), "method": config["method"], "step": int(state["step"]),
        "total_steps": int(config["steps"]), "status": state.get("status", "running"),
        "best": state.get("best_metric"), "elapsed_s": float(state.get("elapsed_s", 0.0)),
        "modified": Path(path).stat().st_mtime, "config": dict(config),
    }


def _load_checkpoint(path: str | Path) -> dict[str, Any]:
    checkpoint = Path(path)
    if checkpoint.is_dir():
        checkpoint = checkpoint / CHECKPOINT_NAME
    if not checkpoint.is_file():
        raise InputError("checkpoint not found", checkpoint)
    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as error:  # corrupt or foreign file
        raise TrainingError(f"cannot read the checkpoint ({type(error).__name__})", checkpoint) from error
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT or "config" not in state:
        raise TrainingError("not a FocusStudio training checkpoint", checkpoint)
    return state


def train(
    recipe: TrainRecipe | str,
    config: TrainConfig,
    cancel: CancelToken | None = None,
    pause: PauseToken | None = None,
    overwrite_out: bool = True,
) -> Generator[TrainEvent, None, TrainResult]:
    """Train from scratch; yields events, returns the :class:`TrainResult`.

    The outputs (weights, manifest, checkpoint) are checked before the data is loaded (see
    :meth:`_Session.check_outputs`); ``overwrite_out=False`` refuses to replace an existing
    weights file (the command line's default, ``--force`` allows it).
    """
    resolved = get_recipe(recipe) if isinstance(recipe, str) else recipe
    if resolved.name != config.method:
        raise InputError(f"config is for method {config.method!r}, recipe is {resolved.name!r}")
    validate_config(config)
    session = _Session(resolved, config, cancel or CancelToken(), pause or PauseToken(), overwrite_out)
    return (yield from session.run(None))


def resume(
    checkpoint: str | Path,
    cancel: CancelToken | None = None,
    pause: PauseToken | None = None,
    overrides: dict[str, Any] | None = None,
    overwrite_out: bool = True,
) -> Generator[TrainEvent, None, TrainResult]:
    """Continue a run from its checkpoint (a file or a run folder); ``overrides`` may change only
    :data:`RESUMABLE_OVERRIDES` (e.g. more ``steps``, another ``device`` or ``out``)."""
    state = _load_checkpoint(checkpoint)
    values = dict(state["config"])
    for key, value in (overrides or {}).items():
        if key == "resize" and value == 0 and values.get("resize") is None:
            continue  # 0 = keep the size, as the run already does
        if value is None or values.get(key) == value:
            continue
        if key not in RESUMABLE_OVERRIDES:
            raise InputError(f"--{key.replace('_', '-')} cannot change when resuming (it would change the run)")
        values[key] = value
    config = TrainConfig.from_dict(values)
    if config.steps < int(state["step"]):
        raise InputError(f"the checkpoint is already at step {state['step']} (> --steps {config.steps})")
    if config.run_dir is None or "run_dir" not in (overrides or {}):
        folder = Path(checkpoint)
        config.run_dir = str(folder if folder.is_dir() else folder.parent)
    session = _Session(get_recipe(config.method), config, cancel or CancelToken(), pause or PauseToken(),
                       overwrite_out, resumed_from=checkpoint)
    return (yield from session.run(state))


class _Session:
    """State of one training run (fresh or resumed)."""

    def __init__(self, recipe: TrainRecipe, config: TrainConfig, cancel: CancelToken, pause: PauseToken,
                 overwrite_out: bool = True, resumed_from: str | Path | None = None) -> None:
        self.recipe = recipe
        self.overwrite_out = overwrite_out
        self.checkpoint_read = resumed_from
        self.inputs = OutputPlan()
        self.config = config
        self.cancel = cancel
        self.pause = pause
        self.step = 0
        self.history: list[dict[str, float]] = []
        self.val_history: list[dict[str, float]] = []
        self.best_metric: float | None = None
        self.best_state: dict[str, torch.Tensor] | None = None
        self.best_val: dict[str, float] | None = None
        self.best_step: int | None = None
        self.last_val: dict[str, float] | None = None
        self.elapsed_before = 0.0
        self.started = time.monotonic()
        self.paused_for = 0.0
        self.seconds_per_step: float | None = None
        self.validation_seconds: float | None = None
        self.resumed_from: list[int] = []

    # ------------------------------------------------------------------ setup
    def check_outputs(self) -> None:
        """Check the weights, manifest and checkpoint paths before any work (the output policy).

        None may be an input (an image of the data, masks or segmentation folders, the initial
        weights, the checkpoint resumed from); the weights and manifest must differ; the weights
        replace an existing file only with ``overwrite_out`` or when it is this run's own earlier
        export (resuming); an existing manifest must be a FocusStudio manifest (it is updated,
        never replaced by something else).
        """
        config = self.config
        plan = self.inputs
        plan.protect([config.data, config.masks, config.segs], recursive=True, only=is_training_input)
        if config.run_dir:
            plan.folder(config.run_dir, "the training run")
            plan.file(Path(config.run_dir) / CHECKPOINT_NAME, "the training checkpoint", replace=True)
        # Declared after the checkpoint: a resumed run writes its checkpoint back in place.
        init = Path(config.init_weights) if config.init_weights else None
        resumed = Path(self.checkpoint_read) if self.checkpoint_read is not None else None
        if resumed is not None and resumed.is_dir():
            resumed = resumed / CHECKPOINT_NAME
        plan.protect([init if init is not None and init.exists() else None, resumed])
        if not config.out:
            return
        out = Path(config.out)
        manifest = Path(config.manifest) if config.manifest else out.parent / "manifest.json"
        plan.folder(manifest.parent, "the weights manifest")
        plan.file(manifest, "the weights manifest", replace=True)  # never an input, before reading it
        entries = read_manifest(manifest)["weights"]  # refuses a file that is not a manifest
        own = entries.get(manifest_key(out, manifest), {})
        own_run = isinstance(own, dict) and own.get("run_id") == config.run_id
        plan.folder(out.parent, "the weights")  # created when missing, as before
        plan.file(out, "the weights", replace=self.overwrite_out or own_run)
        self.overwrite_out = self.overwrite_out or own_run

    def _prepare_data(self) -> None:
        config, recipe = self.config, self.recipe
        if recipe.data_kind == "pairs" or config.data_format == "pairs":
            scenes = scan_pair_folder(config.data)
            if recipe.data_kind != "pairs":
                # Methods that learn a decision map need its label: the scene's mask.*.
                unlabelled = [scene for scene in scenes if scene.mask is None]
                if unlabelled:
                    raise InputError(f"{recipe.name} needs a mask.* (focus map of 1.*) in every scene folder",
                                     unlabelled[0].first.parent)
            train_idx, val_idx = split_train_validation([s.name for s in scenes], config.val_fraction, config.seed)
            self.train_set: Any = PairFolderDataset([scenes[i] for i in train_idx], config.crop, config.seed,
                                                    recipe.grey, TRAIN_STREAM)
            self.val_set: Any = (
                PairFolderDataset([scenes[i] for i in val_idx], config.crop, config.seed, recipe.grey,
                                  VALIDATION_STREAM) if val_idx else None
            )
            self.data_summary = {"kind": "pairs", "path": portable_name(Path(config.data).resolve()),
                                 "scenes": len(scenes),
                                 "train_scenes": len(train_idx), "val_scenes": len(val_idx)}
            return
        records = scan_image_folder(config.data, config.masks, config.segs, config.min_background_sharpness_ratio)
        train_idx, val_idx = split_train_validation([r.group for r in records], config.val_fraction, config.seed)
        source = ImageSource(records, grey=recipe.grey, resize=config.resize)
        self.synthesis = recipe.synthesis(config)
        self.val_synthesis = recipe.validation_synthesis(config)
        self.train_set = SyntheticPairDataset(PairSynthesizer(source, self.synthesis, config.seed), train_idx,
                                              TRAIN_STREAM)
        self.val_set = (
            SyntheticPairDataset(PairSynthesizer(source, self.val_synthesis, config.seed), val_idx,
                                 VALIDATION_STREAM) if val_idx else None
        )
        self.data_summary = {
            "kind": recipe.data_kind, "path": portable_name(Path(config.data).resolve()), "images": len(records),
            "with_mask": sum(r.mask is not None for r in records),
            "with_segmentation": sum(r.segmentation is not None for r in records),
            "train_images": len(train_idx), "val_images": len(val_idx),
            "left_out_shallow_dof_ratio_below": config.min_background_sharpness_ratio,
            "synthesis": self.synthesis.to_dict(), "validation_synthesis": self.val_synthesis.to_dict(),
        }

    def _prepare(self, state: dict[str, Any] | None) -> None:
        config = self.config
        self.device = torch.device(resolve_device(config.device))
        self._prepare_data()
        self.steps_per_epoch = len(self.train_set) / config.batch_size
        torch.manual_seed(config.seed)
        self.model_config = dict(state["model_config"]) if state else self.recipe.model_config(config)
        self.model: nn.Module = self.recipe.build_model(self.model_config).to(self.device)
        if state is None and config.init_weights:
            self.recipe.import_state_dict(self.model, load_initial_state(self.recipe.name, config.init_weights))
        self.optimizers = self.recipe.make_optimizers(self.model, config)
        if state is not None:
            self._restore(state)
        self.model.train()
        self.val_batches: list[Batch] = []
        if self.val_set is not None:
            # A fixed set: val_samples samples cycling over the validation images.
            count = config.val_samples
            for start in range(0, count, config.batch_size):
                batch = load_batch(self.val_set, start, min(config.batch_size, count - start))
                self.val_batches.append({k: v.to(self.device) for k, v in batch.items()})
        run_dir = Path(config.run_dir) if config.run_dir else (
            default_runs_root() / f"{config.method}-{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
        )
        run_dir.mkdir(parents=True, exist_ok=True)
        config.run_dir = str(run_dir)
        self.checkpoint_path = run_dir / CHECKPOINT_NAME

    def _restore(self, state: dict[str, Any]) -> None:
        try:
            self.model.load_state_dict(state["model"])
            for name, optimizer in self.optimizers.items():
                optimizer.load_state_dict(state["optimizers"][name])
        except (KeyError, RuntimeError, ValueError) as error:
            raise TrainingError(f"the checkpoint does not fit the {self.recipe.name} network ({error})") from error
        torch.set_rng_state(state["torch_rng"])
        self.step = int(state["step"])
        self.history = list(state.get("history", []))
        self.val_history = list(state.get("val_history", []))
        self.best_metric = state.get("best_metric")
        self.best_state = state.get("best_state")
        self.best_val = state.get("best_val")
        self.best_step = state.get("best_step")
        self.last_val = self.val_history[-1] if self.val_history else None
        self.elapsed_before = float(state.get("elapsed_s", 0.0))
        self.resumed_from = [*list(state.get("resumed_from", [])), self.step]

    # ------------------------------------------------------------------ helpers
    def _elapsed(self) -> float:
        return self.elapsed_before + (time.monotonic() - self.started - self.paused_for)

    def _lr(self, step: int) -> float:
        return self.config.lr * lr_factor(self.config.lr_schedule, step, self.steps_per_epoch, self.config.steps)

    def _eta(self) -> float | None:
        if self.seconds_per_step is None:
            return None
        remaining = self.config.steps - self.step
        validations = remaining // self.config.val_every + 1 if self.val_batches else 0
        return remaining * self.seconds_per_step + validations * (self.validation_seconds or 0.0)

    def _event(self, phase: str, losses: dict[str, float] | None = None, message: str = "",
               path: Path | None = None, val: dict[str, float] | None = None) -> TrainEvent:
        return TrainEvent(
            phase=phase, step=self.step, total_steps=self.config.steps, losses=dict(losses or {}),
            lr=self._lr(min(self.step, self.config.steps - 1)), val=val if val is not None else self.last_val,
            eta_s=self._eta(), seconds_per_step=self.seconds_per_step, message=message,
            path=str(path) if path is not None else None,
        )

    def _validate(self) -> dict[str, float]:
        started = time.monotonic()
        self.model.eval()
        try:
            metrics = self.recipe.validate(self.model, self.val_batches, self.config)
        finally:
            self.model.train()
        self.validation_seconds = time.monotonic() - started
        metrics = {key: float(value) for key, value in metrics.items()}
        self.last_val = {"step": float(self.step), **metrics}
        self.val_history.append(self.last_val)
        value = metrics.get(self.recipe.primary_metric)
        if value is not None and math.isfinite(value):
            better = self.best_metric is None or (
                value > self.best_metric if self.recipe.higher_is_better else value < self.best_metric
            )
            if better:
                self.best_metric = value
                self.best_state = self.recipe.export_state_dict(self.model)
                self.best_val = metrics
                self.best_step = self.step
        return metrics

    def _write_checkpoint(self, status: str) -> Path:
        state = {
            "format": CHECKPOINT_FORMAT, "status": status, "config": self.config.to_dict(),
            "model_config": self.model_config, "step": self.step,
            "model": self.model.state_dict(),
            "optimizers": {name: opt.state_dict() for name, opt in self.optimizers.items()},
            "torch_rng": torch.get_rng_state(), "history": self.history, "val_history": self.val_history,
            "best_metric": self.best_metric, "best_state": self.best_state, "best_val": self.best_val,
            "best_step": self.best_step, "elapsed_s": self._elapsed(), "resumed_from": self.resumed_from,
        }
        atomic_torch_save(state, self.checkpoint_path)
        return self.checkpoint_path

    def _export(self, status: str) -> tuple[Path, dict[str, Any]] | None:
        config = self.config
        if not config.out:
            return None
        use_best = self.best_state is not None
        state = self.best_state if use_best else self.recipe.export_state_dict(self.model)
        assert state is not None
        out = Path(config.out)
        weights_config = {**self.model_config, "method": self.recipe.name, "trained_steps": self.step,
                          "exported_step": self.best_step if use_best else self.step}
        digest = save_weights(out, self.recipe.name, weights_config, state, overwrite=self.overwrite_out,
                              protected=[path for path in self.inputs.input_paths if not path.is_dir()])
        self.overwrite_out = True  # later exports of this run replace its own file
        recent = self.history[-50:]
        final_losses = {
            key: sum(entry[key] for entry in recent) / len(recent)
            for key in (recent[0] if recent else {}) if key not in ("step", "lr")
        }
        best_losses = {
            key: min(entry[key] for entry in self.history)
            for key in (self.history[0] if self.history else {}) if key not in ("step", "lr")
        }
        entry = {
            "arch": self.recipe.name, "network": type(self.model).__name__,
            "parameters": count_parameters(self.model), "status": status,
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "sha256": digest, "bytes": out.stat().st_size,
            "exported_state": "best validation" if use_best else "last step",
            "exported_step": weights_config["exported_step"], "steps": self.step, "total_steps": config.steps,
            "batch_size": config.batch_size, "crop": config.crop, "resize": config.resize,
            "optimizer": f"Adam(lr={config.lr:g}, betas={tuple(config.betas)})", "lr_schedule": config.lr_schedule,
            "loss": self.recipe.loss_description, "options": config.options,
            "init_weights": portable_name(config.init_weights),
            "training_data": self.data_summary,
            "final_losses_mean_last_50_steps": final_losses, "best_step_losses": best_losses,
            "validation": self.best_val if use_best else self.last_val,
            "validation_primary_metric": self.recipe.primary_metric,
            "validation_history_tail": self.val_history[-5:],
            "seed": config.seed, "device": str(self.device),
            "device_name": _device_name(self.device), "threads": torch.get_num_threads(),
            "wall_time_s": round(self._elapsed(), 1), "torch_version": torch.__version__,
            "resumed_at_steps": self.resumed_from, "run_dir": portable_name(config.run_dir),
            "run_id": config.run_id,
        }
        manifest = Path(config.manifest) if config.manifest else out.parent / "manifest.json"
        update_manifest(manifest, manifest_key(out, manifest), entry)
        return out, entry

    # ------------------------------------------------------------------ the loop
    def run(self, state: dict[str, Any] | None) -> Generator[TrainEvent, None, TrainResult]:
        config = self.config
        self.check_outputs()
        yield TrainEvent("prepare", 0, config.steps, {}, config.lr, None, None, None, "loading the data")
        self._prepare(state)
        yield self._event("prepare", message=(
            f"{self.recipe.name}: {len(self.train_set)} training / "
            f"{len(self.val_set) if self.val_set is not None else 0} validation items on {self.device}"
            + (f", resumed at step {self.step}" if state is not None else "")
        ))
        last_checkpoint = time.monotonic()
        last_export: tuple[Path, dict[str, Any]] | None = None
        if self.val_batches and self.last_val is None:
            yield self._event("validate", val=self._validate(), message="before training")
        while self.step < config.steps:
            if self.cancel.cancelled:
                path = self._write_checkpoint("cancelled")
                yield self._event("cancelled", path=path, message="cancelled; checkpoint written")
                return self._result("cancelled", path, last_export)
            if self.pause.paused:
                path = self._write_checkpoint("paused")
                yield self._event("paused", path=path, message="paused; checkpoint written")
                paused_at = time.monotonic()
                while not self.pause.wait_until_resumed(0.1):
                    if self.cancel.cancelled:
                        break
                self.paused_for += time.monotonic() - paused_at
                last_checkpoint = time.monotonic()
                if not self.cancel.cancelled:
                    yield self._event("resumed")
                continue
            step_started = time.monotonic()
            lr = self._lr(self.step)
            for optimizer in self.optimizers.values():
                for group in optimizer.param_groups:
                    group["lr"] = lr
            batch = load_batch(self.train_set, self.step * config.batch_size, config.batch_size)
            batch = {key: value.to(self.device) for key, value in batch.items()}
            try:
                losses = self.recipe.train_step(self.model, batch, self.optimizers, self.step, config)
            except FloatingPointError as error:
                raise TrainingError(f"{error}; the last checkpoint is {self.checkpoint_path}") from error
            self.step += 1
            duration = time.monotonic() - step_started
            self.seconds_per_step = duration if self.seconds_per_step is None else (
                0.9 * self.seconds_per_step + 0.1 * duration
            )
            self.history.append({"step": float(self.step), "lr": lr, **losses})
            yield self._event("train", losses)
            finished = self.step >= config.steps
            if self.val_batches and (self.step % config.val_every == 0 or finished):
                yield self._event("validate", losses, val=self._validate())
            due_by_steps = config.checkpoint_every > 0 and self.step % config.checkpoint_every == 0
            due_by_time = time.monotonic() - last_checkpoint >= config.checkpoint_interval_s
            if (due_by_steps or due_by_time) and not finished:
                path = self._write_checkpoint("running")
                last_checkpoint = time.monotonic()
                yield self._event("checkpoint", losses, path=path)
            if config.export_every > 0 and self.step % config.export_every == 0 and not finished:
                last_export = self._export("partial")
                if last_export is not None:
                    yield self._event("export", losses, path=last_export[0], message="partial export")
        path = self._write_checkpoint("completed")
        yield self._event("checkpoint", path=path)
        last_export = self._export("complete")
        if last_export is not None:
            yield self._event("export", path=last_export[0], message="final export")
        yield self._event("done", message="training finished")
        return self._result("completed", path, last_export)

    def _result(self, status: str, checkpoint: Path, export: tuple[Path, dict[str, Any]] | None) -> TrainResult:
        return TrainResult(
            status=status, step=self.step, total_steps=self.config.steps, checkpoint=checkpoint,
            weights=export[0] if export else None, manifest_entry=export[1] if export else None,
            best_metric=self.best_metric, validation=self.best_val or self.last_val,
        )


def is_training_input(path: Path) -> bool:
    """Whether ``path`` (a file under a data, masks or segmentation folder) is read by training:
    the images. Weights or a manifest kept in the same folder are not inputs."""
    return path.suffix.lower() in IMAGE_SUFFIXES


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    return platform.processor() or platform.machine()

"""One training run (fresh or resumed) as a generator: data and network set up, the optimisation
loop with validation, pause and cancel, and the events it yields.

Checkpoints are written and restored by :mod:`.checkpoints`, the weights exported by
:mod:`.outputs`; the public entry points are :func:`~focusstudio.core.training.trainer.train` and
:func:`~focusstudio.core.training.trainer.resume`.
"""

from __future__ import annotations

import datetime as _dt
import math
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from focusstudio.core.device import resolve_device
from focusstudio.core.errors import InputError
from focusstudio.core.io.output_policy import OutputPlan
from focusstudio.core.progress import CancelToken
from focusstudio.core.training.checkpoints import (
    CHECKPOINT_NAME,
    default_runs_root,
    restore_checkpoint,
    write_checkpoint,
)
from focusstudio.core.training.config import TrainConfig, lr_factor
from focusstudio.core.training.datasets import (
    PairFolderDataset,
    SyntheticPairDataset,
    load_batch,
    scan_pair_folder,
    split_train_validation,
)
from focusstudio.core.training.events import PauseToken, TrainEvent, TrainingError, TrainResult
from focusstudio.core.training.manifest import portable_name
from focusstudio.core.training.outputs import check_outputs, export_weights
from focusstudio.core.training.recipe import Batch, TrainRecipe, load_initial_state
from focusstudio.core.training.synthesis import (
    TRAIN_STREAM,
    VALIDATION_STREAM,
    ImageSource,
    PairSynthesizer,
    scan_image_folder,
)


class TrainingSession:
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
            restore_checkpoint(self, state)
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

    # ------------------------------------------------------------------ helpers
    def elapsed(self) -> float:
        """Seconds of training so far: earlier sessions of a resumed run included, pauses excluded."""
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

    # ------------------------------------------------------------------ the loop
    def run(self, state: dict[str, Any] | None) -> Generator[TrainEvent, None, TrainResult]:
        config = self.config
        check_outputs(self)
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
                path = write_checkpoint(self, "cancelled")
                yield self._event("cancelled", path=path, message="cancelled; checkpoint written")
                return self._result("cancelled", path, last_export)
            if self.pause.paused:
                path = write_checkpoint(self, "paused")
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
                path = write_checkpoint(self, "running")
                last_checkpoint = time.monotonic()
                yield self._event("checkpoint", losses, path=path)
            if config.export_every > 0 and self.step % config.export_every == 0 and not finished:
                last_export = export_weights(self, "partial")
                if last_export is not None:
                    yield self._event("export", losses, path=last_export[0], message="partial export")
        path = write_checkpoint(self, "completed")
        yield self._event("checkpoint", path=path)
        last_export = export_weights(self, "complete")
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

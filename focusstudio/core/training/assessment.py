"""Measuring before and after a training run: time per step, validation metrics, a before/after fusion.

* :func:`measure_step_time` runs a few real training steps (in a throw-away run folder) and
  reports the time per step and per validation, so a front end can say how long a run will take;
* :func:`evaluate_weights` computes the recipe's validation metrics of any weights (or of the
  random initialisation) on the run's validation split or on a test folder, with the same
  samples the trainer validates on;
* :func:`compare_weights` puts the new weights next to the ones training started from;
* :func:`before_after_fusion` fuses one validation sample with both.
"""

from __future__ import annotations

import copy
import shutil
import statistics
import tempfile
import time
from collections.abc import Generator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from focusstudio.core.device import resolve_device
from focusstudio.core.errors import InputError
from focusstudio.core.progress import Cancelled, CancelToken, ProgressEvent
from focusstudio.core.training.datasets import (
    PairFolderDataset,
    SyntheticPairDataset,
    load_batch,
    scan_pair_folder,
    split_train_validation,
)
from focusstudio.core.training.recipe import Batch, TrainRecipe, get_recipe, load_initial_state
from focusstudio.core.training.synthesis import (
    VALIDATION_STREAM,
    ImageSource,
    PairSynthesizer,
    scan_image_folder,
)
from focusstudio.core.training.trainer import TrainConfig, train

#: Steps timed by :func:`measure_step_time` after one warm-up step (first steps allocate memory).
MEASURED_STEPS = 3


@dataclass(frozen=True)
class StepTimeEstimate:
    """Measured cost of a run's steps and validations on its device."""

    seconds_per_step: float
    validation_seconds: float
    steps_measured: int
    device: str
    total_steps: int
    val_every: int
    validates: bool

    @property
    def total_seconds(self) -> float:
        validations = (self.total_steps // self.val_every + 1) if self.validates else 0
        return self.total_steps * self.seconds_per_step + validations * self.validation_seconds


def measure_step_time(
    config: TrainConfig, steps: int = MEASURED_STEPS, cancel: CancelToken | None = None
) -> Generator[ProgressEvent, None, StepTimeEstimate]:
    """Time ``steps`` training steps of ``config`` (after a warm-up step); nothing is kept."""
    token = cancel or CancelToken()
    scratch = Path(tempfile.mkdtemp(prefix="focusstudio-estimate-"))
    probe = replace(copy.deepcopy(config), steps=steps + 1, out=None, manifest=None, run_dir=str(scratch),
                    val_every=10**9, checkpoint_every=0, checkpoint_interval_s=1e12, export_every=0)
    train_times: list[float] = []
    validation_seconds = 0.0
    device = resolve_device(config.device)
    try:
        generator = train(probe.method, probe, cancel=token)
        last = time.perf_counter()
        prepared_at: float | None = None
        while True:
            try:
                event = next(generator)
            except StopIteration:
                break
            now = time.perf_counter()
            if event.phase == "prepare" and event.message != "loading the data":
                prepared_at = now
            elif event.phase == "validate" and event.step == 0 and prepared_at is not None:
                validation_seconds = now - prepared_at
            elif event.phase == "train":
                train_times.append(now - last)
                yield ProgressEvent("measuring", event.step / (steps + 1), f"step {event.step} of {steps + 1}")
            last = now
            if token.cancelled:
                generator.close()
                raise Cancelled()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    timed = train_times[1:] or train_times
    if not timed:
        raise InputError("no training step could be timed")
    return StepTimeEstimate(
        seconds_per_step=statistics.median(timed), validation_seconds=validation_seconds,
        steps_measured=len(timed), device=device, total_steps=config.steps, val_every=config.val_every,
        validates=config.val_fraction > 0,
    )


# ---------------------------------------------------------------------------------- validation data
@dataclass(frozen=True, eq=False)
class ValidationSet:
    """The fixed validation batches of a run (or of a test folder) and where they come from."""

    batches: list[Batch]
    dataset: object
    items: int
    description: str


def validation_set(config: TrainConfig, test_folder: str | Path | None = None,
                   test_masks: str | Path | None = None) -> ValidationSet:
    """The batches the trainer validates ``config`` on (same split, synthesis, seed and stream);
    with ``test_folder``, the same recipe applied to every item of that folder instead.

    Mirrors ``session.TrainingSession._prepare_data``; a test checks that the trainer's step-0
    validation equals :func:`evaluate_weights` on these batches.
    """
    recipe = get_recipe(config.method)
    data = str(test_folder) if test_folder is not None else config.data
    pairs = recipe.data_kind == "pairs" or config.data_format == "pairs"
    dataset: SyntheticPairDataset | PairFolderDataset
    if pairs:
        scenes = scan_pair_folder(data)
        if test_folder is None:
            _, chosen = split_train_validation([s.name for s in scenes], config.val_fraction, config.seed)
        else:
            chosen = list(range(len(scenes)))
        if not chosen:
            raise InputError("no scenes for validation (the validation share is 0)", data)
        dataset = PairFolderDataset([scenes[i] for i in chosen], config.crop, config.seed, recipe.grey,
                                    VALIDATION_STREAM)
        items = len(chosen)
    else:
        masks = str(test_masks) if test_folder is not None and test_masks else (
            None if test_folder is not None else config.masks)
        records = scan_image_folder(data, masks, None if test_folder is not None else config.segs,
                                    config.min_background_sharpness_ratio)
        if test_folder is None:
            _, chosen = split_train_validation([r.group for r in records], config.val_fraction, config.seed)
        else:
            chosen = list(range(len(records)))
        if not chosen:
            raise InputError("no photos for validation (the validation share is 0)", data)
        source = ImageSource(records, grey=recipe.grey, resize=config.resize)
        synthesizer = PairSynthesizer(source, recipe.validation_synthesis(config), config.seed)
        dataset = SyntheticPairDataset(synthesizer, chosen, VALIDATION_STREAM)
        items = len(chosen)
    device = torch.device(resolve_device(config.device))
    batches = []
    count = config.val_samples
    for start in range(0, count, config.batch_size):
        batch = load_batch(dataset, start, min(config.batch_size, count - start))
        batches.append({key: value.to(device) for key, value in batch.items()})
    where = "the validation split" if test_folder is None else Path(data).name
    return ValidationSet(batches, dataset, items, f"{config.val_samples} samples from {items} items of {where}")


def model_with_weights(recipe: TrainRecipe, config: TrainConfig, weights: str | Path | None) -> nn.Module:
    """The training network of ``config`` with ``weights`` loaded (None: the run's initialisation)."""
    torch.manual_seed(config.seed)  # the trainer seeds the same way before building the network
    model = recipe.build_model(recipe.model_config(config))
    if weights is not None:
        recipe.import_state_dict(model, load_initial_state(recipe.name, weights))
    return model.to(torch.device(resolve_device(config.device))).eval()


def evaluate_weights(config: TrainConfig, weights: str | Path | None, validation: ValidationSet) -> dict[str, float]:
    """The recipe's validation metrics of ``weights`` on ``validation``."""
    recipe = get_recipe(config.method)
    model = model_with_weights(recipe, config, weights)
    with torch.no_grad():
        metrics = recipe.validate(model, validation.batches, config)
    return {key: float(value) for key, value in metrics.items()}


@dataclass(frozen=True)
class WeightsComparison:
    """Validation metrics of the new weights next to the starting ones (per evaluated set)."""

    primary_metric: str
    higher_is_better: bool
    base_label: str
    #: set description → (metrics of the starting weights, metrics of the new weights)
    results: dict[str, tuple[dict[str, float], dict[str, float]]] = field(default_factory=dict)

    def improved(self, description: str) -> bool | None:
        base, new = self.results[description]
        if self.primary_metric not in base or self.primary_metric not in new:
            return None
        better = new[self.primary_metric] > base[self.primary_metric]
        return better if self.higher_is_better else new[self.primary_metric] < base[self.primary_metric]


def compare_weights(
    config: TrainConfig,
    new_weights: str | Path,
    base_weights: str | Path | None,
    test_folder: str | Path | None = None,
    test_masks: str | Path | None = None,
    cancel: CancelToken | None = None,
) -> Generator[ProgressEvent, None, WeightsComparison]:
    """Metrics of ``new_weights`` and ``base_weights`` (None: the random initialisation the run
    started from) on the validation split, and on ``test_folder`` when given."""
    token = cancel or CancelToken()
    recipe = get_recipe(config.method)
    label = Path(str(base_weights)).stem if base_weights is not None else "random initialisation"
    comparison = WeightsComparison(recipe.primary_metric, recipe.higher_is_better, label)
    sets = [None] if config.val_fraction > 0 else []
    if test_folder is not None:
        sets.append(test_folder)
    if not sets:
        raise InputError("nothing to evaluate on: the run has no validation split and no test folder was given")
    for number, folder in enumerate(sets):
        token.raise_if_cancelled()
        yield ProgressEvent("evaluating", number / len(sets), "preparing samples")
        validation = validation_set(config, folder, test_masks)
        token.raise_if_cancelled()
        yield ProgressEvent("evaluating", (number + 0.3) / len(sets), f"starting weights ({label})")
        base = evaluate_weights(config, base_weights, validation)
        token.raise_if_cancelled()
        yield ProgressEvent("evaluating", (number + 0.65) / len(sets), "new weights")
        new = evaluate_weights(config, new_weights, validation)
        comparison.results[validation.description] = (base, new)
    yield ProgressEvent("evaluating", 1.0, "")
    return comparison


# ---------------------------------------------------------------------------------- before/after
@dataclass(frozen=True, eq=False)
class BeforeAfter:
    """One validation pair fused with the starting and the new weights (float32 [0, 1] arrays)."""

    a: np.ndarray
    b: np.ndarray
    truth: np.ndarray
    before: np.ndarray | None  # None when training started from scratch with nothing to compare
    after: np.ndarray
    before_label: str


def before_after_fusion(
    config: TrainConfig,
    new_weights: str | Path,
    base_weights: str | Path | None,
    size: int = 256,
    cancel: CancelToken | None = None,
) -> Generator[ProgressEvent, None, BeforeAfter]:
    """Fuse the first validation pair (a centre crop of up to ``size`` pixels) with both weights."""
    from focusstudio.core.pipeline import run_fusion
    from focusstudio.core.types import Stack

    token = cancel or CancelToken()
    recipe = get_recipe(config.method)
    side = min(size, config.resize or size)
    larger = replace(copy.deepcopy(config), crop=side, val_samples=1, batch_size=1)
    try:
        sample = validation_set(larger).dataset[0]  # type: ignore[index]
    except InputError:
        sample = validation_set(replace(larger, val_fraction=0.0), test_folder=config.data).dataset[0]  # type: ignore[index]
    if "a" not in sample or "b" not in sample:
        raise InputError(f"{recipe.name}: the validation samples have no source pair to fuse")
    stack = Stack.from_arrays([sample["a"], sample["b"]], names=["A", "B"])
    fused: list[np.ndarray | None] = []
    for number, weights in enumerate((base_weights, new_weights)):
        token.raise_if_cancelled()
        if weights is None:
            fused.append(None)
            continue
        yield ProgressEvent("before/after", number / 2, "starting weights" if number == 0 else "new weights")
        result = yield from run_fusion(stack, recipe.name, device=config.device, cancel=token, weights=weights)
        fused.append(result.image)
    yield ProgressEvent("before/after", 1.0, "")
    after = fused[1]
    assert after is not None
    label = Path(str(base_weights)).stem if base_weights is not None else "trained from scratch"
    return BeforeAfter(sample["a"], sample["b"], sample["sharp"], fused[0], after, label)

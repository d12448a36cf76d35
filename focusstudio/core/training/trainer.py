"""Entry points of training, shared by every trainable method, the CLI and the training wizard.

:func:`train` and :func:`resume` are generators: they yield a :class:`TrainEvent` after every
step (and for validation, checkpoints, exports, pause) and return a :class:`TrainResult`. Drive
them from a worker thread; a :class:`~focusstudio.core.progress.CancelToken` stops the run cleanly
(a checkpoint is written first) and a :class:`PauseToken` suspends it between steps.

Reproducibility: the batch of step s is a pure function of (seed, s) (see ``datasets``), the
learning rate is a pure function of s, and a checkpoint holds the model, optimizer state, RNG state,
loss history and best weights; so ``resume`` continues exactly where an uninterrupted run would be.

The work is split by responsibility: :mod:`.settings` declares the settings, :mod:`.config` is the
run's config, :mod:`.session` the loop, :mod:`.checkpoints` saving and resuming, :mod:`.outputs`
the output policy and the export, :mod:`.events` what a run reports. The names below stay
importable from here.
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import Any

from focusstudio.core.errors import InputError
from focusstudio.core.progress import CancelToken
from focusstudio.core.training.checkpoints import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_NAME,
    default_runs_root,
    list_runs,
    load_checkpoint,
    read_checkpoint_summary,
    resumed_config,
)
from focusstudio.core.training.config import (
    DATA_FORMATS,
    RESUMABLE_OVERRIDES,
    TrainConfig,
    lr_factor,
    make_config,
    validate_config,
)
from focusstudio.core.training.events import PauseToken, TrainEvent, TrainingError, TrainResult
from focusstudio.core.training.outputs import is_training_input
from focusstudio.core.training.recipe import TrainRecipe, get_recipe
from focusstudio.core.training.session import TrainingSession

__all__ = [
    "CHECKPOINT_FORMAT", "CHECKPOINT_NAME", "DATA_FORMATS", "RESUMABLE_OVERRIDES", "PauseToken", "TrainConfig",
    "TrainEvent", "TrainResult", "TrainingError", "default_runs_root", "is_training_input", "list_runs",
    "lr_factor", "make_config", "read_checkpoint_summary", "resume", "train", "validate_config",
]


def train(
    recipe: TrainRecipe | str,
    config: TrainConfig,
    cancel: CancelToken | None = None,
    pause: PauseToken | None = None,
    overwrite_out: bool = True,
) -> Generator[TrainEvent, None, TrainResult]:
    """Train from scratch; yields events, returns the :class:`TrainResult`.

    The outputs (weights, manifest, checkpoint) are checked before the data is loaded (see
    :func:`~focusstudio.core.training.outputs.check_outputs`); ``overwrite_out=False`` refuses to
    replace an existing weights file (the command line's default, ``--force`` allows it).
    """
    resolved = get_recipe(recipe) if isinstance(recipe, str) else recipe
    if resolved.name != config.method:
        raise InputError(f"config is for method {config.method!r}, recipe is {resolved.name!r}")
    validate_config(config)
    session = TrainingSession(resolved, config, cancel or CancelToken(), pause or PauseToken(), overwrite_out)
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
    state = load_checkpoint(checkpoint)
    config = resumed_config(checkpoint, state, overrides)
    session = TrainingSession(get_recipe(config.method), config, cancel or CancelToken(), pause or PauseToken(),
                              overwrite_out, resumed_from=checkpoint)
    return (yield from session.run(state))

"""Training checkpoints on disk: where runs keep them, reading one back (checked), listing runs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from focusstudio.core.errors import FocusStudioError, InputError
from focusstudio.core.training.config import RESUMABLE_OVERRIDES, TrainConfig
from focusstudio.core.training.events import TrainingError

if TYPE_CHECKING:
    from focusstudio.core.training.session import TrainingSession

CHECKPOINT_FORMAT = 1
CHECKPOINT_NAME = "checkpoint.pt"


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
    state = load_checkpoint(path)
    config = state["config"]
    return {
        "checkpoint": str(path), "method": config["method"], "step": int(state["step"]),
        "total_steps": int(config["steps"]), "status": state.get("status", "running"),
        "best": state.get("best_metric"), "elapsed_s": float(state.get("elapsed_s", 0.0)),
        "modified": Path(path).stat().st_mtime, "config": dict(config),
    }


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """The state saved in a checkpoint file (or a run folder's), checked to be ours."""
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


def resumed_config(checkpoint: str | Path, state: dict[str, Any], overrides: dict[str, Any] | None) -> TrainConfig:
    """The config of the run saved in ``state``, with ``overrides`` of the settings a resumed run may
    change (:data:`RESUMABLE_OVERRIDES`); InputError for any other change."""
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
    return config


def write_checkpoint(session: TrainingSession, status: str) -> Path:
    """Save everything ``session`` needs to continue exactly (atomically, in its run folder)."""
    from focusstudio.core.training.manifest import atomic_torch_save

    state = {
        "format": CHECKPOINT_FORMAT, "status": status, "config": session.config.to_dict(),
        "model_config": session.model_config, "step": session.step,
        "model": session.model.state_dict(),
        "optimizers": {name: opt.state_dict() for name, opt in session.optimizers.items()},
        "torch_rng": torch.get_rng_state(), "history": session.history, "val_history": session.val_history,
        "best_metric": session.best_metric, "best_state": session.best_state, "best_val": session.best_val,
        "best_step": session.best_step, "elapsed_s": session.elapsed(), "resumed_from": session.resumed_from,
    }
    atomic_torch_save(state, session.checkpoint_path)
    return session.checkpoint_path


def restore_checkpoint(session: TrainingSession, state: dict[str, Any]) -> None:
    """Put ``state`` (from :func:`load_checkpoint`) back into ``session``'s network, optimizers and
    history, so the next step is the one an uninterrupted run would take."""
    try:
        session.model.load_state_dict(state["model"])
        for name, optimizer in session.optimizers.items():
            optimizer.load_state_dict(state["optimizers"][name])
    except (KeyError, RuntimeError, ValueError) as error:
        raise TrainingError(f"the checkpoint does not fit the {session.recipe.name} network ({error})") from error
    torch.set_rng_state(state["torch_rng"])
    session.step = int(state["step"])
    session.history = list(state.get("history", []))
    session.val_history = list(state.get("val_history", []))
    session.best_metric = state.get("best_metric")
    session.best_state = state.get("best_state")
    session.best_val = state.get("best_val")
    session.best_step = state.get("best_step")
    session.last_val = session.val_history[-1] if session.val_history else None
    session.elapsed_before = float(state.get("elapsed_s", 0.0))
    session.resumed_from = [*list(state.get("resumed_from", [])), session.step]

"""What a training run writes besides its checkpoint: the output paths checked before any work
(the output policy), and the exported weights with their manifest entry."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from focusstudio.core.training.checkpoints import CHECKPOINT_NAME
from focusstudio.core.training.manifest import (
    manifest_key,
    portable_name,
    read_manifest,
    save_weights,
    update_manifest,
)
from focusstudio.core.training.recipe import count_parameters
from focusstudio.core.training.synthesis import IMAGE_SUFFIXES

if TYPE_CHECKING:
    from focusstudio.core.training.session import TrainingSession


def is_training_input(path: Path) -> bool:
    """Whether ``path`` (a file under a data, masks or segmentation folder) is read by training:
    the images. Weights or a manifest kept in the same folder are not inputs."""
    return path.suffix.lower() in IMAGE_SUFFIXES


def check_outputs(session: TrainingSession) -> None:
    """Check the weights, manifest and checkpoint paths before any work (the output policy).

    None may be an input (an image of the data, masks or segmentation folders, the initial
    weights, the checkpoint resumed from); the weights and manifest must differ; the weights
    replace an existing file only with ``overwrite_out`` or when it is this run's own earlier
    export (resuming); an existing manifest must be a FocusStudio manifest (it is updated,
    never replaced by something else).
    """
    config = session.config
    plan = session.inputs
    plan.protect([config.data, config.masks, config.segs], recursive=True, only=is_training_input)
    if config.run_dir:
        plan.folder(config.run_dir, "the training run")
        plan.file(Path(config.run_dir) / CHECKPOINT_NAME, "the training checkpoint", replace=True)
    # Declared after the checkpoint: a resumed run writes its checkpoint back in place.
    init = Path(config.init_weights) if config.init_weights else None
    resumed = Path(session.checkpoint_read) if session.checkpoint_read is not None else None
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
    plan.file(out, "the weights", replace=session.overwrite_out or own_run)
    session.overwrite_out = session.overwrite_out or own_run


def export_weights(session: TrainingSession, status: str) -> tuple[Path, dict[str, Any]] | None:
    """Write the best (else the last) weights to ``config.out`` and their manifest entry; None
    when the run has no ``out``."""
    config = session.config
    if not config.out:
        return None
    use_best = session.best_state is not None
    state = session.best_state if use_best else session.recipe.export_state_dict(session.model)
    assert state is not None
    out = Path(config.out)
    weights_config = {**session.model_config, "method": session.recipe.name, "trained_steps": session.step,
                      "exported_step": session.best_step if use_best else session.step}
    digest = save_weights(out, session.recipe.name, weights_config, state, overwrite=session.overwrite_out,
                          protected=[path for path in session.inputs.input_paths if not path.is_dir()])
    session.overwrite_out = True  # later exports of this run replace its own file
    recent = session.history[-50:]
    final_losses = {
        key: sum(entry[key] for entry in recent) / len(recent)
        for key in (recent[0] if recent else {}) if key not in ("step", "lr")
    }
    best_losses = {
        key: min(entry[key] for entry in session.history)
        for key in (session.history[0] if session.history else {}) if key not in ("step", "lr")
    }
    entry = {
        "arch": session.recipe.name, "network": type(session.model).__name__,
        "parameters": count_parameters(session.model), "status": status,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "sha256": digest, "bytes": out.stat().st_size,
        "exported_state": "best validation" if use_best else "last step",
        "exported_step": weights_config["exported_step"], "steps": session.step, "total_steps": config.steps,
        "batch_size": config.batch_size, "crop": config.crop, "resize": config.resize,
        "optimizer": f"Adam(lr={config.lr:g}, betas={tuple(config.betas)})", "lr_schedule": config.lr_schedule,
        "loss": session.recipe.loss_description, "options": config.options,
        "init_weights": portable_name(config.init_weights),
        "training_data": session.data_summary,
        "final_losses_mean_last_50_steps": final_losses, "best_step_losses": best_losses,
        "validation": session.best_val if use_best else session.last_val,
        "validation_primary_metric": session.recipe.primary_metric,
        "validation_history_tail": session.val_history[-5:],
        "seed": config.seed, "device": str(session.device),
        "device_name": _device_name(session.device), "threads": torch.get_num_threads(),
        "wall_time_s": round(session.elapsed(), 1), "torch_version": torch.__version__,
        "resumed_at_steps": session.resumed_from, "run_dir": portable_name(config.run_dir),
        "run_id": config.run_id,
    }
    manifest = Path(config.manifest) if config.manifest else out.parent / "manifest.json"
    update_manifest(manifest, manifest_key(out, manifest), entry)
    return out, entry


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    return platform.processor() or platform.machine()

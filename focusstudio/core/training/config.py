"""What defines a training run: :class:`TrainConfig` (defaults from the ``TrainSpec``), the
per-method defaults filled in by :func:`make_config`, its validation and the learning-rate schedule.

Imports no torch (the recipes are loaded by :func:`make_config` when it runs).
"""

from __future__ import annotations

import math
import uuid
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from focusstudio.core.errors import InputError
from focusstudio.core.training.settings import DATA_FORMATS, TRAIN_SPEC

#: Config fields a resumed run may change without breaking exact continuation (declared in the spec).
RESUMABLE_OVERRIDES = TRAIN_SPEC.resumable

__all__ = ["DATA_FORMATS", "RESUMABLE_OVERRIDES", "TrainConfig", "lr_factor", "make_config", "validate_config"]


def _default(name: str) -> Any:
    """A dataclass default taken from the spec (a factory, so dicts are never shared)."""
    return field(default_factory=lambda: TRAIN_SPEC.default(name))


@dataclass
class TrainConfig:
    """Everything that defines a training run (stored in every checkpoint and the manifest).

    Build it with :func:`make_config`, which fills the method's defaults for unset fields. Every
    field but ``run_id`` is declared (type, default, range, help) in
    :data:`~focusstudio.core.training.settings.TRAIN_SPEC`.
    """

    method: str
    data: str
    out: str | None = _default("out")
    manifest: str | None = _default("manifest")
    run_dir: str | None = _default("run_dir")
    masks: str | None = _default("masks")
    segs: str | None = _default("segs")
    steps: int = _default("steps")
    batch_size: int = _default("batch_size")
    crop: int = _default("crop")
    resize: int | None = _default("resize")
    lr: float = _default("lr")
    betas: tuple[float, float] = _default("betas")
    lr_schedule: dict[str, Any] = _default("lr_schedule")  # noqa: RUF009  (a field with a factory)
    seed: int = _default("seed")
    device: str = _default("device")
    val_fraction: float = _default("val_fraction")
    val_every: int = _default("val_every")
    val_samples: int = _default("val_samples")
    checkpoint_every: int = _default("checkpoint_every")
    checkpoint_interval_s: float = _default("checkpoint_interval_s")
    export_every: int = _default("export_every")
    log_every: int = _default("log_every")
    synthesis: dict[str, Any] = _default("synthesis")  # noqa: RUF009  (a field with a factory)
    options: dict[str, Any] = _default("options")  # noqa: RUF009  (a field with a factory)
    min_background_sharpness_ratio: float = _default("min_background_sharpness_ratio")
    #: Start from these weights (a file or the name of installed weights) instead of a random
    #: initialisation: fine-tuning. Only read when a run starts, never on resume.
    init_weights: str | None = _default("init_weights")
    #: ``auto``: what the recipe trains on; ``pairs``: a folder of real ``<scene>/1.*, 2.*, gt.*``
    #: (plus ``mask.*`` for methods that learn a decision map) instead of synthesized pairs.
    data_format: str = _default("data_format")
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
    from focusstudio.core.training.recipe import get_recipe

    defaults = get_recipe(method).defaults()
    values: dict[str, Any] = {"method": method, "data": str(data)}
    for name in TRAIN_SPEC.per_method:  # the spec says which settings the recipe decides
        value = getattr(defaults, name)
        values[name] = dict(value) if isinstance(value, dict) else value
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
    """One-line InputErrors for settings that cannot work: each setting against its declared
    range or choices, then the checks that involve two settings."""
    TRAIN_SPEC.check(config.to_dict())
    if config.resize is not None and config.resize < config.crop:
        raise InputError(f"crop {config.crop} is larger than the resize {config.resize}")


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

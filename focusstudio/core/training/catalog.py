"""What the training front ends (the wizard, the CLI help) need to know about trainable methods.

* :func:`trainable_methods` — every method with a training recipe, what data it learns from
  (explained in words), its default settings and whether weights exist to fine-tune from;
* :func:`training_params` / :func:`synthesis_params` — the run settings and the synthesis recipe
  as :class:`~focusstudio.core.params.ParamSpec` declarations (so a generated form can edit them);
* :func:`build_train_config` — a :class:`TrainConfig` from those values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from focusstudio.core.params import ParamSet, ParamSpec
from focusstudio.core.training.recipe import RecipeDefaults, get_recipe, recipe_names
from focusstudio.core.training.settings import TRAIN_SPEC
from focusstudio.core.training.trainer import TrainConfig, make_config, validate_config

#: What each kind of recipe learns from, for the user.
DATA_NEEDS: dict[str, str] = {
    "images": (
        "Unsupervised: a folder of sharp photos is all it needs (the network learns to reconstruct "
        "them). Masks are not used."
    ),
    "images+masks": (
        "Supervised on synthesized pairs: a folder of sharp, all-in-focus photos, optionally with a "
        "parallel folder of focus masks (same file names, white = the region sharp in the first "
        "source). Photos without a mask get random masks. Alternatively real registered pairs with "
        "a ground truth and a mask (<scene>/1.*, 2.*, gt.*, mask.*)."
    ),
    "pairs": "Supervised on real registered pairs with an all-in-focus ground truth (<scene>/1.*, 2.*, gt.*).",
}

#: Settings a fine-tuning run changes relative to the recipe's from-scratch defaults: a tenth of
#: the steps and of the learning rate, so the starting weights are adapted, not overwritten.
FINETUNE_STEP_FACTOR = 0.1
FINETUNE_LR_FACTOR = 0.1
MIN_FINETUNE_STEPS = 200

LR_SCHEDULES = ("method default", "constant", "step decay", "linear tail")
LENGTH_UNITS = ("steps", "epochs")


@dataclass(frozen=True)
class TrainableMethod:
    """A method that can be trained, as a front end presents it."""

    name: str
    title: str
    description: str
    data_kind: str
    data_needs: str
    grey: bool
    primary_metric: str
    higher_is_better: bool
    defaults: RecipeDefaults
    #: Names of installed weights (shipped first) that fine-tuning can start from.
    weights: tuple[str, ...]

    @property
    def accepts_pairs(self) -> bool:
        return True  # every recipe can learn from real pairs (with a mask.* when it learns a map)

    @property
    def synthesizes(self) -> bool:
        return self.data_kind != "pairs"


def trainable_methods() -> list[TrainableMethod]:
    """Every method with a training recipe, in the registry's order."""
    from focusstudio.core.methods.registry import get_method
    from focusstudio.core.weights import list_installed_weights

    found = []
    for name in recipe_names():
        recipe = get_recipe(name)
        try:
            title = get_method(name).title
        except Exception:  # a recipe without a registered fusion method: still trainable
            title = name
        found.append(TrainableMethod(
            name=name, title=title, description=recipe.description, data_kind=recipe.data_kind,
            data_needs=DATA_NEEDS[recipe.data_kind], grey=recipe.grey, primary_metric=recipe.primary_metric,
            higher_is_better=recipe.higher_is_better, defaults=recipe.defaults(),
            weights=tuple(w.name for w in list_installed_weights(name)),
        ))
    return found


def suggested_steps(method: str, finetune: bool) -> int:
    steps = get_recipe(method).defaults().steps
    return max(MIN_FINETUNE_STEPS, round(steps * FINETUNE_STEP_FACTOR)) if finetune else steps


def training_params(method: str, finetune: bool) -> ParamSet:
    """The run settings of ``method`` with its defaults (adapted for fine-tuning).

    The fields of real settings come from :data:`TRAIN_SPEC`; the run length (steps or epochs) and
    the schedule's choice are the wizard's way of entering ``steps`` and ``lr_schedule``
    (:func:`build_train_config` turns them back).
    """
    defaults = get_recipe(method).defaults()
    lr = defaults.lr * (FINETUNE_LR_FACTOR if finetune else 1.0)
    steps = suggested_steps(method, finetune)
    field = TRAIN_SPEC
    return ParamSet((
        ParamSpec("length_unit", "choice", "steps", "Give the run length in optimisation steps or in epochs "
                  "(passes over the training images)", choices=LENGTH_UNITS, stage="analysis",
                  title="Length in"),
        ParamSpec("length", "float", float(steps), "Number of steps (or epochs) to train", minimum=0.01,
                  step=1.0, stage="analysis", title="Length"),
        field["batch_size"].param_spec(defaults.batch_size, _sentence(field["batch_size"].help)),
        field["resize"].param_spec(defaults.resize or 0, _sentence(field["resize"].help)),
        field["crop"].param_spec(defaults.crop, _sentence(field["crop"].help)),
        field["lr"].param_spec(lr, _sentence(field["lr"].help)),
        ParamSpec("lr_schedule", "choice", "method default",
                  f"How the learning rate changes: the method's schedule ({_describe_schedule(defaults)}), "
                  "constant, step decay (× factor every N epochs) or linear tail (linear decay to 0 over "
                  "the last 10 % of the steps)", choices=LR_SCHEDULES, stage="analysis", title="Schedule"),
        ParamSpec("lr_gamma", "float", float(defaults.lr_schedule.get("gamma", 0.8)),
                  "Step decay: factor applied every period", minimum=0.01, maximum=1.0, step=0.05,
                  stage="analysis", title="Decay factor"),
        ParamSpec("lr_every", "float", float(defaults.lr_schedule.get("every", 2)),
                  "Step decay: period in epochs", minimum=0.01, step=1.0, stage="analysis",
                  title="Decay every (epochs)"),
        field["device"].param_spec(help=_sentence(field["device"].help)),
        field["seed"].param_spec(help=_sentence(field["seed"].help)),
        field["val_every"].param_spec(min(defaults.val_every, max(10, steps // 20)),
                                      _sentence(field["val_every"].help)),
        field["val_samples"].param_spec(defaults.val_samples, _sentence(field["val_samples"].help)),
        field["checkpoint_interval_s"].param_spec(help=_sentence(field["checkpoint_interval_s"].help)),
    ))


def _sentence(text: str) -> str:
    """A CLI help line as a tooltip sentence (capitalised)."""
    return text[:1].upper() + text[1:]


def _describe_schedule(defaults: RecipeDefaults) -> str:
    schedule = defaults.lr_schedule
    kind = schedule.get("kind", "constant")
    if kind == "epoch_step":
        return f"× {schedule.get('gamma', 0.1):g} every {schedule.get('every', 1):g} epochs"
    if kind == "milestones":
        return f"× {schedule.get('gamma', 0.1):g} at steps {', '.join(str(m) for m in schedule.get('milestones', []))}"
    return str(kind)


def synthesis_params(method: str) -> ParamSet:
    """The synthesis recipe of ``method`` as editable declarations (defaults = the recipe's)."""
    recipe = get_recipe(method)
    base = recipe.synthesis(make_config(method, "."))
    augmentations = [
        ParamSpec("flip", "bool", bool(base.flip), "Random horizontal and vertical flips", stage="post",
                  title="Flips"),
        ParamSpec("rotation_step_deg", "int", int(base.rotation_step_deg),
                  "Random rotations by multiples of this angle (0: none)", minimum=0, maximum=180, step=15,
                  stage="post", title="Rotation step (°)"),
    ]
    if base.mode == "none":
        # Auto-encoders train on the sharp photos themselves: only the augmentations apply.
        return ParamSet(tuple(augmentations))
    specs = [
        ParamSpec("mode", "choice", base.mode, "How a pair is composed from a sharp photo and a mask: plain "
                  "blur outside/inside the mask, α-matte (a blurred foreground bleeds over its edge) or "
                  "GACN's soft matte", choices=("plain", "alpha_matte", "gacn"), stage="analysis",
                  title="Composition"),
        ParamSpec("blur", "choice", base.blur, "Blur operator: Gaussian with σ drawn from the range, Gaussian "
                  "truncated to a random radius, or a mean (box) filter", choices=("gaussian",
                  "gaussian_radius", "mean"), stage="analysis", title="Blur"),
        ParamSpec("sigma_min", "float", float(base.sigma_range[0]), "Smallest Gaussian σ (pixels)",
                  minimum=0.3, maximum=20.0, step=0.1, stage="analysis", title="σ from"),
        ParamSpec("sigma_max", "float", float(base.sigma_range[1]), "Largest Gaussian σ (pixels)",
                  minimum=0.3, maximum=20.0, step=0.1, stage="analysis", title="σ to"),
        ParamSpec("radius_min", "int", int(base.radius_range[0]), "Smallest blur radius (Gaussian radius mode)",
                  minimum=1, maximum=60, stage="analysis", title="Radius from"),
        ParamSpec("radius_max", "int", int(base.radius_range[1]), "Largest blur radius (Gaussian radius mode)",
                  minimum=1, maximum=60, stage="analysis", title="Radius to"),
        ParamSpec("random_mask_probability", "float", float(base.random_mask_probability),
                  "Use a random mask even when the photo has one (photos without a mask always get random "
                  "masks)", minimum=0.0, maximum=1.0, step=0.05, stage="analysis", title="Random masks"),
        *augmentations,
        ParamSpec("offset_probability", "float", float(base.offset_probability),
                  "Probability of shifting one source by a few pixels (misregistration)", minimum=0.0,
                  maximum=1.0, step=0.05, stage="post", title="Offsets"),
        ParamSpec("noise_max_std", "float", float(base.noise_max_std), "Largest added noise level",
                  minimum=0.0, maximum=1.0, step=0.01, stage="post", title="Noise"),
        ParamSpec("swap_probability", "float", float(base.swap_probability),
                  "Probability of swapping the two sources (and inverting the mask)", minimum=0.0, maximum=1.0,
                  step=0.05, stage="post", title="Swaps"),
    ]
    return ParamSet(tuple(specs))


def synthesis_overrides(values: Mapping[str, Any]) -> dict[str, Any]:
    """:class:`SynthesisConfig` overrides from :func:`synthesis_params` values (ranges ordered)."""
    out = {key: value for key, value in values.items()
           if key not in ("sigma_min", "sigma_max", "radius_min", "radius_max")}
    if "sigma_min" in values and "sigma_max" in values:
        low, high = sorted((float(values["sigma_min"]), float(values["sigma_max"])))
        out["sigma_range"] = [low, high]
    if "radius_min" in values and "radius_max" in values:
        low_r, high_r = sorted((int(values["radius_min"]), int(values["radius_max"])))
        out["radius_range"] = [low_r, high_r]
    return out


def steps_for(length: float, unit: str, train_items: int, batch_size: int) -> int:
    """Optimisation steps for ``length`` steps or epochs over ``train_items`` training items."""
    if unit == "epochs":
        return max(1, math.ceil(length * train_items / max(batch_size, 1)))
    return max(1, round(length))


def build_train_config(
    method: str,
    data: str | Path,
    settings: Mapping[str, Any],
    train_items: int,
    *,
    masks: str | Path | None = None,
    data_format: str = "auto",
    synthesis: Mapping[str, Any] | None = None,
    val_fraction: float = TRAIN_SPEC.default("val_fraction"),
    init_weights: str | None = None,
    run_dir: str | Path | None = None,
    out: str | Path | None = None,
) -> TrainConfig:
    """A validated :class:`TrainConfig` from :func:`training_params` values (InputError if unusable)."""
    defaults = get_recipe(method).defaults()
    batch = int(settings["batch_size"])
    schedule_kind = settings.get("lr_schedule", "method default")
    if schedule_kind == "constant":
        schedule: dict[str, Any] = {"kind": "constant"}
    elif schedule_kind == "step decay":
        schedule = {"kind": "epoch_step", "gamma": float(settings["lr_gamma"]), "every": float(settings["lr_every"])}
    elif schedule_kind == "linear tail":
        schedule = {"kind": "linear_tail", "final": 0.0}
    else:
        schedule = dict(defaults.lr_schedule)
    # Real pairs are cropped at their stored size (registration would not survive a resize).
    resize = None if data_format == "pairs" else (int(settings.get("resize", 0)) or None)
    config = make_config(
        method, data,
        steps=steps_for(float(settings["length"]), str(settings["length_unit"]), train_items, batch),
        batch_size=batch, crop=int(settings["crop"]), resize=resize, lr=float(settings["lr"]),
        lr_schedule=schedule, seed=int(settings["seed"]), device=str(settings["device"]),
        val_fraction=val_fraction, val_every=int(settings["val_every"]), val_samples=int(settings["val_samples"]),
        checkpoint_interval_s=float(settings["checkpoint_interval_s"]), masks=str(masks) if masks else None,
        data_format=data_format, synthesis=dict(synthesis or {}), init_weights=init_weights,
        run_dir=str(run_dir) if run_dir else None, out=str(out) if out else None,
    )
    if resize is None:
        # make_config skips None overrides (= "use the default"); here None means "keep the size".
        config.resize = None
        validate_config(config)
    return config

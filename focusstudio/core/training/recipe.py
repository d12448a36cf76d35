"""What a trainable method tells the generic trainer: a *recipe*.

A recipe builds the network, says how training samples are synthesized, computes the loss of a
batch (or runs a whole optimisation step, for GANs), validates, and names its primary validation
metric. The trainer (:mod:`focusstudio.core.training.trainer`) does everything else: data order,
schedules, checkpoints, resume, cancel, export and the manifest.

To make a method trainable: subclass :class:`TrainRecipe` (``name`` = the method's name), e.g. in
``focusstudio/core/training/recipes/<name>.py``, and name it in the method's spec
(``training_recipe = "package.module:Class"``, see :mod:`focusstudio.core.methods.registry`): the
spec is the one list of trainable methods, and the network is built by the spec's builder.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import torch
from torch import nn

from focusstudio.core.errors import InputError, WeightsError
from focusstudio.core.training.synthesis import SynthesisConfig

if TYPE_CHECKING:
    from focusstudio.core.training.trainer import TrainConfig

DataKind = Literal["images", "images+masks", "pairs"]
Batch = dict[str, torch.Tensor]


@dataclass(frozen=True)
class RecipeDefaults:
    """Per-method defaults of the training settings (papers' values unless noted)."""

    batch_size: int = 16
    crop: int = 156
    resize: int | None = 256
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    #: Learning-rate schedule, see :func:`focusstudio.core.training.trainer.lr_factor`.
    lr_schedule: dict[str, Any] = field(default_factory=lambda: {"kind": "epoch_step", "gamma": 0.8, "every": 2})
    steps: int = 10_000
    val_every: int = 250
    val_samples: int = 64
    #: Method-specific options (loss weights etc.), overridable from the config.
    options: dict[str, Any] = field(default_factory=dict)


class TrainRecipe:
    """Base class of the per-method training recipes; subclasses override the marked methods."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    #: What the method learns from: plain sharp images (auto-encoders), images + focus masks
    #: (random masks are made where none exists) or real pairs with a ground truth.
    data_kind: ClassVar[DataKind] = "images+masks"
    grey: ClassVar[bool] = True
    primary_metric: ClassVar[str] = "loss"
    higher_is_better: ClassVar[bool] = False
    #: One line describing the loss, recorded in the manifest.
    loss_description: ClassVar[str] = ""

    # ------------------------------------------------------------------ to override
    def defaults(self) -> RecipeDefaults:
        return RecipeDefaults()

    def synthesis(self, config: TrainConfig) -> SynthesisConfig:
        """How training pairs are made (for ``data_kind != "pairs"``)."""
        raise NotImplementedError

    def validation_synthesis(self, config: TrainConfig) -> SynthesisConfig:
        """How validation pairs are made; by default the training recipe without augmentation."""
        return self.synthesis(config).for_validation()

    def build_model(self, model_config: dict[str, Any]) -> nn.Module:
        """The network to train: the method's own network, built by its spec from ``model_config``
        (GAN recipes wrap it with their critic)."""
        from focusstudio.core.methods.registry import get_spec

        return get_spec(self.name).build_network(model_config)

    def model_config(self, config: TrainConfig) -> dict[str, Any]:
        """Constructor arguments of the network (stored in checkpoints and the weights file)."""
        return {}

    def loss(self, model: nn.Module, batch: Batch, config: TrainConfig) -> tuple[torch.Tensor, dict[str, float]]:
        """Total loss of a training batch and its named parts (floats, for the plot/log)."""
        raise NotImplementedError

    def validation_scores(self, model: nn.Module, batch: Batch, config: TrainConfig) -> dict[str, float]:
        """Metrics of one validation batch (model in eval mode, no grad)."""
        raise NotImplementedError

    @torch.no_grad()
    def validate(self, model: nn.Module, batches: Sequence[Batch], config: TrainConfig) -> dict[str, float]:
        """Mean of :meth:`validation_scores` over the fixed validation batches."""
        totals: dict[str, float] = {}
        for batch in batches:
            for key, value in self.validation_scores(model, batch, config).items():
                totals[key] = totals.get(key, 0.0) + value
        return {key: value / max(len(batches), 1) for key, value in totals.items()}

    # ------------------------------------------------------------------ overridable plumbing
    def make_optimizers(self, model: nn.Module, config: TrainConfig) -> dict[str, torch.optim.Optimizer]:
        """One Adam over all parameters; GAN recipes return one optimizer per network."""
        return {"model": torch.optim.Adam(model.parameters(), lr=config.lr, betas=tuple(config.betas))}

    def train_step(
        self,
        model: nn.Module,
        batch: Batch,
        optimizers: dict[str, torch.optim.Optimizer],
        step: int,
        config: TrainConfig,
    ) -> dict[str, float]:
        """One optimisation step; returns the named losses (must include ``"loss"``)."""
        optimizer = optimizers["model"]
        optimizer.zero_grad(set_to_none=True)
        total, parts = self.loss(model, batch, config)
        if not torch.isfinite(total):
            raise FloatingPointError(f"{self.name}: the loss became {total.item()} at step {step}")
        total.backward()
        optimizer.step()
        return {"loss": float(total.detach()), **parts}

    def export_state_dict(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """What goes into the weights file (GAN recipes keep only the generator)."""
        return {key: value.detach().cpu().clone() for key, value in model.state_dict().items()}

    def import_state_dict(self, model: nn.Module, state: dict[str, torch.Tensor]) -> None:
        """Load exported weights into the training model (fine-tuning): the inverse of
        :meth:`export_state_dict`. Keys the export lacks keep their initialisation (an encoder-only
        SESF file, a GAN's critic); keys the model lacks or shapes that differ are an error."""
        target = model
        if not set(state) & set(model.state_dict()):
            # The export is a sub-network (a GAN's generator): load it into the child it fits.
            for child in model.children():
                if set(state) <= set(child.state_dict()):
                    target = child
                    break
        expected = target.state_dict()
        unexpected = [key for key in state if key not in expected]
        reshaped = [key for key in state if key in expected and tuple(state[key].shape) != tuple(expected[key].shape)]
        if not state or unexpected or reshaped:
            detail = f"unexpected {unexpected[:3]}" if unexpected else f"other shapes {reshaped[:3]}"
            raise WeightsError(f"these weights do not fit the {self.name} network being trained ({detail})")
        target.load_state_dict(state, strict=False)

    def option(self, config: TrainConfig, key: str) -> Any:
        if key in config.options:
            return config.options[key]
        defaults = self.defaults().options
        if key not in defaults:
            raise InputError(f"{self.name}: unknown training option {key!r}")
        return defaults[key]


def get_recipe(name: str) -> TrainRecipe:
    """A fresh instance of the training recipe of the method ``name`` (from its spec in the method
    registry); InputError for unknown or untrainable names."""
    from focusstudio.core.methods.registry import list_specs

    spec = next((spec for spec in list_specs() if spec.name == name and spec.trainable), None)
    if spec is None:
        raise InputError(f"method {name!r} is not trainable; trainable: {', '.join(recipe_names())}")
    return spec.load_recipe()


def recipe_names() -> list[str]:
    """The trainable methods (those whose spec names a recipe), sorted."""
    from focusstudio.core.methods.registry import trainable_methods

    return trainable_methods()


def count_parameters(model: nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


RecipeFactory = Callable[[], TrainRecipe]


def load_initial_state(method: str, reference: str | Path) -> dict[str, torch.Tensor]:
    """The state dict of the weights to fine-tune from: a file (ours, a plain state dict or an
    authors' release) or the name of installed weights of ``method``, read by the one checkpoint
    loader (:func:`focusstudio.core.methods.checkpoint.read_state`)."""
    from focusstudio.core.methods.checkpoint import read_state
    from focusstudio.core.weights import resolve_weights

    return read_state(method, resolve_weights(method, reference).path).state

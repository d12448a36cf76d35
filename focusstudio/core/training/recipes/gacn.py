"""GACN: supervised decision map with Dice + differentiable Q^{AB/F} (REFERENCE-NOTES §2.4).

Grey sharp images + focus masks (random masks where an image has none), resized to 256×256,
random 156×156 crops, flips, rotations by multiples of 30°; one Gaussian blur (σ 2, radius 1–7) per
batch; the far-focus source blurs through a soft matte (σ 8, radius 45); offset, noise and swap
augmentations. Loss ``Dice(M, mask) + qg_weight·(1 − Qg_soft(A, B, M_bgf·A + (1−M_bgf)·B))``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from focusstudio.core.training.losses import decision_scores, dice_loss, qabf, qg_soft
from focusstudio.core.training.recipe import Batch, RecipeDefaults, TrainRecipe
from focusstudio.core.training.synthesis import SynthesisConfig

if TYPE_CHECKING:
    from focusstudio.core.training.trainer import TrainConfig


class GACNRecipe(TrainRecipe):
    name = "gacn"
    description = "GACN decision network (sharp grey images + focus masks; random masks where absent)"
    data_kind = "images+masks"
    grey = True
    primary_metric = "loss"
    higher_is_better = False
    loss_description = "Dice(M, mask) + qg_weight·(1 − Qg_soft(A, B, M_bgf·A + (1 − M_bgf)·B)), Dice over the batch"

    def defaults(self) -> RecipeDefaults:
        return RecipeDefaults(
            batch_size=16, crop=156, resize=256, lr=1e-4, steps=20_000, val_every=250, val_samples=64,
            options={"qg_weight": 1.0},
        )

    def synthesis(self, config: TrainConfig) -> SynthesisConfig:
        overrides: dict[str, Any] = {
            "mode": "gacn", "grey": True, "resize": config.resize, "crop": config.crop,
            "group_size": config.batch_size,
        }
        overrides.update(config.synthesis)
        return SynthesisConfig.from_dict({**SynthesisConfig().to_dict(), **overrides})

    def model_config(self, config: TrainConfig) -> dict[str, Any]:
        return {"reduction": 8, "se_kernel": 7}

    def _forward(self, model: nn.Module, batch: Batch, config: TrainConfig) -> dict[str, torch.Tensor]:
        source_a, source_b, target = batch["a"], batch["b"], batch["mask"]
        decision, refined = model(source_a, source_b)
        fused = refined * source_a + (1.0 - refined) * source_b
        dice = dice_loss(decision, target)
        quality = qg_soft(source_a, source_b, fused)
        total = dice + float(self.option(config, "qg_weight")) * (1.0 - quality)
        return {"loss": total, "dice_loss": dice, "qg": quality, "refined": refined, "fused": fused}

    def loss(self, model: nn.Module, batch: Batch, config: TrainConfig) -> tuple[torch.Tensor, dict[str, float]]:
        out = self._forward(model, batch, config)
        return out["loss"], {"dice_loss": float(out["dice_loss"].detach()), "qg": float(out["qg"].detach())}

    def validation_scores(self, model: nn.Module, batch: Batch, config: TrainConfig) -> dict[str, float]:
        out = self._forward(model, batch, config)
        return {
            "loss": float(out["loss"]), "dice_loss": float(out["dice_loss"]), "qg": float(out["qg"]),
            "qabf": float(qabf(batch["a"], batch["b"], out["fused"])),
            **decision_scores(out["refined"], batch["mask"]),
        }

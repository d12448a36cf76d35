"""Two-stream latent decision map: α supervised only through the fused image (METHODS.md §5).

* Data: grey images with real or random masks, "plain" complementary pairs blurred with a
  Gaussian; the paper's filter sizes 3, 7, 11 and 15 are read as σ = size/6 (the kernel spans ±3σ),
  i.e. σ drawn uniformly from [0.5, 2.5] (the synthesis draws σ continuously); random swap of the
  inputs (the paper's), flips and right-angle rotations. Crops 32×32, batch 32 (the paper's).
* Loss: L1(α·A + (1 − α)·B, GT) — no decision-map label is used.
* Adam(1e-4), learning rate /10 at 25 % and 75 % of the run (the paper: 50k and 150k of 200k).
* Width: options ``width`` (128 in the paper) and ``head_width`` (64).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from focusstudio.core.training.losses import decision_scores, l1_loss, psnr, qabf
from focusstudio.core.training.recipe import Batch, RecipeDefaults, TrainRecipe
from focusstudio.core.training.synthesis import SynthesisConfig

if TYPE_CHECKING:
    from focusstudio.core.training.trainer import TrainConfig


class TwoStreamRecipe(TrainRecipe):
    name = "twostream"
    description = "Two-stream latent decision map (grey images + focus masks; L1 on the fused image)"
    data_kind = "images+masks"
    grey = True
    primary_metric = "psnr_hard"
    higher_is_better = True
    loss_description = "L1(α·A + (1 − α)·B, GT) on grey [0, 1] images (no decision-map label)"

    def defaults(self) -> RecipeDefaults:
        return RecipeDefaults(
            batch_size=32, crop=32, resize=256, lr=1e-4,
            lr_schedule={"kind": "milestones", "gamma": 0.1, "milestones": [50_000, 150_000]},
            steps=200_000, val_every=1000, val_samples=256,
            options={"width": 128, "head_width": 64},
        )

    def synthesis(self, config: TrainConfig) -> SynthesisConfig:
        overrides: dict[str, Any] = {
            "mode": "plain", "grey": True, "resize": config.resize, "crop": config.crop, "blur": "gaussian",
            "sigma_range": (0.5, 2.5), "flip": True, "rotation_step_deg": 90, "offset_probability": 0.0,
            "noise_max_std": 0.0, "swap_probability": 0.5,
        }
        overrides.update(config.synthesis)
        return SynthesisConfig.from_dict({**SynthesisConfig().to_dict(), **overrides})

    def model_config(self, config: TrainConfig) -> dict[str, Any]:
        return {"width": int(self.option(config, "width")), "head_width": int(self.option(config, "head_width")),
                "in_channels": 1}

    def _forward(self, model: nn.Module, batch: Batch) -> dict[str, torch.Tensor]:
        alpha = model(batch["a"], batch["b"])
        fused = alpha * batch["a"] + (1.0 - alpha) * batch["b"]
        return {"alpha": alpha, "fused": fused, "loss": l1_loss(fused, batch["sharp"])}

    def loss(self, model: nn.Module, batch: Batch, config: TrainConfig) -> tuple[torch.Tensor, dict[str, float]]:
        out = self._forward(model, batch)
        return out["loss"], {}

    def validation_scores(self, model: nn.Module, batch: Batch, config: TrainConfig) -> dict[str, float]:
        out = self._forward(model, batch)
        decision = (out["alpha"] > 0.5).float()
        hard = decision * batch["a"] + (1.0 - decision) * batch["b"]
        return {
            "loss": float(out["loss"]), "psnr_soft": psnr(out["fused"], batch["sharp"]),
            "psnr_hard": psnr(hard, batch["sharp"]), "qabf": float(qabf(batch["a"], batch["b"], hard)),
            **decision_scores(out["alpha"], batch["mask"]),
        }

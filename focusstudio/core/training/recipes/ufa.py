"""UFA-Fuse: end-to-end fusion trained against the all-in-focus image (REFERENCE-NOTES §4.4, §7.5).

* Data: colour images with real or random masks, "plain" complementary pairs blurred with a mean
  filter whose size is drawn from UFA-Fuse's levels (2–3, 4–5, 5–7, 8–10 px); flips, right-angle
  rotations and random swap of the two inputs; the target is the sharp image.
* Loss: 0.2·L1(O, GT) + 0.8·(1 − SSIM(O, GT)), SSIM with an 11×11 Gaussian window σ 1.5 per
  channel, C1 = 1e-4, C2 = 9e-4 (the released code's).
* Network: our v1 topology with ``official_quirks=False``: a proper two-way softmax in the spatial
  attention (the released code has a denominator typo, REFERENCE-NOTES §7.5.2 — fixed here and
  recorded in the manifest). Conv weights Xavier-normal initialised, as upstream.
* Adam(1e-4), learning rate /10 every 200 epochs (upstream StepLR), batch 8.
* Width: option ``width`` (64 = the released size; narrower for CPU training).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from focusstudio.core.methods.archs.ufa_arch import UFAFuseNet
from focusstudio.core.training.losses import l1_loss, psnr, qabf, ssim
from focusstudio.core.training.recipe import Batch, RecipeDefaults, TrainRecipe, register_recipe
from focusstudio.core.training.synthesis import SynthesisConfig

if TYPE_CHECKING:
    from focusstudio.core.training.trainer import TrainConfig



@register_recipe
class UFARecipe(TrainRecipe):
    name = "ufa"
    description = "UFA-Fuse end-to-end network (colour images + focus masks, mean-filter pairs)"
    data_kind = "images+masks"
    grey = False
    primary_metric = "ssim"
    higher_is_better = True
    loss_description = (
        "l1_weight·L1(O, GT) + (1 − l1_weight)·(1 − SSIM 11×11 σ1.5, C1 1e-4, C2 9e-4), l1_weight 0.2; "
        "spatial attention with a proper 2-way softmax (the released code's denominator typo is fixed)"
    )

    def defaults(self) -> RecipeDefaults:
        return RecipeDefaults(
            batch_size=8, crop=128, resize=256, lr=1e-4,
            lr_schedule={"kind": "epoch_step", "gamma": 0.1, "every": 200},
            steps=100_000, val_every=500, val_samples=32,
            options={"width": 64, "l1_weight": 0.2},
        )

    def synthesis(self, config: TrainConfig) -> SynthesisConfig:
        overrides: dict[str, Any] = {
            "mode": "plain", "grey": False, "resize": config.resize, "crop": config.crop, "blur": "mean",
            "flip": True, "rotation_step_deg": 90, "offset_probability": 0.0, "noise_max_std": 0.0,
            "swap_probability": 0.5,
        }
        overrides.update(config.synthesis)
        return SynthesisConfig.from_dict({**SynthesisConfig().to_dict(), **overrides})

    def model_config(self, config: TrainConfig) -> dict[str, Any]:
        return {"width": int(self.option(config, "width")), "official_quirks": False}

    def build_model(self, model_config: dict[str, Any]) -> nn.Module:
        network = UFAFuseNet(width=int(model_config.get("width", 64)), official_quirks=False)
        for module in network.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.xavier_normal_(module.weight)
        return network

    def _forward(self, model: nn.Module, batch: Batch, config: TrainConfig) -> dict[str, torch.Tensor]:
        fused = model(batch["a"], batch["b"]).fused
        target = batch["sharp"]
        l1 = l1_loss(fused, target)
        similarity = ssim(fused, target)
        weight = float(self.option(config, "l1_weight"))
        return {"loss": weight * l1 + (1.0 - weight) * (1.0 - similarity), "l1": l1, "ssim": similarity,
                "fused": fused}

    def loss(self, model: nn.Module, batch: Batch, config: TrainConfig) -> tuple[torch.Tensor, dict[str, float]]:
        out = self._forward(model, batch, config)
        return out["loss"], {"l1": float(out["l1"].detach()), "ssim": float(out["ssim"].detach())}

    def validation_scores(self, model: nn.Module, batch: Batch, config: TrainConfig) -> dict[str, float]:
        out = self._forward(model, batch, config)
        return {
            "loss": float(out["loss"]), "l1": float(out["l1"]), "ssim": float(out["ssim"]),
            "psnr": psnr(out["fused"], batch["sharp"]), "qabf": float(qabf(batch["a"], batch["b"], out["fused"])),
        }

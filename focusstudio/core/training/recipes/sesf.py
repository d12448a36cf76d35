"""SESF-Fuse: unsupervised auto-encoder on grey sharp images (REFERENCE-NOTES §1.3).

The released code trains on MS-COCO resized to 256×256, batch 48, 30 epochs, loss
``‖O − I‖_F + 1000·(1 − SSIM₅ₓ₅)`` on normalised tensors; see :func:`sesf_loss` for how we keep
that balance at other batch/crop sizes. Only the encoder is used at inference, through the spatial
frequency of its features, so validation also measures what inference needs: how often
``SF(enc(A)) > SF(enc(B))`` picks the sharp source on synthesized pairs (``dm_accuracy``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from focusstudio.core.methods.archs.sesf_arch import SESF_MEAN, SESF_STD, SESFNet
from focusstudio.core.ops.spatial_frequency import spatial_frequency
from focusstudio.core.training.losses import sesf_loss
from focusstudio.core.training.recipe import Batch, RecipeDefaults, TrainRecipe
from focusstudio.core.training.synthesis import SynthesisConfig

if TYPE_CHECKING:
    from focusstudio.core.training.trainer import TrainConfig

#: Spatial-frequency radius of SESF-Fuse's decision (11×11 window).
SF_RADIUS = 5


class SESFRecipe(TrainRecipe):
    name = "sesf"
    description = "SESF-Fuse auto-encoder (unsupervised: sharp grey images only)"
    data_kind = "images"
    grey = True
    primary_metric = "dm_accuracy"
    higher_is_better = True
    loss_description = (
        "RMS(O−I)·sqrt(48·256²) + ssim_weight·(1 − SSIM 5×5 σ1.5) on normalised grey images "
        "(the released code's Frobenius-norm + 1000·SSIM balance, independent of batch/crop)"
    )

    def defaults(self) -> RecipeDefaults:
        return RecipeDefaults(
            batch_size=48, crop=256, resize=256, lr=1e-4, steps=50_000, val_every=250, val_samples=64,
            options={"ssim_weight": 1000.0, "pixel_mode": "frobenius_scaled"},
        )

    def synthesis(self, config: TrainConfig) -> SynthesisConfig:
        # The paper uses no augmentation on 82k COCO images; with a few thousand photos flips and
        # right-angle rotations are free extra data for an auto-encoder.
        overrides: dict[str, Any] = {
            "mode": "none", "grey": True, "resize": config.resize, "crop": config.crop, "flip": True,
            "rotation_step_deg": 90, "offset_probability": 0.0, "noise_max_std": 0.0, "swap_probability": 0.0,
        }
        overrides.update(config.synthesis)
        return SynthesisConfig.from_dict({**SynthesisConfig().to_dict(), **overrides})

    def validation_synthesis(self, config: TrainConfig) -> SynthesisConfig:
        # Validation pairs (plain Gaussian blur, σ 1–3, real or random masks) test the encoder's
        # focus discrimination; the sharp image also gives the reconstruction metrics.
        return SynthesisConfig(
            mode="plain", grey=True, resize=config.resize, crop=config.crop, blur="gaussian",
            sigma_range=(1.0, 3.0),
        ).for_validation()

    def model_config(self, config: TrainConfig) -> dict[str, Any]:
        return {"reduction": 8, "normalize_mean": SESF_MEAN, "normalize_std": SESF_STD}

    def loss(self, model: nn.Module, batch: Batch, config: TrainConfig) -> tuple[torch.Tensor, dict[str, float]]:
        normalized = SESFNet.normalize(batch["sharp"])
        total, parts = sesf_loss(
            model(normalized), normalized,
            ssim_weight=float(self.option(config, "ssim_weight")),
            pixel_mode=str(self.option(config, "pixel_mode")),
        )
        return total, {key: float(value) for key, value in parts.items()}

    def validation_scores(self, model: nn.Module, batch: Batch, config: TrainConfig) -> dict[str, float]:
        assert isinstance(model, SESFNet)
        normalized = SESFNet.normalize(batch["sharp"])
        output = model(normalized)
        loss, parts = sesf_loss(
            output, normalized, ssim_weight=float(self.option(config, "ssim_weight")),
            pixel_mode=str(self.option(config, "pixel_mode")),
        )
        mse = float(((output - normalized) * SESF_STD).pow(2).mean())
        activity_a = spatial_frequency(model.encode(SESFNet.normalize(batch["a"])), SF_RADIUS)
        activity_b = spatial_frequency(model.encode(SESFNet.normalize(batch["b"])), SF_RADIUS)
        decision = (activity_a > activity_b).to(batch["mask"].dtype)
        return {
            "loss": float(loss), "ssim": float(parts["ssim"]),
            "psnr": 10.0 * torch.log10(torch.tensor(1.0 / max(mse, 1e-12))).item(),
            "dm_accuracy": float((decision == batch["mask"]).float().mean()),
        }

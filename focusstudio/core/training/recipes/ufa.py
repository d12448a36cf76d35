"""UFA-Fuse: end-to-end fusion trained against the all-in-focus image (REFERENCE-NOTES §4.4, §7.5).

* Data: colour images with real or random masks, "plain" complementary pairs blurred with a mean
  filter whose size is drawn from UFA-Fuse's levels (2–3, 4–5, 5–7, 8–10 px); flips, right-angle
  rotations and random swap of the two inputs; the target is the sharp image.
* Loss: 0.2·L1(O, GT) + 0.8·(1 − SSIM(O, GT)), SSIM with an 11×11 Gaussian window σ 1.5 per
  channel, C1 = 1e-4, C2 = 9e-4 (the released code's).
* Network: our v1 topology with ``official_quirks=False``: a proper two-way softmax in the spatial
  attention (the released code has a denominator typo, REFERENCE-NOTES §7.5.2 — fixed here and
  recorded in the manifest).
* Initialisation, option ``init``: ``identity`` (default) starts from a network that already outputs
  the attention-weighted mix of its inputs (:mod:`.ufa_init`; fusing an image with itself gives it
  back at step 0); ``xavier`` is upstream's Xavier-normal start, whose sigmoid head outputs grey and
  must first learn to pass colours through (the earlier from-scratch attempt stalled there).
* Optional phases: ``identity_warmup_steps`` (the sharp image as both inputs, i.e. learn to
  reconstruct; afterwards ``identity_share`` of every batch stays such a self-pair, so fusion
  training cannot trade away the reconstruction of an image fused with itself), and
  ``early_l1_weight`` for the first ``early_steps`` steps (SSIM is blind to a colour cast; L1 is
  not); afterwards the paper's loss.
* Monitoring: ``monitor_pairs`` (a folder of ``<scene>/1.*, 2.*`` pairs, e.g. Lytro) adds to every
  validation Q^{AB/F} and Q_cb of the first ``monitor_count`` pairs (their centre ``monitor_crop``²
  when > 0) and the PSNR of fusing their first source with itself; the validation crops' identity
  PSNR is always measured.
* Adam(1e-4), learning rate /10 every 200 epochs (upstream StepLR), batch 8.
* Width: option ``width`` (64 = the released size; narrower for CPU training).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from focusstudio.core.errors import InputError
from focusstudio.core.methods.archs.ufa_arch import UFAFuseNet
from focusstudio.core.training.losses import l1_loss, psnr, qabf, ssim
from focusstudio.core.training.recipe import Batch, RecipeDefaults, TrainRecipe
from focusstudio.core.training.recipes.ufa_init import identity_initialise
from focusstudio.core.training.synthesis import SynthesisConfig

if TYPE_CHECKING:
    from focusstudio.core.training.trainer import TrainConfig


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
            options={"width": 64, "l1_weight": 0.2, "init": "identity", "identity_warmup_steps": 0,
                     "identity_share": 0.0,
                     "early_l1_weight": 0.2, "early_steps": 0,
                     "monitor_pairs": None, "monitor_count": 4, "monitor_crop": 0},
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
        init = self.option(config, "init")
        if init not in INITIALISATIONS:
            raise InputError(f"ufa: option init must be one of {', '.join(INITIALISATIONS)}, got {init!r}")
        # The initialisation is recorded with the network's settings (checkpoint and weights file);
        # build_model applies it only to a fresh network, loaded weights replace it anyway.
        return {"width": int(self.option(config, "width")), "official_quirks": False, "init": init}

    def build_model(self, model_config: dict[str, Any]) -> nn.Module:
        # The spec's network without the authors' quirks (model_config says official_quirks False).
        network = super().build_model({**model_config, "official_quirks": False})
        assert isinstance(network, UFAFuseNet)
        for module in network.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.xavier_normal_(module.weight)
        if model_config.get("init", "xavier") == "identity":
            identity_initialise(network)
        return network

    def l1_weight(self, config: TrainConfig, step: int) -> float:
        """The L1 share of the loss at ``step``: ``early_l1_weight`` during ``early_steps``."""
        if step < int(self.option(config, "early_steps")):
            return float(self.option(config, "early_l1_weight"))
        return float(self.option(config, "l1_weight"))

    def _forward(self, model: nn.Module, batch: Batch, config: TrainConfig, weight: float) -> dict[str, torch.Tensor]:
        fused = model(batch["a"], batch["b"]).fused
        target = batch["sharp"]
        l1 = l1_loss(fused, target)
        similarity = ssim(fused, target)
        return {"loss": weight * l1 + (1.0 - weight) * (1.0 - similarity), "l1": l1, "ssim": similarity,
                "fused": fused}

    def loss(self, model: nn.Module, batch: Batch, config: TrainConfig) -> tuple[torch.Tensor, dict[str, float]]:
        """The paper's loss (the phase-dependent loss of a step is in :meth:`train_step`)."""
        out = self._forward(model, batch, config, float(self.option(config, "l1_weight")))
        return out["loss"], {"l1": float(out["l1"].detach()), "ssim": float(out["ssim"].detach())}

    def train_step(
        self, model: nn.Module, batch: Batch, optimizers: dict[str, torch.optim.Optimizer], step: int,
        config: TrainConfig,
    ) -> dict[str, float]:
        if step < int(self.option(config, "identity_warmup_steps")):
            # Warm-up: reconstruct the sharp image from itself (colours and detail first).
            batch = {**batch, "a": batch["sharp"], "b": batch["sharp"]}
        else:
            batch = self._with_self_pairs(batch, float(self.option(config, "identity_share")))
        optimizer = optimizers["model"]
        optimizer.zero_grad(set_to_none=True)
        out = self._forward(model, batch, config, self.l1_weight(config, step))
        total = out["loss"]
        if not torch.isfinite(total):
            raise FloatingPointError(f"{self.name}: the loss became {total.item()} at step {step}")
        total.backward()
        optimizer.step()
        return {"loss": float(total.detach()), "l1": float(out["l1"].detach()), "ssim": float(out["ssim"].detach())}

    @staticmethod
    def _with_self_pairs(batch: Batch, share: float) -> Batch:
        """The last round(share·N) samples become self-pairs (sharp, sharp) → sharp."""
        count = min(len(batch["sharp"]), round(share * len(batch["sharp"])))
        if count <= 0:
            return batch
        a, b = batch["a"].clone(), batch["b"].clone()
        a[-count:] = batch["sharp"][-count:]
        b[-count:] = batch["sharp"][-count:]
        return {**batch, "a": a, "b": b}

    def validation_scores(self, model: nn.Module, batch: Batch, config: TrainConfig) -> dict[str, float]:
        out = self._forward(model, batch, config, float(self.option(config, "l1_weight")))
        identity = model(batch["sharp"], batch["sharp"]).fused
        return {
            "loss": float(out["loss"]), "l1": float(out["l1"]), "ssim": float(out["ssim"]),
            "psnr": psnr(out["fused"], batch["sharp"]), "qabf": float(qabf(batch["a"], batch["b"], out["fused"])),
            "identity_psnr": psnr(identity, batch["sharp"]),
        }

    @torch.no_grad()
    def validate(self, model: nn.Module, batches: Sequence[Batch], config: TrainConfig) -> dict[str, float]:
        scores = super().validate(model, batches, config)
        folder = self.option(config, "monitor_pairs")
        if folder:
            scores.update(monitor_pairs(model, Path(folder), int(self.option(config, "monitor_count")),
                                        int(self.option(config, "monitor_crop"))))
        return scores


#: Values of the ``init`` option.
INITIALISATIONS = ("identity", "xavier")


def _centre(image: np.ndarray, crop: int) -> np.ndarray:
    if crop <= 0:
        return image
    top, left = max(0, (image.shape[0] - crop) // 2), max(0, (image.shape[1] - crop) // 2)
    return image[top:top + crop, left:left + crop]


def _read_pairs(folder: Path, count: int, crop: int) -> list[tuple[np.ndarray, np.ndarray]]:
    from focusstudio.core.io import read_image
    from focusstudio.core.training.datasets import IMAGE_SUFFIXES

    if not folder.is_dir():
        raise InputError("monitor pair folder not found", folder)
    pairs = []
    for scene in sorted(p for p in folder.iterdir() if p.is_dir()):
        files = {p.stem.lower(): p for p in scene.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
        if {"1", "2"} <= set(files):
            pairs.append((_centre(read_image(files["1"]), crop), _centre(read_image(files["2"]), crop)))
        if len(pairs) == count:
            break
    if not pairs:
        raise InputError("no scene folders with 1.* and 2.* images", folder)
    return pairs


_PAIR_CACHE: dict[tuple[str, int, int], list[tuple[np.ndarray, np.ndarray]]] = {}


def monitor_pairs(model: nn.Module, folder: Path, count: int, crop: int = 0) -> dict[str, float]:
    """Mean Q^{AB/F}, Q_cb (grey, as ``focusstudio eval``) of the first ``count`` pairs of ``folder``
    and the PSNR of fusing each first source with itself: the figures the released weights are
    judged by, measured during training. ``crop`` > 0: their centre crop×crop only (a 520² pair
    costs about a TFLOP at width 64, too much for a CPU run's every validation)."""
    from focusstudio.core.metrics import compute_metrics

    key = (str(folder), count, crop)
    if key not in _PAIR_CACHE:
        _PAIR_CACHE[key] = _read_pairs(folder, count, crop)
    device = next(model.parameters()).device
    totals = {"lytro_qabf": 0.0, "lytro_qcb": 0.0, "lytro_identity_psnr": 0.0}
    pairs = _PAIR_CACHE[key]
    for first, second in pairs:
        a, b = (torch.from_numpy(np.ascontiguousarray(_rgb(x))).permute(2, 0, 1)[None].float().to(device)
                for x in (first, second))
        fused = model(a, b).fused[0].permute(1, 2, 0).cpu().numpy()
        metrics = compute_metrics(fused, [first, second], metrics=["Qabf", "Qcb"])
        totals["lytro_qabf"] += metrics["Qabf"]
        totals["lytro_qcb"] += metrics["Qcb"]
        totals["lytro_identity_psnr"] += psnr(model(a, a).fused, a)
    return {name: value / max(len(pairs), 1) for name, value in totals.items()}


def _rgb(image: np.ndarray) -> np.ndarray:
    return np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image[..., :3]

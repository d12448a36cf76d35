"""MFIF-GAN: WGAN-GP on (A, B, focus map) plus an L1 reconstruction of the map (REFERENCE-NOTES §3.4–3.5).

* Data: MFIF-GAN's α-matte (defocus-spread) synthesis on colour images with real or random masks:
  A = M·I + (1−M)·G((1−M)·I), B = G(M·I) + (1−G(M))·((1−M)·I); the target is the hard mask M.
  Upstream uses Gaussian σ = 1 only; we draw σ ~ U(0.5, 3) per sample so the map also learns
  stronger defocus (real Lytro blur is mostly stronger than σ = 1). Random swap of the sources
  (the target becomes 1 − M) so neither input slot is favoured.
* **Deliberate deviation (recorded in the manifest):** the target map stays in [0, 1], the range of
  the generator's sigmoid. Upstream normalises it to [−1, 1] (REFERENCE-NOTES §7.4.4), which
  makes the L1 term and the critic's "real" input inconsistent with the generator's output.
* Critic: the upstream topology without its final sigmoid and with instance norm instead of batch
  norm (same parameter count): the gradient penalty is a per-sample quantity, which batch norm
  couples across the batch (Gulrajani et al. recommend no batch norm in a WGAN-GP critic).
* Loss: L_D = E[D(fake)] − E[D(real)] + λ_gp·E[(‖∇_x̂ D(A, B, x̂)‖₂ − 1)²], x̂ = u·M + (1−u)·G(A, B),
  gradient w.r.t. the map channel only; L_G = −E[D(fake)] + λ_rec·‖M − G(A, B)‖₁ with λ_gp =
  λ_rec = 10. One trainer step = one critic update; the generator is updated every ``n_critic``
  (5) steps, on the same batch (as upstream, whose iterations count critic steps).
* Adam(1e-4, β = (0.5, 0.999)) for both networks, constant, then a linear decay to 0 over the
  last 10 % of the steps by default (``--lr-schedule`` sets another tail; upstream's "decay" window
  changes the rate by only 0.1 %).
* Size: option ``size`` = ``cpu`` (width 16, 4 SE blocks, SE ratio 8; critic width 32), ``full``
  (the released 13.7 M generator, critic width 64), or ``auto`` (full on a GPU, cpu otherwise);
  options ``width``, ``blocks``, ``se_reduction``, ``critic_width`` override the preset.
  The exported weights hold only the generator, with its configuration.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from focusstudio.core.device import resolve_device
from focusstudio.core.errors import InputError
from focusstudio.core.methods.archs.mfifgan_arch import (
    CPU_GENERATOR_CONFIG,
    GeneratorConfig,
    MFIFGANCritic,
)
from focusstudio.core.training.losses import decision_scores, l1_loss, psnr, qabf
from focusstudio.core.training.recipe import Batch, RecipeDefaults, TrainRecipe
from focusstudio.core.training.synthesis import SynthesisConfig

if TYPE_CHECKING:
    from focusstudio.core.training.trainer import TrainConfig

#: Generator size presets and their critic widths.
SIZES: dict[str, tuple[GeneratorConfig, int]] = {
    "cpu": (CPU_GENERATOR_CONFIG, 32),
    "full": (GeneratorConfig(), 64),
}


class MFIFGANTrainingPair(nn.Module):
    """Generator and critic trained together (only the generator is exported)."""

    def __init__(self, generator: nn.Module, critic_width: int) -> None:
        super().__init__()
        self.generator = generator
        self.critic = MFIFGANCritic(width=critic_width, norm="instance", final_sigmoid=False)

    def forward(self, image_a: torch.Tensor, image_b: torch.Tensor) -> torch.Tensor:
        return self.generator(image_a, image_b)


def gradient_penalty(
    critic: MFIFGANCritic, image_a: torch.Tensor, image_b: torch.Tensor, real: torch.Tensor, fake: torch.Tensor
) -> torch.Tensor:
    """E[(‖∇_x̂ D(A, B, x̂)‖₂ − 1)²] on random interpolates of the real and generated maps."""
    u = torch.rand(real.shape[0], 1, 1, 1, device=real.device, dtype=real.dtype)
    mixed = (u * real + (1.0 - u) * fake).requires_grad_(True)
    score = critic(image_a, image_b, mixed)
    (gradient,) = torch.autograd.grad(score.sum(), mixed, create_graph=True)
    norm = gradient.flatten(1).norm(2, dim=1)
    return ((norm - 1.0) ** 2).mean()


class MFIFGANRecipe(TrainRecipe):
    name = "mfifgan"
    description = "MFIF-GAN generator + WGAN-GP critic (colour images + focus masks, α-matte synthesis)"
    data_kind = "images+masks"
    grey = False
    primary_metric = "accuracy"
    higher_is_better = True
    loss_description = (
        "WGAN-GP: L_D = D(fake) − D(real) + λ_gp·GP (map channel), L_G = −D(fake) + λ_rec·L1(G, M), "
        "λ_gp = λ_rec = 10, n_critic = 5; target map M in [0, 1] (upstream normalises it to [−1, 1]: "
        "a range bug, deliberately not reproduced); critic without final sigmoid, instance norm"
    )

    def defaults(self) -> RecipeDefaults:
        return RecipeDefaults(
            batch_size=4, crop=128, resize=256, lr=1e-4, betas=(0.5, 0.999),
            lr_schedule={"kind": "linear_tail", "final": 0.0},
            steps=6000, val_every=500, val_samples=32,
            options={"size": "auto", "width": None, "blocks": None, "se_reduction": None, "critic_width": None,
                     "lambda_gp": 10.0, "lambda_rec": 10.0, "n_critic": 5},
        )

    def synthesis(self, config: TrainConfig) -> SynthesisConfig:
        overrides: dict[str, Any] = {
            "mode": "alpha_matte", "grey": False, "resize": config.resize, "crop": config.crop,
            "blur": "gaussian", "sigma_range": (0.5, 3.0), "flip": True, "rotation_step_deg": 90,
            "offset_probability": 0.0, "noise_max_std": 0.0, "swap_probability": 0.5,
        }
        overrides.update(config.synthesis)
        return SynthesisConfig.from_dict({**SynthesisConfig().to_dict(), **overrides})

    def model_config(self, config: TrainConfig) -> dict[str, Any]:
        size = str(self.option(config, "size"))
        if size == "auto":
            size = "full" if resolve_device(config.device).startswith("cuda") else "cpu"
        if size not in SIZES:
            raise InputError(f"mfifgan: size must be auto, cpu or full, got {size!r}")
        generator, critic_width = SIZES[size]
        values: dict[str, Any] = {**generator.to_dict(), "critic_width": critic_width}
        # Explicit sizes override the preset (any width/depth of the same topology).
        for key in ("width", "blocks", "se_reduction", "critic_width"):
            if self.option(config, key) is not None:
                values[key] = int(self.option(config, key))
        return {**values, "size": size}

    def build_model(self, model_config: dict[str, Any]) -> nn.Module:
        # The generator is the method's network (built by its spec); the critic is training-only.
        generator = super().build_model(model_config)
        return MFIFGANTrainingPair(generator, int(model_config["critic_width"]))

    def make_optimizers(self, model: nn.Module, config: TrainConfig) -> dict[str, torch.optim.Optimizer]:
        assert isinstance(model, MFIFGANTrainingPair)
        betas = (float(config.betas[0]), float(config.betas[1]))
        return {
            "generator": torch.optim.Adam(model.generator.parameters(), lr=config.lr, betas=betas),
            "critic": torch.optim.Adam(model.critic.parameters(), lr=config.lr, betas=betas),
        }

    def train_step(
        self,
        model: nn.Module,
        batch: Batch,
        optimizers: dict[str, torch.optim.Optimizer],
        step: int,
        config: TrainConfig,
    ) -> dict[str, float]:
        assert isinstance(model, MFIFGANTrainingPair)
        image_a, image_b, real = batch["a"], batch["b"], batch["mask"]
        lambda_gp = float(self.option(config, "lambda_gp"))
        lambda_rec = float(self.option(config, "lambda_rec"))
        # Critic step.
        with torch.no_grad():
            fake = model.generator(image_a, image_b)
        score_real = model.critic(image_a, image_b, real).mean()
        score_fake = model.critic(image_a, image_b, fake).mean()
        penalty = gradient_penalty(model.critic, image_a, image_b, real, fake)
        critic_loss = score_fake - score_real + lambda_gp * penalty
        if not torch.isfinite(critic_loss):
            raise FloatingPointError(f"mfifgan: the critic loss became {critic_loss.item()} at step {step}")
        optimizers["critic"].zero_grad(set_to_none=True)
        critic_loss.backward()
        optimizers["critic"].step()
        reconstruction = l1_loss(fake, real)
        # The generator objective at this step's maps (logged every step; optimised every n_critic).
        generator_loss = -score_fake.detach() + lambda_rec * reconstruction
        if (step + 1) % int(self.option(config, "n_critic")) == 0:
            fake = model.generator(image_a, image_b)
            for parameter in model.critic.parameters():
                parameter.requires_grad_(False)
            adversarial = -model.critic(image_a, image_b, fake).mean()
            for parameter in model.critic.parameters():
                parameter.requires_grad_(True)
            reconstruction = l1_loss(fake, real)
            generator_total = adversarial + lambda_rec * reconstruction
            if not torch.isfinite(generator_total):
                raise FloatingPointError(f"mfifgan: the generator loss became {generator_total.item()} at step {step}")
            optimizers["generator"].zero_grad(set_to_none=True)
            generator_total.backward()
            optimizers["generator"].step()
            generator_loss = generator_total.detach()
        return {
            "loss": float(generator_loss),
            "l1": float(reconstruction.detach()),
            "critic_loss": float(critic_loss.detach()),
            "wasserstein": float((score_real - score_fake).detach()),
            "gp": float(penalty.detach()),
        }

    def loss(self, model: nn.Module, batch: Batch, config: TrainConfig) -> tuple[torch.Tensor, dict[str, float]]:
        """The generator's reconstruction objective (used for validation and by generic callers)."""
        assert isinstance(model, MFIFGANTrainingPair)
        fake = model.generator(batch["a"], batch["b"])
        reconstruction = l1_loss(fake, batch["mask"])
        return float(self.option(config, "lambda_rec")) * reconstruction, {"l1": float(reconstruction.detach())}

    def validation_scores(self, model: nn.Module, batch: Batch, config: TrainConfig) -> dict[str, float]:
        assert isinstance(model, MFIFGANTrainingPair)
        focus_map = model.generator(batch["a"], batch["b"])
        decision = (focus_map > 0.5).float()
        fused = decision * batch["a"] + (1.0 - decision) * batch["b"]
        return {
            "l1": float(l1_loss(focus_map, batch["mask"])),
            "qabf": float(qabf(batch["a"], batch["b"], fused)),
            "psnr": psnr(fused, batch["sharp"]),
            **decision_scores(focus_map, batch["mask"]),
        }

    def export_state_dict(self, model: nn.Module) -> dict[str, torch.Tensor]:
        assert isinstance(model, MFIFGANTrainingPair)
        return {key: value.detach().cpu().clone() for key, value in model.generator.state_dict().items()}

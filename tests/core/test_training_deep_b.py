"""Training recipes of MFIF-GAN, UFA-Fuse and two-stream: a few steps lower the loss, the exported
weights load into the fusion methods."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from focusstudio.core.methods.archs.mfifgan_arch import MFIFGANCritic
from focusstudio.core.training.recipe import get_recipe, recipe_names
from focusstudio.core.training.recipes.mfifgan import gradient_penalty
from focusstudio.core.training.trainer import TrainConfig, make_config

SIZE = 48


# Tiny convolutions on a shared 2-core machine: one torch thread (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 colour random-texture images with half-frame masks."""
    root = tmp_path_factory.mktemp("corpus")
    (root / "images").mkdir()
    (root / "masks").mkdir()
    rng = np.random.default_rng(5)
    for i in range(6):
        coarse = cv2.resize(rng.random((SIZE // 4, SIZE // 4, 3)).astype(np.float32), (SIZE, SIZE),
                            interpolation=cv2.INTER_NEAREST)
        texture = np.clip((0.7 * coarse + 0.3 * rng.random((SIZE, SIZE, 3))) * 255, 0, 255).astype(np.uint8)
        cv2.imwrite(str(root / "images" / f"img{i}.png"), texture)
        mask = np.zeros((SIZE, SIZE), np.uint8)
        mask[:, : SIZE // 2 + 2 * i] = 255
        cv2.imwrite(str(root / "masks" / f"img{i}.png"), mask)
    return root


def _config(method: str, folder: Path, tmp_path: Path, **overrides: object) -> TrainConfig:
    # No augmentation: the batch barely changes between steps, so a few steps must lower the loss.
    synthesis = {"flip": False, "rotation_step_deg": 0, "swap_probability": 0.0}
    values = {"out": str(tmp_path / "weights" / f"{method}.pt"), "run_dir": str(tmp_path / "run"),
              "batch_size": 2, "crop": 32, "resize": SIZE, "device": "cpu", "val_fraction": 0.2,
              "val_samples": 2, "val_every": 1000, "lr": 2e-3, "seed": 3, "synthesis": synthesis,
              "checkpoint_interval_s": 1e9, **overrides}
    return make_config(method, folder, **values)


def _run(generator):  # type: ignore[no-untyped-def]
    events = []
    while True:
        try:
            events.append(next(generator))
        except StopIteration as stop:
            return events, stop.value


SMALL = {
    "mfifgan": {"width": 4, "blocks": 1, "se_reduction": 2, "critic_width": 4, "size": "cpu"},
    "ufa": {"width": 8},
    "twostream": {"width": 8, "head_width": 8},
}


# A few steps lower each trainable method's loss and its exported weights fuse: that is part of the
# contract every registered method keeps (tests/core/test_method_contract.py, settings from SMALL).


def test_mfifgan_updates_the_generator_every_n_critic_steps(image_folder: Path, tmp_path: Path) -> None:
    config = _config("mfifgan", image_folder, tmp_path, steps=1, options=SMALL["mfifgan"])
    recipe = get_recipe("mfifgan")
    model = recipe.build_model(recipe.model_config(config))
    optimizers = recipe.make_optimizers(model, config)
    batch = {
        "a": torch.rand(2, 3, 32, 32), "b": torch.rand(2, 3, 32, 32),
        "mask": (torch.rand(2, 1, 32, 32) > 0.5).float(), "sharp": torch.rand(2, 3, 32, 32),
    }
    generator_before = [p.detach().clone() for p in model.generator.parameters()]
    for step in range(4):  # critic-only steps
        recipe.train_step(model, batch, optimizers, step, config)
    assert all(torch.equal(a, b) for a, b in zip(generator_before, model.generator.parameters()))
    recipe.train_step(model, batch, optimizers, 4, config)  # the 5th step updates the generator
    assert not all(torch.equal(a, b) for a, b in zip(generator_before, model.generator.parameters()))
    # Export keeps only the generator, with the fusion method's key names.
    exported = recipe.export_state_dict(model)
    assert set(exported) == set(model.generator.state_dict())


def test_gradient_penalty_is_zero_for_a_unit_gradient_critic() -> None:
    torch.manual_seed(0)
    critic = MFIFGANCritic(width=4, norm="none")
    a, b = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    real, fake = torch.rand(2, 1, 32, 32), torch.rand(2, 1, 32, 32)
    penalty = gradient_penalty(critic, a, b, real, fake)
    assert penalty.item() > 0.0 and penalty.requires_grad

    class UnitSlope(torch.nn.Module):
        """D(A, B, m) = Σ m / ‖1‖: gradient norm exactly 1 everywhere."""

        def forward(self, image_a: torch.Tensor, image_b: torch.Tensor, focus_map: torch.Tensor) -> torch.Tensor:
            return focus_map.flatten(1).sum(dim=1) / float(focus_map[0].numel()) ** 0.5

    assert gradient_penalty(UnitSlope(), a, b, real, fake).item() == pytest.approx(0.0, abs=1e-6)  # type: ignore[arg-type]


def test_recipes_are_registered() -> None:
    assert {"mfifgan", "ufa", "twostream"} <= set(recipe_names())
    # The training target of MFIF-GAN stays in [0, 1] (upstream's [−1, 1] range bug is not kept).
    assert "[0, 1]" in get_recipe("mfifgan").loss_description

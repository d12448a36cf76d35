"""UFA-Fuse identity initialisation: at step 0 the network returns the attention-weighted mix of its
inputs (an image fused with itself comes back), and training from it lowers the loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from focusstudio.core.errors import InputError
from focusstudio.core.training.recipe import get_recipe
from focusstudio.core.training.recipes.ufa_init import fit_logit
from focusstudio.core.training.trainer import make_config

# Tiny convolutions on a shared 2-core machine: one torch thread (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _network(width: int = 64, init: str = "identity") -> torch.nn.Module:
    recipe = get_recipe("ufa")
    config = make_config("ufa", "unused", options={"width": width, "init": init})
    torch.manual_seed(0)
    return recipe.build_model(recipe.model_config(config))


def _texture(seed: int, size: int = 24) -> torch.Tensor:
    # Values spanning the whole [0, 1] range, including the 8-bit extremes where logit is steepest.
    levels = np.random.default_rng(seed).integers(0, 256, (1, 3, size, size))
    return torch.from_numpy(levels.astype(np.float32) / 255.0)


def _psnr(output: torch.Tensor, target: torch.Tensor) -> float:
    return float(10 * torch.log10(1.0 / torch.mean((output - target) ** 2)))


def test_the_sigmoid_head_fit_inverts_the_sigmoid_on_8_bit_levels() -> None:
    t, coef = fit_logit(10)
    x = np.arange(256) / 255.0
    pre = coef[0] + coef[1] * x + sum(b * np.maximum(x - tk, 0) for b, tk in zip(coef[2:], t))
    error = np.abs(1 / (1 + np.exp(-pre)) - x) * 255
    # 10 knots: worst level ~1.2 off (the ends, where logit diverges), RMS ~0.4 level.
    assert error.max() < 1.5 and np.sqrt(np.mean(error**2)) < 0.5


def test_identity_init_reproduces_an_image_fused_with_itself() -> None:
    network = _network().eval()
    image = _texture(1)
    with torch.no_grad():
        fused = network(image, image).fused
    assert _psnr(fused, image) >= 35.0


def test_identity_init_outputs_the_channel_attention_weighted_mix() -> None:
    network = _network().eval()
    a, b = _texture(2), _texture(3)
    with torch.no_grad():
        out = network(a, b)
    weight_a, weight_b = out.channel_weights[0][:, :3], out.channel_weights[1][:, :3]
    assert torch.allclose(weight_a + weight_b, torch.ones_like(weight_a), atol=1e-6)
    # Spatial attention starts at ½ for both inputs.
    assert torch.allclose(out.spatial_weights[0], torch.full_like(out.spatial_weights[0], 0.5))
    mix = weight_a * a + weight_b * b
    # Within the head's fit (≤ 1.5 levels) plus float32 rounding.
    assert float((out.fused - mix).abs().max()) * 255 < 1.6


def test_xavier_init_starts_grey_and_unknown_init_is_refused() -> None:
    network = _network(init="xavier").eval()
    image = _texture(4)
    with torch.no_grad():
        assert _psnr(network(image, image).fused, image) < 20.0
    with pytest.raises(InputError, match="init"):
        _network(init="dirac")


def test_a_few_steps_from_the_identity_init_lower_the_loss() -> None:
    recipe = get_recipe("ufa")
    config = make_config("ufa", "unused", lr=2e-4, options={"width": 12})
    torch.manual_seed(0)
    model = recipe.build_model(recipe.model_config(config))
    optimizers = recipe.make_optimizers(model, config)
    # A fixed "focus" pair: the left half of a is blurred, the right half of b.
    sharp = torch.nn.functional.interpolate(_texture(5, 6), size=24, mode="nearest")
    sharp = (sharp + 0.2 * _texture(6, 24)).clamp(0, 1)
    blurred = torch.nn.functional.avg_pool2d(sharp, 5, stride=1, padding=2, count_include_pad=False)
    left = torch.zeros(1, 1, 24, 24)
    left[..., :12] = 1.0
    batch = {"a": left * blurred + (1 - left) * sharp, "b": left * sharp + (1 - left) * blurred, "sharp": sharp}
    losses = [recipe.train_step(model, batch, optimizers, step, config)["loss"] for step in range(10)]
    assert np.mean(losses[-3:]) < np.mean(losses[:3])


def test_early_phase_weights_and_identity_warm_up() -> None:
    recipe = get_recipe("ufa")
    config = make_config("ufa", "unused", options={"early_l1_weight": 0.9, "early_steps": 5})
    assert recipe.l1_weight(config, 4) == 0.9 and recipe.l1_weight(config, 5) == 0.2


def test_identity_share_turns_the_last_samples_into_self_pairs() -> None:
    recipe = get_recipe("ufa")
    batch = {"a": torch.zeros(4, 3, 2, 2), "b": torch.ones(4, 3, 2, 2), "sharp": torch.full((4, 3, 2, 2), 0.5)}
    mixed = recipe._with_self_pairs(batch, 0.25)  # type: ignore[attr-defined]
    assert torch.equal(mixed["a"][3], batch["sharp"][3]) and torch.equal(mixed["b"][3], batch["sharp"][3])
    assert torch.equal(mixed["a"][:3], batch["a"][:3]) and torch.equal(mixed["b"][:3], batch["b"][:3])
    assert recipe._with_self_pairs(batch, 0.0) is batch  # type: ignore[attr-defined]


def test_colour_fidelity_reports_the_channel_shift_against_the_closer_source() -> None:
    from benchmarks.colour_fidelity import scene_colour

    rng = np.random.default_rng(7)
    source_1 = rng.uniform(20, 200, (16, 16, 3))
    source_2 = source_1 + np.array([5.0, 5.0, 5.0])  # a brighter second source
    fused = source_1 + np.array([2.0, 0.0, -1.0])
    result = scene_colour(fused, [source_1, source_2])
    assert result["best_source"] == 1
    assert np.allclose(result["delta"], [2.0, 0.0, -1.0], atol=1e-3)
    # Per-pixel spread: fused keeps source 1's spread shifted by at most 3 levels.
    assert 0.9 < result["chroma_ratio"] < 1.1

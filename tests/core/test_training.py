"""Training engine: synthesis, losses, trainer (loss falls, resume, pause/cancel, export), CLI."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path, PurePosixPath, PureWindowsPath

import cv2
import numpy as np
import pytest
import torch

from focusstudio.core.progress import CancelToken
from focusstudio.core.training.datasets import SyntheticPairDataset, split_train_validation
from focusstudio.core.training.losses import dice_loss, qabf, qg_soft, sesf_loss, ssim
from focusstudio.core.training.manifest import load_weights, read_manifest, sha256_of
from focusstudio.core.training.recipe import get_recipe, recipe_names
from focusstudio.core.training.synthesis import (
    ImageSource,
    PairSynthesizer,
    SynthesisConfig,
    compose_pair,
    gaussian_kernel_1d,
    random_mask,
    scan_image_folder,
    separable_blur,
)
from focusstudio.core.training.trainer import PauseToken, TrainConfig, lr_factor, make_config, resume, train
from focusstudio.training_cli import add_train_arguments, run_train

SIZE = 48


def _texture(rng: np.random.Generator, size: int = SIZE) -> np.ndarray:
    """Band-limited random texture with strong edges (uint8), a stand-in for a sharp photo."""
    noise = rng.random((size // 4, size // 4)).astype(np.float32)
    coarse = cv2.resize(noise, (size, size), interpolation=cv2.INTER_NEAREST)
    fine = rng.random((size, size)).astype(np.float32)
    return np.clip((0.7 * coarse + 0.3 * fine) * 255, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 random-texture images in images/, half of them with a mask in masks/."""
    root = tmp_path_factory.mktemp("corpus")
    (root / "images").mkdir()
    (root / "masks").mkdir()
    rng = np.random.default_rng(3)
    for i in range(8):
        cv2.imwrite(str(root / "images" / f"img{i}.png"), _texture(rng))
        if i % 2 == 0:
            mask = np.zeros((SIZE, SIZE), np.uint8)
            mask[:, : SIZE // 2 + 4 * (i // 2)] = 255
            cv2.imwrite(str(root / "masks" / f"img{i}.png"), mask)
    return root


def _quiet(config_overrides: dict[str, object]) -> dict[str, object]:
    """No augmentation: the batch barely changes between steps, so a few steps must lower the loss."""
    synthesis = {"flip": False, "rotation_step_deg": 0, "offset_probability": 0.0, "noise_max_std": 0.0,
                 "swap_probability": 0.0}
    return {"synthesis": synthesis, **config_overrides}


def _run(generator):  # type: ignore[no-untyped-def]
    events = []
    while True:
        try:
            events.append(next(generator))
        except StopIteration as stop:
            return events, stop.value


# ----------------------------------------------------------------------------------- synthesis
def test_synthesis_is_deterministic_per_seed_and_index(image_folder: Path) -> None:
    records = scan_image_folder(image_folder)
    assert len(records) == 8 and sum(r.mask is not None for r in records) == 4
    source = ImageSource(records, grey=True, resize=SIZE)
    config = SynthesisConfig(crop=32, group_size=4)
    first = PairSynthesizer(source, config, seed=5)
    second = PairSynthesizer(ImageSource(records, grey=True, resize=SIZE), config, seed=5)
    # Order of requests must not matter (worker count independence).
    later = second.sample(3, 17)
    earlier = second.sample(1, 2)
    for key in ("a", "b", "mask", "sharp"):
        np.testing.assert_array_equal(first.sample(1, 2)[key], earlier[key])
        np.testing.assert_array_equal(first.sample(3, 17)[key], later[key])
    other_seed = PairSynthesizer(source, config, seed=6).sample(1, 2)
    assert not np.array_equal(other_seed["a"], earlier["a"])


def test_plain_pair_is_sharp_where_mask_is_one(image_folder: Path) -> None:
    source = ImageSource(scan_image_folder(image_folder), grey=True, resize=SIZE)
    config = SynthesisConfig(mode="plain", crop=SIZE, blur="gaussian", sigma_range=(2.0, 2.0)).for_validation()
    sample = PairSynthesizer(source, config, seed=1).sample(0, 0)
    mask = sample["mask"] > 0.5
    assert 0 < mask.mean() < 1
    np.testing.assert_allclose(sample["a"][mask], sample["sharp"][mask], atol=1e-6)
    np.testing.assert_allclose(sample["b"][~mask], sample["sharp"][~mask], atol=1e-6)
    blurred = separable_blur(sample["sharp"], gaussian_kernel_1d(2.0, 6))
    np.testing.assert_allclose(sample["a"][~mask], blurred[~mask], atol=1e-5)
    np.testing.assert_allclose(sample["b"][mask], blurred[mask], atol=1e-5)


def test_swap_inverts_the_target(image_folder: Path) -> None:
    source = ImageSource(scan_image_folder(image_folder), grey=True, resize=SIZE)
    base = SynthesisConfig(mode="plain", crop=SIZE, blur="gaussian").for_validation()
    plain = PairSynthesizer(source, base, seed=1).sample(0, 0)
    swapped = PairSynthesizer(source, SynthesisConfig(**{**base.to_dict(), "swap_probability": 1.0}), 1).sample(0, 0)
    np.testing.assert_array_equal(swapped["a"], plain["b"])
    np.testing.assert_array_equal(swapped["mask"], 1.0 - plain["mask"])


def test_alpha_matte_formulas_on_a_constant_image() -> None:
    # I = c everywhere, M = left half: A = c·M + c·G(1−M)·(1−M); B = c·G(M) + (1−G(M))·(1−M)·c.
    c = 0.8
    sharp = np.full((40, 40), c, np.float32)
    mask = np.zeros((40, 40), np.float32)
    mask[:, :20] = 1
    kernel = gaussian_kernel_1d(2.0, 6)
    near, far = compose_pair(sharp, mask, kernel, "alpha_matte")
    blurred_mask = separable_blur(mask, kernel)
    np.testing.assert_allclose(near[:, :20], c, atol=1e-6)  # sharp foreground, hard matte
    np.testing.assert_allclose(near[:, 20:], c * (1 - blurred_mask[:, 20:]), atol=1e-5)  # occlusion darkening
    np.testing.assert_allclose(far[:, 20:], c, atol=1e-5)  # G(M)·c + (1 − G(M))·c
    np.testing.assert_allclose(far[:, :20], c * blurred_mask[:, :20], atol=1e-5)
    assert far[5, 19] < c - 0.05  # the blurred foreground spreads across the boundary


def test_gacn_far_focus_source_blurs_through_a_soft_matte() -> None:
    rng = np.random.default_rng(0)
    sharp = rng.random((120, 120)).astype(np.float32)
    mask = np.zeros((120, 120), np.float32)
    mask[:, :60] = 1
    kernel = gaussian_kernel_1d(2.0, 3)
    near, far = compose_pair(sharp, mask, kernel, "gacn")
    np.testing.assert_allclose(near[:, :60], sharp[:, :60], atol=1e-6)
    blurred = separable_blur(sharp, kernel)
    # 10 px outside the hard boundary the soft matte (σ 8) still mixes in the blurred image.
    assert not np.allclose(far[:, 70], sharp[:, 70], atol=1e-3)
    assert np.abs(far[:, 70] - sharp[:, 70]).mean() < np.abs(blurred[:, 70] - sharp[:, 70]).mean()


def test_random_masks_are_smooth_regions() -> None:
    for index in range(12):
        mask = random_mask((64, 64), np.random.default_rng(index))
        assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}
        assert 0.1 <= mask.mean() <= 0.9


def test_preview_grid_is_written(image_folder: Path, tmp_path: Path) -> None:
    source = ImageSource(scan_image_folder(image_folder), grey=True, resize=SIZE)
    path = PairSynthesizer(source, SynthesisConfig(crop=32), seed=1).save_preview(tmp_path / "p.png", 3)
    grid = cv2.imread(str(path))
    assert grid.shape == (3 * 32 + 2 * 4, 4 * 32 + 3 * 4, 3)


def test_split_keeps_groups_together_and_is_seeded() -> None:
    groups = ["a", "a", "b", "c", "c", "c", "d", "e", "f", "g"]
    train_idx, val_idx = split_train_validation(groups, 0.3, seed=1)
    assert sorted(train_idx + val_idx) == list(range(10))
    assert {groups[i] for i in train_idx}.isdisjoint(groups[i] for i in val_idx)
    assert split_train_validation(groups, 0.3, seed=1) == (train_idx, val_idx)


def test_epoch_order_covers_every_image_once(image_folder: Path) -> None:
    source = ImageSource(scan_image_folder(image_folder), grey=True, resize=SIZE)
    dataset = SyntheticPairDataset(PairSynthesizer(source, SynthesisConfig(crop=32), 1), list(range(8)))
    assert sorted(dataset.image_for(i) for i in range(8)) == list(range(8))
    assert sorted(dataset.image_for(i) for i in range(8, 16)) == list(range(8))


# ----------------------------------------------------------------------------------- losses
def test_ssim_and_sesf_loss_of_identical_images() -> None:
    # a generator of its own: the global one's state depends on which tests ran before
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(2, 1, 48, 48, generator=generator)
    assert ssim(x, x, 5, 1.5).item() == pytest.approx(1.0, abs=1e-5)
    total, parts = sesf_loss(x, x)
    assert total.item() == pytest.approx(0.0, abs=1e-2) and parts["ssim"].item() == pytest.approx(1.0, abs=1e-5)
    assert ssim(x, torch.rand(2, 1, 48, 48, generator=generator)).item() < 0.2  # independent noise: ~0.1


def test_dice_loss_extremes() -> None:
    target = (torch.rand(2, 1, 16, 16) > 0.5).float()
    assert dice_loss(target, target).item() == pytest.approx(0.0, abs=1e-6)
    assert dice_loss(1.0 - target, target).item() > 0.99


def test_qg_soft_rewards_keeping_the_sharp_source_and_has_gradients() -> None:
    rng = np.random.default_rng(0)
    sharp = rng.random((32, 32)).astype(np.float32)
    a = torch.from_numpy(sharp)[None, None]
    assert qg_soft(a, a, a).item() > 0.95
    blurred = torch.from_numpy(separable_blur(sharp, gaussian_kernel_1d(2.0, 6)))[None, None]
    good = qg_soft(a, blurred, a).item()
    bad = qg_soft(a, blurred, blurred).item()
    assert good > bad + 0.1
    assert qabf(a, blurred, a).item() > qabf(a, blurred, blurred).item()
    weight = torch.full((1, 1, 32, 32), 0.5, requires_grad=True)
    score = qg_soft(a, blurred, weight * a + (1 - weight) * blurred)
    (1 - score).backward()
    assert weight.grad is not None and torch.isfinite(weight.grad).all()
    # Moving the weight towards the sharp source must raise the score.
    assert weight.grad.sum().item() < 0


def test_lr_schedules() -> None:
    schedule = {"kind": "epoch_step", "gamma": 0.8, "every": 2}
    assert lr_factor(schedule, 0, 10, 100) == 1.0
    assert lr_factor(schedule, 19, 10, 100) == 1.0
    assert lr_factor(schedule, 20, 10, 100) == pytest.approx(0.8)
    assert lr_factor({"kind": "milestones", "milestones": [5, 8], "gamma": 0.1}, 8, 1, 10) == pytest.approx(0.01)
    assert lr_factor({"kind": "linear_tail", "tail": 10, "final": 0.0}, 95, 1, 100) == pytest.approx(0.5)


# ----------------------------------------------------------------------------------- trainer
def _config(method: str, image_folder: Path, tmp_path: Path, **overrides: object) -> TrainConfig:
    values = {"out": str(tmp_path / "weights" / f"{method}.pt"), "run_dir": str(tmp_path / "run"),
              "batch_size": 4, "crop": 32, "resize": SIZE, "device": "cpu", "val_fraction": 0.25,
              "val_samples": 4, "val_every": 1000, "lr": 3e-3, "seed": 2, **overrides}
    return make_config(method, image_folder, **values)


# Every trainable method's loss falls in a few steps: tests/core/test_method_contract.py.


def test_resume_continues_exactly(image_folder: Path, tmp_path: Path) -> None:
    full = _config("gacn", image_folder, tmp_path / "full", steps=4, val_every=2)
    full_events, _ = _run(train("gacn", full))
    full_losses = [e.losses["loss"] for e in full_events if e.phase == "train"]

    cut = _config("gacn", image_folder, tmp_path / "cut", steps=4, val_every=2)
    cancel = CancelToken()
    generator = train("gacn", cut, cancel=cancel)
    first_part = []
    while True:
        try:
            event = next(generator)
        except StopIteration as stop:
            interrupted = stop.value
            break
        if event.phase == "train":
            first_part.append(event.losses["loss"])
            if event.step == 2:
                cancel.cancel()
    assert interrupted.status == "cancelled" and interrupted.step == 2
    assert interrupted.checkpoint is not None and interrupted.checkpoint.is_file()
    second_events, result = _run(resume(interrupted.checkpoint))
    second_part = [e.losses["loss"] for e in second_events if e.phase == "train"]
    assert result.status == "completed" and result.step == 4
    assert first_part + second_part == full_losses


def test_pause_writes_a_checkpoint_and_continues(image_folder: Path, tmp_path: Path) -> None:
    config = _config("sesf", image_folder, tmp_path, steps=2, out=None)
    pause = PauseToken()
    generator = train("sesf", config, pause=pause)
    phases = []
    while True:
        try:
            event = next(generator)
        except StopIteration as stop:
            result = stop.value
            break
        phases.append(event.phase)
        if event.phase == "train" and event.step == 1:
            pause.pause()
        if event.phase == "paused":
            assert event.path is not None and Path(event.path).is_file()
            pause.resume()
    assert phases.index("paused") < phases.index("resumed") < len(phases) - 1
    assert result.status == "completed" and result.step == 2 and result.weights is None


def test_exported_weights_load_back_and_manifest_has_their_hash(image_folder: Path, tmp_path: Path) -> None:
    config = _config("sesf", image_folder, tmp_path, steps=2, val_every=1)
    _, result = _run(train("sesf", config))
    payload = torch.load(result.weights, map_location="cpu", weights_only=True)
    assert payload["arch"] == "sesf"
    network = get_recipe("sesf").build_model(payload["config"])
    network.load_state_dict(payload["state_dict"])  # strict: every key fits
    assert load_weights(result.weights)["arch"] == "sesf"
    entry = read_manifest(Path(config.out).parent / "manifest.json")["weights"]["sesf.pt"]
    assert entry["sha256"] == sha256_of(result.weights)
    assert entry["parameters"] == sum(p.numel() for p in network.parameters())
    assert entry["steps"] == 2 and entry["seed"] == 2 and entry["training_data"]["images"] == 8
    assert "dm_accuracy" in entry["validation"]
    # The manifest ships with the weights: no paths of this machine in it.
    assert entry["training_data"]["path"] == image_folder.name and entry["run_dir"] == Path(config.run_dir).name
    assert str(tmp_path) not in json.dumps(entry) and str(image_folder) not in json.dumps(entry)


def test_the_shipped_manifest_holds_no_machine_paths() -> None:
    manifest = Path(__file__).resolve().parents[2] / "weights" / "manifest.json"
    for entry in json.loads(manifest.read_text(encoding="utf-8"))["weights"].values():
        recorded = [entry.get("run_dir"), entry.get("init_weights"), entry.get("training_data", {}).get("path")]
        for value in filter(None, recorded):
            assert not PurePosixPath(value).is_absolute() and not PureWindowsPath(value).is_absolute(), value


def test_recipes_are_registered() -> None:
    assert {"sesf", "gacn"} <= set(recipe_names())


# ----------------------------------------------------------------------------------- CLI
def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_train_arguments(parser)
    return parser.parse_args(list(argv))


def test_cli_bad_input_is_one_line_exit_2(tmp_path: Path) -> None:
    stream = io.StringIO()
    code = run_train(_parse("--method", "gacn", "--data", str(tmp_path / "missing"), "--out", "x.pt"), stream)
    assert code == 2 and stream.getvalue().count("\n") == 1 and "not found" in stream.getvalue()
    stream = io.StringIO()
    assert run_train(_parse("--method", "nope", "--data", str(tmp_path), "--out", "x.pt"), stream) == 2


def test_cli_trains_and_writes_the_manifest(image_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "w" / "gacn.pt"
    stream = io.StringIO()
    args = _parse("--method", "gacn", "--data", str(image_folder), "--out", str(out), "--steps", "2",
                  "--batch-size", "2", "--crop", "32", "--resize", str(SIZE), "--val-samples", "2",
                  "--run-dir", str(tmp_path / "run"), "--device", "cpu", "--log-every", "1",
                  "--option", "qg_weight=0.5")
    assert run_train(args, stream) == 0, stream.getvalue()
    text = stream.getvalue()
    assert "[train] step 2/2" in text and "[export]" in text
    manifest = json.loads((out.parent / "manifest.json").read_text())
    assert manifest["weights"]["gacn.pt"]["options"]["qg_weight"] == 0.5
    preview = tmp_path / "preview.png"
    args = _parse("--method", "gacn", "--data", str(image_folder), "--crop", "32", "--resize", str(SIZE),
                  "--preview", str(preview))
    assert run_train(args, io.StringIO()) == 0 and cv2.imread(str(preview)) is not None


def test_resize_zero_keeps_the_image_size(tmp_path: Path) -> None:
    """``--resize 0`` means "keep the size", not "use the method's default"."""
    import argparse

    from focusstudio.core.training.trainer import make_config
    from focusstudio.training_cli import _overrides

    (tmp_path / "images").mkdir()
    parser = argparse.ArgumentParser()
    add_train_arguments(parser)
    args = parser.parse_args(["--method", "gacn", "--data", str(tmp_path / "images"), "--resize", "0"])
    assert make_config("gacn", tmp_path / "images", **_overrides(args)).resize is None
    assert make_config("gacn", tmp_path / "images").resize == 256
    args = parser.parse_args(["--method", "gacn", "--data", str(tmp_path / "images"), "--resize", "200"])
    assert make_config("gacn", tmp_path / "images", **_overrides(args)).resize == 200

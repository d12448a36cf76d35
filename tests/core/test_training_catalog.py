"""What the training wizard asks the core: trainable methods, settings, data checks, previews,
time per step, before/after comparisons."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from focusstudio.core.progress import CancelToken, run_to_completion
from focusstudio.core.training.assessment import (
    before_after_fusion,
    compare_weights,
    measure_step_time,
)
from focusstudio.core.training.catalog import (
    build_train_config,
    synthesis_overrides,
    synthesis_params,
    trainable_methods,
    training_params,
)
from focusstudio.core.training.inspection import inspect_training_data, preview_samples
from focusstudio.core.training.recipe import get_recipe
from focusstudio.core.training.trainer import make_config, train

SIZE = 32


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    import platformdirs

    (tmp_path / "shipped").mkdir()
    monkeypatch.setenv("FOCUSSTUDIO_WEIGHTS_DIR", str(tmp_path / "shipped"))
    monkeypatch.setattr(platformdirs, "user_data_dir", lambda *args, **kwargs: str(tmp_path / "user"))
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # shared 2-core test machine
    yield
    torch.set_num_threads(previous)


def _texture(seed: int, size: int = SIZE) -> np.ndarray:
    rng = np.random.default_rng(seed)
    coarse = cv2.resize(rng.random((size // 4, size // 4)).astype(np.float32), (size, size),
                        interpolation=cv2.INTER_NEAREST)
    return (coarse * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    for i in range(5):
        cv2.imwrite(str(folder / f"p{i}.png"), _texture(i))
    return folder


def test_every_recipe_is_listed_with_its_data_needs() -> None:
    methods = {m.name: m for m in trainable_methods()}
    assert set(methods) == {"gacn", "mfifgan", "sesf", "twostream", "ufa"}
    assert "Unsupervised" in methods["sesf"].data_needs
    assert "masks" in methods["gacn"].data_needs and methods["gacn"].title == "GACN"
    assert methods["sesf"].weights == ()


def test_fine_tuning_defaults_are_shorter_and_gentler() -> None:
    defaults = get_recipe("gacn").defaults()
    scratch = training_params("gacn", finetune=False).defaults()
    tuned = training_params("gacn", finetune=True).defaults()
    assert scratch["length"] == defaults.steps and scratch["lr"] == defaults.lr
    assert tuned["length"] == defaults.steps // 10 and tuned["lr"] == pytest.approx(defaults.lr / 10)
    assert tuned["val_every"] <= tuned["length"] // 10  # the plot gets points during a short run


def test_settings_become_a_config(photos: Path) -> None:
    values = training_params("sesf", finetune=False).defaults()
    values.update(length_unit="epochs", length=3, batch_size=2, crop=24, resize=SIZE, lr_schedule="step decay",
                  lr_gamma=0.5, lr_every=1.0)
    config = build_train_config("sesf", photos, values, train_items=4, val_fraction=0.2)
    assert config.steps == 6  # 3 epochs × 4 photos / batch 2
    assert config.lr_schedule == {"kind": "epoch_step", "gamma": 0.5, "every": 1.0}
    pairs = build_train_config("sesf", photos, values, train_items=4, data_format="pairs")
    assert pairs.resize is None and pairs.data_format == "pairs"
    values["resize"] = 0
    assert build_train_config("sesf", photos, values, train_items=4).resize is None


def test_synthesis_controls_reach_the_synthesizer(photos: Path) -> None:
    specs = synthesis_params("gacn")
    values = specs.defaults()
    values.update(blur="gaussian", sigma_min=3.0, sigma_max=1.5, flip=False)
    overrides = synthesis_overrides(values)
    assert overrides["sigma_range"] == [1.5, 3.0]
    config = make_config("gacn", photos, synthesis=overrides)
    synthesis = get_recipe("gacn").synthesis(config)
    assert synthesis.blur == "gaussian" and synthesis.sigma_range == (1.5, 3.0) and not synthesis.flip
    # The auto-encoder trains on the photos themselves: only augmentations are offered.
    assert [spec.name for spec in synthesis_params("sesf")] == ["flip", "rotation_step_deg"]


def test_inspection_reports_every_problem(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    for i in range(4):
        cv2.imwrite(str(folder / "images" / f"p{i}.png"), _texture(i))
    (folder / "images" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    half = np.zeros((SIZE, SIZE), np.uint8)
    half[:, : SIZE // 2] = 255
    cv2.imwrite(str(folder / "masks" / "p0.png"), half)
    cv2.imwrite(str(folder / "masks" / "p1.png"), np.zeros((SIZE, 3 * SIZE), np.uint8))  # another shape
    cv2.imwrite(str(folder / "masks" / "orphan.png"), half)
    report = run_to_completion(inspect_training_data("gacn", folder, val_fraction=0.25, crop=24, resize=SIZE))
    assert report.items == 4 and report.with_mask == 2
    assert report.train_items + report.val_items == 4 and report.val_items == 1
    assert report.smallest == (SIZE, SIZE)
    errors = sorted(str(p) for p in report.errors)
    assert errors == ["broken.png: cannot be read as an image (remove or replace it)",
                      "p1.png: mask is 96×32 but its photo is 32×32 (another shape: not its mask?)"]
    assert [str(p) for p in report.warnings] == ["orphan.png: mask without a photo of the same name (not used)"]
    assert not report.usable
    assert "4 photos, 2 with a mask" in report.summary()


def test_inspection_of_real_pairs(tmp_path: Path) -> None:
    for index, with_mask in enumerate((True, False, True)):
        scene = tmp_path / "pairs" / f"scene{index}"
        scene.mkdir(parents=True)
        for name in ("1", "2", "gt") + (("mask",) if with_mask else ()):
            cv2.imwrite(str(scene / f"{name}.png"), _texture(index))
    (tmp_path / "pairs" / "notes").mkdir()
    report = run_to_completion(inspect_training_data("gacn", tmp_path / "pairs", data_format="pairs", crop=24))
    assert report.items == 2 and report.train_items == 1 and report.val_items == 1
    assert [str(p) for p in report.errors] == ["scene1: no mask.* (this method learns a decision map from it)"]
    assert [str(p) for p in report.warnings] == ["notes: not a scene (needs 1.*, 2.* and gt.*): skipped"]
    missing = run_to_completion(inspect_training_data("gacn", tmp_path / "nowhere"))
    assert not missing.usable and "not found" in str(missing.errors[0])


def test_preview_samples_are_the_training_synthesis(photos: Path) -> None:
    samples = run_to_completion(preview_samples("gacn", photos, resize=SIZE, crop=24, count=3, seed=2))
    assert len(samples) == 3
    for sample in samples:
        assert sample.a is not None and sample.b is not None and sample.mask is not None
        assert sample.a.shape == (24, 24) and set(np.unique(sample.mask)) <= {0.0, 1.0}
    again = run_to_completion(preview_samples("gacn", photos, resize=SIZE, crop=24, count=3, seed=2))
    assert all(np.array_equal(x.a, y.a) for x, y in zip(samples, again))
    blurrier = run_to_completion(preview_samples(
        "gacn", photos, resize=SIZE, crop=24, count=3, seed=2,
        synthesis={"blur": "gaussian", "sigma_range": [6.0, 6.0], "noise_max_std": 0.0, "offset_probability": 0.0}))
    assert not np.array_equal(blurrier[0].a, samples[0].a)


def test_step_time_is_measured_and_leaves_nothing(photos: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    config = make_config("sesf", photos, steps=500, val_every=100, batch_size=2, crop=24, resize=SIZE,
                         device="cpu", val_samples=2, out=str(tmp_path / "never.pt"))
    estimate = run_to_completion(measure_step_time(config, steps=2))
    assert estimate.seconds_per_step > 0 and estimate.validation_seconds > 0 and estimate.steps_measured == 2
    assert estimate.total_seconds == pytest.approx(500 * estimate.seconds_per_step + 6 * estimate.validation_seconds)
    assert list(scratch.glob("focusstudio-*")) == [] and not (tmp_path / "never.pt").exists()
    cancel = CancelToken()
    cancel.cancel()
    from focusstudio.core.progress import Cancelled

    with pytest.raises(Cancelled):
        run_to_completion(measure_step_time(config, steps=2, cancel=cancel))


def test_new_weights_are_compared_with_the_starting_point(photos: Path, tmp_path: Path) -> None:
    config = make_config("sesf", photos, out=str(tmp_path / "new.pt"), run_dir=str(tmp_path / "run"), steps=3,
                         batch_size=2, crop=24, resize=SIZE, device="cpu", val_samples=2, val_fraction=0.2,
                         lr=5e-3)
    generator = train("sesf", config)
    events = []
    while True:
        try:
            events.append(next(generator))
        except StopIteration as stop:
            result = stop.value
            break
    comparison = run_to_completion(compare_weights(config, result.weights, None, test_folder=photos))
    assert comparison.base_label == "random initialisation" and comparison.primary_metric == "dm_accuracy"
    assert len(comparison.results) == 2
    split_name = next(name for name in comparison.results if "validation split" in name)
    base, new = comparison.results[split_name]
    # The starting metrics are the trainer's own step-0 validation; the new ones its best.
    step0 = next(e.val for e in events if e.phase == "validate")
    assert base["loss"] == pytest.approx(step0["loss"], rel=1e-5)
    assert new["loss"] == pytest.approx(result.validation["loss"], rel=1e-5)
    pair = run_to_completion(before_after_fusion(config, result.weights, None, size=SIZE))
    assert pair.before is None and pair.after.shape == pair.a.shape == (SIZE, SIZE)
    assert float(pair.after.min()) >= 0.0 and float(pair.after.max()) <= 1.0


def test_the_trainer_learns_from_real_pairs_with_masks(tmp_path: Path) -> None:
    for index in range(3):
        scene = tmp_path / "pairs" / f"scene{index}"
        scene.mkdir(parents=True)
        sharp = _texture(10 + index)
        blurred = cv2.GaussianBlur(sharp, (0, 0), 2.0)
        mask = np.zeros_like(sharp)
        mask[:, : SIZE // 2] = 255
        cv2.imwrite(str(scene / "1.png"), np.where(mask > 0, sharp, blurred))
        cv2.imwrite(str(scene / "2.png"), np.where(mask > 0, blurred, sharp))
        cv2.imwrite(str(scene / "gt.png"), sharp)
        cv2.imwrite(str(scene / "mask.png"), mask)
    config = make_config("gacn", tmp_path / "pairs", data_format="pairs", run_dir=str(tmp_path / "run"), steps=2,
                         batch_size=2, crop=24, device="cpu", val_samples=2, val_fraction=0.3)
    generator = train("gacn", config)
    phases = []
    while True:
        try:
            phases.append(next(generator).phase)
        except StopIteration as stop:
            result = stop.value
            break
    assert result.status == "completed" and phases.count("train") == 2 and "validate" in phases
    (tmp_path / "pairs" / "scene0" / "mask.png").unlink()
    from focusstudio.core.errors import InputError

    with pytest.raises(InputError, match="needs a mask"):
        list(train("gacn", replace(config, run_dir=str(tmp_path / "run2"))))


def test_a_report_follows_the_validation_share(photos: Path) -> None:
    report = run_to_completion(inspect_training_data("sesf", photos, val_fraction=0.2, crop=24, resize=SIZE))
    assert (report.train_items, report.val_items) == (4, 1)
    assert report.split_counts(0.4) == (3, 2)
    assert report.with_split(0.0).val_items == 0 and report.with_split(0.0).usable

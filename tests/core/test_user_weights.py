"""User-trained weights: installed in the user data folder, listed and resolved by name, renamed,
deleted, shown by ``focusstudio methods``; fine-tuning starts from them."""

from __future__ import annotations

import argparse
import io
import json
from collections.abc import Iterator
from contextlib import redirect_stdout
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from focusstudio.core.errors import InputError, WeightsError
from focusstudio.core.pipeline import fuse
from focusstudio.core.training.manifest import read_manifest, save_weights, sha256_of
from focusstudio.core.training.recipe import get_recipe
from focusstudio.core.training.trainer import make_config, train
from focusstudio.core.types import Stack
from focusstudio.core.weights import (
    delete_user_weights,
    find_installed_weights,
    install_user_weights,
    list_installed_weights,
    rename_user_weights,
    resolve_weights,
    set_default_user_weights,
    user_weights_dir,
    weights_availability,
)

SIZE = 32


@pytest.fixture(autouse=True)
def isolated_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty shipped-weights folder and a private user data folder for every test."""
    import platformdirs

    shipped = tmp_path / "shipped"
    shipped.mkdir()
    monkeypatch.setenv("FOCUSSTUDIO_WEIGHTS_DIR", str(shipped))
    user = tmp_path / "user-data"
    monkeypatch.setattr(platformdirs, "user_data_dir", lambda *args, **kwargs: str(user))
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # shared 2-core test machine
    yield shipped
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(11)
    for i in range(4):
        coarse = cv2.resize(rng.random((SIZE // 4, SIZE // 4)).astype(np.float32), (SIZE, SIZE),
                            interpolation=cv2.INTER_NEAREST)
        cv2.imwrite(str(folder / f"p{i}.png"), (coarse * 255).astype(np.uint8))
    return folder


def _run(generator):  # type: ignore[no-untyped-def]
    events = []
    while True:
        try:
            events.append(next(generator))
        except StopIteration as stop:
            return events, stop.value


def _trained(photos: Path, folder: Path, method: str = "sesf", **overrides: object) -> Path:
    """Weights from a 1-step run (their values do not matter here, their format does)."""
    values = {"out": str(folder / f"{method}.pt"), "run_dir": str(folder / "run"), "steps": 1, "batch_size": 2,
              "crop": 24, "resize": SIZE, "device": "cpu", "val_fraction": 0.25, "val_samples": 2, "seed": 4,
              **overrides}
    _, result = _run(train(method, make_config(method, photos, **values)))
    assert result.weights is not None
    return Path(result.weights)


def _shipped(folder: Path, method: str, source: Path) -> Path:
    """Put ``source`` into the shipped folder as ``<method>.pt`` with a manifest entry."""
    target = folder / f"{method}.pt"
    target.write_bytes(source.read_bytes())
    manifest = {"format": 1, "weights": {target.name: {"arch": method, "sha256": sha256_of(target)}}}
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return target


def test_installed_weights_are_listed_resolved_by_name_and_fuse(
    photos: Path, tmp_path: Path, isolated_weights: Path
) -> None:
    source = _trained(photos, tmp_path / "train")
    assert list_installed_weights("sesf") == []
    installed = install_user_weights(source, "my insects", "sesf", entry={"steps": 1, "arch": "sesf"})
    assert installed.path == user_weights_dir() / "my insects.pt"
    assert installed.path.is_file() and installed.source == "user"
    entry = read_manifest(user_weights_dir() / "manifest.json")["weights"]["my insects.pt"]
    assert entry["sha256"] == sha256_of(installed.path) and entry["name"] == "my insects" and entry["steps"] == 1

    # No shipped weights: the method becomes usable with the user's own, chosen by name; they become
    # its default only when the user says so (#19: a short training silently became UFA's default).
    assert weights_availability("sesf") == (True, "")
    with pytest.raises(WeightsError, match=r"no default sesf weights: pass --weights NAME \(installed: my insects\)"):
        resolve_weights("sesf")
    set_default_user_weights("sesf", "my insects")
    assert resolve_weights("sesf").name == "my insects"
    assert resolve_weights("sesf", "my insects").path == installed.path
    assert resolve_weights("sesf", Path("my insects")).label == "my insects (user weights)"

    # Shipped weights come first and stay the default; both are listed by name.
    _shipped(isolated_weights, "sesf", source)
    assert [(w.name, w.source) for w in list_installed_weights("sesf")] == [("sesf", "shipped"),
                                                                           ("my insects", "user")]
    assert resolve_weights("sesf").shipped
    assert list_installed_weights("gacn") == []

    frames = [(np.random.default_rng(i).random((20, 22)) * 255).astype(np.uint8) for i in range(2)]
    result = fuse(Stack.from_arrays(frames), "sesf", weights="my insects", device="cpu")
    assert result.image.shape == (20, 22)
    assert result.weights == "my insects (user weights)"


def test_unknown_names_and_bad_files_are_one_line_errors(photos: Path, tmp_path: Path) -> None:
    source = _trained(photos, tmp_path / "train")
    install_user_weights(source, "mine", "sesf")
    with pytest.raises(WeightsError, match="installed sesf weights: mine"):
        resolve_weights("sesf", "nope")
    with pytest.raises(WeightsError, match="not found"):
        resolve_weights("sesf", str(tmp_path / "missing.pt"))
    with pytest.raises(WeightsError, match="these are sesf weights, not gacn"):
        install_user_weights(source, "wrong", "gacn")
    with pytest.raises(InputError, match="already exist"):
        install_user_weights(source, "mine", "sesf")
    for bad in ("", "../escape", "a/b", "-dash first", "x" * 80):
        with pytest.raises(InputError, match="weights name"):
            install_user_weights(source, bad, "sesf")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(WeightsError):
        install_user_weights(junk, "junk", "sesf")
    assert [w.name for w in list_installed_weights()] == ["mine"]


def test_rename_and_delete_update_the_manifest(photos: Path, tmp_path: Path, isolated_weights: Path) -> None:
    source = _trained(photos, tmp_path / "train")
    install_user_weights(source, "first", "sesf")
    install_user_weights(source, "second", "sesf")
    renamed = rename_user_weights("first", "renamed")
    assert renamed.path.is_file() and not (user_weights_dir() / "first.pt").exists()
    entries = read_manifest(user_weights_dir() / "manifest.json")["weights"]
    assert set(entries) == {"renamed.pt", "second.pt"} and entries["renamed.pt"]["name"] == "renamed"
    with pytest.raises(InputError, match="already exist"):
        rename_user_weights("renamed", "second")
    delete_user_weights("second")
    assert not (user_weights_dir() / "second.pt").exists()
    assert set(read_manifest(user_weights_dir() / "manifest.json")["weights"]) == {"renamed.pt"}
    assert find_installed_weights("sesf", "second") is None
    _shipped(isolated_weights, "sesf", source)
    with pytest.raises(InputError, match="shipped"):
        delete_user_weights("sesf")
    with pytest.raises(InputError, match="taken by shipped weights"):
        rename_user_weights("renamed", "sesf")
    with pytest.raises(InputError, match="no installed weights"):
        delete_user_weights("never")


def test_methods_command_lists_installed_weights(photos: Path, tmp_path: Path) -> None:
    from focusstudio.cli import cmd_methods

    install_user_weights(_trained(photos, tmp_path / "train"), "chips", "sesf")
    text = io.StringIO()
    with redirect_stdout(text):
        assert cmd_methods(argparse.Namespace(json=False)) == 0
    sesf_block = text.getvalue().split("\nsesf")[1]
    assert "weights (--weights NAME): chips (user)" in sesf_block.split("\n\n")[0]
    data = io.StringIO()
    with redirect_stdout(data):
        cmd_methods(argparse.Namespace(json=True))
    by_name = {entry["name"]: entry for entry in json.loads(data.getvalue())}
    assert [w["name"] for w in by_name["sesf"]["installed_weights"]] == ["chips"]
    assert by_name["sesf"]["available"] and by_name["gacn"]["installed_weights"] == []


def test_fine_tuning_starts_from_the_named_weights(photos: Path, tmp_path: Path) -> None:
    source = _trained(photos, tmp_path / "base", "sesf", steps=2, lr=5e-3)
    install_user_weights(source, "base sesf", "sesf")
    start_state = torch.load(source, weights_only=True)["state_dict"]
    config = make_config("sesf", photos, out=str(tmp_path / "tuned.pt"), run_dir=str(tmp_path / "tuned-run"),
                         steps=1, batch_size=2, crop=24, resize=SIZE, device="cpu", val_samples=2,
                         init_weights="base sesf", seed=9)
    events, result = _run(train("sesf", config))
    # The step-0 validation is that of the starting weights, not of a random network.
    recipe = get_recipe("sesf")
    model = recipe.build_model(recipe.model_config(config))
    recipe.import_state_dict(model, start_state)
    assert all(torch.equal(model.state_dict()[key], value) for key, value in start_state.items())
    from focusstudio.core.training.assessment import evaluate_weights, validation_set

    expected = evaluate_weights(config, "base sesf", validation_set(config))
    first_validation = next(e.val for e in events if e.phase == "validate")
    assert first_validation is not None
    assert first_validation["loss"] == pytest.approx(expected["loss"], rel=1e-5)
    scratch = evaluate_weights(config, None, validation_set(config))
    assert scratch["loss"] != pytest.approx(expected["loss"], rel=1e-3)
    assert result.manifest_entry is not None and result.manifest_entry["init_weights"] == "base sesf"


def test_fine_tuning_rejects_weights_of_another_network(photos: Path, tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.pt"
    save_weights(bogus, "gacn", {}, {"not.a.layer": torch.zeros(3)})
    config = make_config("gacn", photos, run_dir=str(tmp_path / "run"), steps=1, batch_size=2, crop=24,
                         resize=SIZE, device="cpu", val_samples=2, init_weights=str(bogus))
    with pytest.raises(WeightsError, match="do not fit"):
        _run(train("gacn", config))


class _NotATensor:
    """A class a checkpoint may pickle but weights-only loading refuses."""


def test_unreadable_weights_get_a_one_line_reason(tmp_path: Path) -> None:
    from focusstudio.core.methods.checkpoint import read_checkpoint

    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a torch file")
    good = tmp_path / "good.pt"
    torch.save({"weight": torch.zeros(64)}, good)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    objects = tmp_path / "objects.pt"
    torch.save({"weight": torch.zeros(3), "extra": _NotATensor()}, objects)
    expected = {junk: "not a PyTorch checkpoint", truncated: "damaged or truncated checkpoint",
                objects: "holds Python objects besides tensors"}
    for path, reason in expected.items():
        with pytest.raises(WeightsError) as caught:
            read_checkpoint(path)
        message = str(caught.value)
        assert reason in message and str(path) in message and "\n" not in message

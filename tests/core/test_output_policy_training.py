"""Training goes through the output policy (issue 13 part 2): weights, manifest and checkpoint are
checked before the data is loaded, an existing weights file is replaced only when allowed (or
when it is the resumed run's own export), and no lock file is left next to the weights."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from focusstudio.core.errors import FocusStudioError, OutputError
from focusstudio.core.training.manifest import read_manifest, sha256_of, update_manifest
from focusstudio.core.training.trainer import make_config, resume, train

SIZE = 40


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(5)
    for index in range(4):
        cv2.imwrite(str(folder / f"img{index}.png"), (rng.random((SIZE, SIZE)) * 255).astype(np.uint8))
    return folder


def _config(data: Path, tmp_path: Path, run: str, **overrides: object):  # type: ignore[no-untyped-def]
    values = {"out": str(tmp_path / "w" / "sesf.pt"), "run_dir": str(tmp_path / run), "steps": 1,
              "batch_size": 2, "crop": 32, "resize": SIZE, "device": "cpu", "val_fraction": 0.0, "seed": 1,
              **overrides}
    return make_config("sesf", data, **values)


def _finish(generator):  # type: ignore[no-untyped-def]
    while True:
        try:
            next(generator)
        except StopIteration as stop:
            return stop.value


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_weights_are_never_replaced_unless_allowed_or_the_runs_own(data: Path, tmp_path: Path) -> None:
    first = _finish(train("sesf", _config(data, tmp_path, "run1"), overwrite_out=False))
    assert first.status == "completed"
    weights = tmp_path / "w"
    assert sorted(p.name for p in weights.iterdir()) == ["manifest.json", "sesf.pt"]  # no .lock file
    before = _snapshot(weights)

    other_run = train("sesf", _config(data, tmp_path, "run2"), overwrite_out=False)
    with pytest.raises(OutputError, match="already exists") as info:
        next(other_run)  # refused before the data is even loaded
    assert "sesf.pt" in str(info.value)
    assert _snapshot(weights) == before and not (tmp_path / "run2").exists()

    # The resumed run may replace its own earlier export without being told to.
    again = _finish(resume(tmp_path / "run1", overrides={"steps": 2}, overwrite_out=False))
    assert again.status == "completed" and again.step == 2
    entry = read_manifest(weights / "manifest.json")["weights"]["sesf.pt"]
    assert entry["steps"] == 2 and entry["sha256"] == sha256_of(weights / "sesf.pt")


def test_training_outputs_are_checked_against_its_inputs(data: Path, tmp_path: Path) -> None:
    before = _snapshot(data)
    for overrides in ({"out": str(data / "img0.png")}, {"manifest": str(data / "img1.png")}):
        with pytest.raises(OutputError, match="input"):
            next(train("sesf", _config(data, tmp_path, "run", **overrides), overwrite_out=True))
    (tmp_path / "notes.json").write_text('{"mine": true}')
    with pytest.raises(FocusStudioError, match="manifest"):
        next(train("sesf", _config(data, tmp_path, "run", manifest=str(tmp_path / "notes.json"))))
    assert _snapshot(data) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.json"]


def test_weights_kept_inside_the_data_folder_are_not_inputs(data: Path, tmp_path: Path) -> None:
    # Only the images are training inputs: a manifest and weights next to them may be updated.
    update_manifest(data / "w" / "manifest.json", "old.pt", {"sha256": "0"})
    try:
        config = _config(data, tmp_path, "run", out=str(data / "w" / "sesf.pt"))
        assert next(train("sesf", config, overwrite_out=False)).phase == "prepare"
    finally:
        shutil.rmtree(data / "w")

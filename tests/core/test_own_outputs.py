"""A folder opened as a stack never takes FocusStudio's own results (images with our sidecar) as frames."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from focusstudio.core.io import list_folder_images, load_stack
from focusstudio.core.io.sidecars import is_focusstudio_output, sidecar_path

REPO = Path(__file__).resolve().parents[2]


def _frames(folder: Path, count: int = 2, size: int = 32) -> list[Path]:
    rng = np.random.default_rng(3)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        path = folder / f"frame_{index + 1}.png"
        cv2.imwrite(str(path), (rng.random((size, size)) * 255).astype(np.uint8))
        paths.append(path)
    return paths


def _our_result(folder: Path, name: str = "frame_1_sf.png", output: str | None = None) -> Path:
    """An exported result as the window leaves it: the image and its provenance sidecar."""
    image = folder / name
    cv2.imwrite(str(image), np.zeros((32, 32), np.uint8))
    sidecar = {"focusstudio": "0.1", "method": "sf", "params": {}, "sources": ["frame_1.png", "frame_2.png"],
               "output": output if output is not None else str(image)}
    sidecar_path(image).write_text(json.dumps(sidecar))
    return image


def test_a_result_with_our_sidecar_is_skipped_and_named(tmp_path: Path) -> None:
    _frames(tmp_path)
    _our_result(tmp_path)
    files, notes = list_folder_images(tmp_path)
    assert [path.name for path in files] == ["frame_1.png", "frame_2.png"]
    joined = "\n".join(notes)
    assert "1 FocusStudio result" in joined and "frame_1_sf.png" in joined
    # The sidecar is explained by that note, not listed again as a file that is not an image.
    assert "not an image" not in joined
    assert load_stack(tmp_path).names == ["frame_1.png", "frame_2.png"]


def test_a_moved_folder_still_recognises_its_results(tmp_path: Path) -> None:
    _frames(tmp_path)
    result = _our_result(tmp_path, output="/somewhere/else/frame_1_sf.png")
    assert is_focusstudio_output(result)


@pytest.mark.parametrize(
    "sidecar_text",
    [
        '{"camera": "X100", "iso": 200}',  # someone else's JSON
        "not json at all",
        '["focusstudio", "method", "sources"]',  # the keys, but not an object
        '{"focusstudio": "0.1", "method": "sf", "sources": [], "output": "/x/other.png"}',  # names another file
    ],
)
def test_a_foreign_or_broken_json_does_not_hide_a_frame(tmp_path: Path, sidecar_text: str) -> None:
    paths = _frames(tmp_path, count=3)
    sidecar_path(paths[2]).write_text(sidecar_text)
    files, notes = list_folder_images(tmp_path)
    assert files == paths
    assert not any("FocusStudio result" in note for note in notes)


def test_explicit_files_are_used_even_when_they_are_results(tmp_path: Path) -> None:
    """Only folder listing skips results: a file the user names is used as given."""
    paths = _frames(tmp_path)
    result = _our_result(tmp_path)
    assert load_stack([paths[0], result]).names == ["frame_1.png", "frame_1_sf.png"]


def test_the_command_line_skips_results_in_a_folder_and_says_so(tmp_path: Path) -> None:
    folder = tmp_path / "stack"
    _frames(folder)
    _our_result(folder)
    completed = subprocess.run(
        [sys.executable, "-m", "focusstudio", "fuse", str(folder), "-o", str(tmp_path / "out.png"),
         "--method", "sf", "--no-align", "--json"],
        capture_output=True, text=True, timeout=120, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout)
    assert report["frames"] == 2
    assert any("FocusStudio result" in note and "frame_1_sf.png" in note for note in report["notes"])

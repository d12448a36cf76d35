"""``fuse --save-alignment FILE`` and ``fuse --alignment FILE``: one rig's registration saved once
and applied to other stacks, refused (one line naming the file, exit 2) when it does not fit."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from focusstudio.cli import main
from tests.conftest import build_focus_stack, single_error_line


def _stack(folder: Path, n: int, size: int = 128, seed: int = 3, shift: int = 3) -> list[str]:
    """``n`` frames whose last one is shifted ``shift`` px to the right (a handheld frame)."""
    folder.mkdir(parents=True, exist_ok=True)
    synthetic = build_focus_stack(n, size=size, seed=seed, colour=True)
    paths = []
    for i, frame in enumerate(synthetic.frames):
        if i == n - 1:
            frame = np.roll(frame, shift, axis=1)
        path = folder / f"{i}.png"
        cv2.imwrite(str(path), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        paths.append(str(path))
    return paths


def test_a_saved_registration_is_applied_to_another_stack_of_the_rig(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = _stack(tmp_path / "a", 3)
    saved = tmp_path / "rig.json"
    assert main(["fuse", *first, "-o", str(tmp_path / "a.png"), "--save-alignment", str(saved), "--json"]) == 0
    capsys.readouterr()
    registration = json.loads(saved.read_text())
    shift = registration["frames"][2]["shift_x"]
    assert shift == pytest.approx(-3.0, abs=0.2)  # the last frame moves 3 px back onto the reference
    # Another stack of the same rig (other content, the same motion): registered by the saved file.
    second = _stack(tmp_path / "b", 3, seed=11)
    out = tmp_path / "b.png"
    assert main(["fuse", *second, "-o", str(out), "--alignment", str(saved), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert "align" in report["seconds"]
    crop = registration["crop"]
    assert cv2.imread(str(out)).shape[:2] == (crop["height"], crop["width"])
    # Applying the registration to the stack it came from gives the estimating run's result.
    again = tmp_path / "a2.png"
    assert main(["fuse", *first, "-o", str(again), "--alignment", str(saved)]) == 0
    difference = np.abs(cv2.imread(str(again)).astype(int) - cv2.imread(str(tmp_path / "a.png")).astype(int))
    assert difference.max() <= 1  # the same warps and fusion; 1 level of 8-bit rounding


@pytest.mark.parametrize(
    ("frames", "size", "expected"), [(4, 128, "3 frames of 128×128"), (3, 96, "the stack has 3 frames of 96×96")]
)
def test_a_registration_that_does_not_fit_is_refused_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], frames: int, size: int, expected: str
) -> None:
    saved = tmp_path / "rig.json"
    first = _stack(tmp_path / "a", 3)
    assert main(["fuse", *first, "-o", str(tmp_path / "a.png"), "--save-alignment", str(saved)]) == 0
    capsys.readouterr()
    other = _stack(tmp_path / "b", frames, size=size)
    out = tmp_path / "b.png"
    assert main(["fuse", *other, "-o", str(out), "--alignment", str(saved)]) == 2
    line = single_error_line(capsys)
    assert str(saved) in line and expected in line
    assert not out.exists()


def test_an_alignment_file_with_no_align_is_a_contradiction(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    paths = _stack(tmp_path / "a", 3)
    saved = str(tmp_path / "r.json")
    code = main(["fuse", *paths, "-o", str(tmp_path / "a.png"), "--no-align", "--save-alignment", saved])
    assert code == 2
    assert "--save-alignment" in single_error_line(capsys)
    assert not (tmp_path / "r.json").exists()


def test_a_file_that_holds_no_registration_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bogus = tmp_path / "bogus.json"
    bogus.write_text("[1, 2]")
    assert main(["fuse", *_stack(tmp_path / "a", 3), "-o", str(tmp_path / "a.png"), "--alignment", str(bogus)]) == 2
    assert str(bogus) in single_error_line(capsys)


def test_save_alignment_registers_a_pair(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Two frames are not aligned by default; asking for the registration file asks for the registration.
    saved = tmp_path / "pair.json"
    pair = _stack(tmp_path / "a", 2)
    assert main(["fuse", *pair, "-o", str(tmp_path / "a.png"), "--save-alignment", str(saved)]) == 0
    assert len(json.loads(saved.read_text())["frames"]) == 2

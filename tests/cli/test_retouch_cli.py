"""``focusstudio fuse --retouch FILE`` reproduces a result retouched in memory (issue 16)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from focusstudio.cli import main
from focusstudio.core.io import load_stack
from focusstudio.core.pipeline import fuse
from focusstudio.core.retouch import Brush, RetouchModel, Stroke, retouch_section
from focusstudio.core.sidecar import reproduce_command, sidecar_data
from focusstudio.core.types import FusionResult
from tests.cli.test_cli import _write_stack
from tests.conftest import single_error_line


def _retouched(folder: Path) -> tuple[RetouchModel, FusionResult]:
    stack = load_stack([str(folder)])
    result = fuse(stack, "sf")
    model = RetouchModel.from_result(result, stack)
    model.apply(Stroke(1, Brush(30, 0.5, 1.0), [(30.0, 30.0), (40.0, 36.0), (52.0, 40.0)]))
    model.apply(Stroke(0, Brush(20, 0.2, 0.6), [(70.0, 70.0), (74.0, 60.0)]))
    model.apply(Stroke(None, Brush(12, 1.0, 1.0), [(45.0, 38.0)]))
    return model, result


def test_cli_reproduces_the_in_memory_retouch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write_stack(tmp_path / "in", n=2, size=96)
    model, result = _retouched(tmp_path / "in")
    expected = model.retouched_result(result).as_dtype()
    # The window's export: the retouch section in the result's sidecar, named by its command.
    exported = tmp_path / "export.png"
    sidecar = tmp_path / "export.png.json"
    command = reproduce_command(result, [str(tmp_path / "in")], exported, retouch=sidecar)
    assert command[-2:] == ["--retouch", str(sidecar)]
    data = sidecar_data(result, exported, [str(tmp_path / "in")], command,
                        retouch=retouch_section(model))
    sidecar.write_text(json.dumps(data), encoding="utf-8")

    out = tmp_path / "fused.png"
    assert main(["fuse", str(tmp_path / "in"), "-o", str(out), "--retouch", str(sidecar), "--quiet"]) == 0
    written = cv2.cvtColor(cv2.imread(str(out)), cv2.COLOR_BGR2RGB)
    difference = np.abs(written.astype(np.int16) - expected.astype(np.int16))
    assert difference.max() <= 1
    plain = fuse(load_stack([str(tmp_path / "in")]), "sf").as_dtype()
    assert np.abs(written.astype(np.int16) - plain.astype(np.int16)).max() > 20  # it was retouched
    assert "retouched by hand: 3 strokes" in capsys.readouterr().err


def test_bad_retouch_file_is_one_line_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write_stack(tmp_path / "in", n=2, size=64)
    out = tmp_path / "fused.png"
    bad = tmp_path / "strokes.json"
    bad.write_text("{not json", encoding="utf-8")
    assert main(["fuse", str(tmp_path / "in"), "-o", str(out), "--retouch", str(bad), "--quiet"]) == 2
    assert str(bad) in single_error_line(capsys)
    missing = tmp_path / "none.json"
    assert main(["fuse", str(tmp_path / "in"), "-o", str(out), "--retouch", str(missing), "--quiet"]) == 2
    assert "not found" in single_error_line(capsys)
    # Strokes from a frame the stack lacks, then strokes painted on another size.
    section = {"format": "focusstudio-retouch", "version": 1, "shape": [64, 64], "frames": [],
               "strokes": [Stroke(4, Brush(10), [(5.0, 5.0)]).to_json()]}
    bad.write_text(json.dumps(section), encoding="utf-8")
    assert main(["fuse", str(tmp_path / "in"), "-o", str(out), "--retouch", str(bad), "--quiet"]) == 2
    assert "frame 4" in single_error_line(capsys)
    section.update(shape=[80, 64], strokes=[Stroke(1, Brush(10), [(5.0, 5.0)]).to_json()])
    bad.write_text(json.dumps(section), encoding="utf-8")
    assert main(["fuse", str(tmp_path / "in"), "-o", str(out), "--retouch", str(bad), "--quiet"]) == 2
    assert "64×80" in single_error_line(capsys)
    assert not out.exists()


def test_the_retouch_file_is_never_overwritten(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write_stack(tmp_path / "in", n=2, size=64)
    strokes = tmp_path / "strokes.png"  # an odd name, but an input all the same
    section = {"format": "focusstudio-retouch", "version": 1, "shape": [64, 64], "frames": [],
               "strokes": [Stroke(1, Brush(10), [(5.0, 5.0)]).to_json()]}
    strokes.write_text(json.dumps(section), encoding="utf-8")
    before = strokes.read_bytes()
    code = main(["fuse", str(tmp_path / "in"), "-o", str(strokes), "--retouch", str(strokes), "--force", "--quiet"])
    assert code == 2
    assert strokes.read_bytes() == before
    single_error_line(capsys)

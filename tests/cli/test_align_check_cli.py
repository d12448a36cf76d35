"""``fuse --align-check``: how well the reference and the farthest frame overlap, as loaded and
aligned (the window's flicker check on the command line)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from focusstudio.cli import main
from tests.cli.test_alignment_file_cli import _stack


def test_align_check_reports_the_overlap_before_and_after(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    frames = _stack(tmp_path / "a", 3, shift=4)
    assert main(["fuse", *frames, "-o", str(tmp_path / "a.png"), "--align-check", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    check = report["alignment_check"]
    # The reference against the frame the registration moved most: the shifted last one.
    assert check["second"] == 2 and check["first"] != 2
    assert check["aligned"]["correlation"] > check["loaded"]["correlation"]
    assert check["aligned"]["mean_difference"] < check["loaded"]["mean_difference"]
    assert main(["fuse", *frames, "-o", str(tmp_path / "b.png"), "--align-check"]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("alignment check: "))
    assert "as loaded" in line and "aligned" in line
    # Without alignment there is nothing to check: no report, no failure.
    assert main(["fuse", *frames, "-o", str(tmp_path / "c.png"), "--align-check", "--no-align", "--json"]) == 0
    assert "alignment_check" not in json.loads(capsys.readouterr().out)

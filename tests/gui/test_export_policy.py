"""The window's export job goes through the output policy (issue 13 part 2): the image, its
sidecar and its maps are checked together before anything is written, and a refused or
cancelled export leaves the folder as it was."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from focusstudio.core.errors import OutputError
from focusstudio.core.progress import Cancelled, CancelToken
from focusstudio.core.types import FusionMap, FusionResult
from focusstudio.gui.jobs import ExportRequest, export_job


def _result() -> FusionResult:
    decision = np.tile(np.linspace(0, 1, 8, dtype=np.float32), (8, 1))
    return FusionResult(
        image=np.full((8, 8, 3), 0.5, np.float32), method="sf", params={"sf_radius": 5},
        maps={"decision": FusionMap("decision", "decision", decision)}, source_names=("1.png", "2.png"),
    )


def _drive(request: ExportRequest, cancel_after: int | None = None) -> object:
    cancel = CancelToken()
    job = export_job(request, cancel)
    count = 0
    while True:
        try:
            next(job)
        except StopIteration as stop:
            return stop.value
        count += 1
        if cancel_after is not None and count >= cancel_after:
            cancel.cancel()


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _sources(tmp_path: Path) -> tuple[str, ...]:
    folder = tmp_path / "fused_maps"  # the maps folder the export of fused.png would use
    folder.mkdir()
    (folder / "decision.png").write_bytes(b"a source frame")
    (tmp_path / "2.png").write_bytes(b"another source frame")
    return (str(folder / "decision.png"), str(tmp_path / "2.png"))


def test_export_refuses_maps_over_a_source_frame_before_writing_anything(tmp_path: Path) -> None:
    sources = _sources(tmp_path)
    before = _snapshot(tmp_path)
    request = ExportRequest(tmp_path / "fused.png", _result(), sources, with_maps=True, overwrite=True)
    with pytest.raises(OutputError, match="input") as info:
        _drive(request)
    assert "decision.png" in str(info.value)
    assert _snapshot(tmp_path) == before


def test_export_refuses_an_existing_sidecar_before_writing_the_image(tmp_path: Path) -> None:
    (tmp_path / "fused.png.json").write_text("{}")
    request = ExportRequest(tmp_path / "fused.png", _result(), ())
    with pytest.raises(OutputError, match="already exists"):
        _drive(request)
    assert sorted(os.listdir(tmp_path)) == ["fused.png.json"]


@pytest.mark.parametrize("cancel_after", [1, 2, 3])
def test_a_cancelled_export_leaves_nothing(tmp_path: Path, cancel_after: int) -> None:
    request = ExportRequest(tmp_path / "fused.png", _result(), (), with_maps=True)
    with pytest.raises(Cancelled):
        _drive(request, cancel_after=cancel_after)
    assert os.listdir(tmp_path) == []


def test_an_export_publishes_image_sidecar_and_maps_together(tmp_path: Path) -> None:
    outcome = _drive(ExportRequest(tmp_path / "fused.png", _result(), (), with_maps=True))
    assert sorted(_snapshot(tmp_path)) == ["fused.png", "fused.png.json", "fused_maps/decision.png"]
    assert outcome.image == tmp_path / "fused.png"  # type: ignore[attr-defined]

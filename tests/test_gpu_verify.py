"""The prepared GPU check script (benchmarks/gpu_verify.py): its frames, its comparison, its report."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from benchmarks.gpu_verify import Report, compare, make_frames, scene


def _sharpness(image: np.ndarray) -> float:
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32)
    return float(np.mean(cv2.Laplacian(grey, cv2.CV_32F) ** 2))


def test_each_frame_is_sharpest_where_the_depth_is_its_focus_plane(tmp_path: Path) -> None:
    width, height, count = 240, 160, 4
    paths = make_frames(width, height, count, tmp_path)
    _, depth = scene(width, height)
    frames = [cv2.imread(str(path)) for path in paths]
    checked = 0
    # A strip of the background ramp (above the discs) where the depth is each frame's focus plane:
    # that frame must be the sharpest there.
    for k in range(count):
        focus = (k + 0.5) / count
        columns = np.flatnonzero(np.abs(depth[8] - focus) < 0.05)
        columns = columns[(columns > 2) & (columns < width - 3)]
        if columns.size < 4:
            continue
        rows = slice(4, 16)
        band = slice(columns.min(), columns.max() + 1)
        energies = [_sharpness(frame[rows, band]) for frame in frames]
        assert int(np.argmax(energies)) == k, energies
        checked += 1
    assert checked == count  # the ramp (depth 0.15 … 0.85) reaches every plane's ±0.05


def test_compare_counts_samples_off_by_more_than_two_levels() -> None:
    first = np.full((10, 10, 3), 100, np.uint8)
    second = first.copy()
    second[0, :3, 0] = 103  # three samples off by 3 levels
    second[1, 0, 0] = 102  # one off by 2: within tolerance
    result = compare(first, second)
    assert result["max_abs"] == 3
    assert result["share_off_2"] == 3 / first.size
    assert compare(first, first)["psnr_db"] == float("inf")


def test_the_report_is_written_after_every_step(tmp_path: Path) -> None:
    report = Report(tmp_path)
    report.add("pair", {"method": "gacn", "wall_s": 0.25})
    assert json.loads((tmp_path / "results.json").read_text())["pair"][0]["method"] == "gacn"
    assert "| gacn | 0.25 |" in (tmp_path / "results.md").read_text()

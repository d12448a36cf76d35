"""End-to-end tests of the ``focusstudio`` command line on tiny synthetic stacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile

from focusstudio.cli import main, parse_size
from tests.conftest import build_focus_stack, single_error_line


def _write_stack(folder: Path, n: int = 2, size: int = 96, dtype: str = "uint8", ext: str = "png") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    synthetic = build_focus_stack(n, size=size, seed=3, colour=True, dtype=dtype)
    paths = []
    for i, frame in enumerate(synthetic.frames, start=1):
        path = folder / f"{i}.{ext}"
        if ext in ("tif", "tiff"):
            tifffile.imwrite(path, frame)
        else:
            cv2.imwrite(str(path), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        paths.append(path)
    return paths


def test_fuse_two_files_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = _write_stack(tmp_path / "in")
    out = tmp_path / "fused.png"
    assert main(["fuse", str(a), str(b), "-o", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["method"] == "sf"
    assert report["output"] == str(out)
    assert report["device"] == "cpu"
    assert report["params"]["sf_radius"] == 5
    assert report["seconds"]["total"] > 0
    fused = cv2.imread(str(out))
    assert fused.shape == (96, 96, 3)


def test_fuse_folder_with_set_and_maps(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write_stack(tmp_path / "in", n=3)
    out = tmp_path / "fused.png"
    maps = tmp_path / "maps"
    code = main(
        ["fuse", str(tmp_path / "in"), "-o", str(out), "--set", "sf_radius=3",
         "--set", "use_guided_filter=false", "--maps", str(maps), "--json"]
    )
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["params"]["sf_radius"] == 3
    assert report["params"]["use_guided_filter"] is False
    assert report["frames"] == 3
    assert report["maps"] and all(Path(p).is_file() for p in report["maps"])


def test_sixteen_bit_tiff_stays_sixteen_bit(tmp_path: Path) -> None:
    paths = _write_stack(tmp_path / "in", dtype="uint16", ext="tif")
    out = tmp_path / "fused.tif"
    assert main(["fuse", *map(str, paths), "-o", str(out), "--quiet"]) == 0
    fused = tifffile.imread(out)
    assert fused.dtype == np.uint16
    assert fused.shape == (96, 96, 3)
    # Real 16-bit content, not 8-bit values scaled up.
    assert np.any(fused % 257 != 0)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["fuse", "{missing}", "{a}", "-o", "{out}"], "does not exist"),
        (["fuse", "{a}", "-o", "{out}"], "2"),
        (["fuse", "{a}", "{b}", "-o", "{out}", "--set", "sf_radius=0"], "sf_radius"),
        (["fuse", "{a}", "{b}", "-o", "{out}", "--set", "nonsense=1"], "nonsense"),
        (["fuse", "{a}", "{b}", "-o", "{out}", "--method", "nope"], "unknown method"),
        (["fuse", "{a}", "{b}", "-o", "{a}"], "1.png"),
        (["fuse", "{a}", "{empty}", "-o", "{out}"], "empty.png"),
        (["fuse", "{a}", "{corrupt}", "-o", "{out}"], "corrupt.png"),
    ],
)
def test_bad_input_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], needle: str
) -> None:
    a, b = _write_stack(tmp_path / "in")
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "corrupt.png").write_bytes(a.read_bytes()[:200])
    names = {
        "a": a, "b": b, "out": tmp_path / "out.png", "missing": tmp_path / "missing.png",
        "empty": tmp_path / "empty.png", "corrupt": tmp_path / "corrupt.png",
    }
    before = a.read_bytes()
    argv = [arg.format(**names) for arg in args]
    assert main(argv) == 2
    line = single_error_line(capsys)
    assert needle in line
    assert a.read_bytes() == before  # a source is never modified
    assert not (tmp_path / "out.png").exists()


def test_existing_output_needs_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = _write_stack(tmp_path / "in")
    out = tmp_path / "out.png"
    out.write_bytes(b"keep me")
    assert main(["fuse", str(a), str(b), "-o", str(out), "--quiet"]) == 2
    assert "out.png" in single_error_line(capsys)
    assert out.read_bytes() == b"keep me"
    assert main(["fuse", str(a), str(b), "-o", str(out), "--quiet", "--force"]) == 0
    assert cv2.imread(str(out)) is not None


def test_methods_json_lists_declared_params(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["methods", "--json"]) == 0
    entries = {e["name"]: e for e in json.loads(capsys.readouterr().out)}
    assert {"sf", "laplacian"} <= set(entries)
    sf = entries["sf"]
    assert sf["available"] is True
    radius = next(p for p in sf["params"] if p["name"] == "sf_radius")
    assert radius["type"] == "int" and radius["default"] == 5 and "min" in radius


def test_metrics_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = _write_stack(tmp_path / "in")
    out = tmp_path / "fused.png"
    assert main(["fuse", str(a), str(b), "-o", str(out), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["metrics", str(out), str(a), str(b), "--json", "--metrics", "Qabf,MI"]) == 0
    values = json.loads(capsys.readouterr().out)
    assert set(values) == {"Qabf", "MI"}
    assert 0.0 < values["Qabf"] <= 1.0


def test_eval_dataset_table_csv_and_save_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "dataset"
    for scene in ("scene_a", "scene_b"):
        _write_stack(root / scene)
    sharp = build_focus_stack(2, size=96, seed=3, colour=True, dtype="uint8").sharp
    gt = cv2.cvtColor(np.round(sharp * 255).astype(np.uint8), cv2.COLOR_RGB2BGR)
    cv2.imwrite(str(root / "scene_a" / "gt.png"), gt)
    (root / "scene_a" / "notes.txt").write_text("ignored")
    csv_path = tmp_path / "eval.csv"
    save = tmp_path / "saved"
    code = main(["eval", str(root), "--method", "sf", "--csv", str(csv_path), "--save-dir", str(save),
                 "--metrics", "Qabf,MI"])
    assert code == 0
    table = capsys.readouterr().out
    assert "scene_a" in table and "scene_b" in table and "MEAN" in table
    rows = csv_path.read_text().strip().splitlines()
    assert rows[0].startswith("scene,frames,seconds,Qabf,MI")
    assert len(rows) == 4  # header, two scenes, mean
    assert (save / "scene_a.png").is_file() and (save / "scene_b.png").is_file()


def test_demo_writes_result(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo.png"
    assert main(["demo", "-o", str(out)]) == 0
    assert str(out.resolve()) in capsys.readouterr().out
    fused = cv2.imread(str(out))
    assert fused is not None and fused.shape[2] == 3


def test_parse_size() -> None:
    assert parse_size("4G") == 4 * 1024**3
    assert parse_size("512m") == 512 * 1024**2
    assert parse_size("1000") == 1000
    assert parse_size(None) is None


def test_python_dash_m_entry_point() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "focusstudio", "fuse", "/definitely/missing.png", "/x.png", "-o", "/tmp/o.png"],
        capture_output=True, text=True, timeout=120,
    )
    assert completed.returncode == 2
    assert completed.stderr.strip().count("\n") == 0
    assert "missing.png" in completed.stderr


def test_fuse_aligns_three_frames_by_default_and_writes_the_transforms(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = _write_stack(tmp_path / "in", n=3, size=128)
    # Shift the last frame by 3 px, as a handheld frame would be.
    shifted = np.roll(cv2.imread(str(paths[2])), 3, axis=1)
    cv2.imwrite(str(paths[2]), shifted)
    maps = tmp_path / "maps"
    assert main(["fuse", *map(str, paths), "-o", str(tmp_path / "f.png"), "--maps", str(maps), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert "align" in report["seconds"]
    transforms = json.loads((maps / "alignment.json").read_text())
    assert transforms
    capsys.readouterr()
    assert main(["fuse", *map(str, paths), "-o", str(tmp_path / "g.png"), "--no-align", "--json"]) == 0
    assert "align" not in json.loads(capsys.readouterr().out)["seconds"]

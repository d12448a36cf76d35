"""Bad input through the real entry point (``python -m focusstudio`` in a subprocess): one line on
stderr naming the file and the problem, exit code 2, never a traceback (issue 13, parts 3 and 4).

Each case is a row of docs/RELIABILITY.md.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile

from tests import hostile_files as hostile

REPO = Path(__file__).resolve().parents[2]
SHIPPED_WEIGHTS = REPO / "weights"


def _cli(arguments: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {key: value for key, value in os.environ.items() if key != "FOCUSSTUDIO_MAX_PIXELS"}
    environment.update(PYTHONPATH=str(REPO), **env)
    return subprocess.run(
        [sys.executable, "-m", "focusstudio", *arguments],
        cwd=cwd, env=environment, capture_output=True, text=True, timeout=300, check=False,
    )


def _one_line_error(completed: subprocess.CompletedProcess[str], *expected: str) -> str:
    """The single stderr line of a run that exited 2; it must contain every ``expected`` text."""
    lines = completed.stderr.strip().splitlines()
    assert completed.returncode == 2, completed.stderr
    assert len(lines) == 1, f"expected one line on stderr, got:\n{completed.stderr}"
    line = lines[0]
    assert line.startswith("focusstudio: error: ") and "Traceback" not in line
    for text in expected:
        assert text in line, line
    return line


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    return hostile.write_png_pair(tmp_path)


# ----------------------------------------------------------------- damaged TIFF headers
@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda folder, name: hostile.zero_width_tiff(folder, name), "declares 0x64 pixels"),
        (lambda folder, name: hostile.zero_width_tiff(folder, name, hostile.IMAGE_LENGTH), "declares 64x0 pixels"),
        (lambda folder, name: hostile.ascii_width_tiff(folder, name), "its width is '6', not a whole number"),
        (lambda folder, name: hostile.float_width_tiff(folder, name), "its width is 64.0, not a whole number"),
    ],
    ids=["width-0", "height-0", "ascii-width", "float-width"],
)
def test_damaged_tiff_size_tags_are_one_line(tmp_path: Path, make, words: str) -> None:  # type: ignore[no-untyped-def]
    # Two damaged files: one alone used to reach the size comparison with a good frame first.
    first, second = make(tmp_path, "1.tif"), make(tmp_path, "2.tif")
    completed = _cli(["fuse", str(first), str(second), "-o", "out.png"], tmp_path)
    _one_line_error(completed, "1.tif", "damaged header", words)
    assert not (tmp_path / "out.png").exists()


# ----------------------------------------------------------------- weights and options
@pytest.mark.skipif(not (SHIPPED_WEIGHTS / "sesf.pt").is_file(), reason="no shipped sesf weights")
def test_nan_weights_are_refused_when_loaded_naming_the_file(tmp_path: Path, pair: tuple[Path, Path]) -> None:
    weights = hostile.nan_weights(SHIPPED_WEIGHTS / "sesf.pt", tmp_path / "diverged.pt")
    completed = _cli(["fuse", *map(str, pair), "-o", "out.png", "-m", "sesf", "--weights", str(weights)], tmp_path)
    _one_line_error(completed, "diverged.pt", "NaN")
    assert not (tmp_path / "out.png").exists()


@pytest.mark.parametrize("value", ["inf", "nan", "1e400", "-1", "0", "-inf"])
def test_memory_limit_must_be_a_finite_positive_size(tmp_path: Path, pair: tuple[Path, Path], value: str) -> None:
    completed = _cli(["fuse", *map(str, pair), "-o", "out.png", f"--memory-limit={value}"], tmp_path)
    _one_line_error(completed, "--memory-limit", repr(value))


@pytest.mark.parametrize("value", ["0", "-5"])
def test_tile_size_below_one_is_refused(tmp_path: Path, pair: tuple[Path, Path], value: str) -> None:
    completed = _cli(["fuse", *map(str, pair), "-o", "out.png", f"--tile-size={value}"], tmp_path)
    _one_line_error(completed, "--tile-size", value)


# ----------------------------------------------------------------- metrics
def test_metrics_of_a_constant_image_are_nan_not_a_crash(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "k.png"), np.full((64, 64), 128, np.uint8))
    completed = _cli(["metrics", "k.png", "k.png", "k.png", "--json"], tmp_path)
    assert completed.returncode == 0, completed.stderr
    assert completed.stderr == ""
    assert '"NMI": NaN' in completed.stdout


def test_metrics_size_errors_name_the_files(tmp_path: Path, pair: tuple[Path, Path]) -> None:
    cv2.imwrite(str(tmp_path / "small.png"), hostile.texture(32))
    completed = _cli(["metrics", "a.png", "b.png", "small.png"], tmp_path)
    line = _one_line_error(completed, "small.png", "32×32", "a.png is 64×64")
    assert "source" not in line


# ----------------------------------------------------------------- train --out
def _training_images(folder: Path) -> Path:
    folder.mkdir()
    for index in range(2):
        cv2.imwrite(str(folder / f"{index}.png"), hostile.texture(96, seed=index))
    return folder


def _train(tmp_path: Path, out: Path) -> subprocess.CompletedProcess[str]:
    images = _training_images(tmp_path / "sharp")
    return _cli(["train", "--method", "gacn", "--data", str(images), "--out", str(out), "--steps", "1",
                 "--batch-size", "1", "--crop", "64", "--val-fraction", "0", "--run-dir", str(tmp_path / "run")],
                tmp_path)


def _check_train_refused(completed: subprocess.CompletedProcess[str], *expected: str) -> None:
    # The training CLI prints "error: ..." (its own prefix) and nothing before it: no step ran.
    lines = completed.stderr.strip().splitlines()
    assert completed.returncode == 2, completed.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), completed.stderr
    for text in expected:
        assert text in lines[0]


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes into read-only folders")
def test_train_out_in_a_read_only_folder_fails_before_training(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        completed = _train(tmp_path, locked / "gacn.pt")
    finally:
        locked.chmod(0o755)
    _check_train_refused(completed, "gacn.pt", "not writable")
    assert not (tmp_path / "run").exists()


def test_train_out_under_a_file_fails_before_training(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a folder")
    completed = _train(tmp_path, tmp_path / "notes.txt" / "gacn.pt")
    # The output policy names the file in the way (it checks the manifest beside the weights first).
    _check_train_refused(completed, "notes.txt", "not a folder")
    assert not (tmp_path / "run").exists()


# ----------------------------------------------------------------- library noise on stderr
def test_libpng_complaints_become_our_one_line(tmp_path: Path, pair: tuple[Path, Path]) -> None:
    data = bytearray(pair[0].read_bytes())
    idat = data.index(b"IDAT")
    data[idat + 40] ^= 0xFF  # damages the compressed data (and the chunk's CRC)
    (tmp_path / "crc.png").write_bytes(bytes(data))
    completed = _cli(["fuse", "crc.png", "b.png", "-o", "out.png"], tmp_path)
    line = _one_line_error(completed, "crc.png", "damaged (IDAT: ")  # libpng's reason, in our line
    assert "libpng" not in line


def test_tifffile_log_lines_do_not_reach_stderr(tmp_path: Path, pair: tuple[Path, Path]) -> None:
    # A strip count that disagrees with the declared size makes tifffile log two warnings.
    hostile.bomb_tiff(tmp_path / "odd.tif", side=64)
    completed = _cli(["fuse", "odd.tif", "a.png", "-o", "out.png"], tmp_path)
    _one_line_error(completed, "odd.tif")


def test_no_pillow_bomb_warning_for_a_legitimate_144_megapixel_frame(tmp_path: Path, pair: tuple[Path, Path]) -> None:
    """Pillow warns (two lines) above 89 MP; a 12000×12000 JPEG is a real medium-format frame.
    Only its header is read here: the size differs from the other frame, which is the one line."""
    hostile.jpeg_declaring(tmp_path / "big.jpg", 12000, 12000)
    completed = _cli(["fuse", "big.jpg", "a.png", "-o", "out.png"], tmp_path)
    _one_line_error(completed, "12000x12000", "frames must have the same size")


# ----------------------------------------------------------------- wrong words
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_is_not_a_regular_file(tmp_path: Path, pair: tuple[Path, Path]) -> None:
    hostile.fifo(tmp_path)
    completed = _cli(["fuse", "pipe.png", "a.png", "-o", "out.png"], tmp_path)
    line = _one_line_error(completed, "pipe.png", "named pipe (FIFO), not a regular file")
    assert "empty" not in line


@pytest.mark.skipif(os.name != "posix", reason="symbolic links need privileges on Windows")
@pytest.mark.parametrize("arguments", [["loop1.png", "a.png"], ["loop1.png"]], ids=["in-a-list", "alone"])
def test_a_symlink_loop_is_named_as_such(tmp_path: Path, pair: tuple[Path, Path], arguments: list[str]) -> None:
    hostile.symlink_loop(tmp_path)
    completed = _cli(["fuse", *arguments, "-o", "out.png"], tmp_path)
    line = _one_line_error(completed, "loop1.png", "symbolic link loop")
    assert "does not exist" not in line


def test_float_tiffs_of_8_bit_levels_are_scaled_with_a_note(tmp_path: Path) -> None:
    first = hostile.float_levels_tiff(tmp_path / "1.tif", seed=1)
    second = hostile.float_levels_tiff(tmp_path / "2.tif", seed=2)
    completed = _cli(["fuse", str(first), str(second), "-o", "out.tif"], tmp_path)
    assert completed.returncode == 0, completed.stderr
    assert "read as 8-bit levels (divided by 255)" in completed.stderr
    fused = tifffile.imread(tmp_path / "out.tif")
    # Clipped to 0–1 the result would be almost all white (mean ≈ 1); scaled it is the texture's mean.
    expected = tifffile.imread(first).mean() / 255.0
    assert abs(float(fused.mean()) - expected) < 0.1


def test_float_tiffs_beyond_levels_are_refused(tmp_path: Path) -> None:
    hdr = np.random.default_rng(0).random((32, 32)).astype(np.float32) * 3.7
    for name in ("1.tif", "2.tif"):
        tifffile.imwrite(tmp_path / name, hdr)
    completed = _cli(["fuse", "1.tif", "2.tif", "-o", "out.tif"], tmp_path)
    _one_line_error(completed, "1.tif", "float samples up to 3.")


# ----------------------------------------------------------------- part 4: the pixel limit
def test_a_320_byte_tiff_declaring_50000_squared_is_refused_from_its_header(tmp_path: Path) -> None:
    bomb = hostile.bomb_tiff(tmp_path / "bomb.tif")
    assert bomb.stat().st_size == 320
    hostile.write_tiff(tmp_path / "ok.tif")
    completed = _cli(["fuse", "bomb.tif", "ok.tif", "-o", "out.png"], tmp_path)
    _one_line_error(completed, "bomb.tif", "50000x50000", "--max-pixels", "FOCUSSTUDIO_MAX_PIXELS")


@pytest.mark.parametrize("how", ["option", "environment"])
def test_the_pixel_limit_can_be_set(tmp_path: Path, pair: tuple[Path, Path], how: str) -> None:
    if how == "option":
        completed = _cli(["fuse", "a.png", "b.png", "-o", "out.png", "--max-pixels", "4000"], tmp_path)
    else:
        completed = _cli(["fuse", "a.png", "b.png", "-o", "out.png"], tmp_path, FOCUSSTUDIO_MAX_PIXELS="4000")
    _one_line_error(completed, "a.png", "64x64", "limit")
    raised = _cli(["fuse", "a.png", "b.png", "-o", "out.png", "--max-pixels", "5k"], tmp_path,
                  FOCUSSTUDIO_MAX_PIXELS="4000")
    assert raised.returncode == 0, raised.stderr  # the option wins over the environment


@pytest.mark.parametrize("value", ["inf", "0", "lots"])
def test_a_bad_pixel_limit_is_one_line(tmp_path: Path, pair: tuple[Path, Path], value: str) -> None:
    completed = _cli(["fuse", "a.png", "b.png", "-o", "out.png", "--max-pixels", value], tmp_path)
    _one_line_error(completed, "--max-pixels")


def test_a_memory_limit_below_the_method_s_floor_is_refused_before_any_work(tmp_path: Path) -> None:
    """sf holds about 86 bytes a pixel of whole-frame arrays (2 colour frames): 2000×2000 frames
    cannot be fused within 256 MiB, so the limit is refused up front with the size that would do."""
    frame = cv2.resize(hostile.texture(), (2000, 2000))
    cv2.imwrite(str(tmp_path / "1.png"), frame)
    cv2.imwrite(str(tmp_path / "2.png"), frame[::-1])
    completed = _cli(["fuse", "1.png", "2.png", "-o", "out.png", "--memory-limit", "256M"], tmp_path)
    _one_line_error(completed, "--memory-limit 256 MiB is too small for sf on 2 frames of 2000×2000",
                    "give --memory-limit")
    assert not (tmp_path / "out.png").exists()

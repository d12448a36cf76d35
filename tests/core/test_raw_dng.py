"""RAW in, DNG out (issue #16), with real libraw (rawpy). No camera RAW file ships with the tests,
so the RAW frames are linear DNGs written by :mod:`focusstudio.core.io.dng` with a camera-like
colour matrix and white balance; libraw reads them as raw files (LinearRaw DNG)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from focusstudio.cli import main
from focusstudio.core.io import load_stack, read_image
from focusstudio.core.io.dng import camera_from_srgb, encode_dng
from focusstudio.core.io.metadata import OutputMetadata
from focusstudio.core.io.raw import RawColour, develop, srgb_to_linear
from tests.conftest import build_focus_stack

rawpy = pytest.importorskip("rawpy")

#: XYZ (D65) → camera, of the order of a real sensor's (strong off-diagonal terms).
CAMERA = np.array([[0.6602, -0.0841, -0.0939], [-0.4472, 1.2458, 0.2247], [-0.0975, 0.2039, 0.6148]])
BALANCE = (2.1, 1.0, 1.6)


def _raw_frames(folder: Path, balances: list[tuple[float, float, float]], size: int = 64) -> list[Path]:
    """DNG 'RAW' frames of a focus stack, frame i written with white balance ``balances[i]``.
    Colours are kept mild so the camera values of every pixel lie within the sensor's range."""
    folder.mkdir(parents=True, exist_ok=True)
    stack = build_focus_stack(len(balances), size=size, seed=9, colour=True)
    paths = []
    for i, (frame, balance) in enumerate(zip(stack.frames, balances)):
        mild = 0.25 + 0.5 * (0.6 * frame + 0.4 * frame.mean(axis=2, keepdims=True))
        pixels = np.floor(mild * 65535 + 0.5).astype(np.uint16)
        # A camera libraw has no table for: it then takes the DNG's own ColorMatrix1 (for models it
        # knows, libraw reports its built-in matrix instead).
        metadata = OutputMetadata(f"{i}.dng", {0x010F: "Testcam", 0x0110: "Testcam Linear 1"},
                                  raw_colour=RawColour(CAMERA, balance))
        path = folder / f"{i + 1}.dng"
        path.write_bytes(encode_dng(pixels, metadata))
        paths.append(path)
    return paths


def _tolerance(colour: RawColour, encoded: bool) -> float:
    """Linear error bound in 16-bit levels, over 65535: the camera values' rounding (½ level)
    through the white balance and the largest row of libraw's camera→sRGB matrix; libraw's
    rounding of the balanced values (½ level through the matrix) and of its output (½ level);
    with ``encoded``, the 16-bit sRGB encoding of a developed frame (½ level times the curve's
    steepest slope, 2.3 at white)."""
    camera_rgb, balance = camera_from_srgb(colour)
    matrix = float(np.abs(np.linalg.inv(camera_rgb)).sum(axis=1).max())
    levels = 0.5 * matrix * float(balance.max()) + 0.5 * matrix + 0.5 + (0.5 * 2.3 if encoded else 0.0)
    return levels / 65535


def test_linear_dng_develops_back_to_its_colours(tmp_path: Path) -> None:
    path = _raw_frames(tmp_path, [BALANCE, BALANCE])[0]
    with tifffile.TiffFile(path) as tif:
        written = tif.pages.first.asarray()
    with rawpy.imread(str(path)) as raw:
        assert (raw.sizes.height, raw.sizes.width) == (64, 64) and raw.raw_image.dtype == np.uint16
        np.testing.assert_allclose(raw.camera_whitebalance[:3], BALANCE, rtol=1e-3)
    assert written.max() < 65535 and written.min() > 0  # nothing clipped: the comparison is fair
    stack = build_focus_stack(2, size=64, seed=9, colour=True)
    frame = stack.frames[0]
    expected = np.floor((0.25 + 0.5 * (0.6 * frame + 0.4 * frame.mean(axis=2, keepdims=True))) * 65535 + 0.5)
    developed = develop(path).astype(np.float64)  # sRGB-encoded 16-bit, the file's own balance
    linear_difference = srgb_to_linear(developed / 65535) - srgb_to_linear(expected / 65535)
    assert np.abs(linear_difference).max() <= _tolerance(RawColour(CAMERA, BALANCE), encoded=True)


def test_every_raw_frame_gets_the_reference_white_balance(tmp_path: Path) -> None:
    """Frames 1 and 3 were shot with another white balance than frame 2 (the middle, reference):
    alone each develops with its own; in a stack all with frame 2's, like the camera data says."""
    paths = _raw_frames(tmp_path, [(1.5, 1.0, 2.4), BALANCE, (1.5, 1.0, 2.4)])
    stack = load_stack(paths)
    alone, in_stack = read_image(paths[0]), stack.load(0)
    with rawpy.imread(str(paths[1])) as raw:  # the balance as libraw reads it back (4 decimals)
        reference = [*raw.camera_whitebalance[:3], raw.camera_whitebalance[1]]
    with rawpy.imread(str(paths[0])) as raw:
        linear = raw.postprocess(gamma=(1, 1), no_auto_bright=True, output_bps=16, adjust_maximum_thr=0.0,
                                 user_wb=reference)
    expected = np.floor(np.where(linear / 65535 <= 0.0031308, linear / 65535 * 12.92,
                                 1.055 * (linear / 65535) ** (1 / 2.4) - 0.055) * 65535 + 0.5) / 65535
    np.testing.assert_allclose(in_stack, expected, atol=1 / 65535)
    assert np.abs(alone.mean(axis=(0, 1)) - in_stack.mean(axis=(0, 1))).max() > 0.02  # other balance


def test_raw_stack_to_dng_keeps_matrix_balance_and_colour(tmp_path: Path) -> None:
    paths = _raw_frames(tmp_path / "in", [BALANCE] * 3)
    dng, png = tmp_path / "fused.dng", tmp_path / "fused.png"
    assert main(["fuse", *map(str, paths), "-o", str(dng), "--no-align", "--quiet"]) == 0
    assert main(["fuse", *map(str, paths), "-o", str(png), "--no-align", "--quiet"]) == 0
    with tifffile.TiffFile(dng) as tif:
        tags = tif.pages.first.tags
        pairs = np.array(tags["ColorMatrix1"].value, dtype=np.float64).reshape(9, 2)
        matrix = pairs[:, 0] / pairs[:, 1]
        # The same matrix up to its overall scale (the DNG's is scaled so D65 white peaks at 1),
        # within the 4 decimals the frames' DNG stored it with and the re-derivation's rounding.
        scale = matrix[4] / CAMERA[1, 1]
        np.testing.assert_allclose(matrix / scale, CAMERA.ravel(), atol=5e-4)
        neutral = np.array(tags["AsShotNeutral"].value, dtype=np.float64).reshape(3, 2)
        np.testing.assert_allclose(neutral[:, 0] / neutral[:, 1], BALANCE[1] / np.array(BALANCE), atol=1e-4)
        assert tags["Make"].value == "Testcam" and tags["BitsPerSample"].value == (16, 16, 16)
    fused = read_image(png).astype(np.float64)  # 16-bit: RAW frames are developed to 16 bits
    with rawpy.imread(str(dng)) as raw:
        assert (raw.sizes.height, raw.sizes.width) == (64, 64)
        developed = raw.postprocess(gamma=(1, 1), no_auto_bright=True, use_camera_wb=True, output_bps=16)
    difference = developed / 65535 - srgb_to_linear(fused)
    assert np.abs(difference).max() <= _tolerance(RawColour(CAMERA, BALANCE), encoded=True)


def test_unreadable_raw_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    paths = _raw_frames(tmp_path, [BALANCE] * 2)
    broken = tmp_path / "3.nef"
    broken.write_bytes(b"II*\x00" + bytes(range(256)) * 8)
    code = main(["fuse", *map(str, paths), str(broken), "-o", str(tmp_path / "out.png"), "--quiet"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "3.nef" in lines[0] and "Traceback" not in lines[0]

"""Round trips of the camera's metadata and colour through ``focusstudio fuse`` (issue #16):
EXIF and ICC of JPEG and 16-bit TIFF frames in every output format, orientation, --strip-metadata,
--bits 16, linear DNG output read back by libraw, and hostile metadata refused in one line."""

from __future__ import annotations

import functools
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image, ImageCms, TiffImagePlugin

from focusstudio.cli import main
from focusstudio.core.io import load_stack, write_image
from focusstudio.core.io.metadata import EXIF_IFD, GPS_IFD, MAKER_NOTE, OutputMetadata
from focusstudio.core.io.raw import srgb_to_linear
from tests.conftest import build_focus_stack

REPO = Path(__file__).resolve().parents[2]
MAKE, MODEL, DATE = "Canon", "Canon EOS R5", "2026:01:02 03:04:05"
MAKER_NOTE_BYTES = b"CanonMakerNote\x00\x01\x02\x03"
EXPOSURE = TiffImagePlugin.IFDRational(1, 125)


@functools.lru_cache
def _profile(description: str = "sRGB") -> bytes:
    """A valid RGB ICC profile; another ``description`` (4 letters) gives a different profile.
    Cached: littlecms stamps each profile it makes with the current time."""
    data = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    assert len(description) == 4
    return data.replace("sRGB".encode("utf-16-be"), description.encode("utf-16-be"))


def _camera_exif(orientation: int = 1) -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0132], exif[0x0112] = MAKE, MODEL, DATE, orientation
    sub = exif.get_ifd(EXIF_IFD)
    sub[0x829A], sub[0x8827], sub[MAKER_NOTE] = EXPOSURE, 400, MAKER_NOTE_BYTES
    sub[0xA002], sub[0xA003] = 64, 48
    gps = exif.get_ifd(GPS_IFD)
    gps[1], gps[2] = "N", tuple(TiffImagePlugin.IFDRational(v) for v in (51, 30, 0))
    return exif


def _jpeg_stack(folder: Path, orientation: int = 6, icc: bytes | None = None) -> list[Path]:
    """Three 64×48 JPEG frames stored sideways (EXIF orientation 6) with camera EXIF and ICC."""
    folder.mkdir(parents=True, exist_ok=True)
    frames = build_focus_stack(3, size=64, seed=5, colour=True, dtype="uint8").frames
    paths = []
    for i, frame in enumerate(frames):
        path = folder / f"{i + 1}.jpg"
        stored = np.ascontiguousarray(frame[:48])  # 64 wide, 48 high as stored
        Image.fromarray(stored).save(path, quality=95, exif=_camera_exif(orientation).tobytes(),
                                     icc_profile=icc or _profile())
        paths.append(path)
    return paths


def _tiff16_stack(folder: Path) -> list[Path]:
    """Three 16-bit TIFF frames carrying EXIF (Exif and GPS IFDs) and an ICC profile."""
    folder.mkdir(parents=True, exist_ok=True)
    frames = build_focus_stack(3, size=48, seed=6, colour=True, dtype="uint16").frames
    exif = _camera_exif()
    metadata = OutputMetadata(
        "camera", {0x010F: MAKE, 0x0110: MODEL, 0x0132: DATE}, dict(exif.get_ifd(EXIF_IFD)),
        dict(exif.get_ifd(GPS_IFD)), _profile(),
    )
    paths = []
    for i, frame in enumerate(frames):
        path = folder / f"{i + 1}.tif"
        write_image(path, frame / 65535.0, "uint16", metadata=metadata)
        paths.append(path)
    return paths


def _exif_of(path: Path) -> tuple[Image.Exif, dict[int, object], dict[int, object], bytes | None, tuple[int, int]]:
    with Image.open(path) as image:
        exif = image.getexif()
        sub, gps = dict(exif.get_ifd(EXIF_IFD)), dict(exif.get_ifd(GPS_IFD))
        return exif, sub, gps, image.info.get("icc_profile"), image.size


def _digest(paths: list[Path]) -> list[str]:
    return [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]


@pytest.mark.parametrize("ext", ["jpg", "png", "tif"])
def test_jpeg_frames_exif_and_icc_reach_every_format(tmp_path: Path, ext: str) -> None:
    frames = _jpeg_stack(tmp_path / "in")
    before = _digest(frames)
    out = tmp_path / f"fused.{ext}"
    assert main(["fuse", *map(str, frames), "-o", str(out), "--no-align", "--quiet"]) == 0
    exif, sub, gps, icc, size = _exif_of(out)
    assert size == (48, 64)  # stored 64×48 turned by orientation 6: the pixels are upright
    assert exif[0x0112] == 1
    assert (exif[0x010F], exif[0x0110], exif[0x0132]) == (MAKE, MODEL, DATE)
    assert str(exif[0x0131]).startswith("FocusStudio ")
    assert "3 frames" in exif[0x010E] and "'sf'" in exif[0x010E]
    assert float(sub[0x829A]) == pytest.approx(1 / 125) and sub[0x8827] == 400
    assert sub[MAKER_NOTE] == MAKER_NOTE_BYTES
    assert (sub[0xA002], sub[0xA003]) == (48, 64)  # the result's size, not the frame's
    assert gps[1] == "N"
    assert icc == _profile()
    assert _digest(frames) == before  # inputs never modified


def test_16bit_tiff_frames_keep_exif_icc_and_depth(tmp_path: Path) -> None:
    frames = _tiff16_stack(tmp_path / "in")
    with tifffile.TiffFile(frames[0]) as tif:  # our frame writer, read by an independent parser
        tags = tif.pages.first.tags
        assert tags["ExifTag"].value["ExposureTime"] == (1, 125)
        assert tags["GPSTag"].value["GPSLatitudeRef"] == "N"
        assert bytes(tags[34675].value) == _profile()
    out = tmp_path / "fused.tif"
    assert main(["fuse", *map(str, frames), "-o", str(out), "--no-align", "--quiet"]) == 0
    assert tifffile.imread(out).dtype == np.uint16
    exif, sub, gps, icc, _ = _exif_of(out)
    assert (exif[0x010F], exif[0x0110]) == (MAKE, MODEL)
    assert sub[MAKER_NOTE] == MAKER_NOTE_BYTES and sub[0x8827] == 400 and gps[1] == "N"
    assert icc == _profile()


def test_strip_metadata_drops_gps_and_maker_note(tmp_path: Path) -> None:
    frames = _jpeg_stack(tmp_path / "in")
    out = tmp_path / "fused.jpg"
    assert main(["fuse", *map(str, frames), "-o", str(out), "--no-align", "--quiet", "--strip-metadata"]) == 0
    exif, sub, gps, icc, _ = _exif_of(out)
    assert GPS_IFD not in exif and gps == {}
    assert MAKER_NOTE not in sub
    assert exif[0x010F] == MAKE and sub[0x8827] == 400  # the rest is kept
    assert icc == _profile()


def test_bits_16_from_8_bit_frames(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    frames = _jpeg_stack(tmp_path / "in")
    for ext in ("png", "tif"):
        out = tmp_path / f"fused16.{ext}"
        assert main(["fuse", *map(str, frames), "-o", str(out), "--no-align", "--quiet", "--bits", "16"]) == 0
        pixels = tifffile.imread(out) if ext == "tif" else np.asarray(Image.open(out))
        if ext == "png":
            import cv2

            pixels = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
            with Image.open(out) as image:
                assert image.info.get("icc_profile") == _profile()
        assert pixels.dtype == np.uint16 and pixels.shape == (64, 48, 3)
        # Not merely 8-bit levels times 257: the fusion's finer levels are kept.
        assert np.any(pixels % 257 != 0)
    capsys.readouterr()
    out = tmp_path / "fused16.jpg"
    assert main(["fuse", *map(str, frames), "-o", str(out), "--no-align", "--quiet", "--bits", "16"]) == 0
    assert "JPEG stores 8 bits" in capsys.readouterr().err


def test_dng_output_reads_back_in_libraw(tmp_path: Path) -> None:
    rawpy = pytest.importorskip("rawpy")
    frames = _jpeg_stack(tmp_path / "in")
    out, png = tmp_path / "fused.dng", tmp_path / "fused.png"
    common = ["--no-align", "--quiet", "--bits", "16"]
    assert main(["fuse", *map(str, frames), "-o", str(out), *common]) == 0
    assert main(["fuse", *map(str, frames), "-o", str(png), *common]) == 0
    import cv2

    fused = cv2.imread(str(png), cv2.IMREAD_UNCHANGED)[..., ::-1].astype(np.float64) / 65535.0
    with rawpy.imread(str(out)) as raw:
        assert (raw.sizes.height, raw.sizes.width) == (64, 48)
        assert raw.raw_image.dtype == np.uint16 and raw.white_level == 65535
        developed = raw.postprocess(gamma=(1, 1), no_auto_bright=True, use_camera_wb=True, output_bps=16, user_flip=0)
    assert developed.dtype == np.uint16
    # sRGB as the 'camera': 16-bit rounding of the linear values, libraw's own rounding, and the
    # 4-decimal matrix (|M·M⁻¹ - I| ≤ 4e-4 per row) on values up to 1.
    tolerance = (2 + 4e-4 * 65535) / 65535
    np.testing.assert_allclose(developed / 65535.0, srgb_to_linear(fused), atol=tolerance)
    with tifffile.TiffFile(out) as tif:
        tags = tif.pages.first.tags
        assert tags["PhotometricInterpretation"].value == 34892
        assert tags["Make"].value == MAKE and tags["UniqueCameraModel"].value == MODEL
        assert tags["ExifTag"].value["ISOSpeedRatings"] == 400
        assert tags["Orientation"].value == 1


def test_garbage_exif_is_one_line(tmp_path: Path) -> None:
    """Through the real entry point: Pillow's own warning about the damaged block must not add
    lines to stderr either."""
    frames = _jpeg_stack(tmp_path / "in", orientation=1)
    data = frames[1].read_bytes()  # the middle frame: the reference whose EXIF is carried
    start = data.index(b"Exif\x00\x00") + 6
    damaged = data[:start + 4] + b"\xff\xff\xff\x7f" + data[start + 8:]  # IFD0 offset far past the end
    frames[1].write_bytes(damaged)
    environment = dict(os.environ, PYTHONPATH=str(REPO))
    completed = subprocess.run(
        [sys.executable, "-m", "focusstudio", "fuse", "in", "-o", "out.jpg", "--no-align", "--quiet"],
        cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=300, check=False,
    )
    lines = completed.stderr.strip().splitlines()
    assert completed.returncode == 2 and len(lines) == 1, completed.stderr
    assert "2.jpg" in lines[0] and "EXIF" in lines[0] and "Traceback" not in lines[0]
    assert not (tmp_path / "out.jpg").exists()


def test_damaged_and_mismatched_profiles_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    frames = _jpeg_stack(tmp_path / "in", orientation=1)
    with Image.open(frames[2]) as image:
        pixels = np.asarray(image)
    Image.fromarray(pixels).save(frames[2], icc_profile=_profile("Wide"))
    code = main(["fuse", *map(str, frames), "-o", str(tmp_path / "out.png"), "--no-align", "--quiet"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "3.jpg" in lines[0] and "colour profile" in lines[0]
    Image.fromarray(pixels).save(frames[2], icc_profile=b"acsp" + b"\x00" * 200)
    code = main(["fuse", *map(str, frames), "-o", str(tmp_path / "out.png"), "--no-align", "--quiet"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "3.jpg" in lines[0] and "damaged ICC" in lines[0]
    assert not (tmp_path / "out.png").exists()


def test_frames_without_metadata_still_fuse(tmp_path: Path) -> None:
    """No EXIF, no profile: the output has only our Software and note, and no profile."""
    frames = build_focus_stack(2, size=48, seed=7, colour=True, dtype="uint8").frames
    paths = []
    for i, frame in enumerate(frames):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(frame).save(paths[-1])
    out = tmp_path / "fused.png"
    assert main(["fuse", *map(str, paths), "-o", str(out), "--quiet"]) == 0
    exif, _sub, gps, icc, _ = _exif_of(out)
    assert 0x010F not in exif and icc is None and gps == {}
    assert str(exif[0x0131]).startswith("FocusStudio ")
    assert load_stack([out, paths[0]]).shape == (48, 48)  # our PNG reads back


def test_an_rgb_profile_is_not_put_on_a_grey_result(tmp_path: Path) -> None:
    metadata = OutputMetadata("a.jpg", icc_profile=_profile())
    assert metadata.profile_fits((8, 8, 3)) and not metadata.profile_fits((8, 8))
    grey, colour = tmp_path / "grey.png", tmp_path / "colour.png"
    write_image(grey, np.full((8, 8), 0.5, np.float32), metadata=metadata)
    write_image(colour, np.full((8, 8, 3), 0.5, np.float32), metadata=metadata)
    with Image.open(grey) as image:
        assert "icc_profile" not in image.info and image.getexif()[0x0112] == 1
    with Image.open(colour) as image:
        assert image.info["icc_profile"] == _profile()


def test_batch_outputs_keep_the_cameras_exif_and_icc(tmp_path: Path) -> None:
    _jpeg_stack(tmp_path / "positions" / "p1")
    out = tmp_path / "fused"
    assert main(["batch", str(tmp_path / "positions"), "-o", str(out), "--no-align", "--quiet"]) == 0
    [written] = [p for p in out.iterdir() if p.suffix.lower() in (".tif", ".tiff", ".png", ".jpg")]
    exif, sub, gps, icc, _size = _exif_of(written)
    assert (exif[0x010F], exif[0x0110]) == (MAKE, MODEL) and exif[0x0112] == 1
    assert sub[MAKER_NOTE] == MAKER_NOTE_BYTES and gps[1] == "N"
    assert icc == _profile()

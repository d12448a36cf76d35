"""Image/stack I/O: readers, stack loading and validation, atomic writers, data-set discovery.

All images are small synthetic ones written into ``tmp_path``; one test reads the shared Lytro
pairs and is skipped when they are absent.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
from PIL import Image, ImageOps

from focusstudio.core.errors import InputError
from focusstudio.core.io import (
    apply_orientation,
    discover_dataset,
    load_stack,
    probe_image,
    read_image,
    read_image_with_dtype,
    write_image,
    write_result,
)
from focusstudio.core.io import readers as readers_module
from focusstudio.core.types import FusionResult


# ----------------------------------------------------------------------------- helpers
def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _save_png(path: Path, array: np.ndarray) -> Path:
    """Lossless PNG via OpenCV (handles 16-bit RGB); ``array`` is RGB(A) or grey."""
    pixels = array[..., ::-1] if array.ndim == 3 and array.shape[2] == 3 else array
    if array.ndim == 3 and array.shape[2] == 4:
        pixels = array[..., [2, 1, 0, 3]]
    assert cv2.imwrite(str(path), np.ascontiguousarray(pixels))
    return path


def _exif(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif


def _marked_image(height: int = 24, width: int = 40) -> np.ndarray:
    """RGB uint8 with a distinct top-left block, so any rotation or mirror is visible."""
    image = np.full((height, width, 3), 40, np.uint8)
    image[:8, :8] = (250, 20, 20)
    image[-8:, :8] = (20, 250, 20)
    return image


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ----------------------------------------------------------------------------- reading and round trips
def test_16bit_tiff_reads_exactly_and_round_trips_to_16bit_tiff(tmp_path: Path) -> None:
    original = _rng().integers(0, 65536, (12, 10, 3), dtype=np.uint16)
    original[0, 0] = (0, 1, 65535)
    other = original[::-1].copy()
    tifffile.imwrite(tmp_path / "a.tif", original, photometric="rgb")
    tifffile.imwrite(tmp_path / "b.tif", other, photometric="rgb")

    stack = load_stack([tmp_path / "a.tif", tmp_path / "b.tif"])
    assert [f.dtype for f in stack.frames] == ["uint16", "uint16"]
    assert stack.dtype == "uint16"
    frame = stack.load(0)
    assert frame.dtype == np.float32 and frame.shape == (12, 10, 3)
    np.testing.assert_array_equal(frame, original.astype(np.float32) / 65535.0)
    assert frame[0, 0, 0] == 0.0 and frame[0, 0, 2] == 1.0

    out = write_image(tmp_path / "out.tif", frame, stack.dtype)
    np.testing.assert_array_equal(tifffile.imread(out), original)
    result = FusionResult(image=stack.load(1), method="test", params={}, source_dtype="uint16")
    np.testing.assert_array_equal(tifffile.imread(write_result(tmp_path / "r.tif", result)), other)


def test_8bit_png_round_trip_colour_and_grey(tmp_path: Path) -> None:
    colour = _rng(1).integers(0, 256, (9, 14, 3), dtype=np.uint8)
    grey = _rng(2).integers(0, 256, (9, 14), dtype=np.uint8)
    for name, original in (("colour", colour), ("grey", grey)):
        source = _save_png(tmp_path / f"{name}.png", original)
        (info,) = probe_image(source)
        assert (info.dtype, info.channels) == ("uint8", 3 if original.ndim == 3 else 1)
        image = read_image(source)
        np.testing.assert_array_equal(image, original.astype(np.float32) / 255.0)
        out = write_image(tmp_path / f"{name}_out.png", image, "uint8")
        np.testing.assert_array_equal(np.asarray(Image.open(out)), original)


def test_16bit_png_rgb_and_grey_round_trip(tmp_path: Path) -> None:
    for name, original in (
        ("rgb16", _rng(3).integers(0, 65536, (7, 5, 3), dtype=np.uint16)),
        ("grey16", _rng(4).integers(0, 65536, (7, 5), dtype=np.uint16)),
    ):
        source = _save_png(tmp_path / f"{name}.png", original)
        assert probe_image(source)[0].dtype == "uint16"
        image = read_image(source)
        out = write_image(tmp_path / f"{name}_out.png", image, "uint16")
        back = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(back[..., ::-1] if back.ndim == 3 else back, original)


def test_rgba_drops_alpha_png_and_tiff(tmp_path: Path) -> None:
    rgba = _rng(5).integers(0, 256, (6, 8, 4), dtype=np.uint8)
    rgba[..., 3] = 0  # fully transparent: the colour must still come through untouched
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    tifffile.imwrite(tmp_path / "a.tif", rgba, photometric="rgb", extrasamples=["unassalpha"])
    expected = rgba[..., :3].astype(np.float32) / 255.0
    for name in ("a.png", "a.tif"):
        assert probe_image(tmp_path / name)[0].channels == 3
        np.testing.assert_array_equal(read_image(tmp_path / name), expected)


def test_grey_alpha_and_palette_png_match_their_probe(tmp_path: Path) -> None:
    grey = _rng(6).integers(0, 256, (5, 7), dtype=np.uint8)
    Image.fromarray(np.dstack([grey, grey]), "LA").save(tmp_path / "la.png")
    Image.fromarray(grey).convert("P").save(tmp_path / "p.png")
    stack = load_stack([tmp_path / "la.png", tmp_path / "p.png"])
    assert [f.channels for f in stack.frames] == [1, 3]
    np.testing.assert_array_equal(stack.load(0, grey=True), grey / np.float32(255.0))
    assert stack.load(1).shape == (5, 7, 3)


def test_bmp_and_lossless_webp_are_read(tmp_path: Path) -> None:
    original = _rng(7).integers(0, 256, (6, 9, 3), dtype=np.uint8)
    Image.fromarray(original).save(tmp_path / "a.bmp")
    Image.fromarray(original).save(tmp_path / "a.webp", lossless=True)
    for name in ("a.bmp", "a.webp"):
        np.testing.assert_array_equal(read_image(tmp_path / name), original / np.float32(255.0))


def test_float32_tiff_keeps_float_dtype_and_png_output_falls_back_to_16bit(tmp_path: Path) -> None:
    original = _rng(8).random((5, 6), dtype=np.float32)
    tifffile.imwrite(tmp_path / "f.tif", original)
    (info,) = probe_image(tmp_path / "f.tif")
    assert info.dtype == "float32"
    image, source_dtype = read_image_with_dtype(tmp_path / "f.tif")
    assert source_dtype == "float32"
    np.testing.assert_array_equal(image, original)
    notes: list[str] = []
    write_image(tmp_path / "f.png", image, "float32", notes=notes)
    assert len(notes) == 1 and "16-bit" in notes[0]
    assert cv2.imread(str(tmp_path / "f.png"), cv2.IMREAD_UNCHANGED).dtype == np.uint16
    np.testing.assert_array_equal(tifffile.imread(write_image(tmp_path / "g.tif", image, "float32")), original)


def test_lzw_tiff_is_decoded(tmp_path: Path) -> None:
    """LZW needs imagecodecs in tifffile; without it the reader falls back to OpenCV's libtiff."""
    rgb = _rng(9).integers(0, 65536, (10, 12, 3), dtype=np.uint16)
    ok, encoded = cv2.imencode(".tiff", np.ascontiguousarray(rgb[..., ::-1]))  # libtiff writes LZW
    assert ok
    (tmp_path / "lzw.tif").write_bytes(encoded.tobytes())
    with tifffile.TiffFile(tmp_path / "lzw.tif") as tif:
        assert tif.pages[0].compression == tifffile.COMPRESSION.LZW
    np.testing.assert_array_equal(read_image(tmp_path / "lzw.tif"), rgb / np.float32(65535.0))


# ----------------------------------------------------------------------------- multi-page TIFF
def test_multipage_tiff_is_a_stack_and_thumbnails_are_skipped(tmp_path: Path) -> None:
    pages = _rng(10).integers(0, 256, (3, 8, 6), dtype=np.uint8)
    path = tmp_path / "stack.tif"
    with tifffile.TiffWriter(path) as writer:
        for page in pages:
            writer.write(page)
        writer.write(pages[0][::2, ::2], subfiletype=1)  # a reduced-resolution preview
    stack = load_stack([path])
    assert len(stack) == 3
    assert stack.names == ["stack.tif[0]", "stack.tif[1]", "stack.tif[2]"]
    assert [f.page for f in stack.frames] == [0, 1, 2]
    for index, page in enumerate(pages):
        np.testing.assert_array_equal(stack.load(index), page / np.float32(255.0))


def test_single_page_tiff_alone_is_not_a_stack(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "one.tif", np.zeros((4, 4), np.uint8))
    with pytest.raises(InputError, match="single image") as info:
        load_stack([tmp_path / "one.tif"])
    assert "one.tif" in str(info.value)


# ----------------------------------------------------------------------------- EXIF orientation
@pytest.mark.parametrize("orientation", [6, 8])
def test_jpeg_exif_orientation_is_applied_once(tmp_path: Path, orientation: int) -> None:
    stored = _marked_image()
    path = tmp_path / f"o{orientation}.jpg"
    Image.fromarray(stored).save(path, exif=_exif(orientation), quality=98)

    (info,) = probe_image(path)
    assert info.shape == (40, 24)  # portrait after the 90° turn
    image = read_image(path)
    assert image.shape == (40, 24, 3)
    with Image.open(path) as opened:
        upright = np.asarray(ImageOps.exif_transpose(opened))
    np.testing.assert_array_equal(image, upright / np.float32(255.0))
    # The red block (stored top-left) ends top-right for 6 (90° clockwise), bottom-left for 8.
    red_corner = image[:6, -6:] if orientation == 6 else image[-6:, :6]
    assert red_corner[..., 0].mean() > 0.8 and red_corner[..., 1].mean() < 0.3


@pytest.mark.parametrize("orientation", range(1, 9))
def test_png_and_tiff_orientation_match_pillow(tmp_path: Path, orientation: int) -> None:
    stored = _rng(11).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    png = tmp_path / "o.png"
    Image.fromarray(stored).save(png, exif=_exif(orientation))
    tif = tmp_path / "o.tif"
    tifffile.imwrite(tif, stored, photometric="rgb", extratags=[(274, "H", 1, orientation, True)])
    with Image.open(png) as opened:
        expected = np.asarray(ImageOps.exif_transpose(opened)) / np.float32(255.0)
    for path in (png, tif):
        assert probe_image(path)[0].shape == expected.shape[:2]
        np.testing.assert_array_equal(read_image(path), expected)
    np.testing.assert_array_equal(apply_orientation(stored, orientation), np.round(expected * 255))


# ----------------------------------------------------------------------------- folders
def test_folder_is_naturally_sorted_and_skips_non_images(tmp_path: Path) -> None:
    for index, name in enumerate(["img10.png", "img2.png", "IMG3.png", "img1.png"]):
        _save_png(tmp_path / name, np.full((4, 4), index * 10, np.uint8))
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / ".DS_Store").write_bytes(b"\x00\x01")
    (tmp_path / "._img1.png").write_bytes(b"\x00\x05\x16\x07")  # macOS resource fork
    (tmp_path / "sub").mkdir()

    stack = load_stack(str(tmp_path))  # a single path needs no list
    assert stack.names == ["img1.png", "img2.png", "IMG3.png", "img10.png"]
    assert stack.load(0)[0, 0] == pytest.approx(30 / 255)
    joined = "\n".join(stack.notes)
    assert "notes.txt" in joined and "sub/" in joined
    assert ".DS_Store" in joined and "._img1.png" in joined


def test_explicit_files_keep_their_order_and_say_so(tmp_path: Path) -> None:
    for name in ("b10.png", "b2.png"):
        _save_png(tmp_path / name, np.zeros((3, 3), np.uint8))
    stack = load_stack([str(tmp_path / "b10.png"), str(tmp_path / "b2.png")])
    assert stack.names == ["b10.png", "b2.png"]
    assert any("order given" in note for note in stack.notes)
    assert load_stack([tmp_path / "b2.png", tmp_path / "b10.png"]).notes == []


def test_raw_jpeg_pairs_use_the_developed_files(tmp_path: Path) -> None:
    for stem in ("IMG_1", "IMG_2"):
        _save_png(tmp_path / f"{stem}.png", np.zeros((3, 3), np.uint8))
        (tmp_path / f"{stem}.CR2").write_bytes(b"II*\x00raw")
    stack = load_stack([tmp_path])
    assert stack.names == ["IMG_1.png", "IMG_2.png"]
    assert any("RAW+JPEG" in note for note in stack.notes)


def test_opening_200_frames_reads_headers_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    frame = np.zeros((16, 16, 3), np.uint8)
    for index in range(200):
        frame[0, 0, 0] = index
        _save_png(tmp_path / f"f{index}.png", frame)

    def no_decoding(*_args: object) -> None:
        raise AssertionError("load_stack decoded pixels")

    # Decoding is forbidden outright, so the test needs no clock (timings belong to benchmarks/).
    monkeypatch.setattr(readers_module, "_decode", no_decoding)
    stack = load_stack([tmp_path])
    assert len(stack) == 200 and stack.names[:3] == ["f0.png", "f1.png", "f2.png"]


# ----------------------------------------------------------------------------- bad input
def test_missing_empty_and_non_image_inputs_name_the_file(tmp_path: Path) -> None:
    good = _save_png(tmp_path / "good.png", np.zeros((4, 4), np.uint8))
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    text = tmp_path / "text.jpg"
    text.write_text("hello, I am not a JPEG")
    missing = tmp_path / "missing.png"
    cases = {missing: "does not exist", empty: "empty", text: "not a supported image"}
    for bad, message in cases.items():
        with pytest.raises(InputError, match=message) as info:
            load_stack([good, bad])
        assert bad.name in str(info.value) and info.value.path == str(bad)
    with pytest.raises(InputError, match="does not exist"):
        load_stack([missing])


def test_truncated_png_is_caught_when_opening(tmp_path: Path) -> None:
    good = _save_png(tmp_path / "good.png", _rng(12).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    data = good.read_bytes()
    cut = tmp_path / "cut.png"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="truncated") as info:
        load_stack([good, cut])
    assert "cut.png" in str(info.value)


def test_truncated_jpeg_and_tiff_are_caught_when_decoding(tmp_path: Path) -> None:
    pixels = _rng(13).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "good.jpg", quality=90)
    data = (tmp_path / "good.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) * 2 // 3])
    tifffile.imwrite(tmp_path / "good.tif", pixels, photometric="rgb")
    data = (tmp_path / "good.tif").read_bytes()
    (tmp_path / "cut.tif").write_bytes(data[: len(data) // 2])
    for name in ("cut.jpg", "cut.tif"):
        stack = load_stack([tmp_path / f"good{Path(name).suffix}", tmp_path / name])  # headers are fine
        stack.load(0)
        with pytest.raises(InputError, match="truncated or damaged") as info:
            stack.load(1)
        assert name in str(info.value)


def test_corrupt_header_names_the_file(tmp_path: Path) -> None:
    good = _save_png(tmp_path / "good.png", np.zeros((4, 4), np.uint8))
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    with pytest.raises(InputError) as info:
        load_stack([good, bad])
    assert "bad.png" in str(info.value)


def test_fewer_than_two_frames(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no images"):
        load_stack([tmp_path / "empty"])
    one = tmp_path / "one"
    one.mkdir()
    _save_png(one / "a.png", np.zeros((4, 4), np.uint8))
    (one / "readme.md").write_text("x")
    with pytest.raises(InputError, match="only 1 image") as info:
        load_stack([one])
    assert "one" in str(info.value)
    with pytest.raises(InputError, match="single image"):
        load_stack([one / "a.png"])
    with pytest.raises(InputError, match="no input"):
        load_stack([])


def test_folder_among_several_inputs_is_refused(tmp_path: Path) -> None:
    image = _save_png(tmp_path / "a.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(InputError, match="folder"):
        load_stack([image, tmp_path])


def test_size_mismatch_names_both_files_and_can_be_allowed(tmp_path: Path) -> None:
    first = _save_png(tmp_path / "a.png", np.zeros((10, 12, 3), np.uint8))
    second = _save_png(tmp_path / "b.png", np.zeros((10, 11, 3), np.uint8))
    with pytest.raises(InputError, match="--align") as info:
        load_stack([first, second])
    message = str(info.value)
    assert "b.png" in message and "a.png" in message and "11x10" in message and "12x10" in message
    stack = load_stack([first, second], allow_size_mismatch=True)
    assert [f.shape for f in stack.frames] == [(10, 12), (10, 11)]
    assert any("differ in size" in note for note in stack.notes)


def test_mixed_grey_and_colour_is_colour_with_a_note(tmp_path: Path) -> None:
    grey = _save_png(tmp_path / "grey.png", np.full((4, 5), 128, np.uint8))
    colour = _save_png(tmp_path / "colour.png", np.zeros((4, 5, 3), np.uint8))
    stack = load_stack([colour, grey])
    assert stack.is_color
    assert stack.load(1).shape == (4, 5, 3)
    assert any("grey" in note and "grey.png" in note for note in stack.notes)


def test_camera_raw_without_rawpy_gives_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "rawpy", None)  # makes `import rawpy` fail
    raw = tmp_path / "a.nef"
    raw.write_bytes(b"II*\x00 not really a raw file")
    with pytest.raises(InputError, match="rawpy") as info:
        probe_image(raw)
    assert "a.nef" in str(info.value)


def test_camera_raw_goes_through_rawpy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rawpy calls, with a stand-in module (a real RAW file is too big for the test data):
    linear 16-bit development, sRGB-encoded, every frame with the middle frame's white balance."""
    from focusstudio.core.io.raw import linear_to_srgb

    developed = _rng(14).integers(0, 65536, (6, 4, 3), dtype=np.uint16)  # libraw output, portrait
    calls: list[dict[str, object]] = []
    balances = {"a.dng": [2.0, 1.0, 1.5, 0.0], "b.dng": [2.5, 1.0, 1.2, 0.0], "c.dng": [1.8, 1.0, 1.9, 0.0]}

    class FakeRaw:
        sizes = types.SimpleNamespace(height=4, width=6, flip=6)  # landscape sensor, turned 90°

        def __init__(self, path: str) -> None:
            self.camera_whitebalance = balances[Path(path).name]

        def __enter__(self) -> FakeRaw:
            return self

        def __exit__(self, *_exc: object) -> None:
            return None

        def postprocess(self, **kwargs: object) -> np.ndarray:
            calls.append(kwargs)
            return developed

    monkeypatch.setitem(sys.modules, "rawpy", types.SimpleNamespace(imread=FakeRaw))
    for name in balances:
        (tmp_path / name).write_bytes(b"II*\x00fake")
    stack = load_stack([tmp_path])
    assert [(f.shape, f.channels, f.dtype) for f in stack.frames] == [((6, 4), 3, "uint16")] * 3
    expected = np.floor(linear_to_srgb(developed / 65535.0) * 65535.0 + 0.5) / 65535.0
    np.testing.assert_allclose(stack.load(0), expected, atol=1e-6)
    stack.load(2)
    fixed = {"output_bps": 16, "gamma": (1.0, 1.0), "no_auto_bright": True, "adjust_maximum_thr": 0.0,
             "highlight_mode": 0}
    assert calls == [{**fixed, "user_wb": [2.5, 1.0, 1.2, 1.0]}] * 2  # b.dng, the middle frame's


# ----------------------------------------------------------------------------- data-set discovery
def _scene(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True)
    for name in names:
        if name.endswith(".txt"):
            (folder / name).write_text("x")
        else:
            _save_png(folder / name, np.zeros((4, 4), np.uint8))


def test_discover_dataset_layout(tmp_path: Path) -> None:
    _scene(tmp_path / "scene10", ["1.png", "2.png"])
    _scene(tmp_path / "scene2", ["10.png", "2.png", "1.png", "gt.png", "mask.png", "readme.txt"])
    (tmp_path / ".cache").mkdir()
    scenes = discover_dataset(tmp_path)
    assert [s.name for s in scenes] == ["scene2", "scene10"]
    first = scenes[0]
    assert [p.name for p in first.sources] == ["1.png", "2.png", "10.png"]
    assert first.gt is not None and first.gt.name == "gt.png"
    assert set(first.extras) == {"mask"}
    assert scenes[1].gt is None and scenes[1].load_gt() is None
    assert len(first.load_stack()) == 3
    assert first.load_gt().shape == (4, 4)


def test_discover_dataset_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        discover_dataset(tmp_path / "nope")
    _scene(tmp_path / "ok", ["1.png", "2.png"])
    _scene(tmp_path / "lonely", ["1.png", "gt.png"])
    with pytest.raises(InputError, match=r"lonely.*at least 2") as info:
        discover_dataset(tmp_path)
    assert info.value.path == str(tmp_path / "lonely")
    duplicate = tmp_path / "dup"
    _scene(duplicate, ["1.png", "2.png"])
    Image.new("RGB", (4, 4)).save(duplicate / "1.jpg")
    with pytest.raises(InputError, match="two files for source 1"):
        discover_dataset(duplicate)


def test_a_scene_folder_is_a_dataset_of_one(tmp_path: Path) -> None:
    _scene(tmp_path / "only", ["2.png", "1.png"])
    (scene,) = discover_dataset(tmp_path / "only")
    assert scene.name == "only" and [p.name for p in scene.sources] == ["1.png", "2.png"]


# ----------------------------------------------------------------------------- shared data
@pytest.mark.shared
def test_lytro_pairs_load(shared_dir: Path) -> None:
    lytro = shared_dir / "data" / "lytro"
    if not lytro.is_dir():
        pytest.skip("Lytro data set not in shared/")
    stack = load_stack([lytro / "lytro_01"])
    assert stack.names == ["1.jpg", "2.jpg"]
    assert stack.shape == (520, 520) and stack.is_color and stack.dtype == "uint8"
    frame = stack.load(0)
    assert frame.shape == (520, 520, 3) and frame.dtype == np.float32
    assert float(frame.min()) >= 0.0 and float(frame.max()) <= 1.0 and float(frame.std()) > 0.05
    scenes = discover_dataset(lytro)
    assert len(scenes) == 20 and all(len(s.sources) == 2 and s.gt is None for s in scenes)


def test_a_frame_resized_after_opening_is_refused_naming_the_file(tmp_path: Path) -> None:
    paths = [tmp_path / f"f{index}.png" for index in range(2)]
    for path in paths:
        cv2.imwrite(str(path), np.full((12, 16, 3), 100, dtype=np.uint8))
    stack = load_stack(paths)
    cv2.imwrite(str(paths[1]), np.full((10, 16, 3), 100, dtype=np.uint8))
    expected = "changed since it was opened: it is now 16x10 pixels, it was 16x12"
    for decode in (readers_module.decode_frame, readers_module.decode_levels):
        with pytest.raises(InputError, match=expected) as caught:
            decode(stack.frames[1])
        assert str(caught.value).startswith(f"{paths[1]}: ")  # one line that names the file

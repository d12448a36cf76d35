"""Image writers: atomic results and maps in every format and bit depth, no-clobber publishing.

Split from test_io.py (readers and stack loading); the helpers are shared from there.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from focusstudio.core.errors import OutputError
from focusstudio.core.io import (
    atomic_write_text,
    check_output_path,
    load_stack,
    render_map,
    write_image,
    write_maps,
    write_result,
)
from focusstudio.core.types import FusionMap, FusionResult
from tests.core.test_io import _files, _rng, _save_png


# ----------------------------------------------------------------------------- writing
def test_write_refuses_to_overwrite_an_input_even_with_overwrite(tmp_path: Path) -> None:
    original = _rng(15).integers(0, 256, (4, 4, 3), dtype=np.uint8)
    source = _save_png(tmp_path / "in.png", original)
    stack = load_stack([source, _save_png(tmp_path / "in2.png", original)])
    protected = [f.path for f in stack.frames]
    same_file_other_spelling = tmp_path / "sub" / ".." / "in.png"
    (tmp_path / "sub").mkdir()
    for target in (source, same_file_other_spelling):
        with pytest.raises(OutputError, match="input") as info:
            write_image(target, np.zeros((4, 4, 3), np.float32), overwrite=True, protected=protected)
        assert "in.png" in str(info.value)
    with pytest.raises(OutputError, match="input"):
        check_output_path(source, overwrite=True, protected=protected)
    np.testing.assert_array_equal(np.asarray(Image.open(source)), original)


def test_write_refuses_an_existing_output_unless_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "out.png"
    target.write_bytes(b"previous")
    image = np.full((3, 3), 0.5, np.float32)
    with pytest.raises(OutputError, match="already exists") as info:
        write_image(target, image)
    assert "out.png" in str(info.value) and target.read_bytes() == b"previous"
    write_image(target, image, overwrite=True)
    assert np.asarray(Image.open(target))[0, 0] == 128
    assert _files(tmp_path) == ["out.png"]


def test_write_checks_extension_and_folder(tmp_path: Path) -> None:
    image = np.zeros((3, 3), np.float32)
    with pytest.raises(OutputError, match=r"\.gif"):
        write_image(tmp_path / "out.gif", image)
    with pytest.raises(OutputError, match=r"\.gif"):
        check_output_path(tmp_path / "out.gif")
    with pytest.raises(OutputError, match="does not exist"):
        write_image(tmp_path / "nowhere" / "out.png", image)
    with pytest.raises(OutputError, match="folder"):
        write_image(tmp_path, image)
    assert check_output_path(tmp_path / "fine.tif") == tmp_path / "fine.tif"
    assert _files(tmp_path) == []


def test_atomic_write_text_replaces_the_file(tmp_path: Path) -> None:
    target = tmp_path / "report.csv"
    target.write_text("old")
    assert atomic_write_text(target, "scene,psnr\na,30.0\n") == target
    assert target.read_text() == "scene,psnr\na,30.0\n"
    assert _files(tmp_path) == ["report.csv"]


@pytest.mark.parametrize("failure", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_failed_write_leaves_no_temporary_file_and_keeps_the_old_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: BaseException
) -> None:
    target = tmp_path / "out.tif"
    target.write_bytes(b"old result")

    def failing_fsync(_descriptor: int) -> None:
        raise failure

    monkeypatch.setattr(os, "fsync", failing_fsync)
    expected = OutputError if isinstance(failure, OSError) else KeyboardInterrupt
    with pytest.raises(expected):
        write_image(target, np.zeros((8, 8, 3), np.float32), "uint16", overwrite=True)
    assert _files(tmp_path) == ["out.tif"]
    assert target.read_bytes() == b"old result"


def test_failed_publication_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A new file is published with os.link (no-clobber), a forced replacement with os.replace.
    def failing(*_args: object, **_kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "link", failing)
    monkeypatch.setattr(os, "replace", failing)
    with pytest.raises(OutputError, match="Permission denied") as info:
        write_image(tmp_path / "new.png", np.zeros((4, 4), np.float32))
    assert "new.png" in str(info.value)
    assert _files(tmp_path) == []
    (tmp_path / "old.png").write_bytes(b"old")
    with pytest.raises(OutputError, match="Permission denied"):
        write_image(tmp_path / "old.png", np.zeros((4, 4), np.float32), overwrite=True)
    assert _files(tmp_path) == ["old.png"] and (tmp_path / "old.png").read_bytes() == b"old"


def test_jpeg_output_is_8bit_with_a_note(tmp_path: Path) -> None:
    image = np.linspace(0, 1, 48, dtype=np.float32).reshape(6, 8)
    notes: list[str] = []
    out = write_image(tmp_path / "out.jpg", image, "uint16", notes=notes)
    assert len(notes) == 1 and "8-bit" in notes[0] and "out.jpg" in notes[0]
    decoded = np.asarray(Image.open(out))
    assert decoded.dtype == np.uint8
    assert np.abs(decoded.astype(int) - np.round(image * 255)).max() <= 3
    assert write_image(tmp_path / "quiet.jpg", image, "uint8", notes=notes) and len(notes) == 1


def test_write_result_uses_the_method_rounding(tmp_path: Path) -> None:
    image = np.full((2, 2), 100.7 / 255.0, np.float32)
    for rounding, expected in (("round", 101), ("truncate", 100)):
        result = FusionResult(image=image, method="m", params={}, source_dtype="uint8", rounding=rounding)
        out = write_result(tmp_path / f"{rounding}.png", result)
        assert np.asarray(Image.open(out))[0, 0] == expected


def test_maps_are_written_as_8bit_pngs(tmp_path: Path) -> None:
    decision = np.array([[0.0, 0.5], [1.0, 0.25]], np.float32)
    index = np.array([[0, 1], [2, 2]], np.int32)
    activity = np.array([[-2.0, 0.0], [2.0, np.nan]], np.float32)
    result = FusionResult(
        image=np.zeros((2, 2), np.float32),
        method="m",
        params={},
        maps={
            "decision": FusionMap("decision", "decision", decision),
            "index map": FusionMap("index", "index", index),
            "activity": FusionMap("activity", "activity", activity),
        },
        source_names=("1.png", "2.png", "3.png"),
    )
    written = write_maps(tmp_path / "maps", result)
    # The index map twice: colour-coded for the eye, raw frame positions in grey for tools.
    assert [p.name for p in written] == ["activity.png", "decision.png", "index_map.png", "index_map_grey.png"]
    grey = np.asarray(Image.open(written[3]))
    assert grey.dtype == np.uint8 and np.array_equal(grey, result.maps["index map"].data)
    np.testing.assert_array_equal(np.asarray(Image.open(written[1])), [[0, 128], [255, 64]])
    np.testing.assert_array_equal(np.asarray(Image.open(written[0])), [[0, 128], [255, 0]])
    coloured = np.asarray(Image.open(written[2]))
    assert coloured.shape == (2, 2, 3)
    assert not np.array_equal(coloured[0, 0], coloured[0, 1])  # frames 0 and 1 get different colours
    np.testing.assert_array_equal(coloured[1, 0], coloured[1, 1])
    grey_index = render_map(result.maps["index map"], levels=3, index_colours=False)
    np.testing.assert_array_equal(grey_index, [[0, 128], [255, 255]])
    with pytest.raises(OutputError, match="already exists"):
        write_maps(tmp_path / "maps", result)


def test_the_raw_index_map_is_sixteen_bit_grey_beyond_256_frames() -> None:
    from focusstudio.core.io.writers import grey_index_file_names, render_index_grey

    index = FusionMap("index", "index", np.array([[0, 299], [256, 7]], np.float32))
    grey = render_index_grey(index, levels=300)
    assert grey.dtype == np.uint16 and grey.tolist() == [[0, 299], [256, 7]]
    assert render_index_grey(index, levels=None).dtype == np.uint16  # 300 frames found in the data
    assert render_index_grey(FusionMap("i", "index", np.ones((2, 2), np.int32)), levels=3).dtype == np.uint8
    # The name never collides with a map of the method (sf has both "index" and "index_raw").
    maps = {"index": index, "index_grey": FusionMap("index_grey", "decision", np.zeros((2, 2), np.float32))}
    assert grey_index_file_names(maps) == {"index": "index_grey_2.png"}



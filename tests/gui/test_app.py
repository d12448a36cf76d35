"""The entry point: the headless screenshot run, and the Qt-free job helpers it relies on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtGui import QImage

from focusstudio.core.io.tolerant import merge_stacks
from focusstudio.core.progress import CancelToken, run_to_completion
from focusstudio.core.sidecar import reproduce_command
from focusstudio.core.types import Stack
from focusstudio.gui import app
from focusstudio.gui.jobs import describe_stack, load_files, make_thumbnail
from tests.gui.conftest import write_synthetic_stack


def test_screenshot_run_opens_fuses_and_saves_the_window(stack_folder: Path, tmp_path: Path) -> None:
    output = tmp_path / "shots" / "window.png"
    code = app.main([str(stack_folder)], method="fake_test", overlay="index", screenshot=output)
    assert code == 0
    image = QImage(str(output))
    assert not image.isNull() and image.width() >= 800 and image.height() >= 600


def test_screenshot_run_reports_an_unknown_overlay(stack_folder: Path, tmp_path: Path) -> None:
    code = app.main([str(stack_folder)], method="fake_test", overlay="nope", screenshot=tmp_path / "x.png")
    assert code == 2 and (tmp_path / "x.png").is_file()


def test_unknown_method_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert app.main([], method="no_such_method", screenshot="unused.png") == 2
    assert "unknown method 'no_such_method'" in capsys.readouterr().err


def test_load_files_collects_every_problem(tmp_path: Path) -> None:
    paths = write_synthetic_stack(tmp_path / "s", count=2)
    (tmp_path / "s" / "notes.txt").write_text("not an image")
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff garbage")
    outcome = run_to_completion(load_files([tmp_path / "s", bad, tmp_path / "missing.png"], CancelToken()))
    assert outcome.stack is not None and outcome.stack.names == ["frame_1.png", "frame_2.png"]
    assert len(outcome.thumbnails) == 2 and outcome.thumbnails[0].shape == (48, 48, 3)  # never enlarged
    assert [Path(p.path).name for p in outcome.problems] == ["missing.png", "bad.jpg"]
    assert any("notes.txt" in note for note in outcome.notes)
    assert paths[0].is_file()


def test_thumbnails_fit_the_list_icon() -> None:
    thumbnail = make_thumbnail(np.full((200, 100, 3), 0.5, np.float32))
    assert thumbnail.shape == (96, 48, 3) and thumbnail.dtype == np.uint8
    assert np.abs(thumbnail.astype(int) - 128).max() <= 1  # area averaging of a flat grey


def test_merge_stacks_keeps_each_frame_source() -> None:
    first = Stack.from_arrays([np.zeros((4, 4), np.float32), np.ones((4, 4), np.float32)], names=["a", "b"])
    second = Stack.from_arrays([np.full((4, 4), 0.5, np.float32)], names=["c"])
    merged = merge_stacks(first, second)
    assert merged.names == ["a", "b", "c"]
    assert [float(merged.load(i).mean()) for i in range(3)] == [0.0, 1.0, 0.5]
    assert describe_stack(merged) == "3 frames · 4×4 · 32-bit float grey"


def test_reproduce_command_round_trips_through_the_parameter_parser() -> None:
    from focusstudio.core.methods.registry import get_method
    from focusstudio.core.types import FusionResult

    method = get_method("fake_test")
    params = method.params.resolve({"bias": 0.125, "smooth": True, "rule": "first", "eps": 1e-5})
    result = FusionResult(image=np.zeros((2, 2), np.float32), method="fake_test", params=params)
    command = reproduce_command(result, ["a.png", "b.png"], "out.png", device="cpu")
    assert command[:6] == ["focusstudio", "fuse", "a.png", "b.png", "-o", "out.png"]
    assignments = [command[i + 1] for i, arg in enumerate(command) if arg == "--set"]
    assert method.params.resolve(method.params.parse_assignments(assignments)) == params
    assert command[-2:] == ["--device", "cpu"]


def test_frame_cache_decodes_each_frame_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from focusstudio.core.io import load_stack, readers
    from focusstudio.core.io.tolerant import with_frame_cache

    paths = write_synthetic_stack(tmp_path / "s", count=2)
    decoded: list[str] = []
    original = readers.decode_frame

    def counting(info: object) -> np.ndarray:
        decoded.append(info.name)  # type: ignore[attr-defined]
        return original(info)  # type: ignore[arg-type]

    monkeypatch.setattr("focusstudio.core.io.stacks.decode_frame", counting)
    stack = with_frame_cache(load_stack(paths))
    first = stack.load(1)
    first[:] = 0.0  # a caller scribbling on its copy must not change the cache
    assert stack.load(1).max() > 0 and stack.load(1, grey=True).shape == (48, 48)
    assert stack.subset([1, 0]).load(0).shape == (48, 48, 3)
    assert decoded == ["frame_2.png"]
    # Over the budget, the stack is left alone.
    assert with_frame_cache(stack, budget_bytes=100) is stack


def test_signals_can_be_emitted_without_exhausting_true(qapp: object) -> None:
    """PySide6 6.12.0 drops a reference to True per emit; focusstudio.gui compensates (see _compat)."""
    import sys

    from PySide6.QtCore import QObject, Signal

    class Emitter(QObject):
        ping = Signal(int)

    emitter = Emitter()
    for value in range(5000):  # without the work-around this aborts the interpreter on 6.12.0
        emitter.ping.emit(value)
    assert sys.getrefcount(True) > 100


def test_frame_cache_keeps_what_each_aligned_frame_covers(tmp_path: Path) -> None:
    """The border stage of an uncropped alignment needs each frame's coverage after caching too."""
    from focusstudio.core.align import Alignment, apply_alignment
    from focusstudio.core.io import load_stack
    from focusstudio.core.io.tolerant import with_frame_cache

    stack = load_stack(write_synthetic_stack(tmp_path / "s", count=2))
    shift = np.array([[1.0, 0.0, 5.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    alignment = Alignment.from_json(
        {"reference": 0, "model": "similarity", "frame_width": 48, "frame_height": 48,
         "crop": {"x": 5, "y": 0, "width": 43, "height": 48},
         "frames": [{"index": 0, "name": stack.names[0], "status": "reference", "matrix": np.eye(3).tolist()},
                    {"index": 1, "name": stack.names[1], "status": "ok", "matrix": shift.tolist()}]}
    )
    aligned = apply_alignment(stack, alignment, crop=False)
    cached = with_frame_cache(aligned)
    assert cached is not aligned
    coverage = cached.coverage(1)
    assert coverage is not None and not coverage[:, :5].any() and coverage[:, 5:].all()
    assert cached.subset([1, 0]).coverage(0) is not None


def test_torch_preload_is_skipped_once_torch_is_loaded() -> None:
    import torch  # noqa: F401

    from focusstudio.gui.preload import preload_deep_runtime

    assert preload_deep_runtime() is None

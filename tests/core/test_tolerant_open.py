"""The core's tolerant loader (the window's): every usable frame opened, every bad file named, nothing raised."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from focusstudio.core.io.tolerant import expand_inputs, open_files
from focusstudio.core.progress import Cancelled, CancelToken, ProgressEvent, run_to_completion


def _png(path: Path, value: int, size: tuple[int, int] = (16, 12)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((*size, 3), value, np.uint8))
    return path


def _means(image: np.ndarray) -> float:
    return float(image.mean())


def test_good_frames_open_and_each_bad_file_is_named(tmp_path: Path) -> None:
    _png(tmp_path / "s" / "b.png", 40)
    _png(tmp_path / "s" / "a.png", 20)
    (tmp_path / "s" / "readme.txt").write_text("not an image")
    odd = _png(tmp_path / "odd.png", 60, size=(12, 16))  # turned by 90 degrees
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff garbage")
    good = _png(tmp_path / "c.png", 80)
    # Header fine, pixel data cut: found only when the frame is decoded.
    cut = tmp_path / "cut.png"
    cut.write_bytes(good.read_bytes()[:-40])
    events: list[ProgressEvent] = []
    opened = run_to_completion(
        open_files([tmp_path / "s", odd, broken, tmp_path / "missing.png", good, cut], CancelToken(), _means),
        events.append,
    )
    assert opened.stack is not None and opened.stack.names == ["a.png", "b.png", "c.png"]
    # per_frame ran on each kept frame, in the stack's order.
    assert opened.products == pytest.approx((20 / 255, 40 / 255, 80 / 255), abs=1e-6)
    problems = {Path(problem.path).name: problem.message for problem in opened.problems}
    assert set(problems) == {"odd.png", "broken.jpg", "missing.png", "cut.png"}
    assert problems["odd.png"] == "is 16×12 pixels but the stack is 12×16 (3 of the 4 frames)"
    assert problems["missing.png"] == "does not exist"
    assert str(opened.problems[0]).startswith(opened.problems[0].path.rsplit("/", 1)[-1] + ": ")
    assert any("readme.txt" in note for note in opened.notes)
    assert events[-1].fraction == 1.0 and all(0.0 <= event.fraction <= 1.0 for event in events)


def test_added_frames_must_have_the_size_of_the_stack(tmp_path: Path) -> None:
    small = _png(tmp_path / "small.png", 10, size=(8, 8))
    right = _png(tmp_path / "right.png", 10)
    opened = run_to_completion(open_files([small, right], CancelToken(), _means, reference_shape=(16, 12)))
    assert opened.stack is not None and opened.stack.names == ["right.png"]
    assert [Path(problem.path).name for problem in opened.problems] == ["small.png"]


def test_nothing_usable_gives_no_stack(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    opened = run_to_completion(open_files([tmp_path / "empty"], CancelToken(), _means))
    assert opened.stack is None and opened.products == ()
    assert [problem.message for problem in opened.problems] == ["contains no images"]


def test_loose_files_are_naturally_sorted_after_the_folders(tmp_path: Path) -> None:
    loose = [_png(tmp_path / name, 1) for name in ("img10.png", "IMG2.png", "img1.png")]
    _png(tmp_path / "folder" / "z.png", 1)
    files, notes, problems = expand_inputs([*loose, tmp_path / "folder"])
    assert [path.name for path in files] == ["z.png", "img1.png", "IMG2.png", "img10.png"]
    assert notes == [] and problems == []


def test_a_cancel_stops_the_loader(tmp_path: Path) -> None:
    paths = [_png(tmp_path / f"{i}.png", i) for i in range(3)]
    token = CancelToken()
    generator = open_files(paths, token, _means)
    next(generator)
    token.cancel()
    with pytest.raises(Cancelled):
        next(generator)


def test_the_majority_size_wins_over_an_odd_file_that_sorts_first(tmp_path: Path) -> None:
    odd = _png(tmp_path / "s" / "a_thumb.png", 5, size=(8, 8))
    real = [_png(tmp_path / "s" / f"frame{i}.png", 10 * i) for i in range(1, 4)]
    opened = run_to_completion(open_files([tmp_path / "s"], CancelToken(), _means))
    assert opened.stack is not None and opened.stack.names == [path.name for path in real]
    assert [(Path(p.path).name, p.message) for p in opened.problems] == [
        (odd.name, "is 8×8 pixels but the stack is 12×16 (3 of the 4 frames)")]


def test_a_file_given_twice_or_already_in_the_stack_is_opened_once(tmp_path: Path) -> None:
    a, b = _png(tmp_path / "a.png", 10), _png(tmp_path / "b.png", 20)
    opened = run_to_completion(open_files([a, tmp_path / "." / "a.png", b], CancelToken(), _means))
    assert opened.stack is not None and opened.stack.names == ["a.png", "b.png"]
    assert opened.notes == ("a.png was given twice: opened once",)
    added = run_to_completion(open_files([a, _png(tmp_path / "c.png", 30)], CancelToken(), _means,
                                         reference_shape=(16, 12), already_open=[str(a)]))
    assert added.stack is not None and added.stack.names == ["c.png"]
    assert [str(problem) for problem in added.problems] == ["a.png: is already in the stack"]

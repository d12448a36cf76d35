"""sf's ``depth_order`` option: a defocused foreground's edge does not let the background show through."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from focusstudio.cli import main
from focusstudio.core.methods.strategies import depth_ordered_frames, fold_near_first
from focusstudio.core.pipeline import fuse
from focusstudio.core.types import Stack

SIZE = 64
EDGE = 32  # the foreground object covers the columns left of this
BLUR = 8  # disc radius of the farthest defocus
#: Columns inside the object within the back frame's blurred edge (its alpha < 1), beyond the
#: 2-px SF window's reach from the edge: where the background shows through the defocused object.
HALO = slice(EDGE - 6, EDGE - 2)
PARAMS = {"sf_radius": 2, "depth_margin": 2.0}


def _disc_blur(image: np.ndarray, radius: int) -> np.ndarray:
    if radius == 0:
        return image
    kernel = np.zeros((2 * radius + 1, 2 * radius + 1), np.float32)
    cv2.circle(kernel, (radius, radius), radius, 1.0, -1)
    return cv2.filter2D(image, -1, kernel / kernel.sum(), borderType=cv2.BORDER_REFLECT)


def see_through_stack() -> tuple[list[np.ndarray], np.ndarray]:
    """(frames front to back, all-in-focus truth): a weakly textured object in front of a strongly
    textured background, shot at three focus distances. Occlusion as in a camera: the object's
    colour·alpha and alpha are blurred together, so in the back frame its edge turns
    semi-transparent and the sharp background shows through it."""
    rng = np.random.default_rng(5)
    background = 0.5 + 0.4 * rng.uniform(-1, 1, (SIZE, SIZE)).astype(np.float32)
    texture = 0.5 + 0.07 * rng.uniform(-1, 1, (SIZE, SIZE)).astype(np.float32)
    alpha = np.zeros((SIZE, SIZE), np.float32)
    alpha[:, :EDGE] = 1.0

    def shot(background_blur: int, object_blur: int) -> np.ndarray:
        spread = _disc_blur(alpha, object_blur)
        return _disc_blur(alpha * texture, object_blur) + (1 - spread) * _disc_blur(background, background_blur)

    frames = [shot(BLUR, 0), shot(BLUR // 2, BLUR // 2), shot(0, BLUR)]
    return frames, alpha * texture + (1 - alpha) * background


def _run(frames: list[np.ndarray], order: str) -> tuple[np.ndarray, np.ndarray]:
    result = fuse(Stack.from_arrays(frames), "sf", {**PARAMS, "depth_order": order})
    return result.maps["index_raw"].data, np.asarray(result.image)


def test_front_order_keeps_the_foreground_frame_where_the_background_shows_through() -> None:
    frames, truth = see_through_stack()
    plain, plain_image = _run(frames, "none")
    front, front_image = _run(frames, "front")
    rows = slice(BLUR, SIZE - BLUR)  # away from the reflected top/bottom borders
    # Plain maximum: the background's texture seen through the defocused edge wins there.
    assert (plain[rows, HALO] == 0).mean() < 0.5
    assert (front[rows, HALO] == 0).mean() > 0.85
    # Elsewhere the option changes nothing: the object's interior and the background beyond the
    # SF window's reach of the edge are taken from their own sharp frames, as without it.
    for index in (plain, front):
        assert (index[rows, 4 : EDGE - BLUR] == 0).all()  # (column 0's SF sees the border)
        assert (index[rows, EDGE + 3 : -4] == 2).all()
    # And the fused image is closer to the truth along the edge.
    def error(image: np.ndarray) -> float:
        grey = image if image.ndim == 2 else image[..., 0]
        return float(np.abs(grey[rows, HALO] - truth[rows, HALO]).mean())

    assert error(front_image) < 0.7 * error(plain_image)


def test_back_order_is_front_order_of_the_reversed_stack() -> None:
    frames, _ = see_through_stack()
    front, _ = _run(frames, "front")
    back, _ = _run(frames[::-1], "back")
    np.testing.assert_array_equal(back, 2 - front)
    assert depth_ordered_frames(3, "back") == [2, 1, 0]
    assert depth_ordered_frames(3, "front") == depth_ordered_frames(3, "none") == [0, 1, 2]


def test_fold_near_first_keeps_a_peak_until_beaten_by_the_margin() -> None:
    # Pixel 0: a peak (4) that falls (1) then a farther rise (6 < 2·4): the peak stays.
    # Pixel 1: the same rise to 9 > 2·4 takes it. Pixel 2: below the floor, plain maximum.
    best = np.array([4.0, 4.0, 0.5])
    index = np.zeros(3, np.int32)
    kept = np.zeros(3, bool)
    fold_near_first(best, index, kept, np.array([1.0, 1.0, 0.2]), 1, margin=2.0, floor=1.0)
    assert kept.tolist() == [True, True, False]
    fold_near_first(best, index, kept, np.array([6.0, 9.0, 0.6]), 2, margin=2.0, floor=1.0)
    assert index.tolist() == [0, 2, 2]
    assert best.tolist() == [4.0, 9.0, 0.6]


def test_default_is_off() -> None:
    frames, _ = see_through_stack()
    default = fuse(Stack.from_arrays(frames), "sf", PARAMS)
    plain, plain_image = _run(frames, "none")
    assert default.params["depth_order"] == "none"
    np.testing.assert_array_equal(default.maps["index_raw"].data, plain)
    np.testing.assert_array_equal(np.asarray(default.image), plain_image)


def test_cli_set_depth_order(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    frames, _ = see_through_stack()
    folder = tmp_path / "in"
    folder.mkdir()
    for i, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"{i}.png"), np.round(np.clip(frame, 0, 1) * 65535).astype(np.uint16))
    outputs = {}
    for order in ("none", "front"):
        out = tmp_path / f"{order}.tif"
        code = main(["fuse", str(folder), "-o", str(out), "--set", f"depth_order={order}",
                     "--set", "sf_radius=2", "--set", "depth_margin=2", "--no-align", "--json"])
        assert code == 0
        assert json.loads(capsys.readouterr().out)["params"]["depth_order"] == order
        outputs[order] = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert not np.array_equal(outputs["none"], outputs["front"])
    code = main(["fuse", str(folder), "-o", str(tmp_path / "x.tif"), "--set", "depth_order=sideways"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "depth_order" in err[0] and "Traceback" not in err[0]

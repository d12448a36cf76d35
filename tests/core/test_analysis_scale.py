"""Analysis at a working resolution (issue 20): the deep decision-map methods' ``analysis_scale``.

Scale 1 is the full-resolution path (nothing is resampled); below 1 the network sees shrunk frames,
the decision is lifted along the full-resolution frames' edges and the result is composed from the
original pixels, for pairs, N frames and tiled networks; the setting is validated once, from its
declaration, in the API and the CLI. Tiny random networks (tests/core/test_method_contract.py):
the decisions are arbitrary, what is checked is where the output pixels come from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from focusstudio.cli import main
from focusstudio.core.errors import ParameterError
from focusstudio.core.methods import analysis_scale as scale_module
from focusstudio.core.methods.analysis_scale import lift_index, lift_pair, resolve_analysis_scale
from focusstudio.core.methods.registry import get_method
from focusstudio.core.ops import upsample
from focusstudio.core.ops.params import ANALYSIS_SCALE
from focusstudio.core.pipeline import fuse
from focusstudio.core.types import FusionResult, Stack
from tests.conftest import build_focus_stack, single_error_line
from tests.core.test_method_contract import _weights

pytestmark = pytest.mark.usefixtures("one_torch_thread")

METHODS = ("sesf", "gacn", "mfifgan", "twostream")
#: Settings under which each method's output is a per-pixel blend of the sources (no pyramid
#: composition); sesf's guided-filter weight clipped to [0, 1] so the blend stays between them.
BLEND_SETTINGS: dict[str, dict[str, Any]] = {
    "sesf": {"clamp_weight": True},
    "gacn": {},
    "mfifgan": {},
    "twostream": {},
}
#: uint8 sources in [0, 1] floats: a blend's residual from the A–B segment is float32 rounding.
TOLERANCE = 1e-4


def _stack(frames: int, size: int = 64) -> Stack:
    return build_focus_stack(frames, size=size, seed=frames, colour=True, dtype="uint8").stack


def _fuse(name: str, stack: Stack, folder: Path, **params: Any) -> FusionResult:
    return fuse(stack, name, params, weights=_weights(name, folder), device="cpu")


def _blend_residual(image: np.ndarray, first: np.ndarray, second: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel: the weight w of ``first`` that best explains ``image`` = w·A + (1 − w)·B (one w
    for all channels) and the largest channel residual of that explanation."""
    difference = first - second
    norm = (difference * difference).sum(axis=-1)
    weight = np.where(norm > 0, ((image - second) * difference).sum(axis=-1) / np.maximum(norm, 1e-12), 0.0)
    residual = np.abs(image - (second + weight[..., None] * difference)).max(axis=-1)
    return weight, residual


# ====================================================================== the setting
def test_the_setting_validates_numbers_and_auto() -> None:
    assert ANALYSIS_SCALE.parse("auto") == "auto" and ANALYSIS_SCALE.parse(" Auto ") == "auto"
    assert ANALYSIS_SCALE.parse("0.5") == 0.5 and ANALYSIS_SCALE.parse("1") == 1.0
    for bad in ("0", "-0.5", "1.5", "nan", "fast", ""):
        with pytest.raises(ParameterError, match="analysis_scale"):
            ANALYSIS_SCALE.parse(bad)
    for name in METHODS:  # declared once, offered by every deep decision-map method
        assert get_method(name).params.get("analysis_scale") is ANALYSIS_SCALE


@pytest.mark.parametrize("value", ["0", "2", "fast"])
def test_the_cli_refuses_a_bad_scale_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 value: str) -> None:
    frames = []
    for i, frame in enumerate(build_focus_stack(2, size=32, colour=True, dtype="uint8").frames):
        frames.append(str(tmp_path / f"f{i}.png"))
        cv2.imwrite(frames[-1], frame)
    out = tmp_path / "out.png"
    assert main(["fuse", *frames, "-o", str(out), "-m", "sesf", "--analysis-scale", value]) == 2
    assert "analysis_scale" in single_error_line(capsys)
    assert not out.exists()


def test_auto_shrinks_the_long_side_and_never_enlarges() -> None:
    assert not resolve_analysis_scale("auto", (520, 520), 1024).active
    big = resolve_analysis_scale("auto", (4000, 6000), 1024)
    assert big.shape == (683, 1024) and big.scale == pytest.approx(1024 / 6000)
    assert resolve_analysis_scale(0.5, (200, 120), 1024).shape == (100, 60)
    assert resolve_analysis_scale(1.0, (100, 60), 16).shape == (100, 60)
    # a short side never below the network's minimum context
    assert min(resolve_analysis_scale(0.01, (100, 3000), 1024).shape) == scale_module.MIN_SHORT_SIDE


# ====================================================================== scale 1 = the full-resolution path
@pytest.mark.parametrize("name", METHODS)
def test_scale_one_resamples_nothing(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """At scale 1 neither the shrinking nor the lift runs: the published full-resolution path."""
    def refuse(*_: Any, **__: Any) -> None:
        raise AssertionError("resampled at analysis scale 1")

    monkeypatch.setattr(upsample, "_Coefficients", refuse)
    monkeypatch.setattr(upsample.cv2, "resize", refuse)
    stack = _stack(2, size=48)
    explicit = _fuse(name, stack, tmp_path, analysis_scale=1.0)
    automatic = _fuse(name, stack, tmp_path)  # auto: a 48-pixel image is below every method's long side
    assert np.array_equal(explicit.image, automatic.image)


# ====================================================================== below 1: the original pixels
@pytest.mark.parametrize("name", METHODS)
def test_a_reduced_scale_composes_the_original_pixels(name: str, tmp_path: Path) -> None:
    stack = _stack(2)
    result = _fuse(name, stack, tmp_path, analysis_scale=0.5, **BLEND_SETTINGS[name])
    first, second = stack.load(0), stack.load(1)
    assert result.image.shape == first.shape
    weight, residual = _blend_residual(result.image, first, second)
    # every pixel lies on the segment between its two sources: a blend, never a resampled value
    assert residual.max() <= TOLERANCE
    differs = np.abs(first - second).max(axis=-1) > 0.02
    assert weight[differs].min() >= -1e-3 and weight[differs].max() <= 1 + 1e-3
    if name in ("mfifgan", "twostream"):  # hard selection: each pixel is one source's pixel
        taken = np.all(result.image == first, axis=-1) | np.all(result.image == second, axis=-1)
        assert taken.all()
    decisions = [m for m in result.maps.values() if m.kind in ("decision", "weight")]
    assert decisions and all(m.data.shape == stack.shape for m in decisions)


@pytest.mark.parametrize("name", ["mfifgan", "twostream"])
def test_hard_selection_of_n_frames_with_tiles_selects_source_pixels(name: str, tmp_path: Path) -> None:
    """Three frames, the network in 8-pixel tiles of the half-size frames: the index map is at full
    resolution and names, for every pixel, the frame of the pixel the serial chain took."""
    stack = _stack(3)
    weights = _weights(name, tmp_path)
    result = fuse(stack, name, {"analysis_scale": 0.5}, weights=weights, device="cpu", tile_size=8)
    index = result.maps["index"].data
    assert index.shape == stack.shape and set(np.unique(index)) <= {0, 1, 2}
    assert result.image.shape == (*stack.shape, 3) and np.isfinite(result.image).all()


@pytest.mark.parametrize("name", ["gacn", "mfifgan", "twostream"])
@pytest.mark.parametrize("strategy", ["neighbours", "serial"])
def test_every_n_frame_strategy_runs_the_network_on_shrunk_frames(
    name: str, strategy: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scale applies to whichever N-frame strategy runs (the neighbour pairs, the default for
    3+ frames, once ran at full resolution): every pair the network sees is the shrunk frame size,
    and the selection comes back at full resolution."""
    stack = _stack(3)
    seen: list[tuple[int, int]] = []
    real_lift = scale_module.lift_pair

    def lift_spy(decision: np.ndarray, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        seen.append(decision.shape[:2])
        return real_lift(decision, first, second)

    monkeypatch.setattr(scale_module, "lift_pair", lift_spy)
    for module in ("focusstudio.core.methods._deep_serial", "focusstudio.core.methods.gacn"):
        monkeypatch.setattr(f"{module}.lift_pair", lift_spy)
    result = fuse(stack, name, {"analysis_scale": 0.5, "strategy": strategy},
                  weights=_weights(name, tmp_path), device="cpu")
    pairs = 2 * (len(stack) - 1) if strategy == "neighbours" else len(stack) - 1
    assert seen == [(stack.shape[0] // 2, stack.shape[1] // 2)] * pairs
    assert result.image.shape[:2] == stack.shape
    if "index" in result.maps:  # gacn's serial chain blends: it has no index map
        assert result.maps["index"].data.shape == stack.shape


@pytest.mark.parametrize("strategy", ["nway", "serial"])
def test_sesf_n_frames_at_a_reduced_scale_take_source_pixels(strategy: str, tmp_path: Path) -> None:
    stack = _stack(3)
    params = {"analysis_scale": 0.5, "strategy": strategy, "use_guided_filter": False}
    result = fuse(stack, "sesf", params, weights=_weights("sesf", tmp_path), device="cpu", tile_size=16)
    frames = [stack.load(i) for i in range(3)]
    taken = np.zeros(stack.shape, dtype=bool)
    for frame in frames:  # B + w·(A − B) with w = 1 is A up to float32 rounding
        taken |= np.all(np.abs(result.image - frame) <= 1e-6, axis=-1)
    assert taken.all()
    if strategy == "nway":
        index = result.maps["index"].data
        assert index.shape == stack.shape
        selected = np.take_along_axis(np.stack(frames), index[None, ..., None].astype(np.intp), axis=0)[0]
        assert np.array_equal(result.image, selected)


def test_gacn_calibration_at_a_reduced_scale_selects_source_pixels(tmp_path: Path) -> None:
    stack = _stack(3)
    result = _fuse("gacn", stack, tmp_path, analysis_scale=0.5, strategy="calibration")
    index = result.maps["index"].data
    frames = np.stack([stack.load(i) for i in range(3)])
    assert index.shape == stack.shape
    assert np.array_equal(result.image, np.take_along_axis(frames, index[None, ..., None].astype(np.intp), 0)[0])


# ====================================================================== the lift follows full-resolution edges
def _edge_pair(size: int, edge: int) -> tuple[np.ndarray, np.ndarray]:
    """A bright square's left edge at column ``edge``: sharp in the first frame, blurred in the second."""
    sharp = np.full((size, size), 0.2, dtype=np.float32)
    sharp[:, edge:] = 0.8
    sharp += np.random.default_rng(0).normal(0.0, 0.01, sharp.shape).astype(np.float32)
    blurred = cv2.GaussianBlur(sharp, (0, 0), 4.0)
    return sharp, blurred


@pytest.mark.parametrize("offset", [-1, 0])
@pytest.mark.parametrize("soft", [False, True])
def test_the_lifted_decision_switches_at_the_full_resolution_edge(offset: int, soft: bool) -> None:
    """A decision from a quarter-size analysis, at a column no analysis pixel boundary falls on,
    switches within 2 pixels of the edge; so does one that spills one analysis pixel (4 full
    pixels) past the edge into the blurred side. (One that stops one analysis pixel short of the
    edge does not snap to it: the guide there is the blurred frame, whose edge is a ramp; it lands
    ~4 pixels off, as the bilinear enlargement.)"""
    size, edge = 256, 131
    first, second = _edge_pair(size, edge)
    truth = (np.arange(size) >= edge + 4 * offset).astype(np.float32)[None, :].repeat(size, axis=0)
    small = cv2.resize(truth, (size // 4, size // 4), interpolation=cv2.INTER_AREA)
    decision = small if soft else small > 0.5
    lifted = lift_pair(decision, first, second)
    assert lifted.shape == first.shape
    crossings = np.argmax(np.asarray(lifted, dtype=np.float32) > 0.5, axis=1)
    assert np.abs(crossings - edge).max() <= 2
    plain = cv2.resize(small, (size, size), interpolation=cv2.INTER_LINEAR)
    if offset:  # the bilinear enlargement alone stays off by the analysis error
        assert np.abs(np.argmax(plain > 0.5, axis=1) - edge).max() > 2


def test_the_lifted_index_map_switches_at_the_edges_of_the_frames() -> None:
    size, edge = 128, 67
    sharp, blurred = _edge_pair(size, edge)
    stack = Stack.from_arrays([blurred, sharp, blurred])  # frame 1 holds the sharp edge
    truth = np.where(np.arange(size)[None, :].repeat(size, axis=0) >= edge - 2, 1, 0).astype(np.int32)
    truth[: size // 4] = 2  # a third label away from the edge
    small = cv2.resize(truth, (size // 4, size // 4), interpolation=cv2.INTER_NEAREST)
    lifted = lift_index(small, stack)
    assert lifted.shape == stack.shape and set(np.unique(lifted)) == {0, 1, 2}
    rows = slice(size // 2, size)  # away from the third label's border
    crossings = np.argmax(lifted[rows] == 1, axis=1)
    assert np.abs(crossings - edge).max() <= 2

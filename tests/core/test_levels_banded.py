"""Frames kept as integer levels and converted band by band, and the guided filter run only near a
decision's changes (issue 20: a 24 MP pair without full-size float32 frames).

Banded conversions repeat the same float32 operations per pixel as the whole-frame ones, so they
are compared for equality within one process; the sparse guided filter differs from the
whole-frame one only by its per-tile guide centre (float rounding, bounded below).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from focusstudio.core.io.readers import decode_frame
from focusstudio.core.io.stacks import load_stack
from focusstudio.core.methods import gacn as gacn_module
from focusstudio.core.methods._deep_pair import compose_serial_pair
from focusstudio.core.ops import sparse_guided
from focusstudio.core.ops.compose import compose_pair
from focusstudio.core.ops.guided_filter import GuidedFilterCPU
from focusstudio.core.ops.levels import compose_pair_banded, load_pair_sources
from focusstudio.core.pipeline import fuse
from focusstudio.core.types import Stack, grey_from_levels, normalise_array, to_grey
from tests.conftest import build_focus_stack
from tests.core.test_method_contract import _weights

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _write_pair(folder: Path, dtype: str = "uint8", size: int = 96) -> tuple[list[Path], Stack]:
    """A synthetic colour pair written as PNG files, and the same frames in memory."""
    synthetic = build_focus_stack(2, size=size, seed=3, colour=True, dtype=dtype)
    paths = []
    for i, frame in enumerate(synthetic.frames):
        path = folder / f"frame_{i}.png"
        cv2.imwrite(str(path), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        paths.append(path)
    return paths, synthetic.stack


# ====================================================================== levels
@pytest.mark.parametrize("dtype", ["uint8", "uint16"])
def test_levels_normalise_to_exactly_the_loaded_frames(dtype: str, tmp_path: Path) -> None:
    paths, _ = _write_pair(tmp_path, dtype)
    grey_path = tmp_path / "grey.png"
    rng = np.random.default_rng(1)
    grey = rng.integers(0, 255 if dtype == "uint8" else 65535, (96, 96)).astype(dtype)
    cv2.imwrite(str(grey_path), grey)
    stack = load_stack([*paths, grey_path])  # a grey frame in a colour stack
    for i, info in enumerate(stack.frames):
        levels = stack.load_levels(i)
        assert levels is not None and levels.dtype == np.dtype(dtype)
        assert np.array_equal(normalise_array(levels), stack.load(i))
        # grey straight from the levels: the decoder's frame in grey (a grey frame stays itself)
        assert np.array_equal(stack.load(i, grey=True), to_grey(decode_frame(info)))
    assert stack.load_levels(2).shape == (96, 96, 3)  # replicated like load()


def test_grey_from_levels_in_bands_equals_the_whole_frame() -> None:
    rng = np.random.default_rng(2)
    levels = rng.integers(0, 256, (37, 23, 3)).astype(np.uint8)
    assert np.array_equal(grey_from_levels(levels, band_rows=5), to_grey(normalise_array(levels)))


def test_no_levels_where_the_loader_is_not_the_plain_decoder(tmp_path: Path) -> None:
    paths, memory = _write_pair(tmp_path)
    assert memory.load_levels(0) is None  # in memory: floats already
    aligned = load_stack(paths).with_transforms([None, lambda image: image])
    assert aligned.load_levels(0) is None and aligned.load_levels(1) is None
    first, second = load_pair_sources(memory)
    assert first.dtype == np.float32 and np.array_equal(first, memory.load(0))
    assert np.array_equal(second, memory.load(1))


@pytest.mark.parametrize("levels", [True, False])
def test_banded_compositions_equal_the_whole_frame_ones(levels: bool) -> None:
    rng = np.random.default_rng(4)
    a, b = (rng.integers(0, 256, (29, 17, 3)).astype(np.uint8) for _ in range(2))
    weight = rng.uniform(-0.2, 1.2, (29, 17)).astype(np.float32)
    fa, fb = normalise_array(a), normalise_array(b)
    sources = (a, b) if levels else (fa, fb)
    assert np.array_equal(compose_pair_banded(*sources, weight, band_rows=7), compose_pair(fa, fb, weight))
    w = weight[..., None]
    assert np.array_equal(compose_serial_pair(*sources, weight, band_rows=7),
                          (w * fa + (1.0 - w) * fb).astype(np.float32))


# ====================================================================== sparse guided filter
def _blobs(shape: tuple[int, int]) -> np.ndarray:
    decision = np.zeros(shape, dtype=np.float32)
    cv2.circle(decision, (150, 90), 40, 1.0, -1)
    cv2.rectangle(decision, (20, 200), (60, 260), 1.0, -1)
    return decision


def test_the_guided_filter_near_changes_equals_the_whole_frame_filter() -> None:
    rng = np.random.default_rng(5)
    shape = (300, 520)
    decision = _blobs(shape)
    guide = cv2.GaussianBlur(rng.uniform(0, 255, (*shape, 3)).astype(np.float32), (0, 0), 2.0)
    whole = GuidedFilterCPU(guide, 4, 0.1, precision=np.float32)(decision)
    tiles = list(sparse_guided.changing_tiles(decision, 4, tile=64))
    every = list(sparse_guided.plan_tiles(*shape, 64, 8))
    assert 0 < len(tiles) < len(every) // 2  # most tiles are skipped
    sparse = sparse_guided.guided_filter_near_changes(decision, lambda read: guide[read], 4, 0.1, tiles=tiles)
    # Float rounding only: each tile centres the guide on its own mean, so the second moments
    # (≤ 255² ≈ 6.5e4, relative rounding 6e-8 → ~4e-3 absolute) differ in their last bits; divided by
    # var + eps ≥ 0.1 and multiplied by a covariance ≤ 127.5 · 0.5 for a 0/1 source this bounds the
    # slopes' error and, over one window, the output's by ~1e-3.
    assert np.abs(sparse - whole).max() <= 1e-3
    skipped = np.ones(shape, dtype=bool)
    for tile in tiles:
        skipped[tile.write] = False
    assert np.array_equal(sparse[skipped], decision[skipped])  # exactly 0/1 where nothing changes
    assert np.abs(whole[skipped] - decision[skipped]).max() <= 1e-5  # …which the whole filter gives too


def test_a_tolerance_skips_float_noise() -> None:
    decision = _blobs((300, 520)) * np.float32(0.999) + np.float32(1e-6) * np.random.default_rng(6).random(
        (300, 520), dtype=np.float32)
    exact = list(sparse_guided.changing_tiles(decision, 3))
    tolerant = list(sparse_guided.changing_tiles(decision, 3, tolerance=1e-5))
    assert len(tolerant) < len(exact)


# ====================================================================== the methods on files
def _fuse_files(name: str, stack: Stack, folder: Path, **params: Any) -> np.ndarray:
    return fuse(stack, name, {"analysis_scale": 0.5, **params}, weights=_weights(name, folder), device="cpu").image


@pytest.mark.parametrize("name", ["sesf", "gacn", "mfifgan", "twostream"])
def test_a_pair_of_files_fuses_as_the_same_frames_in_memory(name: str, tmp_path: Path) -> None:
    """Levels (files) and float32 frames (memory) give the same result: the banded conversions
    repeat the whole-frame arithmetic (mfifgan/twostream: the levels pair path against the serial
    strategy)."""
    paths, memory = _write_pair(tmp_path, size=128)
    from_files = _fuse_files(name, load_stack(paths), tmp_path)
    in_memory = _fuse_files(name, memory, tmp_path)
    assert np.array_equal(from_files, in_memory)


@pytest.mark.parametrize("name", ["sesf", "gacn"])
def test_the_sparse_post_processing_equals_filtering_every_tile(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths, _ = _write_pair(tmp_path, size=160)
    stack = load_stack(paths)
    sparse = _fuse_files(name, stack, tmp_path)

    def every_tile(source: np.ndarray, radius: int, tolerance: float = 0.0, tile: int = 256) -> Any:
        return sparse_guided.plan_tiles(*source.shape[:2], 32, 2 * radius)

    monkeypatch.setattr(sparse_guided, "changing_tiles", every_tile)
    monkeypatch.setattr(gacn_module, "changing_tiles", every_tile)
    dense = _fuse_files(name, stack, tmp_path)
    # the guided filter's float rounding (above, ≤ 1e-3 of a weight) times a source difference ≤ 1;
    # gacn also reads a lifted map flat within FLAT_TOLERANCE as constant
    assert np.abs(sparse - dense).max() <= 1e-3

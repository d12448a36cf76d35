"""Loader fuzzing: mutants of small JPEG, PNG, TIFF and 16-bit TIFF files, generated from a fixed
seed, each either decode or raise the project's InputError: no other exception, nothing on the
C-level stderr, no hang (issue 13). The pixel limit is lowered so that mutants declaring huge
sizes are refused from their headers, as they would be at the default limit for real bombs."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile

from focusstudio.core.errors import FocusStudioError
from focusstudio.core.io import probe_image, read_image
from focusstudio.core.io.guards import set_max_pixels

SEED = 20261207
MUTANTS_PER_SEED = 100
#: A mutant that takes longer than this is hung (each decodes in milliseconds); not a speed test.
HANG_SECONDS = 30


def _texture(height: int, width: int, channels: int, rng: np.random.Generator) -> np.ndarray:
    noise = rng.random((height, width, channels)) if channels > 1 else rng.random((height, width))
    return cv2.GaussianBlur(noise.astype(np.float32), (0, 0), 1.5)


def _seed_files(folder: Path) -> dict[str, bytes]:
    rng = np.random.default_rng(SEED)
    rgb8 = (_texture(24, 40, 3, rng) * 255).astype(np.uint8)
    grey16 = (_texture(24, 40, 1, rng) * 65535).astype(np.uint16)
    seeds: dict[str, bytes] = {}
    ok, jpeg = cv2.imencode(".jpg", rgb8, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    seeds["seed.jpg"] = jpeg.tobytes()
    ok, png = cv2.imencode(".png", rgb8)
    assert ok
    seeds["seed.png"] = png.tobytes()
    tifffile.imwrite(folder / "rgb8.tif", rgb8, photometric="rgb")
    seeds["rgb8.tif"] = (folder / "rgb8.tif").read_bytes()
    tifffile.imwrite(folder / "grey16.tif", grey16, photometric="minisblack")
    seeds["grey16.tif"] = (folder / "grey16.tif").read_bytes()
    return seeds


def _mutate(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    """One mutation: flipped bytes, a truncation, an extreme 32-bit value or a duplicated block;
    half of them in the first 256 bytes, where headers (and tifffile's first IFD) are."""
    mutant = bytearray(data)
    span = min(len(mutant), 256) if rng.random() < 0.5 else len(mutant)
    kind = int(rng.integers(4))
    if kind == 0:
        offsets = rng.integers(0, span, size=int(rng.integers(1, 9)))
        for offset in offsets:
            mutant[offset] = int(rng.integers(256))
        return bytes(mutant), f"bytes at {sorted(offsets.tolist())} changed"
    if kind == 1:
        cut = int(rng.integers(1, len(mutant)))
        return bytes(mutant[:cut]), f"truncated to {cut} bytes"
    if kind == 2:
        offset = int(rng.integers(0, max(span - 4, 1)))
        value = [0, 0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, 0x0000FFFF][int(rng.integers(5))]
        mutant[offset:offset + 4] = value.to_bytes(4, "little")
        return bytes(mutant), f"0x{value:08x} written at {offset}"
    start = int(rng.integers(0, len(mutant)))
    length = int(rng.integers(1, 64))
    at = int(rng.integers(0, span))
    mutant[at:at] = mutant[start:start + length]
    return bytes(mutant), f"{length} bytes from {start} inserted at {at}"


@contextmanager
def _hang_guard(label: str) -> Iterator[None]:
    if not hasattr(signal, "setitimer"):
        yield
        return

    def hung(_signum: int, _frame: object) -> None:
        raise AssertionError(f"{label}: still decoding after {HANG_SECONDS} s")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.setitimer(signal.ITIMER_REAL, HANG_SECONDS)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def small_pixel_limit() -> Iterator[None]:
    set_max_pixels(4_000_000)
    try:
        yield
    finally:
        set_max_pixels(None)


def _load(path: Path) -> None:
    for info in probe_image(path):
        image = read_image(path, info.page)
        assert image.dtype == np.float32 and image.shape[:2] == info.shape
        assert np.isfinite(image).all() and image.min() >= 0.0 and image.max() <= 1.0


def test_mutated_images_decode_or_raise_input_error(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], small_pixel_limit: None
) -> None:
    seeds = _seed_files(tmp_path)
    rng = np.random.default_rng(SEED)
    outcomes: dict[str, list[int]] = {name: [0, 0] for name in seeds}  # decoded, refused
    for name, data in seeds.items():
        _load_checked(tmp_path / f"clean-{name}", data, _load)  # every seed itself decodes
        for number in range(MUTANTS_PER_SEED):
            mutant, how = _mutate(data, rng)
            path = tmp_path / f"m{number:03d}-{name}"
            label = f"{name} mutant {number} ({how})"
            path.write_bytes(mutant)
            with _hang_guard(label):
                try:
                    _load(path)
                except FocusStudioError as error:
                    assert error.path == str(path), f"{label}: the error does not name the file: {error}"
                    assert "\n" not in str(error), f"{label}: a multi-line message: {error!r}"
                    outcomes[name][1] += 1
                except Exception as error:
                    pytest.fail(f"{label}: {type(error).__name__}: {error}")
                else:
                    outcomes[name][0] += 1
            path.unlink()
    captured = capfd.readouterr()
    assert captured.err == "", f"decoders wrote to stderr:\n{captured.err[:2000]}"
    # The mutations must exercise both outcomes, or the test proves nothing about one of them
    # (almost every PNG mutant is refused: its chunks carry CRCs).
    assert all(refused > 0 for _, refused in outcomes.values()), outcomes
    assert sum(decoded for decoded, _ in outcomes.values()) >= MUTANTS_PER_SEED, outcomes


def _load_checked(path: Path, data: bytes, load: Callable[[Path], None]) -> None:
    path.write_bytes(data)
    load(path)

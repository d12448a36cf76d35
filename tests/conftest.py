"""Shared pytest fixtures."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from focusstudio.core.types import Stack


@pytest.fixture(autouse=True)
def _seeded_global_generators() -> None:
    """Every test starts from the same global random state, whatever ran before it (a test that
    draws from torch's or NumPy's global generator is then deterministic). torch is seeded only
    when already imported: the lazy-import tests need it absent."""
    np.random.seed(0)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(0)


# ----------------------------------------------------------------------------- synthetic focus stacks
@dataclass(frozen=True)
class SyntheticFocusStack:
    """A focus stack with a known answer: frame i is sharp exactly on ``labels == i``."""

    stack: Stack
    labels: np.ndarray  # int32 H×W: the frame that is sharp at each pixel
    sharp: np.ndarray  # float32 [0,1] all-in-focus image (H×W or H×W×3)
    frames: tuple[np.ndarray, ...]  # the frames as given to the stack (their dtype)


def _texture(size: int, channels: int, rng: np.random.Generator) -> np.ndarray:
    """Band-limited random texture in [0, 1] with plenty of detail at the scale a σ=2.5 blur kills.

    Colour channels share most of their structure (as in photographs) plus some independent colour."""
    noise = rng.standard_normal((size, size, channels)).astype(np.float32)
    if channels == 3:
        noise = 0.8 * noise[..., :1] + 0.45 * noise
    smooth = cv2.GaussianBlur(noise, (0, 0), 1.0, borderType=cv2.BORDER_REFLECT)
    smooth = smooth.reshape(size, size, channels)
    low, high = np.percentile(smooth, [1, 99])
    texture = np.clip((smooth - low) / (high - low), 0.0, 1.0)
    return texture[..., 0] if channels == 1 else texture


def _labels(n: int, size: int) -> np.ndarray:
    """N=2: a central disk (frame 0) in a background (frame 1); N>2: N angular sectors."""
    coords = np.arange(size) - (size - 1) / 2.0
    y, x = np.meshgrid(coords, coords, indexing="ij")
    if n == 2:
        return np.where(x * x + y * y <= (0.3 * size) ** 2, 0, 1).astype(np.int32)
    angle = np.mod(np.arctan2(y, x) + 0.3, 2 * np.pi)
    return np.minimum((angle / (2 * np.pi) * n).astype(np.int32), n - 1)


def build_focus_stack(
    n: int, size: int = 128, seed: int = 0, colour: bool = False, dtype: str = "float32", sigma: float = 2.5
) -> SyntheticFocusStack:
    """Frame i = the texture on region i and the texture blurred with a Gaussian of ``sigma`` elsewhere."""
    rng = np.random.default_rng(seed)
    sharp = _texture(size, 3 if colour else 1, rng)
    blurred = cv2.GaussianBlur(sharp, (0, 0), sigma, borderType=cv2.BORDER_REFLECT).reshape(sharp.shape)
    labels = _labels(n, size)
    frames = []
    for i in range(n):
        inside = labels == i
        frame = np.where(inside[..., None] if colour else inside, sharp, blurred).astype(np.float32)
        if dtype == "uint8":
            frame = np.round(frame * 255.0).astype(np.uint8)
        elif dtype == "uint16":
            frame = np.round(frame * 65535.0).astype(np.uint16)
        frames.append(frame)
    return SyntheticFocusStack(Stack.from_arrays(frames), labels, sharp.astype(np.float32), tuple(frames))


@pytest.fixture
def make_focus_stack() -> Callable[..., SyntheticFocusStack]:
    """Factory ``make_focus_stack(n, size=128, seed=0, colour=False, dtype="float32", sigma=2.5)``."""
    return build_focus_stack


# ----------------------------------------------------------------------------- shared data
#: /work/shared (docs, data sets, weights): a sibling of the repository, absent on some machines.
SHARED_DIR = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture
def shared_dir() -> Path:
    """The shared data folder; the test is skipped when it is absent."""
    if not SHARED_DIR.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DIR}")
    return SHARED_DIR


# ----------------------------------------------------------------------------- N-frame thin-lens stacks
@dataclass(frozen=True)
class NFrameStack:
    """A small N-frame stack rendered like benchmarks/nframe_synth.py (thin lens, layers composited
    back to front), from procedural textures: frame i focuses at depth u = (i + ½)/N."""

    stack: Stack
    truth: np.ndarray  # float32 [0, 1] H×W×3: the all-in-focus image
    frames: tuple[np.ndarray, ...]  # uint8 H×W×3 as given to the stack
    depth_edges: np.ndarray  # bool H×W: near a depth discontinuity (objects' outlines)

    def psnr_of(self, image: np.ndarray) -> float:
        """PSNR (dB) of a fused float image against the truth, quantised as the 8-bit result is saved."""
        written = np.round(np.clip(image, 0.0, 1.0) * 255.0) / 255.0
        return float(10.0 * np.log10(1.0 / np.mean((written - self.truth.astype(np.float64)) ** 2)))


def build_nframe_stack(n: int = 6, height: int = 160, width: int = 192, seed: int = 0,
                       noise: float = 0.002, max_blur: float = 8.0) -> NFrameStack:
    """A textured ramp (depth u 0 … 0.55) behind a textured disc (0.72) and a textured rectangle
    (0.93); disc blur of ``max_blur``·|u − u_focus| px, Gaussian noise, 8-bit. No breathing: the
    frames are registered (fuse without alignment)."""
    from benchmarks.nframe_synth import Layer, Scene, focus_positions

    rng = np.random.default_rng(seed)
    side = max(height, width)
    textures = [_texture(side, 3, rng)[:height, :width].astype(np.float32) for _ in range(3)]
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    ramp = (0.55 * x / (width - 1)).astype(np.float32)
    # Anti-aliased outlines: coverage of a 1-px ramp across the boundary.
    disc = np.clip(0.3 * height - np.hypot(x - 0.3 * width, y - 0.45 * height) + 0.5, 0, 1).astype(np.float32)
    inside_x = np.clip(np.minimum(x - 0.58 * width, 0.92 * width - x) + 0.5, 0, 1)
    inside_y = np.clip(np.minimum(y - 0.2 * height, 0.75 * height - y) + 0.5, 0, 1)
    rectangle = (inside_x * inside_y).astype(np.float32)
    layers = (Layer(textures[1], disc, 0.72), Layer(textures[2], rectangle, 0.93))
    scene = Scene(textures[0], ramp, layers, max_blur)
    frames = []
    for focus in focus_positions(n):
        image = scene.render(focus) + rng.normal(0.0, noise, (height, width, 3)).astype(np.float32)
        frames.append(np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8))
    return NFrameStack(Stack.from_arrays(frames), scene.render(None), tuple(frames), scene.depth_edges())


@pytest.fixture
def make_nframe_stack() -> Callable[..., NFrameStack]:
    """Factory ``make_nframe_stack(n=6, height=160, width=192, seed=0, noise=0.002, max_blur=8.0)``."""
    return build_nframe_stack


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """One torch thread for the test, restored afterwards: tiny convolutions are much faster on
    one thread than on two contended ones (the test machines have 2 shared cores). Modules use it
    with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def single_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    """The one line an in-process CLI run wrote to stderr for bad input (never a traceback)."""
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, f"expected one error line, got {err}"
    assert "Traceback" not in err[0]
    return err[0]

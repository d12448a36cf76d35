"""Regenerates the bundled sample stack in ``resources/sample_stack/``.

Source photo: ``skimage_coffee`` (scikit-image's bundled "coffee", CC0), copied from the team's
training corpus. Three frames focused at three depths of a smooth synthetic depth map; blur grows
with the distance to the focal plane (σ = 1.6·|depth − focus| in layer units), so the frames
behave like a real focus sweep. The all-in-focus original is kept as ``sample_stack_gt.png``.

Usage: python resources/make_sample_stack.py [PATH_TO_COFFEE_JPG]
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
DEFAULT_SOURCE = HERE.parent.parent / "shared" / "train-corpus" / "images" / "skimage_coffee.jpg"
FOCUS_DEPTHS = (0.0, 1.0, 2.0)
SIGMA_PER_LAYER = 1.6


def depth_map(height: int, width: int) -> np.ndarray:
    """A smooth depth field in [0, 2]: a tilted plane plus a bump (the cup is nearer)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    plane = 2.0 * xx / (width - 1)
    bump = np.exp(-(((xx - 0.45 * width) / (0.22 * width)) ** 2 + ((yy - 0.55 * height) / (0.3 * height)) ** 2))
    return np.clip(plane * (1.0 - bump) + 0.0 * bump, 0.0, 2.0)


def render_frame(image: np.ndarray, depth: np.ndarray, focus: float) -> np.ndarray:
    """Blend a bank of Gaussian-blurred copies by the per-pixel blur radius."""
    sigmas = np.linspace(0.0, SIGMA_PER_LAYER * 2.0, 9)
    bank = [image if s == 0 else cv2.GaussianBlur(image, (0, 0), float(s)) for s in sigmas]
    wanted = np.clip(SIGMA_PER_LAYER * np.abs(depth - focus), 0.0, sigmas[-1])
    position = wanted / (sigmas[1] - sigmas[0])
    lower = np.floor(position).astype(int)
    upper = np.minimum(lower + 1, len(sigmas) - 1)
    frac = (position - lower)[..., None]
    stacked = np.stack(bank)  # S×H×W×3
    rows, cols = np.indices(depth.shape)
    return (1.0 - frac) * stacked[lower, rows, cols] + frac * stacked[upper, rows, cols]


def main() -> None:
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_SOURCE
    bgr = cv2.imread(str(source), cv2.IMREAD_COLOR)
    if bgr is None:
        raise SystemExit(f"{source}: cannot read the source photo")
    image = bgr.astype(np.float32)
    depth = depth_map(*image.shape[:2])
    out_dir = HERE / "sample_stack"
    out_dir.mkdir(exist_ok=True)
    for index, focus in enumerate(FOCUS_DEPTHS, start=1):
        frame = render_frame(image, depth, focus)
        cv2.imwrite(str(out_dir / f"frame_{index}.png"), np.clip(frame + 0.5, 0, 255).astype(np.uint8))
    cv2.imwrite(str(HERE / "sample_stack_gt.png"), bgr)
    print(f"wrote {len(FOCUS_DEPTHS)} frames to {out_dir}")


if __name__ == "__main__":
    main()

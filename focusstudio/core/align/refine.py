"""Sub-pixel refinement of a pair's fit: Gauss–Newton on the moving frame resampled by Lanczos-4.

Why: ECC (``cv2.findTransformECC``) resamples the moving frame bilinearly while it fits. Bilinear
interpolation smooths a frame most at half-pixel offsets and not at all at whole ones, so the
correlation ECC maximises is biased towards displacements that are whole pixels ("pixel
locking"). Between neighbouring frames of a focus stack, focus breathing moves pixels by less than
a pixel (a scale change of 0.25 % moves the edges of a 1024-px copy by ±1.3 px and most of the
frame by less than one), so the whole displacement field is pulled towards no motion: every pair's
scale change comes out too small by a similar fraction and the error adds up along the chain
(tests/core/test_align_resampling.py: 0.03 px at the corners per pair of identically focused
frames, 0.11 px four pairs from the reference; on benchmarks/nframe_synth it costs the fusion
~0.1 dB at N = 8). Lanczos-4 keeps every frequency up to 0.35 cycles/px within 3 % at every phase,
so the same least-squares fit on frames resampled by it has no such pull (0.002 px for the pair
next to the reference; 0.04 px four pairs away).

How: a Gauss–Newton step from the estimator's fit (inverse compositional: the Jacobian comes from
the target's gradient), on every third pixel in each direction (the fit has at most six
parameters; a ninth of the pixels costs a ninth of the time and changes the result by far less
than the bias it removes), both images lightly smoothed alike (σ = 1 px: keeps the
linearisation valid and damps noise without moving anything), with a gain and an offset fitted at
every step (ECC is invariant to them too). The refined fit replaces the estimator's only when its
residual is lower and it moves no corner by more than :data:`MAX_MOVE_PX`: it corrects a bias of
tenths of a pixel and is not a second estimator.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from focusstudio.core.progress import check_cancelled

#: Gauss–Newton steps: from a fit within ~0.1 px one step does almost all of it (a second changes
#: the fit by < 0.005 px on the tests' stacks and costs as much again).
STEPS = 1
#: Every STRIDE-th pixel in each direction takes part in the fit (a ninth of them: ~10 ms a pair at
#: 1024 px against ~120 ms for ECC; every second pixel costs 3× that for ≤ 0.01 px).
STRIDE = 3
#: Smoothing (Gaussian σ, px) of both images before the fit.
SIGMA = 1.0
#: A refinement that moves a corner of the frame further than this (px, at the estimation size)
#: is not a correction of the estimator's bias: the estimator's fit is kept.
MAX_MOVE_PX = 1.0
#: Pixels left out at the border (Lanczos-4 reaches 4 px; smoothing and gradients a little more).
_MARGIN = 6
#: The resampling kernel of the fit. Not cubic: its response depends on the phase too (1.02 at
#: 0.1–0.2 cycles/px, 0.97 at 0.25), and the refined fits were 3–5× worse than ECC's.
_KERNEL = cv2.INTER_LANCZOS4


def _geometry_columns(model: str, gx: np.ndarray, gy: np.ndarray, x: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
    """Derivatives of the target's intensity with respect to the model's parameters, in centred
    coordinates (x, y): a displacement δ(p) = D·p + t of the target's pixel p."""
    if model == "translation":
        return [gx, gy]
    if model == "similarity":  # D = [[a, −b], [b, a]]
        return [gx * x + gy * y, gy * x - gx * y, gx, gy]
    return [gx * x, gx * y, gy * x, gy * y, gx, gy]  # affine


def _displacement(model: str, step: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(D, t) of the displacement δ(p) = D·p + t that ``step`` describes (p centred)."""
    if model == "translation":
        return np.zeros((2, 2)), step[:2]
    if model == "similarity":
        a, b = step[0], step[1]
        return np.array([[a, -b], [b, a]]), step[2:4]
    return step[:4].reshape(2, 2), step[4:6]


def _sample_box(
    start: np.ndarray, height: int, width: int, moving_shape: tuple[int, int]
) -> tuple[int, int, int, int] | None:
    """(top, bottom, left, right), inclusive: the target pixels whose position in the moving frame
    (``start``: target → moving) keeps clear of its border by the kernel's reach, the smoothing's
    (whose border saw reflected pixels: after a large shift that border lies inside the target)
    and the refinement's own move (≤ MAX_MOVE_PX); None when that leaves too little."""
    reach = _MARGIN + MAX_MOVE_PX
    moving_height, moving_width = moving_shape
    inner = np.array([[reach, reach, 1.0], [moving_width - 1 - reach, reach, 1.0],
                      [moving_width - 1 - reach, moving_height - 1 - reach, 1.0],
                      [reach, moving_height - 1 - reach, 1.0]]).T
    # The inner part of the moving frame in target pixels: a quadrilateral whose edges are nearly
    # parallel to the axes (rotation ≤ a few degrees); the box inside its four edges.
    tl, tr, br, bl = (np.linalg.inv(start) @ inner)[:2].T
    left = max(tl[0], bl[0], _MARGIN)
    right = min(tr[0], br[0], width - 1 - _MARGIN)
    top = max(tl[1], tr[1], _MARGIN)
    bottom = min(bl[1], br[1], height - 1 - _MARGIN)
    if right - left < 16 * STRIDE or bottom - top < 16 * STRIDE:
        return None
    return math.ceil(top), math.floor(bottom), math.ceil(left), math.floor(right)


def refine_fit(target: np.ndarray, moving: np.ndarray, moving_to_target: np.ndarray, model: str) -> np.ndarray:
    """The fit ``moving_to_target`` (3×3) refined on Lanczos-resampled pixels, or unchanged where
    the refinement does not apply (homographies, too little overlap) or does not improve the fit."""
    height, width = target.shape
    if model == "homography" or min(height, width) < 8 * _MARGIN:
        return moving_to_target
    start = np.linalg.inv(moving_to_target)  # target → moving
    box = _sample_box(start, height, width, moving.shape)
    if box is None:
        return moving_to_target
    top, bottom, left, right = box
    rows, columns = slice(top, bottom + 1, STRIDE), slice(left, right + 1, STRIDE)
    smooth_target = cv2.GaussianBlur(target, (0, 0), SIGMA)
    reference = np.ascontiguousarray(smooth_target[rows, columns], dtype=np.float32)
    shape = reference.shape
    reference -= reference.mean(dtype=np.float64)
    # Central differences of the smoothed target at the samples: the inverse compositional
    # Jacobian is fixed, so its normal matrix is computed once.
    after, before = slice(left + 1, right + 2, STRIDE), slice(left - 1, right, STRIDE)
    gx = (smooth_target[rows, after] - smooth_target[rows, before]) * 0.5
    below, above = slice(top + 1, bottom + 2, STRIDE), slice(top - 1, bottom, STRIDE)
    gy = (smooth_target[below, columns] - smooth_target[above, columns]) * 0.5
    centre = np.array([(width - 1) / 2.0, (height - 1) / 2.0])
    x = (np.arange(left, right + 1, STRIDE, dtype=np.float32) - np.float32(centre[0]))[None, :]
    y = (np.arange(top, bottom + 1, STRIDE, dtype=np.float32) - np.float32(centre[1]))[:, None]
    jacobian = np.stack([np.broadcast_to(c, shape).ravel() for c in _geometry_columns(model, gx, gy, x, y)])
    normal = (jacobian @ jacobian.T).astype(np.float64)
    reference = reference.ravel()
    smooth_moving = cv2.GaussianBlur(moving, (0, 0), SIGMA)
    # Output sample (u, v) ↦ target pixel (left + STRIDE·u, top + STRIDE·v).
    grid = np.array([[STRIDE, 0.0, left], [0.0, STRIDE, top], [0.0, 0.0, 1.0]])
    target_to_moving = start
    best: tuple[float, np.ndarray] | None = None
    for step in range(STEPS + 1):
        check_cancelled()
        warped = cv2.warpAffine(smooth_moving, (target_to_moving @ grid)[:2], (shape[1], shape[0]),
                                flags=_KERNEL | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
        moved = warped.ravel()
        moved -= moved.mean(dtype=np.float64)
        spread = float(np.dot(moved, moved))
        if spread <= 0:
            break
        # reference ≈ gain · moved + offset (both zero-mean here)
        residual = reference - np.float32(np.dot(moved, reference) / spread) * moved
        cost = float(np.dot(residual.astype(np.float64), residual))
        if best is None or cost < best[0]:
            best = (cost, target_to_moving)
        if step == STEPS:
            break
        try:
            delta = np.linalg.solve(normal, (jacobian @ residual).astype(np.float64))
        except np.linalg.LinAlgError:
            break
        linear, shift = _displacement(model, delta)
        # Target pixel p is now sampled at target_to_moving(p + δ(p)), δ(p) = D·(p − c) + t.
        update = np.eye(3)
        update[:2, :2] += linear
        update[:2, 2] = shift - linear @ centre
        target_to_moving = target_to_moving @ update
    if best is None or best[1] is start:
        return moving_to_target
    refined = np.linalg.inv(best[1])
    corners = np.array([[0.0, 0.0, 1.0], [width - 1.0, 0.0, 1.0], [width - 1.0, height - 1.0, 1.0],
                        [0.0, height - 1.0, 1.0]]).T
    move = np.linalg.norm((refined @ corners)[:2] - (moving_to_target @ corners)[:2], axis=0).max()
    return refined if move <= MAX_MOVE_PX else moving_to_target

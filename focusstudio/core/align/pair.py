"""Registration of one pair of frames: run the estimators, verify their fits, keep the best one."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from focusstudio.core.align.ecc import _ecc_coarse_to_fine, _pyramid
from focusstudio.core.align.features import FeatureCache, _feature_transform
from focusstudio.core.align.geometry import _apply_points
from focusstudio.core.align.params import AlignOptions
from focusstudio.core.align.refine import refine_fit
from focusstudio.core.align.verify import RegistrationFailed, _correlation, _pair_problem, implausibility
from focusstudio.core.progress import check_cancelled


@dataclass
class PairRegistration:
    """How one frame maps onto its registration target (a neighbour or the reference)."""

    matrix: np.ndarray  # moving → target
    method: str
    correlation: float | None
    inliers: int | None
    messages: list[str]


#: With ``method`` "auto", an ECC fit whose aligned frame correlates this well with its target is
#: kept without trying the feature-based fit (which costs ~6× ECC's time): a wrong fit does not
#: reach it on a textured pair (misc_damselfly's rotated ECC fits: 0.846 and 0.732).
TRUSTED_CORRELATION = 0.98
#: A feature fit that moves no corner of the frame more than this (px, at the estimation size) away
#: from the ECC fit confirms it: two independent estimators agree, so ECC's fit is kept without
#: refining the feature fit with ECC again (it would converge to the same fit, at ~2 ECC levels'
#: cost). A wrong ECC fit (misc_damselfly: a rotation of 1–2°) is tens of pixels off at the corners.
AGREEMENT_PX = 1.0


def _corner_distance(first: np.ndarray, second: np.ndarray, width: int, height: int) -> float:
    """Largest distance (px) between where two transforms put the frame's corners."""
    corners = np.array([[0.0, 0.0], [width - 1.0, 0.0], [width - 1.0, height - 1.0], [0.0, height - 1.0]])
    return float(np.max(np.linalg.norm(_apply_points(first, corners) - _apply_points(second, corners), axis=1)))


def register_pair(
    target: np.ndarray,
    moving: np.ndarray,
    options: AlignOptions,
    initial: np.ndarray | None = None,
    features: FeatureCache | None = None,
) -> PairRegistration:
    """Register grey float32 ``moving`` onto ``target``; raises RegistrationFailed with every reason.

    ``features``: keypoints already detected on these images (a chain passes one cache along).

    ``initial`` is a guess of the moving→target matrix (identity when None). With ``method``
    "auto" both estimators run (unless ECC's fit correlates ≥ :data:`TRUSTED_CORRELATION`) and the
    candidate whose warped frame correlates better with the target over their overlap is kept:
    ECC converging to a plausible but wrong fit (a rotation of 1–2°, a doubled subject) is not
    caught by the plausibility checks, only by comparing it with another fit on the aligned pixels.
    """
    height, width = target.shape
    guess = np.eye(3) if initial is None else initial
    reasons: list[str] = []
    candidates: list[PairRegistration] = []
    target_levels: list[np.ndarray] = []
    moving_levels: list[np.ndarray] = []
    if options.method in ("auto", "ecc"):
        target_levels = _pyramid(target, 48)
        moving_levels = _pyramid(moving, 48)
        try:
            warp, _ = _ecc_coarse_to_fine(target_levels, moving_levels, np.linalg.inv(guess), options)
            # Every candidate is scored the same way: correlation of the warped frame on the overlap.
            correlation = _correlation(target, moving, warp)
            matrix = np.linalg.inv(warp)
            problem = _pair_problem(matrix, correlation, width, height, options)
            if problem is None:
                candidates.append(PairRegistration(matrix, "ecc", correlation, None, []))
            else:
                reasons.append(f"ECC: {problem}")
        except RegistrationFailed as error:
            reasons.append(str(error))
    trusted = options.method == "auto" and any(
        c.correlation is not None and c.correlation >= TRUSTED_CORRELATION for c in candidates
    )
    if options.method == "features" or (options.method == "auto" and not trusted):
        check_cancelled()
        try:
            ecc_fit = candidates[0] if candidates else None
            found = _feature_candidate(target, moving, options, target_levels, moving_levels, features, ecc_fit)
            if found is ecc_fit:
                pass  # the feature fit confirmed ECC's (its message says so)
            elif options.method == "features" or (found.correlation or -1.0) >= options.min_correlation:
                candidates.append(found)
            else:
                reasons.append(f"features: correlation {found.correlation:.3f} below {options.min_correlation:g}")
        except RegistrationFailed as error:
            reasons.append(str(error))
    if not candidates:
        raise RegistrationFailed("; ".join(reasons))
    best = max(candidates, key=lambda c: c.correlation if c.correlation is not None else -2.0)
    if options.refine:
        check_cancelled()
        best.matrix = refine_fit(target, moving, best.matrix, options.model)
    best.messages = reasons + best.messages
    others = [c for c in candidates if c is not best]
    if others:
        scores = ", ".join(f"{c.method} {c.correlation:.3f}" for c in others)
        best.messages.append(f"kept {best.method} (correlation {best.correlation:.3f}; other fits: {scores})")
    return best


def _feature_candidate(
    target: np.ndarray,
    moving: np.ndarray,
    options: AlignOptions,
    target_levels: list[np.ndarray],
    moving_levels: list[np.ndarray],
    cache: FeatureCache | None = None,
    ecc_fit: PairRegistration | None = None,
) -> PairRegistration:
    """The feature-based fit, refined by ECC from a finer level when that correlates at least as
    well; raises RegistrationFailed. When it agrees with ``ecc_fit`` (within :data:`AGREEMENT_PX`)
    ``ecc_fit`` itself is returned, with the agreement noted."""
    height, width = target.shape
    matrix, inliers, note = _feature_transform(target, moving, options, cache)
    notes = [note] if note else []
    problem = implausibility(matrix, width, height, options)
    if problem is not None:
        raise RegistrationFailed(f"features: {problem}")
    if ecc_fit is not None:
        distance = _corner_distance(matrix, ecc_fit.matrix, width, height)
        if distance <= AGREEMENT_PX:
            ecc_fit.inliers = inliers
            ecc_fit.messages.extend(notes)
            ecc_fit.messages.append(f"the feature fit ({inliers} inliers) agrees within {distance:.2f} px")
            return ecc_fit
    correlation = _correlation(target, moving, np.linalg.inv(matrix))
    if not target_levels:
        target_levels, moving_levels = _pyramid(target, 48), _pyramid(moving, 48)
    # Refine the feature estimate with ECC from a finer level (the guess is already close).
    try:
        warp, _ = _ecc_coarse_to_fine(target_levels, moving_levels, np.linalg.inv(matrix), options, first_level=1)
        refined_correlation = _correlation(target, moving, warp)
        refined = np.linalg.inv(warp)
        if (
            _pair_problem(refined, refined_correlation, width, height, options) is None
            and refined_correlation >= correlation - 1e-3
        ):
            return PairRegistration(refined, "features+ecc", refined_correlation, inliers, notes)
    except RegistrationFailed:
        pass
    return PairRegistration(matrix, "features", correlation, inliers, notes)

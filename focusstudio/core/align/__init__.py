"""Registration of the frames of a focus stack to one reference frame.

Real stacks are not registered: handheld frames drift, stages drift, and the magnification of most
lenses changes with the focus distance ("focus breathing"). Every frame is therefore mapped onto a
reference frame (the middle one by default) before pixel-wise comparison.

How a frame is registered
-------------------------
* Estimation runs on a downscaled grey copy (``estimation_size`` px on the longer edge); the
  transform is scaled back to full resolution afterwards. Frames are decoded one at a time and only
  two downscaled copies (the reference and the current neighbour) are held.
* Frames are *chained*: frame i is registered to its neighbour towards the reference (i±1), whose
  focus differs least, and the pair transforms are composed towards the reference. Frames far apart
  in focus share almost no sharp detail, so registering them directly is unreliable.
* ECC (``cv2.findTransformECC``) runs coarse-to-fine on a Gaussian pyramid. ECC has no similarity
  model, so for ``similarity`` an affine warp is estimated and projected onto the closest
  similarity (rotation + uniform scale + shift) at every pyramid level.
* When ECC fails (no convergence, low correlation, implausible result), features (SIFT/ORB/AKAZE)
  with RANSAC are tried, then refined with ECC when possible.
* The fit kept is refined by a Gauss–Newton step on Lanczos-resampled pixels (``refine``): ECC's
  bilinear resampling pulls sub-pixel motion such as focus breathing towards whole pixels, and
  along a chain that error adds up.
* A pair is rejected when its transform is implausible for a focus stack (scale outside
  [``min_scale``, ``max_scale``], rotation above ``max_rotation`` degrees, centre shift above
  ``max_shift`` of the frame). A rejected frame takes its neighbour's transform or is excluded.

Convention of the matrices
--------------------------
``FrameAlignment.matrix`` is a 3×3 float64 matrix that maps **frame pixel coordinates to reference
pixel coordinates** (x to the right, y down, (0, 0) = centre of the top-left pixel). The aligned
frame is ``cv2.warpAffine(frame, matrix[:2], (W, H))`` (``warpPerspective`` for homographies), cubic
by default; ``interpolation=lanczos`` keeps the fine detail a cubic kernel softens between pixels
(0.97 instead of 0.72 of the amplitude at 0.35 cycles/px) at ~2.5× the warp's cost.

Where things are
----------------
``params`` (the settings and their CLI flags), ``results`` (what a registration found),
``geometry`` (matrices, coverage, crop box), ``ecc`` and ``features`` (the two estimators),
``refine`` (the sub-pixel refinement of a fit),
``verify`` (plausibility and the correlation score of a fit), ``pair`` (one pair: candidates and
the choice), ``estimate`` (a whole stack), ``cache`` (pairs re-used across runs), ``warp``
(applying a registration), ``storage`` (saved registrations) and ``stage`` (the pipeline's
alignment stage).

The names below are imported from their module on first use, so reading the settings (the CLI's
parser, the window's form) does not import OpenCV.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: Public name → the module of this package that defines it.
_EXPORTS: dict[str, str] = {
    "ALIGN_BY_DEFAULT_FROM": "params",
    "ALIGN_FLAGS": "params",
    "ALIGN_PARAMS": "params",
    "ALIGN_SET_FLAG": "params",
    "MOTION_MODELS": "params",
    "AlignOptions": "params",
    "add_align_arguments": "params",
    "align_arguments_for": "params",
    "align_by_default": "params",
    "align_settings_from_args": "params",
    "align_settings_from_options": "params",
    "MATRIX_CONVENTION": "results",
    "Alignment": "results",
    "FrameAlignment": "results",
    "COVERAGE_MARGIN": "geometry",
    "covered_columns": "geometry",
    "largest_rectangle": "geometry",
    "RegistrationFailed": "verify",
    "implausibility": "verify",
    "TRUSTED_CORRELATION": "pair",
    "PairRegistration": "pair",
    "register_pair": "pair",
    "estimate_alignment": "estimate",
    "RegistrationCache": "cache",
    "registration_cache": "cache",
    "FrameWarp": "warp",
    "apply_alignment": "warp",
    "alignment_misfit": "storage",
    "alignment_text": "storage",
    "load_alignment_for": "storage",
    "load_alignment": "storage",
    "save_alignment": "storage",
    "AlignedFrames": "stage",
    "AlignRequest": "stage",
    "align": "stage",
    "align_frames": "stage",
    "align_stack": "stage",
}

__all__ = [
    "ALIGN_BY_DEFAULT_FROM",
    "ALIGN_FLAGS",
    "ALIGN_PARAMS",
    "ALIGN_SET_FLAG",
    "COVERAGE_MARGIN",
    "MATRIX_CONVENTION",
    "MOTION_MODELS",
    "TRUSTED_CORRELATION",
    "AlignOptions",
    "AlignRequest",
    "AlignedFrames",
    "Alignment",
    "FrameAlignment",
    "FrameWarp",
    "PairRegistration",
    "RegistrationCache",
    "RegistrationFailed",
    "add_align_arguments",
    "align",
    "align_arguments_for",
    "align_by_default",
    "align_frames",
    "align_settings_from_args",
    "align_settings_from_options",
    "align_stack",
    "alignment_misfit",
    "alignment_text",
    "apply_alignment",
    "covered_columns",
    "estimate_alignment",
    "implausibility",
    "largest_rectangle",
    "load_alignment",
    "load_alignment_for",
    "register_pair",
    "registration_cache",
    "save_alignment",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # the next access is a plain lookup
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


if TYPE_CHECKING:  # what static checkers see: the same names, imported eagerly
    from focusstudio.core.align.cache import (
        RegistrationCache,
        registration_cache,
    )
    from focusstudio.core.align.estimate import (
        estimate_alignment,
    )
    from focusstudio.core.align.geometry import (
        COVERAGE_MARGIN,
        covered_columns,
        largest_rectangle,
    )
    from focusstudio.core.align.pair import (
        TRUSTED_CORRELATION,
        PairRegistration,
        register_pair,
    )
    from focusstudio.core.align.params import (
        ALIGN_BY_DEFAULT_FROM,
        ALIGN_FLAGS,
        ALIGN_PARAMS,
        ALIGN_SET_FLAG,
        MOTION_MODELS,
        AlignOptions,
        add_align_arguments,
        align_arguments_for,
        align_by_default,
        align_settings_from_args,
        align_settings_from_options,
    )
    from focusstudio.core.align.results import (
        MATRIX_CONVENTION,
        Alignment,
        FrameAlignment,
    )
    from focusstudio.core.align.stage import (
        AlignedFrames,
        AlignRequest,
        align,
        align_frames,
        align_stack,
    )
    from focusstudio.core.align.storage import (
        alignment_misfit,
        alignment_text,
        load_alignment,
        load_alignment_for,
        save_alignment,
    )
    from focusstudio.core.align.verify import (
        RegistrationFailed,
        implausibility,
    )
    from focusstudio.core.align.warp import (
        FrameWarp,
        apply_alignment,
    )

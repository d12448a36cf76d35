"""Alignment settings: declared once (:data:`ALIGN_PARAMS`) for validation, CLI flags, the window's
form and sidecars, and read back into validated :class:`AlignOptions`."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Literal

from focusstudio.core.errors import ParameterError
from focusstudio.core.param_flags import add_param_flags, flag_dest, param_flag_arguments, read_param_flags
from focusstudio.core.params import ParamSet, ParamSpec

MotionModel = Literal["translation", "similarity", "affine", "homography"]
MOTION_MODELS: tuple[str, ...] = ("translation", "similarity", "affine", "homography")
EstimationMethod = Literal["auto", "ecc", "features"]
FeatureDetector = Literal["sift", "orb", "akaze"]
FailurePolicy = Literal["neighbour", "exclude"]
Interpolation = Literal["linear", "cubic", "lanczos"]

#: Alignment settings, declared once for CLI flags, GUI forms and validation.
ALIGN_PARAMS = ParamSet(
    (
        ParamSpec("model", "choice", "similarity", "Motion model: translation, similarity (shift + rotation "
                  "+ scale, covers focus breathing), affine or homography.", choices=MOTION_MODELS,
                  stage="analysis", title="Motion model"),
        ParamSpec("reference", "int", -1, "Index of the reference frame (-1 = the middle frame).",
                  minimum=-1, stage="analysis", title="Reference frame", special_value="middle"),
        ParamSpec("method", "choice", "auto", "Estimator: ECC on an image pyramid, features + RANSAC, or "
                  "auto (both; the fit whose aligned frame correlates better with its target is kept).",
                  choices=("auto", "ecc", "features"),
                  stage="analysis", title="Estimator"),
        ParamSpec("detector", "choice", "sift", "Feature detector of the feature-based estimator.",
                  choices=("sift", "orb", "akaze"), stage="analysis", title="Feature detector"),
        ParamSpec("chain", "bool", True, "Register each frame to its neighbour towards the reference and "
                  "compose (robust for long stacks); off = register every frame to the reference directly.",
                  stage="analysis", title="Chain through neighbours"),
        ParamSpec("estimation_size", "int", 1024, "Longer edge (px) of the grey copy the transforms are "
                  "estimated on (0 = full resolution).", minimum=0, maximum=100000, stage="analysis",
                  title="Estimation size"),
        ParamSpec("ecc_iterations", "int", 50, "Maximum ECC iterations per pyramid level.", minimum=1,
                  maximum=10000, stage="analysis", title="ECC iterations"),
        ParamSpec("ecc_epsilon", "float", 1e-5, "ECC stops when the correlation improves by less than this.",
                  minimum=0.0, maximum=0.1, stage="analysis", title="ECC epsilon", log_scale=True),
        ParamSpec("gauss_filter_size", "int", 5, "Gaussian pre-filter size ECC applies to both images "
                  "(odd, 0 = none).", minimum=0, maximum=31, stage="analysis", title="ECC smoothing"),
        ParamSpec("min_correlation", "float", 0.5, "A registration whose ECC correlation coefficient is "
                  "below this is a failure.", minimum=-1.0, maximum=1.0, stage="analysis",
                  title="Minimum correlation"),
        ParamSpec("min_inliers", "int", 20, "Fewest RANSAC inliers the feature estimator accepts.",
                  minimum=3, maximum=100000, stage="analysis", title="Minimum inliers"),
        ParamSpec("min_scale", "float", 0.8, "Smallest plausible scale of a frame relative to the reference.",
                  minimum=0.01, maximum=1.0, stage="analysis", title="Minimum scale"),
        ParamSpec("max_scale", "float", 1.25, "Largest plausible scale of a frame relative to the reference.",
                  minimum=1.0, maximum=100.0, stage="analysis", title="Maximum scale"),
        ParamSpec("max_rotation", "float", 5.0, "Largest plausible rotation (degrees).", minimum=0.0,
                  maximum=180.0, stage="analysis", title="Maximum rotation"),
        ParamSpec("max_shift", "float", 0.2, "Largest plausible shift of the frame centre, as a fraction of "
                  "the frame width/height.", minimum=0.0, maximum=1.0, stage="analysis", title="Maximum shift"),
        ParamSpec("refine", "bool", True, "Refine every pair's fit with a few Gauss-Newton steps on "
                  "Lanczos-resampled pixels (ECC's bilinear resampling pulls sub-pixel motion such as focus "
                  "breathing towards whole pixels; the error adds up along the chain).", stage="analysis",
                  title="Sub-pixel refinement"),
        ParamSpec("photometric", "bool", False, "Match brightness and contrast of every frame to the reference "
                  "(gain/offset fitted on the low-passed overlap), for exposure flicker.", stage="analysis",
                  title="Match brightness"),
        ParamSpec("on_failure", "choice", "neighbour", "What to do with a frame that cannot be registered: "
                  "give it its neighbour's transform, or exclude it from the fusion.",
                  choices=("neighbour", "exclude"), stage="analysis", title="On failure"),
        ParamSpec("crop", "bool", True, "Crop to the largest rectangle every aligned frame covers; off = keep "
                  "the full size with a validity mask.", stage="post", title="Crop"),
        ParamSpec("interpolation", "choice", "cubic", "Resampling of the warped frames: linear, cubic (Keys, "
                  "a = -0.75) or lanczos (8×8 windowed sinc: keeps the fine detail a cubic kernel softens "
                  "between pixels, +0.2-0.3 dB on the N-frame benchmark, at ~2.5× the warp's cost).",
                  choices=("linear", "cubic", "lanczos"), stage="post",
                  title="Interpolation"),
    )
)


#: Alignment is on by default from this many frames: pairs are mostly benchmark pairs that are
#: registered already, while real stacks (3+ frames) are not.
ALIGN_BY_DEFAULT_FROM = 3


def align_by_default(frame_count: int) -> bool:
    """Whether the pipeline aligns a stack of ``frame_count`` frames when the user did not say."""
    return frame_count >= ALIGN_BY_DEFAULT_FROM



#: Alignment settings with a command-line flag of their own (the others are ``--align-set KEY=VALUE``).
ALIGN_FLAGS: dict[str, str] = {"reference": "--reference", "model": "--align-model", "crop": "--crop"}
#: The flag that sets any alignment setting as ``KEY=VALUE`` (repeatable).
ALIGN_SET_FLAG = "--align-set"


def add_align_arguments(parser: argparse.ArgumentParser) -> None:
    """The alignment flags of ``fuse`` and ``batch``, generated from :data:`ALIGN_PARAMS`: its
    dedicated flags (:data:`ALIGN_FLAGS`) and ``--align-set`` for every setting."""
    add_param_flags(
        parser, ALIGN_PARAMS, ALIGN_FLAGS, ALIGN_SET_FLAG, "align_assignments",
        "any alignment setting (repeatable), e.g. photometric=true, on_failure=exclude; the settings: "
        + ", ".join(spec.name for spec in ALIGN_PARAMS),
    )


def align_settings_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """Alignment settings from the flags :func:`add_align_arguments` added (only those given)."""
    return read_param_flags(args, ALIGN_PARAMS, ALIGN_FLAGS, "align_assignments")


def align_arguments_for(settings: Mapping[str, Any]) -> list[str]:
    """The flags that give ``settings`` (those that differ from the defaults): the reverse of
    :func:`align_settings_from_args`, for the command line a sidecar records."""
    return param_flag_arguments(ALIGN_PARAMS.resolve(settings), ALIGN_PARAMS, ALIGN_FLAGS, ALIGN_SET_FLAG)


def align_settings_from_options(
    assignments: Sequence[str], reference: int | None, model: str | None, crop: bool | None
) -> dict[str, Any]:
    """Alignment settings from the values of ``--align-set``, ``--reference``, ``--align-model``
    and ``--crop/--no-crop`` (None: not given); :func:`align_settings_from_args` reads them from
    parsed arguments."""
    given = {"reference": reference, "model": model, "crop": crop}
    namespace = argparse.Namespace(align_assignments=list(assignments))
    for name, flag in ALIGN_FLAGS.items():
        setattr(namespace, flag_dest(flag), given[name])
    return align_settings_from_args(namespace)


@dataclass(frozen=True)
class AlignOptions:
    """Validated alignment settings (the fields are the names of :data:`ALIGN_PARAMS`)."""

    model: MotionModel = "similarity"
    reference: int = -1
    method: EstimationMethod = "auto"
    detector: FeatureDetector = "sift"
    chain: bool = True
    estimation_size: int = 1024
    ecc_iterations: int = 50
    ecc_epsilon: float = 1e-5
    gauss_filter_size: int = 5
    min_correlation: float = 0.5
    min_inliers: int = 20
    min_scale: float = 0.8
    max_scale: float = 1.25
    max_rotation: float = 5.0
    max_shift: float = 0.2
    refine: bool = True
    photometric: bool = False
    on_failure: FailurePolicy = "neighbour"
    crop: bool = True
    interpolation: Interpolation = "cubic"

    def __post_init__(self) -> None:
        for item in fields(self):
            ALIGN_PARAMS.get(item.name).validate(getattr(self, item.name))
        if self.gauss_filter_size and self.gauss_filter_size % 2 == 0:
            raise ParameterError(f"alignment 'gauss_filter_size' must be odd or 0, got {self.gauss_filter_size}")

    @classmethod
    def from_params(cls, values: Mapping[str, Any] | None = None) -> AlignOptions:
        """Options from a (partial) mapping of :data:`ALIGN_PARAMS` names; unknown names are rejected."""
        return cls(**ALIGN_PARAMS.resolve(values))

    def to_params(self) -> dict[str, Any]:
        return {item.name: getattr(self, item.name) for item in fields(self)}

    def reference_index(self, count: int) -> int:
        """The reference frame for a stack of ``count`` frames (the middle one when ``reference`` is -1)."""
        if self.reference < 0:
            return count // 2
        if self.reference >= count:
            raise ParameterError(f"reference frame {self.reference} does not exist (the stack has {count} frames)")
        return self.reference

"""Parameter declarations of the shared post-processing ops, declared once for every method.

A method lists these in its :class:`~focusstudio.core.params.ParamSet`, with its own default where
it differs (:meth:`~focusstudio.core.params.ParamSpec.with_default`), so the guided filter,
small-region removal, morphology, decision threshold and spatial-frequency window offer one range, one help text and one
title in the CLI, the window's form and the presets, whichever method uses them.

Each range is the widest one any method declared before they were merged (issue 14), so no value
that was accepted before is refused now. The names are also the keys the ops read from a
method's resolved parameters (:func:`focusstudio.core.ops.consistency.verify_binary`).
"""

from __future__ import annotations

from focusstudio.core.params import ParamSpec

# ------------------------------------------------------------------------------ activity
SF_RADIUS = ParamSpec(
    "sf_radius", "int", 5, "Radius r of the (2r+1)² spatial-frequency window.",
    minimum=1, maximum=64, stage="analysis", title="SF radius",
)

# ------------------------------------------------------------------------------ guided filter
USE_GUIDED_FILTER = ParamSpec(
    "use_guided_filter", "bool", True,
    "Smooth the decision map with a guided filter guided by the initial fused image.",
    stage="post", title="Guided filter",
)
GF_RADIUS = ParamSpec(
    "gf_radius", "int", 4, "Guided-filter window radius r (window 2r+1).",
    minimum=1, maximum=512, stage="post", title="Guided filter radius",
)
GF_EPS = ParamSpec(
    "gf_eps", "float", 0.1,
    "Guided-filter regulariser eps: larger values smooth more across edges.",
    minimum=1e-12, maximum=1e6, stage="post", title="Guided filter eps", log_scale=True,
)

# ------------------------------------------------------------------------------ consistency verification
USE_MORPHOLOGY = ParamSpec(
    "use_morphology", "bool", True,
    "Opening and closing of the decision map with a disk (consistency verification).",
    stage="post", title="Morphology",
)
MORPHOLOGY_RADIUS = ParamSpec(
    "morphology_radius", "int", 5, "Radius r of the morphology disk (x²+y² ≤ r²); 0 switches it off.",
    minimum=0, maximum=64, stage="post", title="Morphology radius",
)
USE_SRR = ParamSpec(
    "use_srr", "bool", True,
    "Small-region removal: flip connected regions smaller than the area fraction of the image.",
    stage="post", title="Small-region removal",
)
AREA_FRACTION = ParamSpec(
    "area_fraction", "float", 0.01,
    "Small-region threshold as a fraction of H·W: 4-connected regions strictly smaller are flipped "
    "(regions of 1s and of 0s, or of any frame in an index map); 0 flips none.",
    minimum=0.0, maximum=0.5, stage="post", step=0.0005, title="SRR area fraction",
)

# ------------------------------------------------------------------------------ decision
DECISION_THRESHOLD = ParamSpec(
    "threshold", "float", 0.5, "Pixels whose soft map is strictly above this take the first frame.",
    minimum=0.0, maximum=1.0, stage="post", step=0.01, title="Decision threshold",
)

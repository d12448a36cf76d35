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

# ------------------------------------------------------------------------------ depth order
DEPTH_ORDER = ParamSpec(
    "depth_order", "choice", "none",
    "Prefer the near frames (removes the 'see-through' of a defocused foreground). none = each pixel "
    "from the frame of the largest activity. front = the frames were shot front to back (first frame "
    "focused nearest); back = back to front (last frame nearest). With an order, the frames are "
    "visited near to far and a pixel keeps the nearer frame's focus peak once the activity has fallen "
    "from it by the depth margin: a farther frame then takes it only where its spatial frequency is "
    "more than margin × the peak's. At the edge of a defocused foreground the background seen through "
    "the blur rises again in the far frames; the near frame's sharp foreground is kept there. Only "
    "peaks at or above the texture threshold are kept (flat areas follow the plain maximum), and ties "
    "go to the nearer frame.",
    choices=("none", "front", "back"), stage="analysis", title="Depth order",
)
DEPTH_MARGIN = ParamSpec(
    "depth_margin", "float", 1.5,
    "Depth order: factor by which a farther frame's spatial frequency must exceed a kept near peak "
    "(and by which the activity must fall below the peak before it is kept).",
    minimum=1.0, maximum=100.0, stage="analysis", step=0.05, title="Depth margin",
)
DEPTH_TEXTURE = ParamSpec(
    "depth_texture", "float", 0.02,
    "Depth order: smallest normalised spatial frequency (grey 0–1, RMS difference per pixel) of a near "
    "peak that is kept; below it (flat or noise-only areas) the plain maximum decides.",
    minimum=0.0, maximum=1.0, stage="analysis", step=0.001, title="Depth texture threshold",
)

# ------------------------------------------------------------------------------ analysis scale
ANALYSIS_SCALE = ParamSpec(
    "analysis_scale", "float", "auto",
    "Resolution at which the network analyses the frames, as a fraction of full resolution: the "
    "decision is computed on the frames shrunk by this factor, brought back to full resolution along "
    "the edges of the full-resolution frames, post-processed at full resolution (radii in full-resolution "
    "pixels) and composed from the original pixels. 1 = analyse at full resolution (the published "
    "pipeline); auto = shrink the long side to the size at which the network sees images like its "
    "training data (never enlarge).",
    minimum=0.01, maximum=1.0, stage="analysis", step=0.05, title="Analysis scale", words=("auto",),
)

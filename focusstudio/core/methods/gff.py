"""Guided Filtering Fusion, GFF (Li, Kang, Hu, IEEE TIP 2013), N frames at once, streamed.

1. Saliency (analysis): S_n = Gaussian(|Laplacian(grey_n)|) with the 3×3 Laplacian and an
   11×11 Gaussian of σ = 5 (r_g = 5), replicated borders. The initial weight P_n is 1 where frame n
   has the largest saliency (ties: the earlier frame, like MATLAB's ``max``).
2. Two-scale decomposition (finish): base B_n = 31×31 mean of I_n (replicated borders), detail
   D_n = I_n − B_n.
3. Weights: W^B_n = GF(P_n; guide I_n, r1 = 45, eps1 = 0.3), W^D_n = GF(P_n; guide I_n, r2 = 7,
   eps2 = 1e-6), each guided by the frame itself. As in the widely used reference implementation the
   guide is the grey frame by default, the filtered weights are clipped to [0, 1] and 1e-12 is added
   before the per-pixel normalisation over the frames (that code also quantises the weights to
   1/255 steps; we do not).
4. F = Σ W^B_n B_n / Σ W^B_n + Σ W^D_n D_n / Σ W^D_n, on every colour channel.

Streaming: the saliency pass keeps a running maximum and argmax; the fusion pass keeps four running
sums, so memory does not grow with N. Frames that win no pixel have P_n = 0, so both filtered
weights are exactly 0 and the frame is skipped (their 1e-12 would only matter where every weight
is 0, which cannot happen: the winning frame's weight is at least 1e-12).

Bands (issue 20): both passes work on row bands of a frame on two threads, each band read with
the halo its core rows need (2r for a guided filter, r for a mean, r_g + 1 for the saliency), so
the numbers are the whole frame's up to the order of float32 sums inside a window; the fusion pass
keeps each frame as its decoded 8/16-bit levels and converts one band at a time. A band whose
halo holds no pixel of P_n adds nothing (its weights would be the 1e-12 floor alone; the weights
of a pixel sum to ~1, so leaving it out changes the result by ~1e-12).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, ClassVar

import cv2
import numpy as np

from focusstudio.core.methods._classical import load_checked, selected_labels
from focusstudio.core.methods.base import Analysis, FusionMethod, RunContext
from focusstudio.core.methods.registry import register
from focusstudio.core.methods.strategies import RunningArgmax
from focusstudio.core.ops.guided_filter import GuidedFilterCPU, guide_centre
from focusstudio.core.ops.levels import unit_band
from focusstudio.core.ops.params import GF_EPS, GF_RADIUS
from focusstudio.core.params import ParamSet, ParamSpec
from focusstudio.core.progress import ProgressGen
from focusstudio.core.types import LEVEL_BAND_ROWS, FusionMap, FusionResult, Stack, grey_from_levels, to_grey

#: Added to every filtered weight before normalising (reference implementation).
WEIGHT_FLOOR = 1e-12
#: Threads of the fusion pass (the machines this runs on have two cores or more; OpenCV and NumPy
#: release the GIL) and rows per band. Measured on 24 MP frames (6000 wide): 1000-row bands spend
#: as much system time (page faults of fresh temporaries) as user time; 250-row bands keep the
#: temporaries small enough to be reused, and smaller ones lose more to the base filter's halo.
FUSION_THREADS = 2
FUSION_BAND_ROWS = 250


def saliency(grey: np.ndarray, radius: int, sigma: float) -> np.ndarray:
    """Gaussian-smoothed absolute 3×3 Laplacian (float32)."""
    laplacian = cv2.Laplacian(grey.astype(np.float32, copy=False), cv2.CV_32F, ksize=1,
                              borderType=cv2.BORDER_REPLICATE)
    size = 2 * radius + 1
    return cv2.GaussianBlur(np.abs(laplacian), (size, size), sigma, borderType=cv2.BORDER_REPLICATE)


def banded_saliency(
    grey: np.ndarray, radius: int, sigma: float, pool: ThreadPoolExecutor | None = None,
    band_rows: int = FUSION_BAND_ROWS,
) -> np.ndarray:
    """:func:`saliency` in row bands on ``pool``'s threads: each band reads radius + 1 rows more on
    either side (the Laplacian's one and the Gaussian's radius), so every output row is computed
    from the same pixels with the same kernels as on the whole frame."""
    out = np.empty(grey.shape, dtype=np.float32)

    def band(core: slice, read: slice) -> None:
        out[core] = saliency(grey[read], radius, sigma)[core.start - read.start:core.stop - read.start]

    _run_bands(band, plan_bands(grey.shape[0], radius + 1, band_rows, FUSION_THREADS if pool is not None else 1), pool)
    return out


def two_scale(frame: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """(base, detail): base = (2r+1)² mean with replicated borders, detail = frame − base."""
    size = 2 * radius + 1
    base = cv2.blur(frame, (size, size), borderType=cv2.BORDER_REPLICATE).reshape(frame.shape)
    return base, frame - base


@register
class GuidedFilteringFusion(FusionMethod):
    name = "gff"
    title = "Guided filtering fusion, GFF (classical)"
    description = (
        "Li, Kang & Hu 2013: two-scale decomposition, Laplacian saliency, guided-filter-refined weight "
        "maps for the base and detail layers; N frames at once."
    )
    family = "classical"
    params = ParamSet(
        (
            ParamSpec("saliency_radius", "int", 5, "Radius r_g of the Gaussian smoothing the |Laplacian| "
                      "(window 2r+1).", minimum=1, maximum=64, stage="analysis"),
            ParamSpec("saliency_sigma", "float", 5.0, "σ_g of that Gaussian.", minimum=0.1, maximum=64.0,
                      stage="analysis"),
            ParamSpec("base_radius", "int", 15, "Radius of the mean filter of the two-scale decomposition "
                      "(15 = 31×31).", minimum=1, maximum=256, stage="post"),
            GF_RADIUS.with_default(45, name="base_gf_radius", title="Base GF radius",
                                   note="Filter r1 of the base-layer weights."),
            GF_EPS.with_default(0.3, name="base_gf_eps", title="Base GF eps",
                                note="Filter eps1 of the base-layer weights (guide in [0, 1])."),
            GF_RADIUS.with_default(7, name="detail_gf_radius", title="Detail GF radius",
                                   note="Filter r2 of the detail-layer weights."),
            GF_EPS.with_default(1e-6, name="detail_gf_eps", title="Detail GF eps",
                                note="Filter eps2 of the detail-layer weights (guide in [0, 1])."),
            ParamSpec("guide", "choice", "grey", "Guide of the weight filters: the grey frame (reference "
                      "code) or the colour frame (textbook colour guided filter).", choices=("grey", "colour"),
                      stage="post"),
        )
    )
    map_names: ClassVar[tuple[str, ...]] = ("saliency", "index", "weight_base", "weight_detail")

    # ------------------------------------------------------------------------------ analysis
    def analyze(self, stack: Stack, params: dict[str, Any], context: RunContext) -> ProgressGen[Analysis]:
        count = len(stack)
        argmax = RunningArgmax(stack.shape, ties="first", copy_first=False)  # ties keep the earlier frame
        with ThreadPoolExecutor(max_workers=FUSION_THREADS) as pool:
            for i in range(count):
                context.cancel.raise_if_cancelled()
                current = banded_saliency(load_checked(stack, i, grey=True), params["saliency_radius"],
                                          params["saliency_sigma"], pool)
                argmax.add(i, current)
                yield context.progress.event("analysis", (i + 1) / count, f"saliency {i + 1}/{count}")
        best, index = argmax.best, argmax.index
        assert best is not None
        maps = {
            "saliency": FusionMap("saliency", "activity", best, "Largest Laplacian saliency over the frames"),
            "index": FusionMap("index", "index", index, "Frame with the largest saliency (initial weights P)"),
        }
        return Analysis(self.name, self.analysis_params(params), maps=maps, data={"index": index})

    # ------------------------------------------------------------------------------ finish
    def finish(
        self, analysis: Analysis, stack: Stack, params: dict[str, Any], context: RunContext
    ) -> ProgressGen[FusionResult]:
        count = len(stack)
        index: np.ndarray = analysis.data["index"]
        colour = stack.is_color
        channel_shape = (*stack.shape, 3) if colour else stack.shape
        sums = WeightedSums(
            base_sum=np.zeros(channel_shape, dtype=np.float32),
            detail_sum=np.zeros(channel_shape, dtype=np.float32),
            base_total=np.zeros(stack.shape, dtype=np.float32),
            detail_total=np.zeros(stack.shape, dtype=np.float32),
            first_weights=(np.zeros(stack.shape, np.float32), np.zeros(stack.shape, np.float32)),
        )
        present = selected_labels(index, count)
        with ThreadPoolExecutor(max_workers=FUSION_THREADS) as pool:
            for i in range(count):
                context.cancel.raise_if_cancelled()
                if i in present:
                    source = _load_source(stack, i)
                    accumulate_frame(sums, source, index, i, params, pool)
                    del source
                yield context.progress.event("fusion", (i + 1) / count, f"frame {i + 1}/{count}")
        fused = sums.fused()
        maps = dict(analysis.maps)
        maps["weight_base"] = FusionMap(
            "weight_base", "weight", sums.first_weights[0] / sums.base_total, "Refined base-layer weight of frame 1",
            frame=0,
        )
        maps["weight_detail"] = FusionMap(
            "weight_detail", "weight", sums.first_weights[1] / sums.detail_total,
            "Refined detail-layer weight of frame 1", frame=0,
        )
        yield context.progress.event("fusion", 1.0, "done")
        return self.make_result(fused, stack, params, maps, analysis)


def _load_source(stack: Stack, i: int) -> np.ndarray:
    """Frame ``i`` as its integer levels where it decodes to them (converted band by band later:
    no full-size float32 colour frame), else as float32; its size checked either way."""
    levels = stack.load_levels(i)
    if levels is None:
        return load_checked(stack, i)
    if levels.shape[:2] != stack.shape:
        return load_checked(stack, i)  # raises the size error with the file's name
    return levels


@dataclass
class WeightedSums:
    """The four running sums of step 4 and frame 1's two weights (for the maps)."""

    base_sum: np.ndarray
    detail_sum: np.ndarray
    base_total: np.ndarray
    detail_total: np.ndarray
    first_weights: tuple[np.ndarray, np.ndarray]

    def fused(self, band_rows: int = LEVEL_BAND_ROWS) -> np.ndarray:
        """F = Σ W^B B / Σ W^B + Σ W^D D / Σ W^D, clipped to [0, 1], in place in ``base_sum`` band by
        band (the same float32 operations as on whole arrays, without three full-size temporaries)."""
        colour = self.base_sum.ndim == 3
        for start in range(0, self.base_sum.shape[0], band_rows):
            rows = slice(start, start + band_rows)
            base_total, detail_total = self.base_total[rows], self.detail_total[rows]
            if colour:
                base_total, detail_total = base_total[..., None], detail_total[..., None]
            band = self.base_sum[rows]
            band /= base_total
            band += self.detail_sum[rows] / detail_total
            np.clip(band, 0.0, 1.0, out=band)
        return self.base_sum


def plan_bands(height: int, halo: int, band_rows: int, parts: int) -> list[tuple[slice, slice]]:
    """Rows ``(core, read)`` per band: cores of about ``band_rows`` rows covering the image (their count 1
    or a multiple of ``parts``, so that the threads get equal shares), each read with ``halo`` rows more
    on either side where the image has them."""
    count = max(1, round(height / max(band_rows, 1)))  # an image of about one band stays whole:
    if count > 1:  # splitting it would only repeat the halos
        count = min(-(-count // parts) * parts, height)
    edges = [round(k * height / count) for k in range(count + 1)]
    return [
        (slice(top, bottom), slice(max(top - halo, 0), min(bottom + halo, height)))
        for top, bottom in pairwise(edges)
        if bottom > top
    ]


def accumulate_frame(
    sums: WeightedSums, source: np.ndarray, index: np.ndarray, frame: int, params: dict[str, Any],
    pool: ThreadPoolExecutor | None = None, band_rows: int = FUSION_BAND_ROWS,
) -> None:
    """Add frame ``frame`` (integer levels or float32, see :func:`unit_band`) to ``sums``: its two
    guided-filtered weights and two-scale layers, computed in row bands with enough halo that every
    core row gets the numbers of the whole-frame computation (box sums of the same windows; the
    float32 guide centred on the whole frame's mean), on ``pool``'s threads (OpenCV and NumPy
    release the GIL; the bands write disjoint rows)."""
    height = index.shape[0]
    colour_guide = source.ndim == 3 and params["guide"] == "colour"
    grey = None if colour_guide else _grey(source)
    centre = None if grey is None else guide_centre(grey)
    radii = (params["base_gf_radius"], params["detail_gf_radius"])
    # A filtered weight depends on the guide and P within 2r (box of box), a layer on the frame within r.
    halo = max(2 * radii[0], 2 * radii[1], params["base_radius"])

    def band(core: slice, read: slice) -> None:
        if not (index[read] == frame).any():
            return  # P_n = 0 over the whole halo: both weights are 0 on the core (the floor is negligible)
        image = unit_band(source, read)
        guide = image if colour_guide else grey[read]  # type: ignore[index]
        mode = "color" if guide.ndim == 3 else "gray"
        initial = (index[read] == frame).astype(np.float32)
        weights = []
        for radius, eps in ((radii[0], params["base_gf_eps"]), (radii[1], params["detail_gf_eps"])):
            # each filter reads only the 2r rows around the core that it needs
            window, inner = _window(core, read, 2 * radius)
            weights.append(_weight(guide[window], initial[window], radius, eps, mode, centre)[inner])
        window, inner = _window(core, read, params["base_radius"])
        layer = image[window]
        size = 2 * params["base_radius"] + 1  # two_scale on the core rows only
        base = cv2.blur(layer, (size, size), borderType=cv2.BORDER_REPLICATE).reshape(layer.shape)[inner]
        detail = layer[inner] - base
        expand = (lambda w: w[..., None]) if base.ndim == 3 else (lambda w: w)
        base *= expand(weights[0])
        detail *= expand(weights[1])
        sums.base_sum[core] += base
        sums.detail_sum[core] += detail
        sums.base_total[core] += weights[0]
        sums.detail_total[core] += weights[1]
        if frame == 0:
            sums.first_weights[0][core] = weights[0]
            sums.first_weights[1][core] = weights[1]

    _run_bands(band, plan_bands(height, halo, band_rows, FUSION_THREADS if pool is not None else 1), pool)


def _run_bands(
    band: Callable[[slice, slice], None], bands: list[tuple[slice, slice]], pool: ThreadPoolExecutor | None
) -> None:
    """``band(core, read)`` for every band, in order, or on ``pool``'s threads (each band writes
    only its own rows; a band's exception is raised here)."""
    if pool is None:
        for core, read in bands:
            band(core, read)
        return
    for future in [pool.submit(band, core, read) for core, read in bands]:
        future.result()


def _window(core: slice, read: slice, halo: int) -> tuple[slice, slice]:
    """(rows of the read band holding the core and ``halo`` rows either side where the image has
    them, the core's rows inside those), both relative to the read band."""
    start = max(core.start - halo, read.start)
    stop = min(core.stop + halo, read.stop)
    return slice(start - read.start, stop - read.start), slice(core.start - start, core.stop - start)


def _grey(source: np.ndarray) -> np.ndarray:
    """The grey frame, exactly ``to_grey(normalise_array(levels))`` for levels (band by band)."""
    if source.dtype in (np.uint8, np.uint16):
        return grey_from_levels(source)
    return to_grey(source)


def _weight(
    guide: np.ndarray, initial: np.ndarray, radius: int, eps: float, mode: str, centre: np.ndarray | None
) -> np.ndarray:
    # The grey guide (the default) in single precision on a centred guide (GuidedFilterCPU's
    # note): the same weights to ~2e-5, the fused image to ~4e-7 on a 1.7 MP stack, in ~60 % of
    # the double-precision time (what a live-tuning preview of gff spends). The colour filter's
    # 3×3 inverse with eps = 1e-6 stays in double precision. Bands pass the whole frame's centre.
    precision = np.float32 if mode == "gray" else np.float64
    filtered = GuidedFilterCPU(guide, radius, eps, mode, precision, centre=centre)(initial)  # type: ignore[arg-type]
    np.clip(filtered, 0.0, 1.0, out=filtered)
    filtered += WEIGHT_FLOOR
    return filtered.astype(np.float32, copy=False)

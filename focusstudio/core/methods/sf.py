"""Pixel spatial-frequency fusion: SESF-Fuse's decision pipeline on the grey image (no network).

Activity is the pixel spatial frequency of the grey frame (squared left/up differences summed over a
(2r+1)² window, :func:`~focusstudio.core.ops.spatial_frequency.spatial_frequency_np`). Each pixel is
taken from the frame with the largest activity; the index map then goes through SESF-Fuse's
consistency verification and a guided filter (REFERENCE-NOTES §1.2), and the fused image is composed
from the original pixels (colour and 16-bit kept).

N-frame behaviour (the frames are streamed, never held all at once):

* Selection: a running maximum over the frames. Ties go to the *later* frame, which for two frames is
  exactly SESF's ``D = SF_1 > SF_2`` (ties to the second image).
* Consistency verification, N = 2: SESF's order on the binary map D (1 = take frame 0): opening with
  ``disk(r)``, removal of 1-regions smaller than ``area_fraction``·H·W, closing with ``disk(r)``,
  filling of 0-regions smaller than the threshold (4-connectivity, strict ``<``).
* N > 2: for every label in turn an opening of that label's mask with ``disk(r)``; the pixels it
  removes take the label of the nearest pixel holding another label (approximate Euclidean
  distance). For two labels this sequence is exactly "opening then closing" (the closing of D is
  the opening of its complement, with the same border semantics). Then
  :func:`small_region_removal_labels` (regions below the threshold take the label that surrounds
  them most). Chosen over a majority filter because it reduces to SESF's morphology for N = 2 and
  leaves regions wider than the disk untouched.
* Boundary refinement, N > 2 (``boundary_radius``, default 2; off with a depth order): the
  (2r+1)² window that touches a sharp outline is won by the outline's frame up to r px past it,
  over a background blurred in that frame (halos at depth edges). A second running arg-max in a
  (2·boundary_radius+1)² window, computed from the same squared differences, decides again the
  pixels within r of a change of frame in the verified index, between the smallest and largest
  label around them, where its best activity is ≥ :data:`FINE_MARGIN` (4) × the main frame's
  (:func:`refine_boundaries`). benchmarks/nframe_synth.py (3 scenes): N = 8 33.59 → 33.80 dB, halo
  27.68 → 28.08 dB, N = 16 34.09 → 34.36, N = 30 34.08 → 34.30, N = 3 unchanged; real stacks
  within 0.004 of recall (benchmarks/README.md, issue 15). Cost: 12 bytes a pixel more during
  the analysis (measured: peak RSS +43 MB on 5 frames of 2.8 MP), the refinement itself in place.
* Composition (``composition``; "auto" = guided for 2 frames, pyramid for more):

  - pyramid (N > 2 by default): each frame's Laplacian pyramid weighted by the Gaussian pyramid of
    its selection (:class:`~focusstudio.core.ops.pyramid.PyramidBlend`, enfuse's hard-mask
    blending driven by this decision); small-region removal is skipped. Measured on the real
    stacks (issue 15, 1000-px copies): sharpness recall of the beetle (macro_dsc_28) 0.873 → 0.995
    and pcb 0.960 → 0.998 (no lost blocks), no brightness seams; the small-region removal had
    handed the beetle's mandible rim and pcb's pin header, regions under 1 % of the image, to
    defocused frames, and the guided filter's hard switches showed as seams in bokeh.
  - guided: SESF-Fuse's pipeline below (the pair default: Lytro Q^{AB/F} 0.7608).

* Guided filter (radius 4, eps 0.1, guidance = the initial fused image in the 0–255 scale, as SESF;
  colour stacks use SESF's per-channel colour variant). N = 2: the weight of frame 0 is filtered and
  used unclipped, as SESF. N > 2: each frame's one-hot map is filtered with the same guide, negative
  values clipped to 0 and the weights renormalised (the filter is linear in its input, so before
  clipping they already sum to 1); weights are computed lazily, one frame at a time.
* Depth order (``depth_order``, off by default; PICOLAY's "prefer front frames"): the frames are
  visited nearest first and a pixel keeps a near frame's focus peak once its activity has fallen
  from it by ``depth_margin``; a farther frame needs margin × that SF (``fold_near_first`` in
  strategies). It keeps a defocused foreground's edge from showing the sharp background through.
  Measured on benchmarks/nframe_synth.py (seed 15, 3 scenes, shot back to front, so
  ``depth_order=back`` is the physical order): N = 3 unchanged, N = 8 PSNR 33.59 → 33.38 dB, halo
  27.68 → 27.32 dB, N = 16 34.09 → 33.86 / 27.79 → 27.42: the far frames' false peaks, where the
  blurred foreground edge sweeps over the background, are kept too, which costs more outside the
  silhouette than the see-through gains inside. Hence off by default.
* Image edges, N > 2: the first row's and column's difference against SESF's zero padding (the
  grey value itself) is left out (:func:`energy_mask` with a shape); with it the brightest frame
  won within r of the top and left edges. Pairs keep SESF's padding.
* Invalid pixels (``stack.valid_mask`` False, e.g. the border left by alignment) have no activity:
  squared differences touching them are zeroed before the window sum, so the padding cannot win.
* Cost at camera resolution (issue 20): the activity, the running selection and the SF maps are
  computed in row bands (:func:`activity_bands`, exact, no full-size float64 temporaries) on worker
  threads (:mod:`~focusstudio.core.methods.sf_pair`: bit-identical to serial); a pair decodes both
  frames at once to their integer levels where the files have them, else once to float32 (held as
  8-bit codes when exact, ``sf_pair.HeldFrame``), runs one band pass over both frames
  (:func:`pair_activity_bands`), and its guided composition runs tile by tile without a full-size
  guide, skipping the tiles where the decision is constant (``sf_pair.guided_pair_tiles``). N > 2 frames: the
  analysis holds one decoded frame at a time (made grey by bands), and the pyramid composition runs
  in row bands at every level with the finest level summed into the result
  (:class:`~focusstudio.core.ops.pyramid.SelectionBlend`), so the peak does not grow with N (24 MP:
  1212 MiB at N = 3, 5, 10 and 30 (enfuse: 873 MiB … 5.7 GiB), ~50 bytes a pixel, under the 70 B/px
  floor declared below).
* Per-frame activity maps (``activity_{i}``, the normalised SF) are kept only for N ≤ 16 and at most
  256 MiB in all, so a long or huge stack does not cost N full-size maps (they are dropped, not
  downscaled, because every map is expected at the image size); ``activity`` (the best activity per
  pixel) is always kept.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, ClassVar

import cv2
import numpy as np

from focusstudio.core.methods._classical import (
    compose_pyramid_steps,
    compose_selected_steps,
    compose_weighted_steps,
    load_checked,
)
from focusstudio.core.methods.base import Analysis, FusionMethod, RunContext
from focusstudio.core.methods.registry import register
from focusstudio.core.methods.sf_boundaries import (
    FineSelection,
    band_rows,
    fine_radius_of,
    refine_boundaries,
)
from focusstudio.core.methods.sf_pair import (
    GUIDE_SCALE,
    HeldFrame,
    band_pool,
    guided_pair_tiles,
    load_levels_pair,
    run_bands,
    unit_window,
)
from focusstudio.core.methods.strategies import depth_ordered_frames, fold_near_first
from focusstudio.core.ops import params as ops_params
from focusstudio.core.ops.box import EXACT_FRACTION_BITS, box_sum_exact_np
from focusstudio.core.ops.compose import compose_pair
from focusstudio.core.ops.consistency import label_opening_nearest, verify_binary, verify_labels
from focusstudio.core.ops.spatial_frequency import squared_differences_np
from focusstudio.core.params import ParamSet, ParamSpec
from focusstudio.core.progress import ProgressGen
from focusstudio.core.runtime import numpy_small_pages
from focusstudio.core.tiling import BoundedGuidedFilter, operation_budget
from focusstudio.core.types import FusionMap, FusionResult, Stack, normalise_array, to_grey

#: Per-frame activity maps are exposed up to this many frames and this many bytes in all
#: (one H×W float32 each), so long or huge stacks do not hold N full-size maps.
MAX_ACTIVITY_MAPS = 16
MAX_ACTIVITY_BYTES = 256 * 2**20

COMPOSITIONS = ("auto", "guided", "pyramid")


def resolve_composition(params: dict[str, Any], frames: int) -> str:
    """The composition a run uses: ``composition``, with "auto" resolved by the frame count."""
    composition = str(params.get("composition", "auto"))
    if composition == "auto":
        return "guided" if frames == 2 else "pyramid"
    return composition



def energy_mask(valid_mask: np.ndarray | None, shape: tuple[int, int] | None = None) -> np.ndarray | None:
    """Where a left/up squared difference only involves valid pixels (None = everywhere).

    With ``shape`` (3+ frames) the first row and column are left out too: their "difference" is
    against SESF's zero padding, i.e. the grey value itself, thousands of times a textured
    block's energy, so within sf_radius of the image's top and left edges the *brightest* frame
    won (the 10-frame blood smear at 1920 px: frames 1 and 10 held 70 % of the top four rows
    against 28 % inside). Pairs keep SESF's padding (its reference outputs).
    """
    if valid_mask is None and shape is None:
        return None
    valid = np.ones(shape, dtype=bool) if valid_mask is None else np.asarray(valid_mask, dtype=bool)
    mask = valid.copy()
    mask[:, 1:] &= valid[:, :-1]
    mask[1:, :] &= valid[:-1, :]
    if shape is not None:
        mask[:, 0] = False
        mask[0, :] = False
    return mask


def pixel_activity(grey: np.ndarray, radius: int, mask: np.ndarray | None) -> np.ndarray:
    """Window sum of squared differences (float64; SF without the monotone sqrt/normalisation).

    The window sum is exact (fixed point, :func:`box_sum_exact_np`): ties between frames are real
    ties (flat areas sum to exactly 0), and a frame processed in tiles gives the same activity.
    """
    energy = squared_differences_np(grey)
    if mask is not None:
        energy[~mask] = 0.0
    return box_sum_exact_np(energy, radius)


def normalised_sf(activity: np.ndarray, radius: int) -> np.ndarray:
    """SF = sqrt(sum / (2r+1)²) as float32, for display (in row bands: no full-size float64 temporaries)."""
    out = np.empty(activity.shape, dtype=np.float32)
    rows = band_rows(activity.shape[1] if activity.ndim > 1 else 1)
    for start in range(0, activity.shape[0], rows):
        out[start:start + rows] = _normalised_band(activity[start:start + rows], radius)
    return out


def _normalised_band(activity: np.ndarray, radius: int) -> np.ndarray:
    return np.sqrt(np.maximum(activity, 0.0) / float((2 * radius + 1) ** 2)).astype(np.float32)


#: Key of the pair's decoded colour frames in ``Analysis.data`` (taken by the first finish).
HELD_FRAMES = "held_frames"
#: Key of the smaller window's selection in ``Analysis.data`` (3+ frames, :class:`FineSelection`).
FINE_INDEX = "index_fine"


def _band_activity(grey: np.ndarray, radius: int, mask: np.ndarray | None) -> np.ndarray:
    """:func:`pixel_activity` with its float64 passes done in place (the same values, fewer
    temporaries): squared differences, the 2^-35 grid of :func:`box_sum_exact_np`, the box sum."""
    return _box(_band_energy(grey, radius, mask), radius)


def _box(energy: np.ndarray, radius: int) -> np.ndarray:
    size = 2 * radius + 1
    return cv2.boxFilter(energy, -1, (size, size), normalize=False, borderType=cv2.BORDER_CONSTANT)


def _band_energy(grey: np.ndarray, radius: int, mask: np.ndarray | None) -> np.ndarray:
    """The squared left/up differences on the exact grid (checked for a (2·radius+1)² sum)."""
    # Differences of float32 values are exact in float64 (as in squared_differences_np).
    energy = np.empty(grey.shape, dtype=np.float64)
    energy[:, 0] = grey[:, 0]
    np.subtract(grey[:, 1:], grey[:, :-1], out=energy[:, 1:], dtype=np.float64)
    np.square(energy, out=energy)
    vertical = np.empty(grey.shape, dtype=np.float64)
    vertical[0] = grey[0]
    np.subtract(grey[1:], grey[:-1], out=vertical[1:], dtype=np.float64)
    np.square(vertical, out=vertical)
    energy += vertical
    del vertical
    if mask is not None:
        energy[~mask] = 0.0
    size = 2 * radius + 1
    # Energies are ≥ 0: the largest value bounds the running sums (as box_sum_exact_np checks).
    largest = float(energy.max()) if energy.size else 0.0
    if 2.0 * largest * size * size >= 2.0 ** (52 - EXACT_FRACTION_BITS):
        raise ValueError(f"values up to {largest:g} are too large for an exact {size}×{size} box sum")
    scale = float(2**EXACT_FRACTION_BITS)
    energy *= scale
    np.rint(energy, out=energy)
    energy /= scale
    return energy


def activity_bands(
    source: np.ndarray, radius: int, mask: np.ndarray | None, frame: int, best: np.ndarray, index: np.ndarray,
    normalised: np.ndarray | None, on_band: Callable[[slice], None] | None = None,
    first: bool | None = None, fold: Callable[[slice, np.ndarray], None] | None = None,
    fine: FineSelection | None = None, pool: ThreadPoolExecutor | None = None,
) -> None:
    """Frame ``frame``'s activity folded into the running selection, one row band at a time.

    ``source`` is the frame (colour: converted to grey band by band, the same values as
    :func:`~focusstudio.core.types.to_grey`; integer levels are normalised band by band first,
    exactly as decoding does) or its grey image. Each band reads a halo of r+1 rows
    (one difference plus the window), so the activity is exactly :func:`pixel_activity` of the
    whole frame (the window sums are exact). ``best``/``index`` hold the running maximum and the
    frame that has it (ties to the later frame, as SESF); frame 0 initialises them.
    ``normalised`` (optional) receives :func:`normalised_sf` of this frame's activity;
    ``on_band(rows)`` is called for every band's rows (the pair stores its frames meanwhile).
    ``first`` (default: ``frame == 0``) marks the frame that initialises the selection; ``fold(rows,
    activity)`` replaces the running maximum for the other frames (the depth-ordered selection).
    ``fine`` (optional) receives the same frame's activity in its smaller window (from the same
    squared differences: one more box sum per band; its radius must not exceed ``radius``).
    Every band writes only its own rows of the outputs, so the bands run on ``pool``'s threads
    (``on_band``, ``fold`` and ``fine`` included) with the serial result.
    """
    if first is None:
        first = frame == 0
    height, width = source.shape[:2]
    halo = radius + 1
    rows = band_rows(width, halo)

    def band(start: int) -> None:
        stop = min(start + rows, height)
        top, bottom = max(start - halo, 0), min(stop + halo, height)
        energy = _band_energy(_grey_band(source[top:bottom]), radius, None if mask is None else mask[top:bottom])
        fine_activity = None if fine is None else _box(energy, fine.radius)[start - top:stop - top]
        activity = _box(energy, radius)[start - top:stop - top]
        del energy
        later_wins = None
        if first:
            best[start:stop] = activity
            index[start:stop] = frame
        elif fold is not None:
            fold(slice(start, stop), activity)
        else:
            # ">=": ties go to the later frame (SESF: D = SF_1 > SF_2, ties to the second image)
            later_wins = activity >= best[start:stop]
            index[start:stop][later_wins] = frame
            np.maximum(best[start:stop], activity, out=best[start:stop])
        if fine is not None and fine_activity is not None:
            fine.fold(frame, slice(start, stop), fine_activity, later_wins)
        if normalised is not None:
            normalised[start:stop] = _normalised_band(activity, radius)
        if on_band is not None:
            on_band(slice(start, stop))

    run_bands(band, range(0, height, rows), pool)


def pair_activity_bands(
    sources: Sequence[np.ndarray], radius: int, mask: np.ndarray | None, index: np.ndarray,
    normalised: Sequence[np.ndarray | None], activity: np.ndarray, pool: ThreadPoolExecutor | None = None,
) -> None:
    """A pair's selection in one pass of row bands over both frames: the ``index``, per-frame SF
    maps (``normalised``) and best SF (``activity``, :func:`normalised_sf` of the maximum) that
    :func:`activity_bands` gives frame after frame, without its full-size float64 running
    maximum (192 MB at 24 MP, written by one frame and read back by the other). Bands run on
    ``pool``'s threads; sources as in :func:`activity_bands` (grey or colour, levels or float)."""
    height, width = index.shape
    halo = radius + 1
    rows = band_rows(width, halo)

    def band(start: int) -> None:
        stop = min(start + rows, height)
        top, bottom = max(start - halo, 0), min(stop + halo, height)
        band_mask = None if mask is None else mask[top:bottom]
        best: np.ndarray | None = None
        for frame, source in enumerate(sources):
            energy = _band_energy(_grey_band(source[top:bottom]), radius, band_mask)
            current = _box(energy, radius)[start - top:stop - top]
            del energy
            target = normalised[frame]
            if target is not None:
                target[start:stop] = _normalised_band(current, radius)
            if best is None:
                best = current
                index[start:stop] = frame
            else:
                later_wins = current >= best  # ties to the later frame, as in activity_bands
                index[start:stop][later_wins] = frame
                np.maximum(best, current, out=best)
        assert best is not None
        activity[start:stop] = _normalised_band(best, radius)

    run_bands(band, range(0, height, rows), pool)


def _grey_band(band: np.ndarray) -> np.ndarray:
    """Rows of a frame as the grey float32 image :func:`to_grey` makes of the decoded frame."""
    if band.dtype in (np.uint8, np.uint16):
        band = normalise_array(band)  # the decoder's own conversion, per pixel
    return to_grey(band) if band.ndim == 3 else band


def near_first_fold(
    best: np.ndarray, index: np.ndarray, margin: float, texture: float, radius: int
) -> Callable[[int, slice, np.ndarray], None]:
    """The ``fold`` of :func:`activity_bands` for a depth order (:func:`fold_near_first` by bands).

    ``margin`` and ``texture`` are on the normalised SF (sqrt(activity / (2r+1)²)); the activity
    is its square times the window area, so they are converted once here.
    """
    kept = np.zeros(best.shape, dtype=bool)
    margin_sq = margin * margin
    floor = texture * texture * float((2 * radius + 1) ** 2)

    def fold(frame: int, rows: slice, activity: np.ndarray) -> None:
        fold_near_first(best[rows], index[rows], kept[rows], activity, frame, margin_sq, floor)

    return fold


@register
class SpatialFrequencyFusion(FusionMethod):
    name = "sf"
    title = "Spatial frequency (classical)"
    description = (
        "Pixel spatial frequency of the grey frames as the focus measure, SESF-Fuse's consistency "
        "verification (morphology, small-region removal) and guided-filter smoothing; N frames at once, "
        "composed by pyramid blending of the decision (no blurred patches, no seams)."
    )
    family = "classical"
    params = ParamSet(
        (
            ops_params.SF_RADIUS,
            ParamSpec("boundary_radius", "int", 2, "3+ frames: radius of a smaller SF window that decides "
                      "again the pixels within sf_radius of a change of frame, between the frames already "
                      "chosen around them (the large window carries a sharp edge's frame up to sf_radius px "
                      "past the edge, over a background blurred in that frame: halos at depth edges); "
                      "0 switches it off, and so does a depth order. At most sf_radius.",
                      minimum=0, maximum=64, stage="analysis", title="Boundary SF radius"),
            ops_params.DEPTH_ORDER,
            ops_params.DEPTH_MARGIN,
            ops_params.DEPTH_TEXTURE,
            ops_params.USE_MORPHOLOGY,
            ops_params.MORPHOLOGY_RADIUS.with_default(5),
            ops_params.USE_SRR.with_default(True, note="(Guided composition; the pyramid composition skips it.)"),
            ops_params.AREA_FRACTION.with_default(0.01),
            ParamSpec("composition", "choice", "auto", "How the decision composes the image: guided = "
                      "SESF-Fuse's guided filter of the decision (hard frame switches show as seams where "
                      "frames differ in brightness); pyramid = each frame's Laplacian pyramid weighted by "
                      "the Gaussian pyramid of its selection (enfuse's hard-mask blending with this "
                      "decision: detail from the chosen frame at every scale, switches invisible); "
                      "auto = guided for 2 frames, pyramid for more.", choices=COMPOSITIONS, stage="post"),
            ops_params.USE_GUIDED_FILTER.with_default(True, note="(Guided composition.)"),
            ops_params.GF_RADIUS.with_default(4),
            ops_params.GF_EPS.with_default(0.1, note="On a guide in grey levels 0–255 (SESF-Fuse's scale)."),
        )
    )
    map_names: ClassVar[tuple[str, ...]] = (
        "activity_{i}", "activity", "index_raw", "index", "decision_raw", "decision", "weight",
    )
    # Peak RSS minus the fixed cost, less one minimum tile budget, of 2 and 4 colour frames at
    # 2000² and 4000² with --memory-limit 256M (63 + 7·N bytes a pixel), plus 10 %.
    floor_bytes_per_pixel: ClassVar[float] = 70.0
    floor_bytes_per_frame_pixel: ClassVar[float] = 8.0

    # ------------------------------------------------------------------------------ analysis
    def analyze(self, stack: Stack, params: dict[str, Any], context: RunContext) -> ProgressGen[Analysis]:
        # Small pages: NumPy's huge-page requests cost more system time than they save here.
        with numpy_small_pages(), band_pool() as pool:
            levels = load_levels_pair(stack, pool) if str(params.get("depth_order", "none")) == "none" else None
            if levels is not None:
                return (yield from self._analyze_pair_levels(levels, stack, params, context, pool))
            return (yield from self._analyze_frames(stack, params, context, pool))

    def _analyze_pair_levels(
        self, levels: list[np.ndarray], stack: Stack, params: dict[str, Any], context: RunContext,
        pool: ThreadPoolExecutor | None,
    ) -> ProgressGen[Analysis]:
        """A pair decoded to integer levels (both at once): one banded pass over both frames
        (:func:`pair_activity_bands`); the levels are handed to finish, which composes from them."""
        radius = params["sf_radius"]
        height, width = stack.shape
        keep_frames = 2 * height * width * 4 <= MAX_ACTIVITY_BYTES
        normalised = [np.empty(stack.shape, dtype=np.float32) if keep_frames else None for _ in range(2)]
        activity = np.empty(stack.shape, dtype=np.float32)
        index = np.empty(stack.shape, dtype=np.int32)
        # A grey file in a colour stack is repeated into three channels: its first is the grey.
        sources = [frame if info.channels == 3 or frame.ndim == 2 else frame[..., 0]
                   for frame, info in zip(levels, stack.frames)]
        pair_activity_bands(sources, radius, energy_mask(stack.valid_mask), index, normalised, activity, pool)
        del sources
        maps: dict[str, FusionMap] = {}
        for i, values in enumerate(normalised):
            if values is not None:
                maps[f"activity_{i}"] = FusionMap(
                    f"activity_{i}", "activity", values, f"Spatial frequency of frame {i + 1} (radius {radius})",
                    frame=i,
                )
        maps["activity"] = FusionMap("activity", "activity", activity, "Largest spatial frequency over the frames")
        yield context.progress.event("analysis", 1.0, "spatial frequency 2/2")
        data: dict[str, Any] = {"index_raw": index, HELD_FRAMES: levels}
        return Analysis(self.name, self.analysis_params(params), maps=maps, data=data)

    def _analyze_frames(
        self, stack: Stack, params: dict[str, Any], context: RunContext, pool: ThreadPoolExecutor | None
    ) -> ProgressGen[Analysis]:
        """The frames one at a time as float32 (any stack; the pair's frames are held for finish)."""
        count = len(stack)
        radius = params["sf_radius"]
        mask = energy_mask(stack.valid_mask, None if count == 2 else stack.shape)
        height, width = stack.shape
        keep_frames = count <= MAX_ACTIVITY_MAPS and count * height * width * 4 <= MAX_ACTIVITY_BYTES
        maps: dict[str, FusionMap] = {}
        best = np.empty(stack.shape, dtype=np.float64)
        index = np.zeros(stack.shape, dtype=np.int32)
        # A pair decodes each frame once: the frames analysed here are handed to finish (decoding
        # a 24 MP JPEG to float32 costs about a third of the analysis), as 8-bit codes when exact.
        held: dict[int, HeldFrame] = {}
        order = str(params.get("depth_order", "none"))
        fold = None
        if order != "none":
            fold = near_first_fold(
                best, index, float(params["depth_margin"]), float(params["depth_texture"]), radius
            )
        fine_radius = fine_radius_of(params, count)
        fine = FineSelection(stack.shape, fine_radius) if fine_radius > 0 else None
        visits = depth_ordered_frames(count, order)
        for step, i in enumerate(visits):
            context.cancel.raise_if_cancelled()
            keeper: HeldFrame | None = None
            if count == 2:
                frame = load_checked(stack, i)
                transformed = stack.transforms[i] is not None
                keeper = HeldFrame.start(frame, "float32" if transformed else stack.frames[i].dtype)
                grey_source = frame if stack.frames[i].channels == 3 else frame[..., 0] if frame.ndim == 3 else frame
            else:
                # The colour frame, made grey band by band in activity_bands (the same values as
                # a whole-frame to_grey, without its full-size temporaries).
                frame = load_checked(stack, i)
                grey_source = frame if stack.frames[i].channels == 3 or frame.ndim == 2 else frame[..., 0]
                del frame
            normalised = np.empty(stack.shape, dtype=np.float32) if keep_frames else None
            activity_bands(grey_source, radius, mask, i, best, index, normalised,
                           None if keeper is None else partial(keeper.store_band, frame),
                           first=step == 0, fold=None if fold is None else partial(fold, i), fine=fine, pool=pool)
            if keeper is not None:
                keeper.finish_storing(frame)
                held[i] = keeper
                del frame
            del grey_source
            if normalised is not None:
                maps[f"activity_{i}"] = FusionMap(
                    f"activity_{i}", "activity", normalised, f"Spatial frequency of frame {i + 1} (radius {radius})",
                    frame=i,
                )
            yield context.progress.event("analysis", (step + 1) / count, f"spatial frequency {step + 1}/{count}")
        maps["activity"] = FusionMap(
            "activity", "activity", normalised_sf(best, radius),
            "Largest spatial frequency over the frames" if fold is None else "Spatial frequency of the chosen frame",
        )
        del best
        data: dict[str, Any] = {"index_raw": index}
        if fine is not None:
            data[FINE_INDEX] = fine.candidate()
            del fine
        if held:
            data[HELD_FRAMES] = [held[i] for i in range(count)]
        return Analysis(self.name, self.analysis_params(params), maps=maps, data=data)

    # ------------------------------------------------------------------------------ finish
    def finish(
        self, analysis: Analysis, stack: Stack, params: dict[str, Any], context: RunContext
    ) -> ProgressGen[FusionResult]:
        with numpy_small_pages():  # as in analyze
            return (yield from self._finish(analysis, stack, params, context))

    def _finish(
        self, analysis: Analysis, stack: Stack, params: dict[str, Any], context: RunContext
    ) -> ProgressGen[FusionResult]:
        count = len(stack)
        index_raw: np.ndarray = analysis.data["index_raw"]
        maps = dict(analysis.maps)
        maps["index_raw"] = FusionMap("index_raw", "index", index_raw, "Frame with the largest SF")
        context.cancel.raise_if_cancelled()
        clipped = False
        if count == 2:
            fused, clipped = yield from self._finish_pair(analysis, index_raw, stack, params, context, maps)
        else:
            fused = yield from self._finish_many(
                index_raw, stack, params, context, maps, analysis.data.get(FINE_INDEX)
            )
        yield context.progress.event("compose", 1.0, "done")
        fused = np.asarray(fused, dtype=np.float32)
        if not clipped:
            # Clipped in place: clip-then-astype held two more full-size colour copies at the peak.
            np.clip(fused, 0.0, 1.0, out=fused)
        return self.make_result(fused, stack, params, maps, analysis)

    def _finish_pair(
        self, analysis: Analysis, index_raw: np.ndarray, stack: Stack, params: dict[str, Any], context: RunContext,
        maps: dict[str, FusionMap],
    ) -> ProgressGen[tuple[np.ndarray, bool]]:
        """The pair's composition: (fused image, whether it is clipped to [0, 1] already)."""
        decision_raw = index_raw == 0
        decision = verify_binary(decision_raw, params)
        index = np.logical_not(decision).astype(np.int32)  # 0 = frame 0 (no int64 temporary)
        maps["decision_raw"] = FusionMap(
            "decision_raw", "decision", decision_raw.astype(np.float32), "1 = frame 1 has the larger SF"
        )
        # The decision map doubles as the unfiltered weight of frame 0 (read, never written).
        weight = decision.astype(np.float32)
        maps["decision"] = FusionMap("decision", "decision", weight, "Decision after consistency verification")
        maps["index"] = FusionMap("index", "index", index, "Frame chosen after consistency verification")
        yield context.progress.event("consistency", 0.3, "consistency verification")
        context.cancel.raise_if_cancelled()
        with band_pool() as pool:
            # The analysis's frames (levels or held frames); a reused analysis decodes them again.
            held = analysis.data.pop(HELD_FRAMES, None) or load_levels_pair(stack, pool)
            first, second = held if held is not None else (load_checked(stack, 0), load_checked(stack, 1))
            if not params["use_guided_filter"]:
                return compose_pair(unit_window(first, ...), unit_window(second, ...), weight), False
            yield context.progress.event("guided filter", 0.6, "guided filter")
            context.cancel.raise_if_cancelled()
            fused, weight = guided_pair_tiles(
                first, second, weight, params["gf_radius"], params["gf_eps"], pool=pool, clip=True
            )
        maps["weight"] = FusionMap(
            "weight", "weight", weight, "Guided-filtered weight of frame 1 (not clipped, as SESF-Fuse)"
        )
        return fused, True

    def _finish_many(
        self, index_raw: np.ndarray, stack: Stack, params: dict[str, Any], context: RunContext,
        maps: dict[str, FusionMap], fine_index: np.ndarray | None = None,
    ) -> ProgressGen[np.ndarray]:
        pyramid = resolve_composition(params, len(stack)) == "pyramid"
        # Small-region removal exists to hide the seams of small regions; pyramid blending hides
        # them anyway, and on real stacks it flipped correct small sharp regions (a mandible's rim,
        # small cells) to a defocused frame: the pyramid composition skips it.
        index = verify_labels(
            index_raw, {**params, "use_srr": params["use_srr"] and not pyramid}, label_opening_nearest
        )
        if fine_index is not None:
            # After the consistency verification: the boundaries it leaves are the ones to refine.
            index = refine_boundaries(index, fine_index, int(params["sf_radius"]))
        maps["index"] = FusionMap("index", "index", index, "Frame chosen after consistency verification")
        yield context.progress.event("consistency", 0.2, "consistency verification")
        context.cancel.raise_if_cancelled()
        if pyramid:
            return (yield from compose_pyramid_steps(stack, index, context, 0.2, 1.0))
        selection = yield from compose_selected_steps(stack, index, context, 0.2, 0.5)
        if not params["use_guided_filter"]:
            return selection
        guide = selection * GUIDE_SCALE
        del selection
        # Frames no pixel selects get a zero weight after filtering (the filter maps 0 to 0): skip them.
        present = [int(label) for label in np.unique(index)]
        total = np.zeros(index.shape, dtype=np.float32)
        first_weight: list[np.ndarray] = []

        # The guide's statistics are shared by the N filters: compute them once.
        # In tiles when the guide's statistics do not fit the budget (same result).
        guided = BoundedGuidedFilter(
            guide, params["gf_radius"], params["gf_eps"], operation_budget(stack.shape, context.memory_limit),
            context.tile_size, dtype=np.float32, precision=np.float32,
        )

        def weight_of(position: int) -> np.ndarray:
            frame = present[position]
            weight = guided(index == frame)  # float32 (see above)
            np.maximum(weight, 0.0, out=weight)
            total[...] += weight
            if frame == 0:
                first_weight.append(weight)
            return weight

        fused = yield from compose_weighted_steps(
            stack.subset(present), weight_of, context, 0.5, 1.0, stage="guided filter"
        )
        weight0 = first_weight[0] / np.maximum(total, 1e-8) if first_weight else np.zeros_like(total)
        maps["weight"] = FusionMap(
            "weight", "weight", weight0.astype(np.float32), "Guided-filtered, renormalised weight of frame 1"
        )
        return fused

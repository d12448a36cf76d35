"""N-frame strategies every method reuses: serial pairs against a running result, the N-way
arg-max of an activity, GACN's decision calibration against a reference frame, and the
composition of a selection (hard or by pyramid blending).

A method keeps its own strategy names and defaults (``DeepFusionMethod.resolve_strategy``); what
a name means is one of these:

* serial pairs (:func:`serial_pairs`, REFERENCE-NOTES §7.2.5): the running result is fused with
  the next frame, N − 1 times. Decision-map methods track which source each pixel came from
  while every step is a hard selection (:func:`run_serial_decisions`), so the selection can be
  composed again by pyramid blending.
* neighbour pairs (:func:`run_neighbour_decisions`, :class:`NeighbourEvidence`): a pairwise
  network compares every frame with the next one, raw frames only, in both orders; the evidence that
  the later frame is sharper is summed along the stack and each pixel takes the frame where that
  sum peaks (a relative focus score), composed by pyramid blending. Unlike serial pairs, no
  network input is a composite of earlier decisions, so one wrong step is not carried on. Each
  pair's evidence is weighted by its relevance (its sharper frame's classical focus activity over
  the stack's peak there): a network's confident answer between two strongly defocused frames
  is noise, near the focus peak the network decides. Last, the classical activity decides again
  between each pixel's chosen frame and its neighbouring frames where one beats it by a margin
  (:mod:`focusstudio.core.methods.neighbour_refine`), and the pixels next to a change of frame by
  the per-pixel activity: on a fine stack neighbouring frames are nearly equally sharp
  and the networks' answers between them are noise or biased.
* N-way arg-max (:class:`RunningArgmax`): the frame of the highest activity at each pixel, one
  frame at a time (ties keep the lower index).
* depth order (:func:`depth_ordered_frames`, :func:`fold_near_first`): the arg-max visited near to
  far, where a near frame's focus peak is kept against farther frames unless they beat it by a
  margin (``depth_order`` in :mod:`focusstudio.core.ops.params`).
* calibration (:class:`CalibrationVolume`, REFERENCE-NOTES §2.3): decision volume against frame 1,
  V_1 = m_2, V_2 = 1 − m_2, V_j = m_2·(1 − m_j)/(m_j + 1e-4), per-pixel arg-max.
* composition of an index map (:func:`compose_selection`): hard selection of source pixels or
  :class:`~focusstudio.core.ops.pyramid.PyramidBlend` (no brightness seams where the frame switches).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

import cv2
import numpy as np

from focusstudio.core.methods._classical import compose_pyramid_steps, compose_selected_steps, load_checked
from focusstudio.core.methods.base import RunContext
from focusstudio.core.methods.sf_pair import band_pool, run_bands
from focusstudio.core.progress import CancelToken, ProgressEvent, ProgressGen, ProgressRange
from focusstudio.core.types import FusionMap, Stack, to_grey

__all__ = [
    "DEPTH_ORDERS",
    "NEIGHBOUR_SMOOTHING",
    "VOLUME_GUARD",
    "CalibrationVolume",
    "NeighbourChain",
    "NeighbourEvidence",
    "PairFusionStep",
    "PairPredictor",
    "RunningArgmax",
    "SerialChain",
    "SerialFusion",
    "SerialStep",
    "compose_selection",
    "depth_ordered_frames",
    "fold_near_first",
    "run_neighbour_decisions",
    "run_serial_decisions",
    "serial_fusion",
    "serial_pairs",
]

#: One serial step: (running result, next frame, its index j, progress range of the step) → the
#: new running result.
SerialStep = Callable[[np.ndarray, np.ndarray, int, ProgressRange], Generator[ProgressEvent, None, np.ndarray]]


def serial_pairs(
    stack: Stack, step: SerialStep, progress: ProgressRange, cancel: CancelToken
) -> ProgressGen[np.ndarray]:
    """Fuse frames 0, 1, … serially: running = step(running, frame_j, j, range_j) for
    j = 1 … N − 1, step j over [(j − 1)/(N − 1), j/(N − 1)] of ``progress``."""
    count = len(stack)
    running = load_checked(stack, 0)
    for j in range(1, count):
        cancel.raise_if_cancelled()
        frame = load_checked(stack, j)
        running = yield from step(running, frame, j, progress.sub((j - 1) / (count - 1), j / (count - 1)))
    return running


#: One step of a serial fusion whose pair stage also explains itself: (running result, next frame, j,
#: progress range) → (fused pair, its explanation maps).
PairFusionStep = Callable[
    [np.ndarray, np.ndarray, int, ProgressRange],
    Generator[ProgressEvent, None, tuple[np.ndarray, dict[str, FusionMap]]],
]


@dataclass
class SerialFusion:
    """A serial pair fusion (sesf and gacn ``serial``): its image, the last step's maps and the
    post-processing parameters it was made with (every step's input depends on them, so other
    post parameters mean running it again)."""

    image: np.ndarray
    maps: dict[str, FusionMap]
    post: dict[str, Any]


def serial_fusion(
    stack: Stack, step: PairFusionStep, context: RunContext, post: dict[str, Any]
) -> ProgressGen[SerialFusion]:
    """:func:`serial_pairs` over the network stage of ``context.progress``, keeping the last step's
    explanation maps (described as such)."""
    count = len(stack)
    last: dict[str, FusionMap] = {}

    def pair(running: np.ndarray, frame: np.ndarray, j: int, step_range: ProgressRange) -> Generator[
        ProgressEvent, None, np.ndarray
    ]:
        nonlocal last
        yield step_range.event("network", 0.0, f"serial step {j}/{count - 1}")
        fused, last = yield from step(running, frame, j, step_range)
        return fused

    image = yield from serial_pairs(stack, pair, context.progress, context.cancel)
    yield context.progress.event("network", 1.0, "serial fusion done")
    maps = {name: FusionMap(m.name, m.kind, m.data, m.description + " (last serial step)") for name, m in last.items()}
    return SerialFusion(image, maps, dict(post))


# --------------------------------------------------------------------------- serial decisions
#: Runs the network on (running result, next frame) and returns its map; progress over ``range``.
PairPredictor = Callable[[np.ndarray, np.ndarray, ProgressRange], Generator[ProgressEvent, None, np.ndarray]]


@dataclass
class SerialChain:
    """What the serial decision strategy produced."""

    soft_maps: list[np.ndarray]  # per step j = 1..N−1: the network's weight of the running result
    weights: list[np.ndarray]  # per step: the weight actually used (binary or soft)
    image: np.ndarray  # the fused image (float32 [0, 1])
    index: np.ndarray | None  # frame index of every pixel when every step was a hard selection


def run_serial_decisions(
    stack: Stack,
    predict: PairPredictor,
    decide: Callable[[np.ndarray], np.ndarray],
    progress: ProgressRange,
    cancel: CancelToken,
    soft_maps: list[np.ndarray] | None = None,
) -> Generator[ProgressEvent, None, SerialChain]:
    """:func:`serial_pairs` with running = w·running + (1 − w)·frame_j, w = decide(map_j).

    With ``soft_maps`` given (a cached chain) and N = 2 no network runs. For N > 2 the maps of
    later steps depend on earlier decisions, so the network runs again from step 2 on.
    """
    count = len(stack)
    chain = SerialChain([], [], np.empty(0, np.float32), np.zeros(stack.shape, dtype=np.int32))

    def step(running: np.ndarray, frame: np.ndarray, j: int, step_range: ProgressRange) -> Generator[
        ProgressEvent, None, np.ndarray
    ]:
        if soft_maps is not None and j == 1:
            soft = soft_maps[0]
        else:
            soft = yield from predict(running, frame, step_range)
        weight = decide(soft).astype(np.float32, copy=False)
        if chain.index is not None and np.all((weight == 0.0) | (weight == 1.0)):
            chain.index = np.where(weight > 0.5, chain.index, j).astype(np.int32)
        else:
            chain.index = None
        w = weight[..., None] if running.ndim == 3 else weight
        fused = (w * running + (1.0 - w) * frame).astype(np.float32)
        chain.soft_maps.append(soft)
        chain.weights.append(weight)
        yield step_range.event("fuse", 1.0, f"fused frame {j + 1} of {count}")
        return fused

    chain.image = yield from serial_pairs(stack, step, progress, cancel)
    return chain


# --------------------------------------------------------------------------- neighbour pairs
#: σ (px) of the Gaussian that smooths each pair's evidence before it is summed. The networks'
#: maps flip pixel by pixel where two frames are nearly equally sharp; summed unsmoothed, such
#: noise fragments the selection, and a pyramid composition of a fragmented selection averages
#: the detail of different frames (measured: wbc recall 0.71 → 0.56). 4 px keeps cells of ~10 px.
NEIGHBOUR_SMOOTHING = 4.0


#: σ (px) of the local average that turns a frame's squared Laplacian into its focus activity
#: (:func:`focus_activity`), the classical measure that weighs each pair's network evidence.
#: 4 px rather than 8: a wider window carries a sharp foreground's edges over the defocused
#: background beside it (synthetic scene 0, N ≥ 8: 8 px lost up to 0.4 dB, 4 px none).
NEIGHBOUR_ACTIVITY_SIGMA = 4.0
#: Exponent of a pair's relevance (its sharper frame's activity over the stack's peak activity
#: at that pixel) in its evidence weight; 0 switches the weighting off.
NEIGHBOUR_RELEVANCE_POWER = 2.0
#: Weight of the classical evidence where the network is undecided (its evidence near 0); 0
#: leaves the decision to the network alone. Off: 1 lowers the lost blocks of the microscopy
#: stacks further (where the Laplacian energy, like the recall metric, rewards defocus rings) but
#: costs up to 0.17 dB against ground truth on the synthetic stacks (benchmarks/README.md).
NEIGHBOUR_PRIOR = 0.0


def focus_activity(frame: np.ndarray, sigma: float = NEIGHBOUR_ACTIVITY_SIGMA) -> np.ndarray:
    """Classical focus activity of a frame (H×W or H×W×3 float): the squared Laplacian of its
    lightly smoothed (σ = 1) grey image, averaged over a Gaussian window of ``sigma`` px."""
    grey = cv2.GaussianBlur(to_grey(frame), (0, 0), 1.0, borderType=cv2.BORDER_REFLECT)
    laplacian = cv2.Laplacian(grey, cv2.CV_32F, borderType=cv2.BORDER_REFLECT)
    np.multiply(laplacian, laplacian, out=laplacian)
    return cv2.GaussianBlur(laplacian, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)


def _kernel_radius(sigma: float) -> int:
    """The radius of cv2's float Gaussian kernel for ``sigma`` (ksize = round(8σ + 1) | 1)."""
    return (round(sigma * 8 + 1) | 1) // 2


#: Rows past a band's edge that :func:`focus_activity` reads (the σ = 1 Gaussian, the
#: Laplacian's one row, the σ = :data:`NEIGHBOUR_ACTIVITY_SIGMA` Gaussian: 21 rows); a band
#: computed with these rows around it equals the whole frame's rows bit for bit.
ACTIVITY_HALO = _kernel_radius(1.0) + 1 + _kernel_radius(NEIGHBOUR_ACTIVITY_SIGMA)
#: Rows per band of the banded activities (24 MP: 8 bands, so 2 threads share them evenly).
ACTIVITY_BAND_ROWS = 512


def activity_bands(height: int, rows: int = ACTIVITY_BAND_ROWS) -> list[tuple[int, int]]:
    """Row ranges [start, stop) of ``rows`` rows covering ``height``."""
    return [(start, min(start + rows, height)) for start in range(0, height, max(rows, 1))]


def focus_activity_rows(frame: np.ndarray, rows: tuple[int, int]) -> np.ndarray:
    """Rows ``rows`` of ``focus_activity(frame)``, exactly, computed from those rows and
    :data:`ACTIVITY_HALO` rows around them."""
    start, stop = rows
    low, high = max(start - ACTIVITY_HALO, 0), min(stop + ACTIVITY_HALO, frame.shape[0])
    return focus_activity(frame[low:high], NEIGHBOUR_ACTIVITY_SIGMA)[start - low:stop - low]


def _activity_into(frame: np.ndarray, out: np.ndarray, rows: tuple[int, int]) -> None:
    out[rows[0]:rows[1]] = focus_activity_rows(frame, rows)


def _peak_into(frame: np.ndarray, peak: np.ndarray, rows: tuple[int, int]) -> None:
    band = peak[rows[0]:rows[1]]
    np.maximum(band, focus_activity_rows(frame, rows), out=band)


def focus_activity_banded(frame: np.ndarray, pool: Any, band_rows: int = ACTIVITY_BAND_ROWS) -> np.ndarray:
    """``focus_activity(frame, NEIGHBOUR_ACTIVITY_SIGMA)``, bit for bit, in row bands on ``pool``'s
    threads (sf_pair's :func:`~focusstudio.core.methods.sf_pair.band_pool`; None: in the caller):
    at 24 MP its grey conversion and squaring are NumPy work on one core otherwise."""
    out = np.empty(frame.shape[:2], dtype=np.float32)
    run_bands(partial(_activity_into, frame, out), activity_bands(frame.shape[0], band_rows), pool)
    return out


class NeighbourEvidence:
    """Per-pixel arg-max of a focus score built from neighbour pairs, one pair at a time.

    Pair k compares frame k with frame k + 1 and gives ``first_weight`` = the network's weight
    of frame k (≈ P(frame k is sharper)). Its evidence 1 − 2·weight ∈ [−1, 1] (> 0: frame k + 1
    is sharper), smoothed by :data:`NEIGHBOUR_SMOOTHING`, is added to a running score that starts
    at 0 for frame 0; the score rises while frames get sharper and falls past the focus peak, so
    its arg-max over k is the sharpest frame. Bounded evidence rather than log-odds: one
    confidently wrong pair cannot outweigh several moderate right ones. Ties keep the lower index.

    With ``peak`` (the highest :func:`focus_activity` of any frame at each pixel) and the pair's
    two activities, each pair's evidence is weighted by its *relevance* (max of the pair's
    activities / peak)^``power``: the networks learnt pairs in which one frame is in focus, and
    between two strongly defocused frames their confident answers are noise (measured: mfifgan
    on pcb's far background, P(frame 4 sharper than frame 5) = 0.99 where frame 5 has 2.4× the
    Laplacian energy, summed into a peak at frame 2). Near the focus peak the relevance is ≈ 1 and
    the network decides as before. ``prior`` > 0 adds the classical evidence (A₂ − A₁)/(A₂ + A₁)
    scaled by the network's indecision 1 − |evidence|. Holds three H×W arrays whatever N is (the
    weighted run also holds the peak and two activities).
    """

    def __init__(
        self, shape: tuple[int, int], sigma: float = NEIGHBOUR_SMOOTHING, peak: np.ndarray | None = None,
        power: float = NEIGHBOUR_RELEVANCE_POWER, prior: float = NEIGHBOUR_PRIOR,
    ) -> None:
        self.sigma = sigma
        self.score = np.zeros(shape, dtype=np.float32)
        self.best = np.zeros(shape, dtype=np.float32)
        self.index = np.zeros(shape, dtype=np.int32)
        self.power = power
        self.prior = prior
        # a floor under the activities: in flat areas every frame's activity is noise, and the
        # relevance there must stay ≈ 1 (the network decides), not a ratio of two noise levels
        self.floor = np.float32(1e-3 * float(np.percentile(peak, 99)) + 1e-12) if peak is not None else None
        self.peak = peak
        self.band_rows = ACTIVITY_BAND_ROWS  # rows per band of add's per-pixel steps

    def add(
        self, pair: int, first_weight: np.ndarray,
        activities: tuple[np.ndarray, np.ndarray] | None = None, pool: Any = None,
    ) -> None:
        """Add pair ``pair`` (frames ``pair`` and ``pair + 1``, with their :func:`focus_activity`
        when the evidence is weighted); pairs in increasing order. After the smoothing, in row
        bands on ``pool``'s threads (sf_pair's band_pool; None: in the caller): every step is per
        pixel, so the bands give the whole image's result exactly."""
        evidence = 1.0 - 2.0 * np.clip(first_weight, 0.0, 1.0).astype(np.float32)
        if self.sigma > 0:
            evidence = cv2.GaussianBlur(evidence, (0, 0), self.sigma, borderType=cv2.BORDER_REFLECT)
        bands = activity_bands(evidence.shape[0], self.band_rows)
        run_bands(partial(self._add_rows, pair, evidence, activities), bands, pool)

    def _add_rows(self, pair: int, evidence: np.ndarray, activities: tuple[np.ndarray, np.ndarray] | None,
                  rows: tuple[int, int]) -> None:
        band = slice(*rows)
        part = evidence[band]
        if activities is not None and self.peak is not None and self.floor is not None:
            part = self._weighted(part, activities[0][band], activities[1][band], self.peak[band])
        score, best = self.score[band], self.best[band]
        score += part
        self.index[band][score > best] = pair + 1
        np.maximum(best, score, out=best)

    def weighted(self, evidence: np.ndarray, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        """The network's evidence of one pair weighted by the pair's relevance (class docstring)."""
        assert self.peak is not None
        return self._weighted(evidence, first, second, self.peak)

    def _weighted(self, evidence: np.ndarray, first: np.ndarray, second: np.ndarray,
                  peak: np.ndarray) -> np.ndarray:
        assert self.floor is not None
        if self.prior > 0:
            classical = (second - first) / (second + first + 2 * self.floor)
            evidence = evidence + self.prior * (1.0 - np.abs(evidence)) * classical
        if self.power > 0:
            relevance = (np.maximum(first, second) + self.floor) / (peak + self.floor)
            evidence = evidence * np.power(np.minimum(relevance, 1.0), self.power)
        return evidence.astype(np.float32, copy=False)


def neighbour_peak_activity(stack: Stack, cancel: CancelToken) -> np.ndarray:
    """The highest :func:`focus_activity` of any frame at each pixel (one grey load per frame)."""
    peak: np.ndarray | None = None
    with band_pool() as pool:  # row bands on 2 threads, exactly as whole frames
        for index in range(len(stack)):
            cancel.raise_if_cancelled()
            grey = load_checked(stack, index, grey=True)
            if peak is None:
                peak = focus_activity_banded(grey, pool)
            else:
                run_bands(partial(_peak_into, grey, peak), activity_bands(grey.shape[0]), pool)
            del grey
    assert peak is not None
    return peak


@dataclass
class NeighbourChain:
    """What the neighbour-pair strategy produced."""

    soft_maps: list[np.ndarray]  # per pair k = 0..N−2: the symmetrised weight of frame k against k + 1
    index: np.ndarray  # frame index of every pixel


def run_neighbour_decisions(
    stack: Stack,
    predict: PairPredictor,
    progress: ProgressRange,
    cancel: CancelToken,
    keep_maps: int = 0,
    prepare: Callable[[np.ndarray], Any] | None = None,
    keep_as: Callable[[np.ndarray], np.ndarray] | None = None,
) -> Generator[ProgressEvent, None, NeighbourChain]:
    """Run ``predict`` on every pair of neighbouring frames in both orders and fold the
    symmetrised weight ½·(P(k, k+1) + 1 − P(k+1, k)) into a :class:`NeighbourEvidence` (each
    frame loaded once); the first ``keep_maps`` weights are kept for explanation. Progress: pair k
    over [k/(N − 1), (k + 1)/(N − 1)] of ``progress``.

    Both orders, because the pairwise networks prefer one input position where two frames are
    nearly equally sharp (measured: two-stream's P(a, b) + P(b, a) ≈ 1.1 on misc_owl); neighbours of
    a fine stack are nearly equally sharp almost everywhere, and summed over N − 1 pairs that bias
    drags the choice towards one end of the stack (two-stream, synthetic scene 0, N = 16: 31.2 dB
    one order, 35.4 dB both). It doubles the network passes (2·(N − 1), serial: N − 1).

    ``prepare``: what ``predict`` is given of a frame instead of the loaded frame (at an analysis
    scale: the shrunk frame the network sees and the full-resolution grey that its map is lifted
    along), made once per frame as it is loaded, so the full-resolution colour frame is released at
    once and no frame is shrunk or made grey twice; memory does not depend on N. ``keep_as``: what
    is kept of a pair's map for explanation (at an analysis scale: the map shrunk back, so that
    up to N − 1 kept maps do not each cost a full-resolution image). The selection itself is made
    from ``predict``'s maps exactly as without them."""
    count = len(stack)
    weighted = NEIGHBOUR_RELEVANCE_POWER > 0 or NEIGHBOUR_PRIOR > 0
    peak = neighbour_peak_activity(stack, cancel) if weighted else None
    evidence = NeighbourEvidence(stack.shape, peak=peak, power=NEIGHBOUR_RELEVANCE_POWER, prior=NEIGHBOUR_PRIOR)

    def load(frame: int) -> tuple[Any, np.ndarray | None]:
        # The activity from the loaded full-resolution frame, before ``prepare`` releases it.
        loaded = load_checked(stack, frame)
        activity = focus_activity_banded(loaded, pool) if weighted else None
        return (loaded if prepare is None else prepare(loaded)), activity

    kept: list[np.ndarray] = []
    # the frames' activities in row bands on 2 threads (exactly as whole frames); the pool's
    # threads wait while the networks run
    with band_pool() as pool:
        previous, activity = load(0)
        for k in range(count - 1):
            cancel.raise_if_cancelled()
            following, following_activity = load(k + 1)
            pair_range = progress.sub(k / (count - 1), (k + 1) / (count - 1))
            yield pair_range.event("network", 0.0, f"frames {k + 1}–{k + 2} of {count}")
            forward = yield from predict(previous, following, pair_range.sub(0.0, 0.5))
            backward = yield from predict(following, previous, pair_range.sub(0.5, 1.0))
            soft = (0.5 * (np.clip(forward, 0.0, 1.0) + 1.0 - np.clip(backward, 0.0, 1.0))).astype(np.float32)
            if activity is not None and following_activity is not None:
                evidence.add(k, soft, (activity, following_activity), pool)
            else:
                evidence.add(k, soft, pool=pool)
            activity = following_activity
            if k < keep_maps:
                kept.append(soft if keep_as is None else keep_as(soft))
            del soft, forward, backward
            previous = following
    index = evidence.index
    del evidence, peak, previous, activity  # the refinement's arrays in their place
    # imported here: the refinements use this module's focus activity
    from focusstudio.core.methods.neighbour_refine import refine_neighbours

    return NeighbourChain(kept, refine_neighbours(stack, index, cancel))


# --------------------------------------------------------------------------- N-way arg-max
class RunningArgmax:
    """Per-pixel arg-max of an activity over frames added one at a time, so N activity maps never
    need to be held at once.

    ``ties``: "first" (strict >, ties keep the lower index: SESF's N-way rule, GFF) or "last"
    (>=, ties go to the later frame: sf, as SESF's pair rule SF_1 > SF_2 gives ties to the second).
    The running maximum starts as the first activity: a copy unless ``copy_first`` is False (then
    the caller's array is overwritten; it saves a full-frame copy when the caller drops it)."""

    def __init__(
        self, shape: tuple[int, int], ties: Literal["first", "last"] = "first", copy_first: bool = True
    ) -> None:
        self.best: np.ndarray | None = None
        self.index = np.zeros(shape, dtype=np.int32)
        self.ties = ties
        self.copy_first = copy_first

    def add(self, frame: int, activity: np.ndarray) -> None:
        if self.best is None:
            self.best = activity.copy() if self.copy_first else activity
            return
        wins = activity > self.best if self.ties == "first" else activity >= self.best
        self.index[wins] = frame
        np.maximum(self.best, activity, out=self.best)


# --------------------------------------------------------------------------- depth order
DEPTH_ORDERS = ("none", "front", "back")


def depth_ordered_frames(count: int, order: str) -> list[int]:
    """Frame indices in the order a depth-ordered arg-max visits them: nearest focus first."""
    if order not in DEPTH_ORDERS:
        raise ValueError(f"depth order must be one of {', '.join(DEPTH_ORDERS)}, got {order!r}")
    return list(range(count - 1, -1, -1)) if order == "back" else list(range(count))


def fold_near_first(
    best: np.ndarray, index: np.ndarray, kept: np.ndarray, activity: np.ndarray, frame: int,
    margin: float, floor: float,
) -> None:
    """Fold one frame's activity into a near-first selection, in place (band slices are fine).

    Frames come near to far (:func:`depth_ordered_frames`); ``best``/``index`` hold the chosen
    frame's activity and index (initialised from the nearest frame, ``kept`` False). A pixel whose
    activity has fallen below ``best / margin`` after its peak, with ``best ≥ floor``, is *kept*:
    a farther frame takes it only where its activity exceeds ``margin · best``. Unkept pixels
    follow the plain maximum (ties to the nearer frame). Why a kept peak rather than "the nearest
    frame within a margin of the maximum": the latter takes every pixel from a frame in front of
    its own focus peak (adjacent frames of a fine stack differ by less than any useful margin),
    blurring the whole image; a peak followed by a fall is a surface in focus, and a second rise
    behind it is what a farther frame sees through that surface's defocused edge.
    ``margin`` and ``floor`` are in the activity's units (the caller converts).
    """
    threshold = np.where(kept, best * margin, best)
    taken = activity > threshold
    index[taken] = frame
    np.copyto(best, activity, where=taken)
    kept &= ~taken
    kept |= (best >= floor) & (activity * margin < best)


# --------------------------------------------------------------------------- calibration
#: Guard of the decision volume against m_j → 0 (GACN's released value).
VOLUME_GUARD = 1e-4


class CalibrationVolume:
    """Running arg-max of the decision volume, so N maps never need to be held at once."""

    def __init__(self, keep_volumes: bool) -> None:
        self.reference_pair: np.ndarray | None = None  # m_2 = P(frame 1 sharper than frame 2)
        self.best: np.ndarray | None = None
        self.index: np.ndarray | None = None
        self.volumes: list[np.ndarray] | None = [] if keep_volumes else None

    def add(self, frame: int, refined: np.ndarray) -> None:
        """Add m_j, the refined map of the pair (reference, ``frame``), frames in increasing order."""
        m = refined.astype(np.float32)
        if frame == 1:
            self.reference_pair = m
            first, second = m, 1.0 - m
            self.index = (second > first).astype(np.int32)  # ties → the lower index
            self.best = np.maximum(first, second)
            if self.volumes is not None:
                self.volumes.extend([first, second])
            return
        assert self.reference_pair is not None and self.best is not None and self.index is not None
        volume = self.reference_pair * (1.0 - m) / (m + VOLUME_GUARD)
        better = volume > self.best
        self.best[better] = volume[better]
        self.index[better] = frame
        if self.volumes is not None:
            self.volumes.append(volume.astype(np.float32))


# --------------------------------------------------------------------------- composition
def compose_selection(
    stack: Stack,
    index: np.ndarray,
    context: RunContext,
    how: Literal["select", "pyramid"],
    start: float = 0.0,
    end: float = 1.0,
    stage: str = "compose",
) -> ProgressGen[np.ndarray]:
    """The image an index map selects: the source pixels themselves (``select``) or the selection
    composed by pyramid blending (``pyramid``), a progress event per frame over [start, end]."""
    if how == "pyramid":
        return (yield from compose_pyramid_steps(stack, index, context, start, end, stage))
    return (yield from compose_selected_steps(stack, index, context, start, end, stage))

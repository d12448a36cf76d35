"""Small fusion methods for the GUI tests: fast and deterministic, one slow, one unavailable.

They follow the real two-stage contract (an expensive ``analyze`` whose output is cached, a cheap
``finish``), count their calls so tests can check what re-ran, and expose maps of each kind the
viewer handles (decision, index, activity).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from scipy import ndimage

from focusstudio.core.methods.base import Analysis, FusionMethod, RunContext
from focusstudio.core.ops.compose import compose_index
from focusstudio.core.params import ParamSet, ParamSpec
from focusstudio.core.progress import ProgressGen
from focusstudio.core.types import FusionMap, FusionResult, Stack

CALLS: dict[str, int] = {"analyze": 0, "finish": 0}


def reset_counters() -> None:
    CALLS.update(analyze=0, finish=0)


class FakeMethod(FusionMethod):
    """Laplacian-energy activity (analysis) and a thresholded, optionally smoothed choice (post)."""

    name: ClassVar[str] = "fake_test"
    title: ClassVar[str] = "Fake (tests)"
    description: ClassVar[str] = "Laplacian energy with a bias threshold; for the GUI tests."
    map_names: ClassVar[tuple[str, ...]] = ("activity", "decision", "index")
    params: ClassVar[ParamSet] = ParamSet((
        ParamSpec("window", "int", 3, "Window radius of the activity sum.", minimum=1, maximum=9,
                  stage="analysis", title="Activity window"),
        ParamSpec("bias", "float", 0.0, "Activity advantage given to the first frame.", minimum=-1.0,
                  maximum=1.0, stage="post", step=0.01),
        ParamSpec("smooth", "bool", False, "Median-filter the index map.", stage="post"),
        ParamSpec("rule", "choice", "max", "How frames are chosen.", choices=("max", "first"), stage="post"),
        ParamSpec("eps", "float", 0.01, "A log-scale parameter (unused by the maths).", minimum=1e-6,
                  maximum=1.0, stage="post", log_scale=True),
        ParamSpec("passes", "int", 2, "A wide-range integer (unused by the maths).", minimum=0,
                  maximum=100000, stage="post"),
    ))
    #: Seconds spent per analysis step (SlowMethod makes this large).
    step_seconds: ClassVar[float] = 0.0
    steps: ClassVar[int] = 4

    def analyze(self, stack: Stack, params: dict[str, Any], context: RunContext) -> ProgressGen[Analysis]:
        CALLS["analyze"] += 1
        size = 2 * params["window"] + 1
        activities = []
        for index in range(len(stack)):
            context.cancel.raise_if_cancelled()
            yield context.progress.event("analysing", index / len(stack), stack.frames[index].name)
            grey = stack.load(index, grey=True)
            energy = ndimage.laplace(grey.astype(np.float64)) ** 2
            activities.append(ndimage.uniform_filter(energy, size).astype(np.float32))
            for _ in range(self.steps):
                context.cancel.raise_if_cancelled()
                time.sleep(self.step_seconds)
        yield context.progress.event("analysing", 1.0, "done")
        scale = float(max(a.max() for a in activities)) or 1.0
        return Analysis(self.name, self.analysis_params(params),
                        data={"activity": [a / scale for a in activities]})

    def finish(self, analysis: Analysis, stack: Stack, params: dict[str, Any],
               context: RunContext) -> ProgressGen[FusionResult]:
        CALLS["finish"] += 1
        activity = np.stack(analysis.data["activity"]).copy()
        activity[0] += params["bias"]
        if params["rule"] == "first":
            index = np.zeros(activity.shape[1:], dtype=np.int32)
        else:
            index = np.argmax(activity, axis=0).astype(np.int32)
        if params["smooth"]:
            index = ndimage.median_filter(index, 3)
        yield context.progress.event("composing", 0.5)
        image = compose_index(stack, index, context.cancel)
        maps = {
            "activity": FusionMap("activity", "activity", activity.max(axis=0), "best activity"),
            "decision": FusionMap("decision", "decision", (index == 0).astype(np.float32), "weight of frame 1"),
            "index": FusionMap("index", "index", index, "frame chosen"),
        }
        return self.make_result(image, stack, params, maps, analysis)


class SlowMethod(FakeMethod):
    """The fake method taking ~10 s, checking the cancel token every 10 ms."""

    name: ClassVar[str] = "slow_test"
    title: ClassVar[str] = "Slow (tests)"
    step_seconds: ClassVar[float] = 0.01
    steps: ClassVar[int] = 500


class UnavailableMethod(FakeMethod):
    name: ClassVar[str] = "unavailable_test"
    title: ClassVar[str] = "Unavailable (tests)"

    def availability(self, weights: Path | None = None) -> tuple[bool, str]:
        return False, "weights missing: fake_weights.pth"

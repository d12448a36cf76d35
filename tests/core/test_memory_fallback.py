"""Out of memory: a run retries with smaller tiles, then (from a GPU) on the CPU, and says so."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pytest
import torch

import focusstudio.core.device as device_module
from focusstudio.core.methods.base import Analysis, FusionMethod, MethodFamily, RunContext
from focusstudio.core.pipeline import fallback_attempts, fuse, run_fusion
from focusstudio.core.progress import ProgressEvent, ProgressGen, run_to_completion
from focusstudio.core.tiling import MINIMUM_MEMORY_LIMIT
from focusstudio.core.types import FusionResult, Stack


class MemoryHungryProbe(FusionMethod):
    """Runs out of memory unless the tiles are small enough (or it runs on the CPU)."""

    name = "memory_probe"
    family: ClassVar[MethodFamily] = "deep"

    def __init__(self, fits: Any) -> None:
        self.fits = fits
        self.attempts: list[tuple[str, int | None, int | None]] = []

    def analyze(self, stack: Stack, params: dict[str, Any], context: RunContext) -> ProgressGen[Analysis]:
        self.attempts.append((context.device, context.memory_limit, context.tile_size))
        yield context.progress.event("network", 0.5, "probing")
        if not self.fits(context):
            if context.device == "cpu":
                raise MemoryError("Unable to allocate 40.0 GiB for an array")
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return Analysis(self.name, {}, device=context.device)

    def finish(
        self, analysis: Analysis, stack: Stack, params: dict[str, Any], context: RunContext
    ) -> ProgressGen[FusionResult]:
        yield context.progress.event("compose", 1.0, "done")
        return self.make_result(stack.load(0), stack, params, {}, analysis)


@pytest.fixture
def stack() -> Stack:
    return Stack.from_arrays([np.zeros((16, 16), np.float32), np.ones((16, 16), np.float32)])


@pytest.fixture
def fake_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(device_module, "resolve_device", lambda choice="auto": "cuda")


def test_gpu_out_of_memory_retries_with_smaller_budgets(stack: Stack, fake_gpu: None) -> None:
    probe = MemoryHungryProbe(lambda context: (context.memory_limit or 0) <= 256 * 1024**2)
    events: list[ProgressEvent] = []
    result = run_to_completion(run_fusion(stack, probe, device="cuda", memory_limit=2 * 1024**3), events.append)
    assert [a[1] for a in probe.attempts] == [2 * 1024**3, 512 * 1024**2, 128 * 1024**2]
    assert all(a[0] == "cuda" for a in probe.attempts)
    assert result.device == "cuda"
    retries = [e for e in events if e.stage == "retry"]
    assert len(retries) == 2 and "out of memory on cuda" in retries[0].message
    assert sum("out of memory" in note for note in result.notes) == 2


def test_gpu_out_of_memory_ends_on_the_cpu(stack: Stack, fake_gpu: None) -> None:
    probe = MemoryHungryProbe(lambda context: context.device == "cpu")
    result = fuse(stack, probe, device="cuda", tile_size=1024)
    assert [a[2] for a in probe.attempts] == [1024, 512, 256, 128, 1024]
    assert [a[0] for a in probe.attempts] == ["cuda"] * 4 + ["cpu"]
    assert result.device == "cpu"
    assert "retrying on cpu" in result.notes[-1]


def test_memory_error_on_the_cpu_that_never_fits_is_raised(stack: Stack) -> None:
    probe = MemoryHungryProbe(lambda context: False)
    with pytest.raises(MemoryError):
        fuse(stack, probe, device="cpu", memory_limit=1024**3)
    assert len(probe.attempts) == 4  # as asked, then three smaller budgets; no other device


def test_other_errors_are_not_retried(stack: Stack) -> None:
    class Broken(MemoryHungryProbe):
        def analyze(self, stack: Stack, params: dict[str, Any], context: RunContext) -> ProgressGen[Analysis]:
            self.attempts.append((context.device, context.memory_limit, context.tile_size))
            raise ValueError("a bug, not a budget problem")
            yield  # pragma: no cover

    probe = Broken(lambda context: True)
    with pytest.raises(ValueError):
        fuse(stack, probe, device="cpu")
    assert len(probe.attempts) == 1


def test_fallback_plan_floors() -> None:
    assert fallback_attempts("cpu", 100 * 1024**2, None)[-1] == ("cpu", 64 * 1024**2, None)
    plan = fallback_attempts("cuda", None, 200)
    # One budget policy: the automatic budget is resolved once per device, never left to a method.
    assert all(isinstance(limit, int) and limit >= MINIMUM_MEMORY_LIMIT for _, limit, _ in plan)
    assert [(device, tile) for device, _, tile in plan[1:]] == [("cuda", 128), ("cuda", 128), ("cuda", 128),
                                                               ("cpu", 200)]

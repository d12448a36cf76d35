"""Dataset evaluation: fuse every scene of ``<root>/<scene>/1.*, 2.*, … [gt.*]`` and measure it.

Used by ``focusstudio eval`` and the benchmarks. Times are the fusion time per scene (the
pipeline's ``total``), without file decoding of the metrics pass.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from focusstudio.core.errors import InputError
from focusstudio.core.io.output_policy import OutputPlan
from focusstudio.core.progress import CancelToken, ProgressEvent, ProgressGen
from focusstudio.core.types import FusionResult


@dataclass
class SceneScore:
    scene: str
    frames: int
    seconds: float
    metrics: dict[str, float]


@dataclass
class EvaluationReport:
    dataset: str
    method: str
    params: dict[str, Any]
    weights: str | None
    device: str
    scenes: list[SceneScore] = field(default_factory=list)

    @property
    def metric_names(self) -> list[str]:
        names: list[str] = []
        for scene in self.scenes:
            names.extend(k for k in scene.metrics if k not in names)
        return names

    def means(self) -> dict[str, float]:
        result: dict[str, float] = {}
        for name in self.metric_names:
            values = [s.metrics[name] for s in self.scenes if name in s.metrics and math.isfinite(s.metrics[name])]
            result[name] = sum(values) / len(values) if values else float("nan")
        return result

    @property
    def mean_seconds(self) -> float:
        return sum(s.seconds for s in self.scenes) / max(len(self.scenes), 1)

    def write_csv(self, path: Path, *, overwrite: bool = False, protected: Sequence[str | Path] = ()) -> None:
        """Write :meth:`csv_text` through the output policy (an existing file only with ``overwrite``)."""
        from focusstudio.core.io.output_policy import publish_bytes

        publish_bytes(path, self.csv_text().encode("utf-8"), inputs=protected, force=overwrite,
                      role="the CSV report")

    def csv_text(self) -> str:
        """Per-scene metrics and times, then the means, as CSV."""
        names = self.metric_names
        lines: list[list[str]] = [["scene", "frames", "seconds", *names]]
        for s in self.scenes:
            values = (f"{s.metrics.get(n, float('nan')):.6f}" for n in names)
            lines.append([s.scene, str(s.frames), f"{s.seconds:.4f}", *values])
        means = self.means()
        lines.append(["mean", "", f"{self.mean_seconds:.4f}", *(f"{means[n]:.6f}" for n in names)])
        import io

        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(lines)
        return buffer.getvalue()

    def to_json(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "method": self.method,
            "params": self.params,
            "weights": self.weights,
            "device": self.device,
            "scenes": [
                {"scene": s.scene, "frames": s.frames, "seconds": s.seconds, "metrics": s.metrics}
                for s in self.scenes
            ],
            "mean": self.means(),
            "mean_seconds": self.mean_seconds,
        }


def evaluate_dataset(
    root: str | Path,
    method: str,
    params: Mapping[str, Any] | None = None,
    device: str = "auto",
    weights: str | Path | None = None,
    metrics: Sequence[str] | None = None,
    save_dir: str | Path | None = None,
    overwrite: bool = False,
    cancel: CancelToken | None = None,
    outputs: OutputPlan | None = None,
) -> ProgressGen[EvaluationReport]:
    """Fuse and measure every scene; with ``save_dir``, each result is written as
    ``<save_dir>/<scene>.png``. Those files are checked before the first scene is fused and
    published together at the end: with ``outputs`` (a run's plan, which the caller commits) or
    by a plan of this call (``overwrite`` allows replacing existing files)."""
    if outputs is None:
        with OutputPlan(force=overwrite) as own:
            report = yield from evaluate_dataset(root, method, params, device, weights, metrics, save_dir,
                                                 cancel=cancel, outputs=own)
            own.commit()
        return report
    from focusstudio.core.io import discover_dataset, load_stack, read_image, write_result
    from focusstudio.core.metrics import compute_metrics
    from focusstudio.core.pipeline import prepare, run_fusion

    cancel = cancel or CancelToken()
    scenes = discover_dataset(Path(root))
    if not scenes:
        raise InputError("no scenes found (expected <scene>/1.*, 2.*, ...)", root)
    outputs.protect(dataset_inputs(root, scenes))
    saved: dict[str, Path] = {}
    if save_dir is not None:
        folder = outputs.folder(save_dir, "the fused results")
        for scene in scenes:
            saved[scene.name] = outputs.file(folder / f"{scene.name}.png", f"the result of scene {scene.name}")
    instance, resolved = prepare(method, params, weights)
    report = EvaluationReport(str(root), instance.name, resolved, None, device)
    for index, scene in enumerate(scenes):
        cancel.raise_if_cancelled()
        yield ProgressEvent("fuse", index / len(scenes), scene.name)
        stack = load_stack([str(p) for p in scene.sources])
        result: FusionResult | None = None
        gen = run_fusion(stack, instance, resolved, device=device, cancel=cancel, weights=weights)
        while True:
            try:
                next(gen)
            except StopIteration as stop:
                result = stop.value
                break
        assert result is not None
        report.device = result.device
        report.weights = result.weights
        sources = [stack.load(i) for i in range(len(stack))]
        gt = read_image(scene.gt) if scene.gt is not None else None
        # Measure the image as it is written (8-bit results are rounded like the saved PNG).
        fused = result.as_dtype() if result.source_dtype != "float32" else result.image
        values = compute_metrics(fused, sources, gt=gt, metrics=metrics)
        report.scenes.append(SceneScore(scene.name, len(stack), result.timings["total"], values))
        if scene.name in saved:
            write_result(saved[scene.name], result, plan=outputs)
    yield ProgressEvent("done", 1.0)
    return report


def dataset_inputs(root: str | Path, scenes: Sequence[Any] | None = None) -> list[Path]:
    """The folders an evaluation reads (the data set and each scene): no output may replace a
    file in them (sources, ground truths, masks, notes)."""
    from focusstudio.core.io import discover_dataset

    found = discover_dataset(Path(root)) if scenes is None else scenes
    return [Path(root), *(scene.folder for scene in found)]


def format_report(report: EvaluationReport, keys: Sequence[str] | None = None) -> str:
    """A plain-text table: one row per scene, then the means."""
    names = list(keys) if keys else report.metric_names
    header = ["scene", *names, "time_s"]
    rows = [
        [s.scene, *(f"{s.metrics.get(n, float('nan')):.4f}" for n in names), f"{s.seconds:.3f}"]
        for s in report.scenes
    ]
    means = report.means()
    rows.append(["MEAN", *(f"{means.get(n, float('nan')):.4f}" for n in names), f"{report.mean_seconds:.3f}"])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.rjust(widths[i]) if i else cell.ljust(widths[i]) for i, cell in enumerate(row))
             for row in [header, *rows]]
    lines.insert(1, "-" * len(lines[0]))
    lines.insert(len(lines) - 1, "-" * len(lines[0]))
    title = f"{report.method} on {report.dataset} ({len(report.scenes)} scenes, device {report.device}"
    if report.weights:
        title += f", weights {report.weights}"
    return title + ")\n" + "\n".join(lines)

"""Shared helpers of the benchmarks: timing and peak memory of a command, the peers' set-up,
and quality metrics of a result.

Every command runs under GNU ``/usr/bin/time -v`` in its own process, so the peak resident set
size (RSS) is the command's own, with nothing of the benchmark driver in it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

GNU_TIME = "/usr/bin/time"
REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = REPO_ROOT.parent / "shared"


@dataclass
class Measurement:
    """Wall time and peak RSS of one command (plus its output, for JSON reports)."""

    label: str
    command: list[str]
    wall_seconds: float
    max_rss_bytes: int
    returncode: int
    stdout: str = ""
    stderr_tail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def max_rss_mib(self) -> float:
        return self.max_rss_bytes / 1024**2

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "command": " ".join(self.command),
            "wall_seconds": round(self.wall_seconds, 3),
            "max_rss_mib": round(self.max_rss_mib, 1),
            "returncode": self.returncode,
            **self.extra,
        }


def _wall_seconds(text: str) -> float:
    """GNU time's 'h:mm:ss' or 'm:ss.ss' → seconds."""
    parts = [float(p) for p in text.split(":")]
    seconds = 0.0
    for part in parts:
        seconds = seconds * 60 + part
    return seconds


def measure(label: str, command: Sequence[str], cwd: Path | None = None) -> Measurement:
    """Run ``command`` under ``/usr/bin/time -v`` and parse its wall time and maximum RSS."""
    if not Path(GNU_TIME).exists():
        raise SystemExit(f"{GNU_TIME} is missing: run 'apt-get install -y time' (or --setup)")
    completed = subprocess.run(
        [GNU_TIME, "-v", *command], cwd=cwd, capture_output=True, text=True, check=False
    )
    stderr = completed.stderr
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", stderr)
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", stderr)
    # GNU time's report ends stderr; what comes before it is the command's own stderr.
    own_stderr = stderr.split("\tCommand being timed:")[0]
    cpu = {key: float(found.group(1)) for key, pattern in (("user_seconds", r"User time \(seconds\): ([\d.]+)"),
                                                            ("system_seconds", r"System time \(seconds\): ([\d.]+)"))
           if (found := re.search(pattern, stderr))}
    return Measurement(
        label=label,
        command=list(command),
        wall_seconds=_wall_seconds(wall.group(1)) if wall else float("nan"),
        max_rss_bytes=int(rss.group(1)) * 1024 if rss else 0,
        returncode=completed.returncode,
        stdout=completed.stdout,
        stderr_tail=own_stderr[-2000:],
        extra=cpu,
    )


def combined(label: str, steps: Sequence[Measurement]) -> Measurement:
    """Several commands run one after another: times add up, the peak is the largest peak."""
    return Measurement(
        label=label,
        command=[" && ".join(" ".join(s.command) for s in steps)],
        wall_seconds=sum(s.wall_seconds for s in steps),
        max_rss_bytes=max((s.max_rss_bytes for s in steps), default=0),
        returncode=max((s.returncode for s in steps), default=0),
        stdout="".join(s.stdout for s in steps),
        stderr_tail="".join(s.stderr_tail for s in steps)[-2000:],
        extra={"steps": [s.to_json() for s in steps]},
    )


# ------------------------------------------------------------------------------------ peers
ENFUSE_PACKAGES = ("enfuse", "hugin-tools", "time")


def ensure_peer_tools(install: bool) -> bool:
    """True when enfuse and align_image_stack are available, installing them first if asked."""
    missing = [tool for tool in ("enfuse", "align_image_stack") if shutil.which(tool) is None]
    if not Path(GNU_TIME).exists():
        missing.append("time")
    if not missing:
        return True
    if not install:
        print(f"missing: {', '.join(missing)} (run with --setup to apt-get install {' '.join(ENFUSE_PACKAGES)})",
              file=sys.stderr)
        return False
    subprocess.run(["apt-get", "update"], check=True)
    subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", *ENFUSE_PACKAGES], check=True)
    return shutil.which("enfuse") is not None and shutil.which("align_image_stack") is not None


def enfuse_recipe(
    frames: Sequence[Path], workdir: Path, output: Path, align: bool = True, window: int = 5
) -> list[tuple[str, list[str]]]:
    """The issue's peer recipe: ``align_image_stack -m -a aligned_`` then enfuse with contrast
    weighting only, hard mask and a 5×5 contrast window."""
    steps: list[tuple[str, list[str]]] = []
    inputs = [str(f) for f in frames]
    if align:
        prefix = str(workdir / "aligned_")
        steps.append(("align_image_stack", ["align_image_stack", "-m", "-a", prefix, *inputs]))
        # align_image_stack writes aligned_0000.tif, aligned_0001.tif, ... in input order.
        inputs = [str(workdir / f"aligned_{i:04d}.tif") for i in range(len(frames))]
    steps.append(
        (
            "enfuse",
            [
                "enfuse",
                "--exposure-weight=0",
                "--saturation-weight=0",
                "--contrast-weight=1",
                "--hard-mask",
                f"--contrast-window-size={window}",
                "-o",
                str(output),
                *inputs,
            ],
        )
    )
    return steps


def run_enfuse(
    label: str, frames: Sequence[Path], workdir: Path, output: Path, align: bool = True
) -> tuple[Measurement, list[Path]]:
    """Run the recipe step by step; returns the combined measurement and the frames enfuse fused."""
    workdir.mkdir(parents=True, exist_ok=True)
    steps = []
    for step_label, command in enfuse_recipe(frames, workdir, output, align):
        step = measure(step_label, command)
        steps.append(step)
        if step.returncode != 0:
            break
    fused_frames = [workdir / f"aligned_{i:04d}.tif" for i in range(len(frames))] if align else list(frames)
    return combined(label, steps), fused_frames


def focusstudio_fuse_command(
    inputs: Sequence[Path], output: Path, method: str, extra: Sequence[str] = ()
) -> list[str]:
    return [
        sys.executable, "-m", "focusstudio", "fuse", *[str(p) for p in inputs], "-o", str(output),
        "--method", method, "--json", "--quiet", "--force", *extra,
    ]


def cli_supports(flag: str) -> bool:
    """Whether ``focusstudio fuse`` has ``flag`` (the CLI grows while the benchmarks are used)."""
    completed = subprocess.run(
        [sys.executable, "-m", "focusstudio", "fuse", "--help"], capture_output=True, text=True, check=False,
        cwd=REPO_ROOT,
    )
    return flag in completed.stdout


def run_focusstudio(
    label: str, inputs: Sequence[Path], output: Path, method: str, extra: Sequence[str] = ()
) -> Measurement:
    result = measure(label, focusstudio_fuse_command(inputs, output, method, extra), cwd=REPO_ROOT)
    for line in result.stdout.splitlines()[::-1]:
        if line.startswith("{"):
            try:
                report = json.loads(line)
            except json.JSONDecodeError:
                continue
            result.extra["reported_seconds"] = report.get("seconds")
            result.extra["dtype"] = report.get("dtype")
            result.extra["notes"] = report.get("notes")
            break
    return result


# ------------------------------------------------------------------------------------ metrics
def image_dtype(path: Path) -> str:
    """The sample type stored in an image file (uint8 / uint16 / float32), without decoding it all."""
    from focusstudio.core.io import probe_image

    return probe_image(path)[0].dtype


def downscale(image: np.ndarray, longest: int | None) -> np.ndarray:
    if longest is None or max(image.shape[:2]) <= longest:
        return image
    factor = longest / max(image.shape[:2])
    size = (max(1, round(image.shape[1] * factor)), max(1, round(image.shape[0] * factor)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def quality(
    fused_path: Path,
    sources: Sequence[np.ndarray | Path],
    gt: np.ndarray | Path | None = None,
    metrics: Sequence[str] = ("Qabf", "Qcb", "MI", "SF", "AG"),
    longest: int | None = 1024,
) -> dict[str, float]:
    """Metrics of a fused file against its sources (arrays or files, in the fused image's geometry),
    computed on copies downscaled to ≤ ``longest`` px (the N-source metrics on 24 MP would take
    longer than the fusion). Raises ValueError when a size differs."""
    from focusstudio.core.io import read_image
    from focusstudio.core.metrics import compute_metrics

    fused = read_image(fused_path)

    def checked_small(item: np.ndarray | Path) -> np.ndarray:
        # One source at a time at full size: 30 × 24 MP frames would not fit in memory together.
        image = read_image(item) if isinstance(item, Path) else item
        if image.shape[:2] != fused.shape[:2]:
            raise ValueError(f"size {image.shape[:2]} differs from the fused image's {fused.shape[:2]}")
        return downscale(image, longest)

    small_sources = [checked_small(s) for s in sources]
    small_truth = checked_small(gt) if gt is not None else None
    names = list(metrics) + (["PSNR", "SSIM"] if small_truth is not None else [])
    values = compute_metrics(downscale(fused, longest), small_sources, gt=small_truth, metrics=names)
    return {k: float(v) for k, v in values.items()}


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """A plain fixed-width text table."""
    text_rows = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in text_rows)) if text_rows else len(c) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines.extend("  ".join(cell.ljust(w) for cell, w in zip(r, widths)) for r in text_rows)
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)

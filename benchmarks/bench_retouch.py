"""Retouch stroke latency (issue 16): milliseconds per stroke segment at 1 MP and 24 MP.

A synthetic RGB 8-bit stack (textured frames, each with its own brightness so luminosity matching
has work to do) and a result equal to frame 0; strokes are painted from frame 1 and 2 with
several brush sizes, the mouse moving a quarter of the brush diameter between two segments (a
quick hand at 60 Hz), alternating with the eraser. Reported per image size and brush: median,
95th percentile and maximum milliseconds per segment (wall time, and the thread's CPU time, which
a shared machine's load inflates less) (``extend_stroke``: weights, luminosity
gain and recomposing the dirty rectangle), the mean time of ``end_stroke``, ``undo`` and
``redo``, and the one-off costs outside the strokes (loading a frame into the cache, the first
stroke's weight layers). The goal is ≤ 50 ms per segment at 24 MP.

With ``--gui`` the window's side is timed too: ``RetouchController.move`` per segment (model plus
redrawing the 256-px display tiles it touched), and that plus Qt's event processing (offscreen).

    python -m benchmarks.bench_retouch [--sizes 1000x1000,6000x4000] [--strokes 6] [--gui] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

import cv2
import numpy as np

from focusstudio.core.retouch import Brush, FrameCache, RetouchModel
from focusstudio.core.types import FrameInfo, Stack

BRUSHES = (40.0, 150.0, 400.0)


def synthetic_stack(width: int, height: int, frames: int = 3) -> Stack:
    """Frames decoded on demand (a 24 MP float32 frame is 288 MB): the same texture, brightness
    1.0, 1.08, 0.94, ... and blurred differently."""
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    infos = [FrameInfo(f"frame_{i}", height, width, 3, "uint8") for i in range(frames)]
    gains = [1.0, 1.08, 0.94, 1.03, 0.97][:frames]

    def load(info: FrameInfo) -> np.ndarray:
        index = infos.index(info)
        blurred = cv2.GaussianBlur(texture, (0, 0), 0.6 + 1.5 * index)
        return np.clip(blurred.astype(np.float32) * np.float32(gains[index] / 255.0 * 0.9), 0.0, 1.0)

    return Stack(infos, load)


def _path(width: int, height: int, brush: float, stroke: int) -> list[tuple[float, float]]:
    """A wavy horizontal stroke across the middle third, one point every brush/4 pixels."""
    step = brush / 4.0
    x0, x1 = width * 0.3, width * 0.7
    y = height * (0.3 + 0.4 * ((stroke * 0.37) % 1.0))
    count = max(int((x1 - x0) / step), 2)
    amplitude = min(height * 0.05, 3 * brush)
    return [(x0 + k * step, y + amplitude * math.sin(k * step / (4 * brush))) for k in range(count)]


def bench(width: int, height: int, strokes: int) -> dict[str, object]:
    stack = synthetic_stack(width, height)
    started = time.perf_counter()
    base = stack.load(0)
    cache = FrameCache.of_stack(stack)
    model = RetouchModel(base, cache, stack.names)
    timings: dict[str, object] = {"size": f"{width}x{height}", "megapixels": round(width * height / 1e6, 1)}
    timings["load_result_s"] = round(time.perf_counter() - started, 3)
    started = time.perf_counter()
    for index in (1, 2):
        model.prepare_frame(index)
    timings["cache_two_frames_s"] = round(time.perf_counter() - started, 3)
    started = time.perf_counter()
    model.begin_stroke(1, Brush(10.0), 1.0, 1.0)
    model.end_stroke()
    model.undo()
    timings["first_stroke_layers_s"] = round(time.perf_counter() - started, 3)
    per_brush: dict[str, dict[str, float]] = {}
    for size in BRUSHES:
        segments: list[float] = []
        cpu: list[float] = []
        ends: list[float] = []
        for stroke in range(strokes):
            frame = None if stroke % 3 == 2 else 1 + stroke % 2
            points = _path(width, height, size, stroke)
            model.begin_stroke(frame, Brush(size, 0.5, 0.9), *points[0])
            for point in points[1:]:
                tick, cpu_tick = time.perf_counter(), time.thread_time()
                model.extend_stroke(*point)
                segments.append(time.perf_counter() - tick)
                cpu.append(time.thread_time() - cpu_tick)
            tick = time.perf_counter()
            model.end_stroke()
            ends.append(time.perf_counter() - tick)
        undo, redo = [], []
        for _ in range(strokes):
            tick = time.perf_counter()
            model.undo()
            undo.append(time.perf_counter() - tick)
        for _ in range(strokes):
            tick = time.perf_counter()
            model.redo()
            redo.append(time.perf_counter() - tick)
        ms = np.array(segments) * 1000.0
        per_brush[f"{size:g}px"] = {
            "segments": len(segments),
            "median_ms": round(float(np.median(ms)), 2),
            "p95_ms": round(float(np.percentile(ms, 95)), 2),
            "max_ms": round(float(ms.max()), 2),
            # CPU time of this thread: what the segment costs without the other processes'
            # share of the cores (the machine the numbers come from may be busy).
            "cpu_median_ms": round(float(np.median(cpu)) * 1000.0, 2),
            "cpu_p95_ms": round(float(np.percentile(cpu, 95)) * 1000.0, 2),
            "end_stroke_ms": round(float(np.mean(ends)) * 1000.0, 2),
            "undo_ms": round(float(np.mean(undo)) * 1000.0, 2),
            "redo_ms": round(float(np.mean(redo)) * 1000.0, 2),
        }
    timings["brushes"] = per_brush
    return timings


def bench_gui(width: int, height: int, strokes: int) -> dict[str, object]:
    """The window's side: ``RetouchController.move`` per segment (the model plus redrawing the
    display tiles), then the same with Qt's event processing (the scene repainted offscreen)."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    from focusstudio.gui.retouch import RetouchController
    from focusstudio.gui.viewer import ImagePane

    app = QApplication.instance() or QApplication([])
    stack = synthetic_stack(width, height)
    base = stack.load(0)
    pane = ImagePane()
    pane.resize(1200, 800)
    pane.show()
    pane.show_image((base * 255).astype(np.uint8))
    controller = RetouchController(pane)
    controller.set_model(RetouchModel(base, FrameCache.of_stack(stack), stack.names))
    for index in (1, 2):
        controller.model.prepare_frame(index)  # type: ignore[union-attr]
    controller.set_active(True)
    report: dict[str, object] = {"size": f"{width}x{height}"}
    for size in BRUSHES[1:]:
        controller.set_brush(size=size, hardness=0.5, opacity=0.9)
        for events in (False, True):
            times: list[float] = []
            for stroke in range(strokes):
                controller.set_frame(None if stroke % 3 == 2 else 1 + stroke % 2)
                points = _path(width, height, size, stroke)
                controller.press(*points[0])
                for point in points[1:]:
                    tick = time.perf_counter()
                    controller.move(*point)
                    if events:
                        app.processEvents()
                    times.append(time.perf_counter() - tick)
                controller.release()
            ms = np.array(times) * 1000.0
            key = f"{size:g}px{' +repaint' if events else ''}"
            report[key] = {"median_ms": round(float(np.median(ms)), 2),
                           "p95_ms": round(float(np.percentile(ms, 95)), 2)}
    pane.close()
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000x1000,6000x4000", help="comma-separated WIDTHxHEIGHT")
    parser.add_argument("--strokes", type=int, default=6, help="strokes per brush size")
    parser.add_argument("--gui", action="store_true", help="also time the window's controller (PySide6)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    reports = []
    for text in args.sizes.split(","):
        width, height = (int(v) for v in text.lower().split("x"))
        reports.append(bench(width, height, args.strokes))
        if args.gui:
            reports[-1]["gui"] = bench_gui(width, height, args.strokes)
    if args.json:
        print(json.dumps({"load_average": os.getloadavg(), "runs": reports}, indent=2))
        return
    print(f"load average before/after: {os.getloadavg()[0]:.1f} (the machine may be shared)")
    for report in reports:
        print(f"{report['size']} ({report['megapixels']} MP): caching 2 frames {report['cache_two_frames_s']} s, "
              f"first stroke's layers {report['first_stroke_layers_s']} s")
        for brush, row in report["brushes"].items():  # type: ignore[union-attr]
            print(f"  brush {brush:>6}: {row['segments']:4d} segments, median {row['median_ms']:6.2f} ms, "
                  f"p95 {row['p95_ms']:6.2f} ms, max {row['max_ms']:6.2f} ms (CPU median {row['cpu_median_ms']:.2f}, "
                  f"p95 {row['cpu_p95_ms']:.2f} ms); "
                  f"end_stroke {row['end_stroke_ms']:.2f} ms, "
                  f"undo {row['undo_ms']:.2f} ms, redo {row['redo_ms']:.2f} ms")
        for key, row in report.get("gui", {}).items():  # type: ignore[union-attr]
            if key != "size":
                print(f"  window, brush {key}: median {row['median_ms']:.2f} ms, p95 {row['p95_ms']:.2f} ms per move")


if __name__ == "__main__":
    main()

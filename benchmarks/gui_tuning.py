"""Live tuning and start-up of the FocusStudio window (issue 19), run through ``benchmarks.gui_latency``:

    QT_QPA_PLATFORM=offscreen python -m benchmarks.gui_latency --tuning [--tuning-methods sf,gff] [--repeats 4]
    QT_QPA_PLATFORM=offscreen python -m benchmarks.gui_latency --postprocessing-cpu [--tuning-methods sf,gff]
    python -m benchmarks.gui_latency --startup 3

Methods: any of ``LIVE_CHANGES`` (the classical ones and the deep methods' post-processing: sesf,
gacn, mfifgan, twostream; a deep fusion takes minutes of CPU here, then the updates are timed);
``--big-size none`` leaves out the 24 MP result.

``--tuning``: after a full fusion of the 6-frame 1521×1141 macro stack (``shared/stacks/macro_object_6``)
and of a 2-frame synthetic 6000×4000 (24 MP) stack, a post-processing parameter changes
``--repeats`` times; each change is timed to the first update on screen (a viewport-resolution
preview where the window makes one) and to its full-resolution result on screen.
``--postprocessing-cpu``: the CPU time of one update at full resolution and at a viewport's
(813×724 device pixels, the offscreen window's image view). ``--startup``: the real entry point
(``focusstudio gui``) in a fresh process, timed to its first painted window and to the main window's.

Not a test: numbers depend on the machine and its load.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.gui_latency import _process_events_until, _wait, make_window


def synthetic_stack(width: int, height: int, frames: int) -> Any:
    """An in-memory colour stack of ``frames`` frames (each sharp in one band of columns): a result
    of ``width``×``height`` without writing and decoding huge files."""
    import numpy as np

    from focusstudio.core.types import Stack

    rng = np.random.default_rng(0)
    texture = rng.random((height // 8 + 1, width // 8 + 1, 3), dtype=np.float32)
    sharp = np.repeat(np.repeat(texture, 8, axis=0), 8, axis=1)[:height, :width]
    import cv2

    blurred = cv2.GaussianBlur(sharp, (0, 0), 4.0)
    arrays = []
    for index in range(frames):
        frame = blurred.copy()
        band = slice(index * width // frames, (index + 1) * width // frames)
        frame[:, band] = sharp[:, band]
        arrays.append(frame)
    return Stack.from_arrays(arrays, [f"synthetic_{index}" for index in range(frames)])


#: Post-processing values each method's live benchmark alternates between (a slider being dragged).
LIVE_CHANGES: dict[str, list[dict[str, Any]]] = {
    "sf": [{"gf_radius": 5 + 2 * k, "morphology_radius": 3 + k % 3} for k in range(4)],
    "gff": [{"base_gf_radius": 30 + 5 * k, "detail_gf_radius": 7 + k} for k in range(4)],
    "laplacian": [{"use_consistency": True, "consistency_radius": 1 + k} for k in range(4)],
    # The deep methods' post-processing (their networks' analysis is kept):
    "sesf": [{"gf_radius": 3 + k, "morphology_radius": 4 + k % 3} for k in range(4)],
    "gacn": [{"gf_radius": 2 + k, "bgf_upper": 0.75 + 0.02 * k} for k in range(4)],
    "mfifgan": [{"threshold": 0.4 + 0.05 * k} for k in range(4)],
    "twostream": [{"threshold": 0.4 + 0.05 * k} for k in range(4)],
}


def measure_live_on(load: Any, method: str, repeats: int, scratch: Path) -> dict[str, Any]:
    """Fuse what ``load(window)`` opens with ``method``, then change its post-processing ``repeats``
    times: the time from each change to the first update on screen (``first``: a reduced-resolution
    one where the window makes one) and to the full-resolution result being final (``final``)."""
    window = make_window(scratch)
    window.select_method(method)
    window.set_alignment_mode("off")
    load(window)
    _wait(window.stackLoaded, 600, window.jobFailed)
    window.fuse()
    _wait(window.resultReady, 1800, window.jobFailed)
    first: list[float] = []
    first_cpu: list[float] = []  # CPU of the whole process (all threads) from the change to the first update
    final: list[float] = []
    finish: list[float] = []
    ready: list[float] = []  # when each result finished showing (resultReady: the last step)
    window.resultReady.connect(lambda _slot: ready.append(time.perf_counter()))
    changes = LIVE_CHANGES[method]
    for step in range(repeats):
        before, shown = window.results["A"], len(ready)
        changed, changed_cpu = time.perf_counter(), time.process_time()
        # Every change is a real change of the post-processing.
        window.param_form.set_values(changes[step % len(changes)])
        first.append(float(_wait(window.liveUpdated, 600, window.jobFailed)[0]))
        first_cpu.append((time.process_time() - changed_cpu) * 1000.0)
        # Final: the full-resolution result of this change is on screen and nothing is pending.
        _process_events_until(
            lambda before=before, shown=shown: len(ready) > shown and _live_final(window, before), 1800)
        final.append((ready[-1] - changed) * 1000.0)
        finish.append(window.results["A"].result.timings.get("finish", 0.0) * 1000.0)
        assert window.results["A"].reused_analysis
    shape = window.results["A"].result.image.shape
    window.close()
    return {
        "method": method,
        "result": f"{shape[1]}x{shape[0]} ({shape[0] * shape[1] / 1e6:.1f} MP)",
        "updates": repeats,
        "first_ms": [round(value, 1) for value in first],
        "first_cpu_ms": [round(value) for value in first_cpu],
        "final_ms": [round(value) for value in final],
        "median_first_ms": round(statistics.median(first), 1),
        "max_first_ms": round(max(first), 1),
        "median_first_cpu_ms": round(statistics.median(first_cpu), 1),
        "median_final_ms": round(statistics.median(final), 1),
        "median_full_postprocessing_ms": round(statistics.median(finish), 1),
        "load_average": round(os.getloadavg()[0], 1),
    }


def _live_final(window: Any, before: Any) -> bool:
    """The full-resolution result of the last change is in the workspace and nothing is pending."""
    fusion = getattr(window, "fusion", None)  # the controller (the code before the split: the window)
    timer = fusion.live_timer if fusion is not None else window._live_timer
    return bool(window.results["A"] is not before and not window.fusion_runner.busy and not timer.isActive()
                and not getattr(fusion, "pending_full", False))


def measure_live_stacks(repeats: int, methods: list[str], scratch: Path,
                        big: tuple[int, int] | None) -> dict[str, Any]:
    """Live tuning on the 6-frame 1.7 MP macro stack (when /work/shared is there) and a 24 MP
    result (``big`` None: not); deep methods (minutes per fusion on a few cores) change twice."""
    report: dict[str, Any] = {}
    macro = Path(__file__).resolve().parents[2] / "shared" / "stacks" / "macro_object_6"
    if macro.is_dir():
        paths = [str(path) for path in sorted(macro.glob("frame_*"))]
        for method in methods:
            deep = method in ("sesf", "gacn", "mfifgan", "twostream")
            report[f"macro_object_6 {method}"] = measure_live_on(lambda w: w.open_paths(paths), method,
                                                                 min(repeats, 2) if deep else repeats, scratch)
            print(json.dumps({f"macro_object_6 {method}": report[f"macro_object_6 {method}"]}), flush=True)
    if big is None:
        return report
    stack = synthetic_stack(big[0], big[1], 2)

    def load_big(window: Any) -> None:
        from PySide6.QtCore import QTimer

        # load_stack_object is synchronous: signal stackLoaded once _wait listens.
        window.load_stack_object(stack)
        QTimer.singleShot(0, window.stackLoaded.emit)

    report["synthetic 24 MP sf"] = measure_live_on(load_big, "sf", max(2, repeats // 2), scratch)
    print(json.dumps({"synthetic 24 MP sf": report["synthetic 24 MP sf"]}), flush=True)
    return report


def measure_draft(method: str, align: str, scratch: Path) -> dict[str, Any]:
    """Fuse the macro stack (alignment ``align``): seconds from Fuse to the first image of the
    result on screen (a quick draft where the window makes one) and to the full result."""
    macro = Path(__file__).resolve().parents[2] / "shared" / "stacks" / "macro_object_6"
    if not macro.is_dir():
        return {}
    window = make_window(scratch)
    window.select_method(method)
    window.set_alignment_mode(align)
    window.open_paths([str(path) for path in sorted(macro.glob("frame_*"))])
    _wait(window.stackLoaded, 600, window.jobFailed)
    drafts: list[float] = []
    draft_signal = getattr(getattr(window, "fusion", None), "draftShown", None)  # absent before issue 19
    if draft_signal is not None:
        draft_signal.connect(lambda _slot: drafts.append(time.perf_counter()))
    started = time.perf_counter()
    window.fuse()
    _wait(window.resultReady, 1800, window.jobFailed)
    done = time.perf_counter()
    window.close()
    first = drafts[0] if drafts else done
    return {"method": method, "align": align, "first_image_s": round(first - started, 2),
            "full_result_s": round(done - started, 2), "load_average": round(os.getloadavg()[0], 1)}


def measure_postprocessing_cpu(methods: list[str], view: tuple[int, int], runs: int) -> dict[str, Any]:
    """The CPU cost of one post-processing update (all threads of this process, so a loaded
    machine inflates it far less than the wall time): at full resolution, as every update cost
    before, and at the resolution of a ``view`` viewport, as a preview during a drag costs now
    ("not reducible": the tree has no preview for this method's analysis, every update is a full
    one). Deep methods (minutes of CPU per fusion here) are updated once per resolution."""
    from focusstudio.core.io import load_stack
    from focusstudio.core.live_proxy import NotReducible, make_proxy, proxy_shape, scale_params
    from focusstudio.core.methods.registry import get_method
    from focusstudio.core.pipeline import run_fusion
    from focusstudio.core.progress import run_to_completion

    macro = Path(__file__).resolve().parents[2] / "shared" / "stacks" / "macro_object_6"
    if not macro.is_dir():
        return {}
    stack = load_stack(sorted(macro.glob("frame_*")))
    report: dict[str, Any] = {}
    for method in methods:
        spec = get_method(method).params
        started, started_cpu = time.perf_counter(), time.process_time()
        fused = run_to_completion(run_fusion(stack, method, device="cpu"))
        row: dict[str, Any] = {"fusion_wall_s": round(time.perf_counter() - started, 1),
                               "fusion_cpu_s": round(time.process_time() - started_cpu, 1)}
        shape = proxy_shape(stack.shape, view)
        assert shape is not None and fused.analysis is not None
        changed = spec.resolve(LIVE_CHANGES[method][1])
        cases = [("full", stack, fused.analysis, changed)]
        try:
            started_cpu = time.process_time()
            proxy = make_proxy(fused.analysis, stack, shape)
            row["shrink_cpu_ms"] = round((time.process_time() - started_cpu) * 1000, 1)
            row["proxy"] = f"{shape[1]}x{shape[0]}"
            cases.append(("preview", proxy.stack, proxy.analysis, scale_params(changed, spec, proxy.scale)))
        except NotReducible as error:
            row["proxy"] = f"not reducible ({error})"
        repeat = 1 if get_method(method).family != "classical" else runs
        for label, frames, analysis, params in cases:
            cpu: list[float] = []
            wall: list[float] = []
            for _ in range(repeat):
                started, started_cpu = time.perf_counter(), time.process_time()
                run_to_completion(run_fusion(frames, method, params, device="cpu", analysis=analysis))
                wall.append(time.perf_counter() - started)
                cpu.append(time.process_time() - started_cpu)
            row[f"{label}_cpu_ms"] = round(statistics.median(cpu) * 1000, 1)
            row[f"{label}_wall_ms"] = round(statistics.median(wall) * 1000, 1)
        row["load_average"] = round(os.getloadavg()[0], 1)
        report[f"macro_object_6 {method}"] = row
        print(json.dumps({f"cpu macro_object_6 {method}": row}), flush=True)
    return report


def measure_startup(runs: int) -> dict[str, Any]:
    """Start the window through its real entry point (``focusstudio.cli.main(["gui"])``) in a fresh
    process, ``runs`` times, with a fresh settings folder: seconds from the process start to the
    imports of the entry point, the first paint of a window, the main window's first paint."""
    import subprocess

    samples: list[dict[str, float]] = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as home:
            env = dict(os.environ, HOME=home, XDG_CONFIG_HOME=home, QT_QPA_PLATFORM="offscreen")
            started = time.time()
            child = subprocess.run([sys.executable, "-m", "benchmarks.gui_latency", "--startup-child"],
                                   capture_output=True, text=True, timeout=120, env=env)
            lines = [line for line in child.stdout.splitlines() if line.startswith("{")]
            if child.returncode != 0 or not lines:
                raise RuntimeError(f"the start-up child failed: {child.stderr.strip()[-800:]}")
            marks = json.loads(lines[-1])
            samples.append({key: round(value - started, 3) for key, value in marks.items()})
    keys = samples[0].keys()
    return {"runs": runs, "median_s": {key: statistics.median(sample[key] for sample in samples) for key in keys},
            "samples": samples}


def startup_child() -> int:
    """Run the app's own entry point and quit at the window's first paint; prints time stamps."""
    marks: dict[str, float] = {"interpreter": time.time()}
    from PySide6.QtCore import QEvent, QObject, QTimer
    from PySide6.QtWidgets import QApplication, QMainWindow, QWidget

    app = QApplication([sys.argv[0]])

    class FirstPaint(QObject):
        def eventFilter(self, watched: QObject, event: QEvent) -> bool:
            if event.type() != QEvent.Type.Paint or not isinstance(watched, QWidget) or not watched.isWindow():
                return False
            # "paint": the first window on screen (the start-up frame, where there is one);
            # "window": the main window itself.
            marks.setdefault("paint", time.time())
            if isinstance(watched, QMainWindow) and "window" not in marks:
                marks["window"] = time.time()
                QTimer.singleShot(0, app.quit)
            return False

    painted = FirstPaint()
    app.installEventFilter(painted)
    import focusstudio.gui.app as app_module
    from focusstudio.cli import main as cli_main

    marks["imports"] = time.time()

    def report(code: int) -> None:
        marks["exit"] = time.time()
        print(json.dumps(marks), flush=True)
        os._exit(code)

    app_module.exit_now = report  # type: ignore[assignment]
    QTimer.singleShot(60_000, app.quit)  # never hang a benchmark
    return cli_main(["gui"])

"""The ``focusstudio`` command line, built on the same core as the GUI.

Bad input exits with code 2 and one line on stderr (no traceback unless ``--debug``).
Method parameters are never hard-coded here: ``--set KEY=VALUE`` is parsed and validated by the
method's own declarations, and ``focusstudio methods`` lists them.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from focusstudio import __version__
from focusstudio.core.errors import FocusStudioError
from focusstudio.core.progress import Cancelled, ProgressEvent, ProgressLine, run_to_completion

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


class _Progress(ProgressLine):
    """The stage of a long command on one line of stderr (only when stderr is a terminal)."""

    def __call__(self, event: ProgressEvent) -> None:
        self.show(event.fraction, event.stage)

    def close(self) -> None:
        self.clear()


def _drive(gen: Any, progress: _Progress) -> Any:
    try:
        return run_to_completion(gen, progress)
    finally:
        progress.close()


# ----------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="focusstudio",
        description="Multi-focus image fusion (focus stacking): fuse, inspect, evaluate, train.",
    )
    parser.add_argument("--version", action="version", version=f"focusstudio {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    fuse = sub.add_parser("fuse", help="fuse two or more frames (or a folder) into one image")
    fuse.add_argument("inputs", nargs="+", metavar="INPUT", help="two or more image files, or one folder")
    fuse.add_argument("-o", "--output", required=True, help="output image (.png, .tif/.tiff, .jpg, .dng: linear DNG)")
    fuse.add_argument("--bits", type=int, choices=(8, 16), help="bits per channel of the output (default: the "
                      "frames'; 16 from 8-bit frames keeps the fusion's finer levels; JPEG is 8-bit only)")
    fuse.add_argument("--strip-metadata", action="store_true", help="leave out the GPS position, the camera's "
                      "MakerNote and owner/serial numbers (the reference frame's other EXIF is kept)")
    _add_method_arguments(fuse)
    fuse.add_argument("--maps", metavar="DIR", help="also write the method's explanation maps as PNGs "
                      "(plus lost_blocks: where the result is blurred against the sharpest frame)")
    fuse.add_argument("--force", action="store_true", help="overwrite an existing output")
    fuse.add_argument("--retouch", metavar="FILE", help="repaint the retouch strokes of FILE (a result's "
                      "sidecar .json or a retouch file saved by the window) over the result")
    fuse.add_argument("--alignment", metavar="FILE", help="apply this saved registration instead of registering "
                      "the frames (--save-alignment, alignment.json of --maps, or a result's sidecar; one rig's "
                      "registration serves many stacks)")
    fuse.add_argument("--save-alignment", metavar="FILE", help="also write the registration as JSON, for "
                      "--alignment on other stacks of the same rig")
    fuse.add_argument("--json", action="store_true", help="print one JSON object describing the run")
    fuse.add_argument("--align-check", action="store_true", help="after aligning, report how well the reference "
                      "and the frame the registration moved most overlap, as loaded and aligned (the window's "
                      "flicker check)")
    fuse.add_argument("--quiet", action="store_true", help="no progress display")
    _add_stack_arguments(fuse)

    methods = sub.add_parser("methods", help="list every method, its parameters and whether it can run")
    methods.add_argument("--json", action="store_true")

    metrics = sub.add_parser("metrics", help="quality metrics of a fused image against its sources")
    metrics.add_argument("fused", help="the fused image")
    metrics.add_argument("sources", nargs="+", metavar="SOURCE", help="the source frames (two or more)")
    metrics.add_argument("--gt", help="an all-in-focus ground truth (adds PSNR and SSIM)")
    metrics.add_argument("--metrics", help="comma-separated metric keys (default: the standard set)")
    metrics.add_argument("--register", action="store_true",
                         help="register every source to the fused image first (results made elsewhere, "
                         "e.g. enfuse; sources are then measured grey); only the area every source "
                         "covers counts for Recall/Lost")
    metrics.add_argument("--align-set", dest="align_assignments", action="append", default=[],
                         metavar="KEY=VALUE", help="with --register: an alignment setting (repeatable)")
    metrics.add_argument("--json", action="store_true")
    _add_pixel_limit_argument(metrics)

    evaluate = sub.add_parser("eval", help="fuse every scene of a dataset and report metric means")
    evaluate.add_argument("dataset", metavar="DATASET_DIR", help="folder of <scene>/1.*, 2.*, ... [gt.*]")
    _add_method_arguments(evaluate)
    evaluate.add_argument("--csv", metavar="FILE", help="write per-scene metrics and times as CSV")
    evaluate.add_argument("--save-dir", metavar="DIR", help="write each fused result as DIR/<scene>.png")
    evaluate.add_argument("--metrics", help="comma-separated metric keys (default: the standard set)")
    evaluate.add_argument("--json", action="store_true", help="print the summary as JSON")
    evaluate.add_argument("--force", action="store_true", help="replace an existing CSV or saved result")

    batch = sub.add_parser("batch", help="fuse many stacks (folders, a manifest or a name pattern), here or on Dask")
    _add_method_arguments(batch)
    _add_stack_arguments(batch)
    from focusstudio.core.batch.command import add_batch_arguments

    add_batch_arguments(batch)
    _add_pixel_limit_argument(evaluate)

    demo = sub.add_parser("demo", help="fuse the bundled sample stack")
    demo.add_argument("-o", "--output", default="focusstudio-demo.png", help="where to write the result")
    demo.add_argument("--method", default="sf", help="fusion method (default: sf)")
    demo.add_argument("--force", action="store_true", help="overwrite an existing output")

    train = sub.add_parser("train", help="train a method's network on your own images")
    try:
        from focusstudio.training_cli import add_train_arguments
    except ImportError:  # training engine not installed in this build
        add_train_arguments = None
    if add_train_arguments is not None:
        add_train_arguments(train)

    selftest = sub.add_parser("self-test", help="fuse the sample stack with every runnable method and check")
    selftest.add_argument("--method", action="append", help="only these methods (repeatable)")

    gui = sub.add_parser("gui", help="open the FocusStudio window (optionally with files or a folder)")
    gui.add_argument("paths", nargs="*", metavar="PATH")
    gui.add_argument("-m", "--method", help="choose this method in the window")
    gui.add_argument("--overlay", metavar="MAPNAME", help="with --screenshot: the map overlaid on the result")
    gui.add_argument(
        "--screenshot",
        metavar="OUT.png",
        help="open PATH, fuse through the real worker, save a screenshot of the window and exit",
    )
    return parser


def _add_method_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-m", "--method", default="sf", help="fusion method (see 'focusstudio methods')")
    parser.add_argument(
        "--set",
        dest="assignments",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a method parameter (repeatable; 'focusstudio methods' lists them)",
    )
    parser.add_argument("--weights", metavar="PATH|NAME",
                        help="run the method with this checkpoint, or installed weights by name "
                        "('focusstudio methods' lists them)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    from focusstudio.core.ops.params import ANALYSIS_SCALE

    # a method parameter with a flag of its own: read back as --set analysis_scale=SCALE (main)
    parser.add_argument("--analysis-scale", metavar="SCALE",
                        help=f"deep decision-map methods (sesf, gacn, mfifgan, twostream): {ANALYSIS_SCALE.help} "
                        f"(default: {ANALYSIS_SCALE.default}; same as --set analysis_scale=SCALE)")


def _add_stack_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--align",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="register the frames before fusing (default: on for 3 or more frames)",
    )
    from focusstudio.core.align import add_align_arguments

    add_align_arguments(parser)  # --reference, --align-model, --crop and --align-set, from ALIGN_PARAMS
    parser.add_argument(
        "--memory-limit",
        metavar="SIZE",
        help="working-memory budget, e.g. 4G or 512M (default: a safe fraction of free memory)",
    )
    parser.add_argument("--tile-size", type=int, metavar="PX", help="force tiles of this edge length")
    _add_pixel_limit_argument(parser)


def _add_pixel_limit_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--max-pixels",
        metavar="N",
        help="refuse frames larger than this many pixels, e.g. 400M (default: 250M; guards "
        "against decompression bombs; also FOCUSSTUDIO_MAX_PIXELS)",
    )


def parse_size(text: str | None) -> int | None:
    """'4G', '512M', '1.5g', '1000000' → bytes."""
    if text is None:
        return None
    units = {"k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
    value = text.strip().lower().removesuffix("b").removesuffix("i")
    factor = 1
    if value and value[-1] in units:
        factor = units[value[-1]]
        value = value[:-1]
    try:
        size = float(value) * factor
    except ValueError:
        raise FocusStudioError(f"--memory-limit: cannot read size {text!r} (use e.g. 4G or 512M)") from None
    if not math.isfinite(size):  # 'inf', 'nan', '1e400'
        raise FocusStudioError(f"--memory-limit must be a finite size such as 4G, got {text!r}")
    if size < 1:
        raise FocusStudioError(f"--memory-limit must be positive, got {text!r}")
    return int(size)


# ----------------------------------------------------------------------------- commands
def _method_params(method_name: str, assignments: Sequence[str]) -> tuple[Any, dict[str, Any]]:
    from focusstudio.core.methods.registry import get_method

    method = get_method(method_name)
    return method, method.params.parse_assignments(assignments)


def cmd_fuse(args: argparse.Namespace) -> int:
    from focusstudio.core.io import OutputPlan, load_stack

    method, params = _method_params(args.method, args.assignments)
    if args.tile_size is not None and args.tile_size < 1:
        raise FocusStudioError(f"--tile-size must be at least 1 pixel, got {args.tile_size}")
    memory_limit = parse_size(args.memory_limit)
    stack = load_stack(args.inputs)
    from focusstudio.core.io.metadata import collect_metadata

    # Damaged EXIF or colour profiles, or frames in different colour spaces, are refused now.
    metadata_notes: list[str] = []
    metadata = collect_metadata(stack.frames, args.reference, strip=args.strip_metadata, notes=metadata_notes)
    args.retouch_document = _read_retouch(args.retouch, len(stack))  # a bad file stops before the work
    args.saved_alignment = _read_alignment(args, stack)  # so does a registration that does not fit
    # Every output is checked before spending minutes on the fusion, and all are published
    # together at the end: a run that fails or is stopped leaves nothing new.
    inputs = [*args.inputs, *(f.path for f in stack.frames), args.retouch, args.alignment]
    with OutputPlan(inputs, force=args.force) as outputs:
        _plan_fuse_outputs(outputs, args, method, len(stack))
        # A --memory-limit too small for this stack is refused now, not after the alignment.
        from focusstudio.core.pipeline import memory_budget

        memory_budget(stack, method, memory_limit, "cuda" if args.device == "cuda" else "cpu")
        return _fuse(args, method, params, stack, outputs, memory_limit, metadata, metadata_notes)


def _fuse(
    args: argparse.Namespace, method: Any, params: dict[str, Any], stack: Any, outputs: Any, memory_limit: int | None,
    metadata: Any = None, notes: list[str] | None = None,
) -> int:
    from focusstudio.core.align import alignment_text
    from focusstudio.core.io import write_maps, write_result
    from focusstudio.core.pipeline import run_pipeline

    output = Path(args.output)
    progress = _Progress(enabled=not args.quiet and not args.json)
    run = _drive(
        run_pipeline(
            stack,
            method,
            params,
            align=_align_request(args, len(stack)),
            align_share=None,  # the progress line shows the alignment, then the fusion
            device=args.device,
            weights=args.weights,
            memory_limit=memory_limit,
            tile_size=args.tile_size,
            quality_maps=bool(args.maps),  # the written maps include lost_blocks (sharpness recall)
        ),
        progress,
    )
    loaded = stack
    result, stack, alignment = run.result, run.stack, run.alignment
    if getattr(args, "retouch_document", None) is not None:
        from focusstudio.core.retouch import apply_retouch

        result = apply_retouch(result, stack, args.retouch_document, args.retouch)
    write_start = time.perf_counter()
    notes = list(notes or [])
    dtype = {8: "uint8", 16: "uint16"}.get(args.bits) if args.bits else None
    written = write_result(output, result, plan=outputs, dtype=dtype, metadata=metadata, notes=notes)
    maps_written: list[str] = []
    if args.maps:
        maps_written = [str(p) for p in write_maps(Path(args.maps), result, plan=outputs)]
    if alignment is not None and args.maps:
        target = Path(args.maps) / "alignment.json"
        outputs.write_text(target, alignment_text(alignment), "the alignment report")
        maps_written.append(str(target))
    if alignment is not None and args.save_alignment:
        outputs.write_text(Path(args.save_alignment), alignment_text(alignment), "the saved registration")
    outputs.commit()
    timings = dict(result.timings)
    if alignment is not None:
        timings["align"] = run.align_seconds
    timings["write"] = time.perf_counter() - write_start
    check = _align_check(loaded, stack, alignment) if args.align_check and alignment is not None else None
    for note in [*result.notes, *notes]:
        print(f"note: {note}", file=sys.stderr)
    if check is not None and not args.json:
        print(f"alignment check: {check.describe()}")
    if args.json:
        print(
            json.dumps(
                {
                    "method": result.method,
                    "params": result.params,
                    "output": str(written),
                    "device": result.device,
                    "weights": result.weights,
                    "frames": len(stack),
                    "size": list(stack.shape),
                    "dtype": result.source_dtype,
                    "seconds": timings,
                    "maps": maps_written,
                    "notes": [*result.notes, *notes],
                    **({"alignment_check": dataclasses.asdict(check)} if check is not None else {}),
                }
            )
        )
    else:
        print(f"wrote {written} ({result.method}, {len(stack)} frames, {timings['total']:.2f} s)")
    return EXIT_OK


def _align_check(loaded: Any, aligned: Any, alignment: Any) -> Any:
    """:func:`focusstudio.core.align_check.check_pair` of the reference and the frame the
    registration moved most (None when fewer than two frames registered)."""
    from focusstudio.core.align_check import check_pair, most_moved

    positions = {kept: position for position, kept in enumerate(alignment.included)}
    other = most_moved(alignment)
    if alignment.reference not in positions or other is None:
        return None
    return check_pair(loaded, aligned, (alignment.reference, positions[alignment.reference]),
                      (other, positions[other]))


def _read_retouch(path: str | None, frames: int) -> Any:
    """The strokes of ``--retouch FILE`` (None without it), checked against the stack's frame count."""
    if path is None:
        return None
    from focusstudio.core.retouch import read_retouch_file

    document = read_retouch_file(path)
    document.check_stack(frames, path)
    return document


def _read_alignment(args: argparse.Namespace, stack: Any) -> Any:
    """The registration of ``--alignment FILE`` (None without it), checked against the stack's
    frame count and size; ``--no-align`` with either alignment file is a contradiction."""
    if args.align is False and (args.alignment or args.save_alignment):
        flag = "--alignment" if args.alignment else "--save-alignment"
        raise FocusStudioError(f"{flag} needs the alignment stage: leave out --no-align")
    if not args.alignment:
        return None
    from focusstudio.core.align import load_alignment_for

    return load_alignment_for(args.alignment, stack)


def _plan_fuse_outputs(outputs: Any, args: argparse.Namespace, method: Any, frames: int) -> None:
    """Declare (and so check) the fused image, the maps the method will write and alignment.json."""
    from focusstudio.core.io import expected_map_files, output_format

    output_format(args.output)
    if args.maps:
        folder = outputs.folder(args.maps, "the maps")
    outputs.file(args.output, "the fused image")
    if args.maps:
        for name in expected_map_files(method.map_names, frames):
            outputs.file(folder / name, f"the map {name}")
        if _aligns(args, frames):
            outputs.file(folder / "alignment.json", "the alignment report")
    if args.save_alignment:
        outputs.file(args.save_alignment, "the saved registration")


def _aligns(args: argparse.Namespace, frames: int) -> bool:
    """Whether ``fuse`` runs the alignment stage: asked for (an alignment file implies it), else
    on by default for 3+ frames."""
    from focusstudio.core.align import align_by_default

    if args.align is not None:
        return bool(args.align)
    return bool(args.alignment or args.save_alignment) or align_by_default(frames)


def _align_request(args: argparse.Namespace, frames: int) -> Any:
    """The alignment stage's request: on by default for 3+ frames, settings from its flags."""
    from focusstudio.core.align import AlignRequest, align_settings_from_args

    if not _aligns(args, frames):
        return None
    # A saved registration is applied as it is: only the post settings (crop, interpolation) matter.
    return AlignRequest(align_settings_from_args(args), getattr(args, "saved_alignment", None))


def cmd_methods(args: argparse.Namespace) -> int:
    from focusstudio.core.methods.registry import get_method, list_methods
    from focusstudio.core.weights import list_installed_weights

    installed = list_installed_weights()
    entries = []
    for name in list_methods():
        method = get_method(name)
        available, reason = method.availability()
        entries.append(
            {
                "name": name,
                "title": method.title,
                "family": method.family,
                "description": method.description,
                "available": available,
                "reason": reason,
                "weights": method.weights_label(),
                "installed_weights": [
                    {"name": w.name, "source": w.source, "path": str(w.path), "summary": w.summary}
                    for w in installed if w.method == name
                ],
                "decodes_directly": method.decodes_directly,
                "maps": list(method.map_names),
                "params": [spec.to_json() for spec in method.params],
            }
        )
    if args.json:
        print(json.dumps(entries, indent=2))
        return EXIT_OK
    for entry in entries:
        state = "ready" if entry["available"] else f"unavailable: {entry['reason']}"
        print(f"{entry['name']:<10} {entry['title']} [{entry['family']}; {state}]")
        print(f"           {entry['description']}")
        if entry["installed_weights"]:
            names = ", ".join(f"{w['name']} ({w['source']})" for w in entry["installed_weights"])
            print(f"           weights (--weights NAME): {names}")
        settings = [f"--set {spec['name']}={spec['default']!s}" for spec in entry["params"]]
        width = max((len(setting) for setting in settings), default=0)
        for setting, spec in zip(settings, entry["params"]):
            bounds = ""
            if "choices" in spec:
                bounds = " {" + ",".join(spec["choices"]) + "}"
            elif "min" in spec or "max" in spec:
                bounds = f" [{spec.get('min', '')}..{spec.get('max', '')}]"
            print(f"             {setting:<{width}}  {spec['type']}{bounds}: {spec['help']}")
    return EXIT_OK


def _metric_list(text: str | None) -> list[str] | None:
    return [m.strip() for m in text.split(",") if m.strip()] if text else None


def cmd_metrics(args: argparse.Namespace) -> int:
    from focusstudio.core.io import read_image
    from focusstudio.core.metrics import compute_metrics

    if len(args.sources) < 2:
        raise FocusStudioError("metrics needs at least 2 source images")
    fused = read_image(args.fused)
    sources = [read_image(p) for p in args.sources]
    gt = read_image(args.gt) if args.gt else None
    valid = None
    if args.register:
        import numpy as np

        from focusstudio.core.align import ALIGN_PARAMS
        from focusstudio.core.metrics.recall import register_frames

        settings = ALIGN_PARAMS.parse_assignments(args.align_assignments)
        registered = list(register_frames(fused, sources, settings))
        sources = [frame for frame, _ in registered]
        valid = np.logical_and.reduce([coverage for _, coverage in registered])
    values = compute_metrics(
        fused, sources, gt=gt, metrics=_metric_list(args.metrics), valid=valid,
        labels=(args.fused, list(args.sources), args.gt),
    )
    if args.json:
        print(json.dumps(values))
    else:
        for key, value in values.items():
            print(f"{key:<10} {value:.4f}")
    return EXIT_OK


def cmd_eval(args: argparse.Namespace) -> int:
    from focusstudio.core.evaluation import dataset_inputs, evaluate_dataset, format_report
    from focusstudio.core.io.output_policy import OutputPlan

    method, params = _method_params(args.method, args.assignments)
    with OutputPlan(dataset_inputs(args.dataset), force=args.force) as outputs:
        csv_path = outputs.file(args.csv, "the CSV report") if args.csv else None
        report = _drive(
            evaluate_dataset(
                args.dataset,
                method.name,
                params,
                device=args.device,
                weights=args.weights,
                metrics=_metric_list(args.metrics),
                save_dir=args.save_dir,
                outputs=outputs,
            ),
            _Progress(enabled=not args.json),
        )
        if csv_path is not None:
            outputs.write_text(csv_path, report.csv_text(), "the CSV report")
        outputs.commit()
    if args.json:
        print(json.dumps(report.to_json()))
    else:
        print(format_report(report))
    return EXIT_OK


def cmd_batch(args: argparse.Namespace) -> int:
    from focusstudio.core.batch.command import run_batch_command

    return run_batch_command(args, parse_size(args.memory_limit))


def cmd_demo(args: argparse.Namespace) -> int:
    from focusstudio.core.io import check_output_path, load_stack, write_result
    from focusstudio.core.pipeline import run_fusion
    from focusstudio.resources import sample_stack_dir

    folder = sample_stack_dir()
    stack = load_stack([str(folder)])
    protected = [folder, *(f.path for f in stack.frames)]
    check_output_path(args.output, overwrite=args.force, protected=protected)  # before the work
    result = _drive(run_fusion(stack, args.method), _Progress(enabled=True))
    written = write_result(Path(args.output), result, overwrite=args.force, protected=protected)
    print(
        f"fused the sample stack ({len(stack)} frames from {folder}) with '{result.method}' "
        f"in {result.timings['total']:.2f} s: result written to {written.resolve()}"
    )
    return EXIT_OK


def cmd_train(args: argparse.Namespace) -> int:
    from focusstudio.training_cli import run_train

    return run_train(args)


def cmd_gui(args: argparse.Namespace) -> int:
    try:
        from focusstudio.gui.app import main as gui_main
    except ImportError as error:
        raise FocusStudioError(
            f"the window needs the GUI extra (pip install 'focusstudio[gui]'): {error}"
        ) from None
    return gui_main(list(args.paths), method=args.method, overlay=args.overlay, screenshot=args.screenshot)


def cmd_self_test(args: argparse.Namespace) -> int:
    from focusstudio.selftest import run_self_test

    return run_self_test(methods=args.method)


COMMANDS = {
    "fuse": cmd_fuse,
    "methods": cmd_methods,
    "metrics": cmd_metrics,
    "eval": cmd_eval,
    "batch": cmd_batch,
    "demo": cmd_demo,
    "train": cmd_train,
    "gui": cmd_gui,
    "self-test": cmd_self_test,
}


def main(argv: Sequence[str] | None = None) -> int:
    from focusstudio.core.runtime import tune_process

    tune_process()  # before torch loads: the allocator settings must precede its first tensors
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "analysis_scale", None) is not None:  # validated with the method's parameters
        args.assignments.append(f"analysis_scale={args.analysis_scale}")
    if args.command is None:
        parser.print_help()
        return EXIT_BAD_INPUT
    from focusstudio.core.signals import Terminated, exit_on_signals

    # SIGTERM and SIGHUP clean up like Ctrl+C: temporary files and this run's outputs go. Not for
    # the window: Qt's event loop would hold the Python handler back and SIGTERM would not stop it.
    signals = exit_on_signals() if args.command != "gui" else contextlib.nullcontext()
    try:
        if getattr(args, "max_pixels", None) is not None:
            from focusstudio.core.io.guards import parse_pixel_count, set_max_pixels

            set_max_pixels(parse_pixel_count(args.max_pixels))
        with signals:
            return COMMANDS[args.command](args)
    except Terminated as stop:
        print(f"focusstudio: stopped by {stop.signame}; nothing was written", file=sys.stderr)
        return 128 + stop.signum
    except FocusStudioError as error:
        if args.debug:
            raise
        print(f"focusstudio: error: {error}", file=sys.stderr)
        return error.exit_code
    except Cancelled:
        print("focusstudio: cancelled", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("focusstudio: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        if args.debug:
            raise
        print(
            "focusstudio: error: out of memory; try --memory-limit with a smaller value or --tile-size",
            file=sys.stderr,
        )
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())

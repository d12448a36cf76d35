"""``focusstudio batch ROOT -o OUTDIR``: the batch-specific options and the command itself.

The method and alignment options are the ``fuse`` command's (added by :mod:`focusstudio.cli`).
Exit status: 0 when every stack was fused or skipped as complete and current, 1 when at least one
stack failed (each is named with its reason on stderr and in the report), 2 for a bad batch-level
input (ROOT, manifest, template, options), 130 on Ctrl-C. Re-running the same command after a
failure or an interruption fuses only what is missing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from focusstudio.core.batch.engine import REPORT_NAME, BatchReport, StackDone, StackStarted, run_batch
from focusstudio.core.batch.runner import DEFAULT_TEMPLATE, BatchSettings
from focusstudio.core.batch.sources import discover_stacks
from focusstudio.core.errors import FocusStudioError
from focusstudio.core.progress import ProgressEvent, ProgressLine, run_to_completion

__all__ = ["add_batch_arguments", "run_batch_command"]


def add_batch_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "root", metavar="ROOT",
        help="a folder of stack folders, a .csv/.json manifest, or a name pattern such as 'scans/pos{P}_z{Z}.tif'",
    )
    parser.add_argument("-o", "--output-dir", required=True, metavar="OUTDIR", help="folder for results and report")
    parser.add_argument("--template", default=DEFAULT_TEMPLATE,
                        help="output file name: {stack}, {method}, {index} (default: %(default)s)")
    parser.add_argument("--alignment", metavar="FILE",
                        help="re-use this saved registration for every stack (alignment.json of 'fuse --maps', "
                             "or a result's sidecar) instead of registering each one")
    parser.add_argument("--force", action="store_true",
                        help="replace existing outputs (also ones not written by a batch or made otherwise)")
    parser.add_argument("--workers", type=int, default=1, metavar="N",
                        help="fuse N stacks at once in worker processes, the memory budget split between them")
    parser.add_argument("--dask", action="store_true", help="run on a local Dask cluster of --workers processes")
    parser.add_argument("--scheduler", metavar="ADDRESS", help="run on the Dask cluster at ADDRESS (tcp://host:8786)")
    parser.add_argument("--split-tiles", type=int, metavar="PX",
                        help="on Dask: fan each stack's analysis out as tiles of PX pixels (huge frames; sf)")
    parser.add_argument("--retries", type=int, default=2, metavar="N",
                        help="on Dask: re-run a stack up to N times when its worker fails (default: 2)")
    parser.add_argument("--metrics", nargs="?", const="", metavar="KEYS",
                        help="measure every result (comma-separated keys; no value: the standard set)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress display")


class _Display(ProgressLine):
    """Two-level progress on stderr (stacks done, and the current stack's stage), terminals only;
    each failed stack named on its own line."""

    def __init__(self, enabled: bool) -> None:
        super().__init__(enabled, bar_width=24, line_width=100)

    def __call__(self, event: ProgressEvent) -> None:
        if isinstance(event, StackDone) and event.outcome is not None and event.outcome.status == "failed":
            self.clear()
            print(f"failed: {event.outcome.name}: {event.outcome.reason}", file=sys.stderr)
        if not isinstance(event, StackStarted):
            self.show(event.fraction, event.message)


def settings_from_args(args: argparse.Namespace, memory_limit: int | None) -> BatchSettings:
    from focusstudio.core.align import align_settings_from_args
    from focusstudio.core.methods.registry import get_method

    method = get_method(args.method)
    align_settings = align_settings_from_args(args)
    alignment_file = Path(args.alignment) if args.alignment else None
    if alignment_file is not None:
        from focusstudio.core.align import load_alignment

        load_alignment(alignment_file)  # a bad file is a batch-level error, before any work
    metrics = None
    if args.metrics is not None:
        metrics = tuple(key.strip() for key in args.metrics.split(",") if key.strip())
    return BatchSettings(
        output_dir=Path(args.output_dir),
        method=method.name,
        params=method.params.parse_assignments(args.assignments),
        align=args.align,
        align_settings=align_settings,
        alignment_file=alignment_file,
        template=args.template,
        device=args.device,
        weights=args.weights,
        memory_limit=memory_limit,
        tile_size=args.tile_size,
        force=args.force,
        metrics=metrics,
    )


def run_batch_command(args: argparse.Namespace, memory_limit: int | None) -> int:
    if args.workers < 1:
        raise FocusStudioError(f"--workers must be at least 1, got {args.workers}")
    if args.split_tiles is not None and not (args.dask or args.scheduler):
        raise FocusStudioError("--split-tiles fans tiles out to a Dask cluster: add --dask or --scheduler")
    settings = settings_from_args(args, memory_limit)
    specs = discover_stacks(args.root)
    display = _Display(enabled=not args.quiet and not args.json)
    generator = run_batch(
        specs, settings, workers=args.workers, root=str(args.root), scheduler=args.scheduler, use_dask=args.dask,
        split_tiles=args.split_tiles, retries=args.retries,
    )
    try:
        report: BatchReport = run_to_completion(generator, display)
    finally:
        display.clear()
    if args.json:
        print(json.dumps(report.to_json()))
    else:
        print(f"{report.summary()}; report: {settings.output_dir / (REPORT_NAME + '.json')}")
    return 1 if report.failed else 0

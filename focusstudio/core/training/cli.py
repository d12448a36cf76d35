"""Argument wiring of ``focusstudio train`` (the lead's CLI calls these two functions).

    add_train_arguments(subparser)      # once, when building the parser
    return run_train(namespace)         # exit code: 0 done, 2 bad input, 130 cancelled (Ctrl-C)

Progress goes to stderr as one text line per ``--log-every`` steps, plus validation, checkpoint
and export lines. SIGINT/SIGTERM/SIGHUP cancel cleanly: a checkpoint is written and its path printed, so
``--resume`` continues the run. The outputs (weights, manifest, checkpoint) are checked by the
output policy before the data is loaded; an existing weights file is replaced only with ``--force``
(or when it is the resumed run's own earlier export).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, TextIO

from focusstudio.core.device import DEVICE_CHOICES
from focusstudio.core.errors import FocusStudioError, InputError
from focusstudio.core.lazy import lazy_import
from focusstudio.core.methods.registry import trainable_methods
from focusstudio.core.progress import CancelToken

if TYPE_CHECKING:
    from focusstudio.core.training.trainer import TrainEvent, TrainResult

# The trainer and recipes import torch: loaded when ``train`` runs, not when the CLI parser is
# built (every ``focusstudio`` command builds it).
recipe_module = lazy_import("focusstudio.core.training.recipe")
trainer_module = lazy_import("focusstudio.core.training.trainer")

#: The methods with a training recipe: those whose spec in the method registry names one (no torch).
TRAINABLE_METHODS = tuple(trainable_methods())


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``train`` options to ``parser`` (a sub-command parser)."""
    parser.add_argument("--method", help=f"trainable method: {', '.join(TRAINABLE_METHODS)}")
    parser.add_argument("--data", help="folder of sharp images (or a corpus with images/, masks/), "
                        "or of <scene>/1.*, 2.*, gt.* pairs")
    parser.add_argument("--out", help="weights file to write (e.g. weights/gacn.pt); its manifest entry "
                        "goes to manifest.json next to it unless --manifest")
    parser.add_argument("--manifest", help="manifest file to update (default: <out folder>/manifest.json)")
    parser.add_argument("--masks", help="folder of focus masks matched to the images by file name")
    parser.add_argument("--segs", help="folder of label maps (random subsets of regions become masks)")
    parser.add_argument("--run-dir", help="folder for the checkpoint (default: user data folder)")
    parser.add_argument("--resume", metavar="CKPT", help="continue from a checkpoint file or run folder")
    parser.add_argument("--init-weights", metavar="PATH|NAME",
                        help="fine-tune: start from these weights (a file or installed weights' name)")
    parser.add_argument("--data-format", choices=("auto", "images", "pairs"),
                        help="pairs: --data holds real <scene>/1.*, 2.*, gt.* (and mask.*) pairs")
    parser.add_argument("--steps", type=int, help="total optimisation steps (method default otherwise)")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--crop", type=int, help="training crop size in pixels")
    parser.add_argument("--resize", type=int, help="resize every image to N×N before cropping (0: keep size)")
    parser.add_argument("--lr", type=float, help="initial learning rate")
    parser.add_argument("--lr-schedule", help='JSON, e.g. \'{"kind": "epoch_step", "gamma": 0.8, "every": 2}\'')
    parser.add_argument("--seed", type=int)
    parser.add_argument("--device", choices=DEVICE_CHOICES)
    parser.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    parser.add_argument("--val-fraction", type=float, help="share of images held out for validation")
    parser.add_argument("--val-every", type=int, help="validate every N steps")
    parser.add_argument("--val-samples", type=int, help="size of the fixed validation set")
    parser.add_argument("--checkpoint-every", type=int, help="also checkpoint every N steps")
    parser.add_argument("--checkpoint-interval", type=float, help="checkpoint at least every S seconds")
    parser.add_argument("--export-every", type=int, help="export the best weights every N steps")
    parser.add_argument("--log-every", type=int, help="print a progress line every N steps")
    parser.add_argument("--synthesis", help="JSON overrides of the synthesis recipe")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="method option (JSON value), e.g. ssim_weight=3")
    parser.add_argument("--preview", metavar="PNG", help="write a grid of synthesized samples and exit")
    parser.add_argument("--force", action="store_true", help="replace an existing weights file (or preview)")


def _json_arg(text: str | None, name: str) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise InputError(f"--{name} is not valid JSON ({error.msg})") from error


def _options(pairs: list[str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InputError(f"--option expects KEY=VALUE, got {pair!r}")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    values: dict[str, Any] = {
        "out": args.out, "manifest": args.manifest, "masks": args.masks, "segs": args.segs,
        "run_dir": args.run_dir, "steps": args.steps, "batch_size": args.batch_size, "crop": args.crop,
        "resize": args.resize, "lr": args.lr,  # 0 = keep the size (make_config)
        "lr_schedule": _json_arg(args.lr_schedule, "lr-schedule"), "seed": args.seed, "device": args.device,
        "val_fraction": args.val_fraction, "val_every": args.val_every, "val_samples": args.val_samples,
        "checkpoint_every": args.checkpoint_every, "checkpoint_interval_s": args.checkpoint_interval,
        "export_every": args.export_every, "log_every": args.log_every,
        "synthesis": _json_arg(args.synthesis, "synthesis"), "options": _options(args.option) or None,
        "init_weights": getattr(args, "init_weights", None), "data_format": getattr(args, "data_format", None),
    }
    return {key: value for key, value in values.items() if value is not None}


def format_event(event: TrainEvent) -> str:
    """One human-readable progress line."""
    losses = " ".join(f"{key}={value:.4g}" for key, value in event.losses.items())
    eta = f" eta {_duration(event.eta_s)}" if event.eta_s is not None else ""
    speed = f" {event.seconds_per_step:.2f}s/step" if event.seconds_per_step else ""
    head = f"[{event.phase}] step {event.step}/{event.total_steps}"
    if event.phase == "train":
        return f"{head} lr={event.lr:.3g} {losses}{speed}{eta}"
    if event.phase == "validate" and event.val:
        metrics = " ".join(f"{k}={v:.4g}" for k, v in event.val.items() if k != "step")
        return f"{head} val {metrics}" + (f" ({event.message})" if event.message else "")
    tail = " ".join(part for part in (event.message, event.path or "") if part)
    return f"{head} {tail}".rstrip()


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"


def _install_signal_handlers(cancel: CancelToken) -> Callable[[], None]:
    previous: dict[int, Any] = {}

    def handler(signum: int, frame: FrameType | None) -> None:
        cancel.cancel()

    for signum in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if signum is None:
            continue
        with contextlib.suppress(ValueError):  # not in the main thread: no handlers
            previous[signum] = signal.signal(signum, handler)

    def restore() -> None:
        for signum, old in previous.items():
            signal.signal(signum, old)

    return restore


def run_train(args: argparse.Namespace, stream: TextIO | None = None) -> int:
    """Run ``focusstudio train``; returns the exit code."""
    out = stream or sys.stderr
    try:
        return _run(args, out)
    except FocusStudioError as error:
        print(f"error: {error}", file=out)
        return error.exit_code


def _run(args: argparse.Namespace, out: TextIO) -> int:
    if args.threads is not None:
        if args.threads < 1:
            raise InputError(f"--threads must be ≥ 1, got {args.threads}")
        import torch

        # The user's explicit choice: e.g. one thread per run when several share a machine.
        torch.set_num_threads(args.threads)
    overrides = _overrides(args)
    cancel = CancelToken()
    if args.resume:
        generator = trainer_module.resume(args.resume, cancel=cancel, overrides=overrides,
                                          overwrite_out=bool(getattr(args, "force", False)))
    else:
        if not args.method or not args.data:
            raise InputError("train needs --method and --data (or --resume CKPT)")
        recipe = recipe_module.get_recipe(args.method)
        if not Path(args.data).is_dir():
            raise InputError("training data folder not found", args.data)
        config = trainer_module.make_config(args.method, args.data, **overrides)
        if args.preview:
            return _preview(recipe.name, config, Path(args.preview), out, bool(getattr(args, "force", False)))
        if not config.out:
            raise InputError("train needs --out FILE for the weights")
        generator = trainer_module.train(recipe, config, cancel=cancel,
                                         overwrite_out=bool(getattr(args, "force", False)))
    restore = _install_signal_handlers(cancel)
    log_every = max(1, int(overrides.get("log_every", 10)))
    try:
        while True:
            try:
                event = next(generator)
            except StopIteration as stop:
                result: TrainResult = stop.value
                break
            if event.phase != "train" or event.step % log_every == 0 or event.step == 1:
                print(format_event(event), file=out, flush=True)
    finally:
        restore()
    if result.status == "cancelled":
        print(f"cancelled at step {result.step}; resume with --resume {result.checkpoint}", file=out)
        return 130
    if result.weights is not None:
        print(f"weights: {result.weights} (sha256 {result.manifest_entry and result.manifest_entry['sha256']})",
              file=out)
    return 0


def _preview(method: str, config: Any, path: Path, out: TextIO, force: bool = False) -> int:
    from focusstudio.core.io import check_output_path
    from focusstudio.core.training.synthesis import ImageSource, PairSynthesizer, scan_image_folder

    inputs = [config.data, config.masks, config.segs]
    check_output_path(path, overwrite=force, protected=_files_under(inputs))  # before the synthesis
    recipe = recipe_module.get_recipe(method)
    if recipe.data_kind == "pairs":
        raise InputError(f"{method} trains on real pairs; there is nothing to synthesize")
    records = scan_image_folder(config.data, config.masks, config.segs, config.min_background_sharpness_ratio)
    source = ImageSource(records, grey=recipe.grey, resize=config.resize)
    synthesis = recipe.synthesis(config)
    if synthesis.mode == "none":
        synthesis = recipe.validation_synthesis(config)
    PairSynthesizer(source, synthesis, config.seed).save_preview(path, 8, overwrite=force,
                                                                 protected=_files_under(inputs))
    print(f"preview: {path}", file=out)
    return 0


def _files_under(folders: list[str | None]) -> list[Path]:
    """Every image in the training data folders (inputs no output may replace)."""
    from focusstudio.core.io.output_policy import OutputPlan
    from focusstudio.core.training.trainer import is_training_input

    plan = OutputPlan()
    plan.protect(folders, recursive=True, only=is_training_input)
    return [path for path in plan.input_paths if not path.is_dir()]

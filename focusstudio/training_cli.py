"""``focusstudio train``: its flags (generated from the ``TrainSpec``) and running it from a terminal.

    add_train_arguments(subparser)      # once, when building the parser (focusstudio/cli.py)
    return run_train(namespace)         # exit code: 0 done, 2 bad input, 130 cancelled (Ctrl-C)

Every training setting's flag, type, choices and help come from
:data:`~focusstudio.core.training.settings.TRAIN_SPEC`; only the flags about this process
(``--resume``, ``--threads``, ``--preview``, ``--force``) are declared here.

Progress goes to stderr as one text line per ``--log-every`` steps, plus validation, checkpoint
and export lines. SIGINT/SIGTERM/SIGHUP cancel cleanly: a checkpoint is written and its path
printed, so ``--resume`` continues the run. The outputs (weights, manifest, checkpoint) are checked
by the output policy before the data is loaded; an existing weights file is replaced only with
``--force`` (or when it is the resumed run's own earlier export).
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

from focusstudio.core.errors import FocusStudioError, InputError
from focusstudio.core.lazy import lazy_import
from focusstudio.core.progress import CancelToken
from focusstudio.core.training.settings import GROUP_TITLES, TRAIN_SPEC, TrainSetting

if TYPE_CHECKING:
    from focusstudio.core.training.config import TrainConfig
    from focusstudio.core.training.events import TrainEvent, TrainResult

# The trainer and recipes import torch: loaded when ``train`` runs, not when the CLI parser is
# built (every ``focusstudio`` command builds it).
recipe_module = lazy_import("focusstudio.core.training.recipe")
trainer_module = lazy_import("focusstudio.core.training.trainer")

_TYPES: dict[str, type] = {"int": int, "float": float}


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``train`` options to ``parser`` (a sub-command parser)."""
    run = parser.add_argument_group("run")
    run.add_argument("--resume", metavar="CKPT", help="continue from a checkpoint file or run folder")
    run.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    run.add_argument("--preview", metavar="PNG", help="write a grid of synthesized samples and exit")
    run.add_argument("--force", action="store_true", help="replace an existing weights file (or preview)")
    groups = {name: parser.add_argument_group(title) for name, title in GROUP_TITLES.items()}
    for setting in TRAIN_SPEC:
        if setting.cli_flag:
            _add_flag(groups[setting.group], setting)


def _add_flag(group: argparse._ArgumentGroup, setting: TrainSetting) -> None:
    # Every default is None: "not given" (the method's default, or the resumed run's value).
    options: dict[str, Any] = {"dest": setting.name, "help": setting.help}
    if setting.metavar:
        options["metavar"] = setting.metavar
    if setting.kind in _TYPES:
        options["type"] = _TYPES[setting.kind]
    elif setting.kind == "choice":
        options["choices"] = setting.choices
    elif setting.kind == "options":
        options.update(action="append", default=[])
    group.add_argument(setting.cli_flag, **options)


def _json_arg(text: str | None, flag: str) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise InputError(f"{flag} is not valid JSON ({error.msg})") from error


def _options(pairs: list[str], flag: str) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InputError(f"{flag} expects KEY=VALUE, got {pair!r}")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given on the command line (``resize=0`` = keep the size, see make_config)."""
    values: dict[str, Any] = {}
    for setting in TRAIN_SPEC:
        if not setting.cli_flag or setting.name in ("method", "data"):
            continue  # method and data are arguments of make_config, not overrides
        value = getattr(args, setting.name, None)
        if setting.kind == "json":
            value = _json_arg(value, setting.cli_flag)
        elif setting.kind == "options":
            value = _options(value or [], setting.cli_flag) or None
        if value is not None:
            values[setting.name] = value
    return values


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
    force = bool(getattr(args, "force", False))
    if args.resume:
        generator = trainer_module.resume(args.resume, cancel=cancel, overrides=overrides, overwrite_out=force)
    else:
        if not args.method or not args.data:
            raise InputError("train needs --method and --data (or --resume CKPT)")
        recipe = recipe_module.get_recipe(args.method)
        if not Path(args.data).is_dir():
            raise InputError("training data folder not found", args.data)
        config = trainer_module.make_config(args.method, args.data, **overrides)
        if args.preview:
            return _preview(recipe.name, config, Path(args.preview), out, force)
        if not config.out:
            raise InputError("train needs --out FILE for the weights")
        generator = trainer_module.train(recipe, config, cancel=cancel, overwrite_out=force)
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


def _preview(method: str, config: TrainConfig, path: Path, out: TextIO, force: bool = False) -> int:
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
    from focusstudio.core.training.outputs import is_training_input

    plan = OutputPlan()
    plan.protect(folders, recursive=True, only=is_training_input)
    return [path for path in plan.input_paths if not path.is_dir()]

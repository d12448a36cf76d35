"""Training settings declared once (the ``TrainSpec``): every setting of a training run with its
type, default, range or choices, help, group and front-end hints.

Everything that shows or checks a training setting reads these declarations: the defaults of
:class:`~focusstudio.core.training.config.TrainConfig`, the flags of ``focusstudio train``
(:mod:`focusstudio.training_cli`), the per-field validation of :func:`validate_config
<focusstudio.core.training.config.validate_config>`, which settings a resumed run may change, and
the training wizard's fields (as :class:`~focusstudio.core.params.ParamSpec`, so the generic
:class:`ParamForm` edits them). This module imports neither torch nor the recipes: the CLI parser
is built from it on every ``focusstudio`` command.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from focusstudio.core.device import DEVICE_CHOICES
from focusstudio.core.errors import InputError
from focusstudio.core.params import ParamSpec, ParamStage

#: ``path``: a file or folder name (or installed weights' name); ``json``: a JSON object given as
#: text on the command line; ``options``: ``KEY=VALUE`` pairs (JSON values) collected in a dict;
#: ``pair``: two floats (not a flag).
SettingKind = Literal["int", "float", "choice", "path", "json", "options", "pair"]
SettingGroup = Literal["data", "outputs", "optimisation", "validation", "checkpoints"]

#: Titles of the groups, in the order the CLI help lists them.
GROUP_TITLES: dict[str, str] = {
    "data": "training data",
    "outputs": "outputs",
    "optimisation": "optimisation",
    "validation": "validation",
    "checkpoints": "checkpoints and progress",
}

DATA_FORMATS = ("auto", "images", "pairs")


def trainable_method_names() -> tuple[str, ...]:
    """The methods with a training recipe, without importing torch (the CLI's help lists them):
    those whose spec in the method registry names one."""
    from focusstudio.core.methods.registry import trainable_methods

    return tuple(trainable_methods())


@dataclass(frozen=True)
class TrainSetting:
    """Declaration of one training setting (a field of ``TrainConfig``)."""

    name: str
    kind: SettingKind
    default: Any
    help: str
    group: SettingGroup
    minimum: float | None = None
    maximum: float | None = None
    #: Open ends: ``lr`` must be > 0, ``val_fraction`` < 1.
    minimum_open: bool = False
    maximum_open: bool = False
    choices: tuple[str, ...] = ()
    #: The method's recipe gives the default (``RecipeDefaults`` has a field of this name);
    #: ``default`` is then only what a bare ``TrainConfig(...)`` holds.
    per_method: bool = False
    #: A resumed run may change it without breaking exact continuation.
    resumable: bool = False
    #: ``focusstudio train`` flag (``--name-with-dashes`` unless given); "" = no flag.
    flag: str | None = None
    metavar: str | None = None
    #: Wizard hints: its title, the widget's bounds where they are narrower than what the trainer
    #: accepts (a slider needs finite ends), step, log scale, and the form group (``analysis``:
    #: what is trained; ``post``: machine, validation and checkpoints).
    title: str = ""
    form_minimum: float | None = None
    form_maximum: float | None = None
    step: float | None = None
    log_scale: bool = False
    form_stage: ParamStage = "analysis"
    #: The setting in error messages when its name reads badly there (``learning rate``).
    words: str = ""

    def __post_init__(self) -> None:
        if self.kind == "choice" and not self.choices:
            raise ValueError(f"choice setting {self.name!r} needs choices")
        if self.default is not None:
            self.check(self.default)  # a default that fails its own checks would fail every run

    @property
    def cli_flag(self) -> str:
        """The command-line flag ("" when the setting has none)."""
        if self.flag is not None:
            return self.flag
        return "--" + self.name.replace("_", "-")

    @property
    def label(self) -> str:
        """The setting in an error message: ``batch size``."""
        return self.words or self.name.replace("_", " ")

    def check(self, value: Any) -> None:
        """InputError (one line) when ``value`` is outside the declared range or choices."""
        if value is None or self.kind not in ("int", "float", "choice"):
            return
        if self.kind == "choice":
            if value not in self.choices:
                raise InputError(f"{self.label} must be one of {', '.join(self.choices)}, got {value!r}")
            return
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise InputError(f"{self.label} must be a finite number, got {value!r}")
        low, high = self.minimum, self.maximum
        below = low is not None and (value <= low if self.minimum_open else value < low)
        above = high is not None and (value >= high if self.maximum_open else value > high)
        if below or above:
            raise InputError(f"{self.label} must be {self.describe_range()}, got {value}")

    def describe_range(self) -> str:
        low, high = _number(self.minimum), _number(self.maximum)
        if low and high:
            return f"in {'(' if self.minimum_open else '['}{low}, {high}{')' if self.maximum_open else ']'}"
        if low:
            return f"{'>' if self.minimum_open else '≥'} {low}"
        if high:
            return f"{'<' if self.maximum_open else '≤'} {high}"
        return "valid"

    def param_spec(self, default: Any = None, help: str | None = None) -> ParamSpec:
        """This setting as a form field (``default``: the method's value when it differs)."""
        if self.kind not in ("int", "float", "choice"):
            raise ValueError(f"setting {self.name!r} ({self.kind}) has no form field")
        minimum = self.form_minimum if self.form_minimum is not None else self.minimum
        maximum = self.form_maximum if self.form_maximum is not None else self.maximum
        return ParamSpec(
            self.name, self.kind, self.default if default is None else default, help or self.help,
            minimum=minimum, maximum=maximum, choices=self.choices, stage=self.form_stage,
            title=self.title, step=self.step, log_scale=self.log_scale,
        )


class TrainSpec:
    """The ordered declarations of every training setting, looked up by name."""

    def __init__(self, settings: tuple[TrainSetting, ...]) -> None:
        names = [setting.name for setting in settings]
        if len(names) != len(set(names)):
            raise ValueError(f"duplicate training settings: {names}")
        self._settings = {setting.name: setting for setting in settings}

    def __iter__(self) -> Iterator[TrainSetting]:
        return iter(self._settings.values())

    def __contains__(self, name: object) -> bool:
        return name in self._settings

    def __getitem__(self, name: str) -> TrainSetting:
        return self._settings[name]

    def default(self, name: str) -> Any:
        """The declared default (mutable defaults copied: safe as a dataclass default factory)."""
        value = self._settings[name].default
        return dict(value) if isinstance(value, dict) else value

    @property
    def resumable(self) -> frozenset[str]:
        return frozenset(setting.name for setting in self if setting.resumable)

    @property
    def per_method(self) -> tuple[str, ...]:
        return tuple(setting.name for setting in self if setting.per_method)

    def check(self, values: Mapping[str, Any]) -> None:
        """Check every declared setting present in ``values`` (InputError on the first bad one)."""
        for setting in self:
            if setting.name in values:
                setting.check(values[setting.name])


def _number(value: float | None) -> str:
    """A bound as people write it: 2147483647, 0.1, 1e-07 ("" for none)."""
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


_S = TrainSetting

#: Every training setting, once. The order is the CLI help's order within each group.
TRAIN_SPEC = TrainSpec((
    # ------------------------------------------------------------------ data
    _S("method", "path", None, f"trainable method: {', '.join(trainable_method_names())}", "data"),
    _S("data", "path", None, "folder of sharp images (or a corpus with images/, masks/), or of <scene>/1.*, "
       "2.*, gt.* pairs", "data", resumable=True),
    _S("masks", "path", None, "folder of focus masks matched to the images by file name", "data", resumable=True),
    _S("segs", "path", None, "folder of label maps (random subsets of regions become masks)", "data",
       resumable=True),
    _S("data_format", "choice", "auto", "pairs: --data holds real <scene>/1.*, 2.*, gt.* (and mask.*) pairs",
       "data", choices=DATA_FORMATS),
    _S("resize", "int", 256, "resize every image to N×N before cropping (0: keep the size)", "data",
       minimum=0, per_method=True, form_maximum=4096, step=16, title="Resize to"),
    _S("crop", "int", 156, "side of the square training crops, in pixels", "data", minimum=8,
       per_method=True, form_maximum=2048, step=4, title="Crop size"),
    _S("synthesis", "json", {}, "JSON overrides of the synthesis recipe", "data"),
    _S("min_background_sharpness_ratio", "float", 0.2, "photos whose background is sharper than this share "
       "of their foreground are left out (shallow depth of field)", "data", minimum=0.0, flag=""),
    # ------------------------------------------------------------------ outputs
    _S("out", "path", None, "weights file to write (e.g. weights/gacn.pt); its manifest entry goes to "
       "manifest.json next to it unless --manifest", "outputs", resumable=True),
    _S("manifest", "path", None, "manifest file to update (default: <out folder>/manifest.json)", "outputs",
       resumable=True),
    _S("run_dir", "path", None, "folder for the checkpoint (default: user data folder)", "outputs",
       resumable=True),
    _S("init_weights", "path", None, "fine-tune: start from these weights (a file or installed weights' name)",
       "outputs", metavar="PATH|NAME"),
    # ------------------------------------------------------------------ optimisation
    _S("steps", "int", 1000, "total optimisation steps (method default otherwise)", "optimisation", minimum=1,
       per_method=True, resumable=True),
    _S("batch_size", "int", 16, "training samples per step (memory grows with it)", "optimisation", minimum=1,
       per_method=True, title="Batch size"),
    _S("lr", "float", 1e-4, "initial learning rate (Adam)", "optimisation", minimum=0.0, minimum_open=True,
       per_method=True, form_minimum=1e-7, form_maximum=1e-1, log_scale=True, title="Learning rate",
       words="learning rate"),
    _S("betas", "pair", (0.9, 0.999), "Adam's betas", "optimisation", per_method=True, flag=""),
    _S("lr_schedule", "json", {"kind": "constant"},
       'learning-rate schedule as JSON, e.g. \'{"kind": "epoch_step", "gamma": 0.8, "every": 2}\'',
       "optimisation", per_method=True),
    _S("options", "options", {}, "method option (JSON value), e.g. ssim_weight=3; repeat for several",
       "optimisation", per_method=True, flag="--option", metavar="KEY=VALUE"),
    _S("seed", "int", 1, "random seed: the same seed, data and settings give the same run", "optimisation",
       minimum=0, maximum=2**31 - 1, title="Seed", form_stage="post"),
    _S("device", "choice", "auto", "where to train: auto picks a CUDA or Apple GPU when present",
       "optimisation", choices=DEVICE_CHOICES, resumable=True, title="Device", form_stage="post"),
    # ------------------------------------------------------------------ validation
    _S("val_fraction", "float", 0.1, "share of the images held out for validation (never trained on)",
       "validation", minimum=0.0, maximum=1.0, maximum_open=True, form_maximum=0.5, step=0.05,
       title="Validation share", words="validation fraction"),
    _S("val_every", "int", 250, "validate every N steps (each validation adds a point to the plot)",
       "validation", minimum=1, per_method=True, resumable=True, form_maximum=1_000_000,
       title="Validate every", form_stage="post", words="validation interval (steps)"),
    _S("val_samples", "int", 64, "size of the fixed validation set", "validation",
       minimum=0, per_method=True, form_minimum=1, form_maximum=4096, title="Validation samples",
       form_stage="post"),
    # ------------------------------------------------------------------ checkpoints
    _S("checkpoint_every", "int", 0, "also checkpoint every N steps (0: by time only)", "checkpoints",
       minimum=0, resumable=True),
    _S("checkpoint_interval_s", "float", 120.0, "write a checkpoint at least every S seconds: a crash or a "
       "closed window loses at most this much work", "checkpoints", minimum=0.0, resumable=True,
       flag="--checkpoint-interval", metavar="S", form_minimum=5.0, step=5.0, title="Checkpoint every (s)",
       form_stage="post"),
    _S("export_every", "int", 0, "export the best weights every N steps (0: at the end only)", "checkpoints",
       minimum=0, resumable=True),
    _S("log_every", "int", 10, "print a progress line every N steps", "checkpoints", resumable=True),
))

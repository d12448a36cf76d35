"""Method parameters declared once: validation, CLI flags, GUI forms, presets and sidecar JSON.

A method lists :class:`ParamSpec` objects. Everything that shows or checks a parameter reads
these declarations; nothing else hard-codes a name, range or default.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from focusstudio.core.errors import ParameterError

ParamKind = Literal["int", "float", "bool", "choice"]

#: ``analysis`` parameters change what the network/activity measure computes (re-running them is
#: expensive); ``post`` parameters only change the cheap post-processing on cached maps.
ParamStage = Literal["analysis", "post"]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class ParamSpec:
    """Declaration of one method parameter."""

    name: str
    kind: ParamKind
    default: Any
    help: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    stage: ParamStage = "post"
    title: str = ""
    #: GUI hint: step of a slider/spin box (None = natural step for the kind).
    step: float | None = None
    #: GUI hint: show a log-scale slider (for eps-like parameters spanning decades).
    log_scale: bool = False
    #: GUI hint: what the minimum of a number means when it is a special value ("middle" for a
    #: reference frame of -1), shown instead of the number.
    special_value: str = ""
    #: Words a number parameter also accepts (lower case, e.g. "auto" for a value the method
    #: resolves itself); validated values keep the word.
    words: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"parameter name must be an identifier: {self.name!r}")
        if self.kind == "choice" and not self.choices:
            raise ValueError(f"choice parameter {self.name!r} needs choices")
        # The default must itself be valid, otherwise every run would fail.
        self.validate(self.default)

    @property
    def label(self) -> str:
        return self.title or self.name.replace("_", " ").capitalize()

    def validate(self, value: Any) -> Any:
        """Return ``value`` converted to this parameter's type, or raise ParameterError."""
        if self.kind == "bool":
            if isinstance(value, bool):
                return value
            if isinstance(value, (int, float)) and value in (0, 1):
                return bool(value)
            raise ParameterError(f"parameter '{self.name}' must be true or false, got {value!r}")
        if self.kind == "choice":
            if not isinstance(value, str) or value not in self.choices:
                raise ParameterError(
                    f"parameter '{self.name}' must be one of {', '.join(self.choices)}, got {value!r}"
                )
            return value
        if self.words and isinstance(value, str) and value.strip().lower() in self.words:
            return value.strip().lower()
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            accepted = " or ".join(("a number", *self.words)) if self.words else "a number"
            raise ParameterError(f"parameter '{self.name}' must be {accepted}, got {value!r}")
        if self.kind == "int":
            if float(value) != int(value):
                raise ParameterError(f"parameter '{self.name}' must be an integer, got {value!r}")
            converted: float | int = int(value)
        else:
            converted = float(value)
            if not math.isfinite(converted):
                raise ParameterError(f"parameter '{self.name}' must be finite, got {value!r}")
        if self.minimum is not None and converted < self.minimum:
            raise ParameterError(
                f"parameter '{self.name}' must be >= {self.minimum}, got {value!r}"
            )
        if self.maximum is not None and converted > self.maximum:
            raise ParameterError(
                f"parameter '{self.name}' must be <= {self.maximum}, got {value!r}"
            )
        return converted

    def parse(self, text: str) -> Any:
        """Parse a value given as text (CLI ``--set KEY=VALUE``) and validate it."""
        text = text.strip()
        if self.kind == "bool":
            low = text.lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            raise ParameterError(f"parameter '{self.name}' must be true or false, got {text!r}")
        if self.kind == "choice" or text.lower() in self.words:
            return self.validate(text)
        try:
            number: float | int = int(text) if self.kind == "int" else float(text)
        except ValueError:
            number_kind = "an integer" if self.kind == "int" else "a number"
            accepted = " or ".join((number_kind, *self.words))
            raise ParameterError(f"parameter '{self.name}' must be {accepted}, got {text!r}") from None
        return self.validate(number)

    def with_default(
        self, default: Any, *, name: str | None = None, title: str | None = None, note: str = ""
    ) -> ParamSpec:
        """This declaration with a method's own default; kind, range, stage and GUI hints stay.

        Shared declarations (the post-processing parameters in
        :mod:`focusstudio.core.ops.params`) are reused this way, so every method offers the same
        range. ``name``/``title`` rename a second instance (two guided filters in one method);
        ``note`` appends a method-specific sentence to the help (e.g. the guide's scale).
        """
        help_text = f"{self.help} {note}".strip() if note else self.help
        return replace(
            self, default=default, name=name or self.name, title=self.title if title is None else title,
            help=help_text,
        )

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "type": self.kind,
            "default": self.default,
            "help": self.help,
            "stage": self.stage,
        }
        if self.minimum is not None:
            data["min"] = self.minimum
        if self.maximum is not None:
            data["max"] = self.maximum
        if self.choices:
            data["choices"] = list(self.choices)
        if self.words:
            data["words"] = list(self.words)
        return data


@dataclass(frozen=True)
class ParamSet:
    """An ordered collection of declarations with whole-dict validation."""

    specs: tuple[ParamSpec, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        names = [s.name for s in self.specs]
        if len(names) != len(set(names)):
            raise ValueError(f"duplicate parameter names: {names}")

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.specs)

    def __len__(self) -> int:
        return len(self.specs)

    def __contains__(self, name: object) -> bool:
        return any(s.name == name for s in self.specs)

    def get(self, name: str) -> ParamSpec:
        for spec in self.specs:
            if spec.name == name:
                return spec
        raise ParameterError(self._unknown(name))

    def _unknown(self, name: str) -> str:
        valid = ", ".join(s.name for s in self.specs) or "(this method has no parameters)"
        return f"unknown parameter '{name}'; valid: {valid}"

    def defaults(self) -> dict[str, Any]:
        return {s.name: s.default for s in self.specs}

    def resolve(self, values: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Defaults overlaid with ``values``, every value validated; unknown names rejected."""
        resolved = self.defaults()
        for name, value in (values or {}).items():
            resolved[name] = self.get(name).validate(value)
        return resolved

    def parse_assignments(self, assignments: Iterable[str]) -> dict[str, Any]:
        """Parse CLI ``KEY=VALUE`` strings into validated values."""
        parsed: dict[str, Any] = {}
        for item in assignments:
            if "=" not in item:
                raise ParameterError(f"--set expects KEY=VALUE, got {item!r}")
            key, text = item.split("=", 1)
            key = key.strip().replace("-", "_")
            parsed[key] = self.get(key).parse(text)
        return parsed

    def post_only_change(self, old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
        """True when only ``post``-stage parameters differ (cached analysis can be reused)."""
        return all(
            old.get(s.name) == new.get(s.name) for s in self.specs if s.stage == "analysis"
        )

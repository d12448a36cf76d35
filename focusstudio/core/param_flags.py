"""Command-line flags generated from a :class:`~focusstudio.core.params.ParamSet`: a flag of its own
for some parameters, ``KEY=VALUE`` assignments for every one, read back into validated values, and
written back out (the command a sidecar records). Names, kinds, choices, help and defaults all
come from the declarations; nothing here knows a parameter.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from focusstudio.core.params import ParamSet, ParamSpec

__all__ = ["add_param_flags", "flag_dest", "param_flag_arguments", "read_param_flags"]


def flag_dest(flag: str) -> str:
    """The attribute argparse stores ``flag`` under (``--align-model`` → ``align_model``)."""
    return flag.lstrip("-").replace("-", "_")


def _help(spec: ParamSpec) -> str:
    if spec.special_value and spec.default == spec.minimum:
        default = spec.special_value
    elif spec.kind == "bool":
        default = "on" if spec.default else "off"
    else:
        default = str(spec.default)
    # argparse formats help with %: a literal one must be doubled.
    return f"{spec.help} (default: {default})".replace("%", "%%")


def add_param_flags(
    parser: argparse.ArgumentParser,
    params: ParamSet,
    flags: Mapping[str, str],
    assign_flag: str,
    assign_dest: str,
    assign_help: str,
) -> None:
    """Add a flag for every parameter named in ``flags`` (name → flag) and the repeatable
    ``assign_flag KEY=VALUE`` for any parameter.

    Every flag defaults to None (not given), so a caller can tell "not given" from the default. A
    bool becomes ``--flag/--no-flag``; a choice lists its choices; a number is parsed as int or
    float here and validated by its declaration when read back (:func:`read_param_flags`), so an
    out-of-range value is the same one-line error as through ``assign_flag``.
    """
    for name, flag in flags.items():
        spec = params.get(name)
        text = _help(spec)
        if spec.kind == "bool":
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=text)
        elif spec.kind == "choice":
            parser.add_argument(flag, choices=spec.choices, default=None, help=text)
        else:
            parser.add_argument(flag, type=int if spec.kind == "int" else float, default=None,
                                metavar=name.upper(), help=text)
    parser.add_argument(assign_flag, dest=assign_dest, action="append", default=[], metavar="KEY=VALUE",
                        help=assign_help)


def read_param_flags(
    args: argparse.Namespace, params: ParamSet, flags: Mapping[str, str], assign_dest: str
) -> dict[str, Any]:
    """The validated values of the flags :func:`add_param_flags` added, only those given; a
    dedicated flag wins over an assignment of the same parameter."""
    values: dict[str, Any] = params.parse_assignments(getattr(args, assign_dest, None) or [])
    for name, flag in flags.items():
        value = getattr(args, flag_dest(flag), None)
        if value is not None:
            values[name] = params.get(name).validate(value)
    return values


def cli_value(value: Any) -> str:
    """A value as the flags read it back (floats by repr, so no digit is lost)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


def param_flag_arguments(
    values: Mapping[str, Any], params: ParamSet, flags: Mapping[str, str], assign_flag: str
) -> list[str]:
    """The arguments that give ``values`` (those that differ from their defaults): the reverse of
    :func:`read_param_flags`."""
    arguments: list[str] = []
    for name, value in values.items():
        spec = params.get(name)
        if value == spec.default:
            continue
        flag = flags.get(name)
        if flag is None:
            arguments += [assign_flag, f"{name}={cli_value(value)}"]
        elif spec.kind == "bool":
            arguments.append(flag if value else "--no-" + flag.lstrip("-"))
        else:
            arguments += [flag, str(value)]
    return arguments

"""Pure ``nn.Module`` networks of the deep methods (one ``<method>_arch.py`` each), and the
translation of the authors' released state dicts to our key names.

A method's network is built, and its checkpoints read, through its spec in the registry
(:mod:`focusstudio.core.methods.registry`) and the one checkpoint loader
(:mod:`focusstudio.core.methods.checkpoint`); nothing here is keyed by method name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch

from focusstudio.core.errors import WeightsError
from focusstudio.core.methods.archs.gacn_arch import GACNNet
from focusstudio.core.methods.archs.sesf_arch import SESF_MEAN, SESF_STD, SESFNet

__all__ = ["SESF_MEAN", "SESF_STD", "GACNNet", "SESFNet", "translate_official_keys"]

#: ``{n-k}`` in a replacement: the matched group number n minus k.
_DECREMENT = re.compile(r"\{(\d+)-(\d+)\}")


def _translate(key: str, rules: tuple[tuple[str, str], ...]) -> str | None:
    for pattern, replacement in rules:
        if re.match(pattern, key):
            renamed = re.sub(pattern, replacement, key)
            return _DECREMENT.sub(lambda m: str(int(m.group(1)) - int(m.group(2))), renamed)
    return None


def translate_official_keys(
    method: str, state: Mapping[str, Any], rules: tuple[tuple[str, str], ...], marker: str
) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
    """An authors' state dict (recognised by its ``marker`` key) renamed by ``rules`` (regex
    pattern, replacement) to our key names, with an empty arch (theirs is our default); None when
    ``state`` is not theirs. Every key must be known: no silent drops."""
    if marker not in state:
        return None
    converted: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for key, value in state.items():
        ours = _translate(key, rules)
        if ours is None:
            unknown.append(key)
        else:
            converted[ours] = value
    if unknown:
        raise WeightsError(f"unrecognised {method} checkpoint keys: {', '.join(unknown[:5])}")
    return converted, {}

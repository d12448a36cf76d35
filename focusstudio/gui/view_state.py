"""The small model the viewer and the layer panel are bound to.

It holds *what* is shown (which image is the base layer, what the wipe compares, which overlays
are visible with which opacity and colour map), never pixels. Widgets change it through its
methods; the viewer redraws from it when ``changed`` fires.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from PySide6.QtCore import QObject, Signal

from focusstudio.core.types import FusionMap
from focusstudio.gui.jobs import default_levels

#: Colour maps offered for overlays (all bundled with pyqtgraph, no matplotlib needed).
COLORMAPS: tuple[str, ...] = ("viridis", "inferno", "magma", "plasma", "turbo", "cividis", "CET-D1", "grey",
                              "categorical", "mask")

#: Default colour map by map kind: index maps get distinct colours per frame.
DEFAULT_COLORMAP = {
    "index": "categorical",
    "decision": "CET-D1",
    "weight": "CET-D1",
    # A mask marks the pixels where it is 1 (blocks the result lost, a boundary band): those in
    # red, the others untouched ("mask" is transparent at 0).
    "mask": "mask",
    "activity": "inferno",
    "attention": "viridis",
    "other": "viridis",
}

#: Map kinds in the order the overlay list groups them: what was chosen first, then why.
KIND_ORDER: tuple[str, ...] = ("index", "decision", "weight", "mask", "attention", "activity", "other")


def grouped_names(maps: Mapping[str, FusionMap]) -> list[str]:
    """The map names grouped by kind (index and decision first, activity maps after), stable within a kind."""
    names = list(maps)

    def rank(name: str) -> tuple[int, int]:
        kind = maps[name].kind
        return (KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER), names.index(name))

    return sorted(names, key=rank)


# Layer keys: "result:A", "result:B" or "frame:<index in the active stack>".
RESULT_A = "result:A"
RESULT_B = "result:B"


def frame_key(index: int) -> str:
    return f"frame:{index}"


def parse_layer(key: str) -> tuple[str, int | str]:
    """("result", "A") or ("frame", 3)."""
    kind, _, rest = key.partition(":")
    if kind == "frame":
        return ("frame", int(rest))
    if kind == "result" and rest in ("A", "B"):
        return ("result", rest)
    raise ValueError(f"unknown layer {key!r}")


@dataclass(frozen=True)
class OverlayState:
    """How one explanation map is drawn over the base image."""

    name: str
    kind: str
    visible: bool = False
    opacity: float = 0.5
    colormap: str = "viridis"
    levels: tuple[float, float] = (0.0, 1.0)
    #: The levels the map's values call for (to tell whether the user changed them).
    default_levels: tuple[float, float] = (0.0, 1.0)


class ViewState(QObject):
    """What the viewer shows; every setter emits ``changed`` with the aspect that changed."""

    #: "base", "wipe", "side", "overlays" or "active".
    changed = Signal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.base = RESULT_A
        self.wipe_enabled = False
        self.wipe_layer = frame_key(0)
        self.wipe_position = 0.5  # fraction of the image width
        self.side_by_side = False
        self.side_layer = frame_key(0)
        self.overlays: dict[str, OverlayState] = {}
        self.active_overlay: str | None = None
        self.overlays_hidden = False  # the quick "toggle overlays" key hides all without losing choices
        #: The user showed or hid a map: a new result then keeps their choice instead of showing
        #: the method's most telling map.
        self.visibility_chosen = False
        self._synced: list[tuple[str, FusionMap]] = []
        self._remembered: dict[str, OverlayState] = {}
        self._preferred_active: str | None = None

    # ------------------------------------------------------------------ layers
    def set_base(self, key: str) -> None:
        parse_layer(key)
        if key != self.base:
            self.base = key
            self.changed.emit("base")

    def set_wipe(self, enabled: bool, layer: str | None = None) -> None:
        if layer is not None:
            parse_layer(layer)
            self.wipe_layer = layer
        self.wipe_enabled = enabled
        self.changed.emit("wipe")

    def set_wipe_position(self, fraction: float) -> None:
        self.wipe_position = min(max(float(fraction), 0.0), 1.0)
        self.changed.emit("wipe")

    def set_side_by_side(self, enabled: bool, layer: str | None = None) -> None:
        if layer is not None:
            parse_layer(layer)
            self.side_layer = layer
        self.side_by_side = enabled
        self.changed.emit("side")

    # ------------------------------------------------------------------ overlays
    def sync_maps(self, maps: Mapping[str, FusionMap], levels: Mapping[str, tuple[float, float]] | None = None) -> None:
        """Offer one overlay per map of the shown result, keeping the user's choices by name.

        ``levels`` are the maps' display levels when already known (computed by the worker);
        otherwise they are computed here. Syncing the same maps again does nothing.
        """
        source = [(name, maps[name]) for name in grouped_names(maps)]
        if len(source) == len(self._synced) and all(
            name == old_name and fusion_map is old_map
            for (name, fusion_map), (old_name, old_map) in zip(source, self._synced)
        ):
            return
        self._synced = source
        updated: dict[str, OverlayState] = {}
        # Choices are remembered for every map name seen, so switching to a result without a map
        # and back (A → B → A) keeps how the user showed it.
        self._remembered.update(self.overlays)
        for name, fusion_map in source:
            previous = self._remembered.get(name)
            fresh = (levels or {}).get(name) or default_levels(fusion_map)
            if previous is not None and previous.kind == fusion_map.kind:
                # Keep the user's choices, including levels they set on a map of open range.
                keep = fusion_map.kind in ("activity", "other") and previous.levels != previous.default_levels
                updated[name] = replace(previous, levels=previous.levels if keep else fresh, default_levels=fresh)
            else:
                updated[name] = OverlayState(
                    name=name,
                    kind=fusion_map.kind,
                    colormap=DEFAULT_COLORMAP.get(fusion_map.kind, "viridis"),
                    levels=fresh,
                    default_levels=fresh,
                )
        self.overlays = updated
        if self._preferred_active in updated:
            self.active_overlay = self._preferred_active
        elif self.active_overlay not in updated:
            visible = [name for name, state in updated.items() if state.visible]
            self.active_overlay = (visible or list(updated) or [None])[0]
        self.changed.emit("overlays")

    def update_overlay(self, name: str, **changes: object) -> None:
        if "visible" in changes:
            self.visibility_chosen = True
        updated = replace(self.overlays[name], **changes)  # type: ignore[arg-type]
        if updated != self.overlays[name]:  # no signal for no change: the histogram echoes levels back
            self.overlays[name] = updated
            self.changed.emit("overlays")

    def show_only(self, name: str) -> None:
        """Make ``name`` the single visible overlay (used by ``--overlay`` and the screenshot)."""
        for key, state in self.overlays.items():
            self.overlays[key] = replace(state, visible=key == name)
        # "Only" holds for the maps of the other result too: switching A → B → A must not bring
        # back a map shown before (two overlays painted over each other say nothing).
        for key, state in self._remembered.items():
            self._remembered[key] = replace(state, visible=key == name)
        self.active_overlay = self._preferred_active = name
        self.overlays_hidden = False
        self.changed.emit("overlays")
        self.changed.emit("active")

    def set_active_overlay(self, name: str | None) -> None:
        """The map whose histogram is shown (the user's pick is preferred after result switches)."""
        if name is not None:
            self._preferred_active = name
        if name != self.active_overlay:
            self.active_overlay = name
            self.changed.emit("active")

    def toggle_overlays(self) -> None:
        self.overlays_hidden = not self.overlays_hidden
        self.changed.emit("overlays")

    def visible_overlays(self) -> list[OverlayState]:
        if self.overlays_hidden:
            return []
        return [state for state in self.overlays.values() if state.visible]

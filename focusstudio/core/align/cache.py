"""Re-use of pair registrations across runs in one process: a frame whose pixels and alignment
settings did not change is not registered again when the user re-fuses with another method or
setting, adds or removes a frame, or changes only how the registration is applied (crop,
interpolation).

What is cached
--------------
The unit is one *pair*: ``register_pair(target, moving, options, guess)``, the only costly step of
:func:`~focusstudio.core.align.estimate.estimate_alignment` (ECC on a pyramid, features + RANSAC).
Its outcome (a fit or the reasons it failed) is a function of nothing but

* the two grey estimation copies (identified by a hash of their pixels, shape and dtype: the copy
  the estimator sees, so a file edited in place, another RAW development or another
  ``estimation_size`` gives another key; hashing a 1024-px copy costs ~2 ms, once per frame and
  run (:class:`DigestMemo`), against ~0.2 CPU-s for registering a pair),
* the initial guess (identity for chained pairs; the last accepted transform when registering
  every frame to the reference directly),
* the settings :data:`PAIR_SETTINGS` that :func:`register_pair` reads.

In a chain the target is the neighbour towards the reference, for direct registration it is the
reference frame itself; either way the key names the target frame's content, so moving the
reference (adding a frame shifts the middle one) re-registers only the pairs whose direction
changed. Everything else the stack's registration does (composition towards the reference,
plausibility against the reference, failure policy, photometric fit, crop box) runs again from
the cached pairs, exactly as in an uncached run: the result is the same.

Memory is bounded: an entry is a 3×3 matrix and a few short strings (~1 KiB; no pixels are kept),
at most :data:`DEFAULT_ENTRIES` of them, least recently used dropped first.
"""

from __future__ import annotations

import copy
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Final

import numpy as np

from focusstudio.core.align.pair import PairRegistration
from focusstudio.core.align.params import AlignOptions
from focusstudio.core.align.verify import RegistrationFailed

#: The alignment settings a pair's registration depends on. The others act on the whole stack and
#: are applied after the pairs (reference, chain: which pairs are registered; photometric,
#: on_failure, crop, interpolation: what is done with them), or on the estimation copy itself
#: (estimation_size: its pixels are in the key).
PAIR_SETTINGS: Final[tuple[str, ...]] = (
    "model", "method", "detector", "ecc_iterations", "ecc_epsilon", "gauss_filter_size",
    "min_correlation", "min_inliers", "min_scale", "max_scale", "max_rotation", "max_shift", "refine",
)
#: Settings deliberately left out of the key (see :data:`PAIR_SETTINGS`); a test checks that every
#: setting is in one of the two tuples, so a new setting cannot be forgotten silently.
STACK_SETTINGS: Final[tuple[str, ...]] = (
    "reference", "chain", "estimation_size", "photometric", "on_failure", "crop", "interpolation",
)
#: Entries kept (~1 KiB each, so ~4 MiB at most): a few hundred stacks' worth of pairs.
DEFAULT_ENTRIES: Final = 4096

PairKey = tuple[bytes, bytes, bytes, tuple[object, ...]]


def image_digest(image: np.ndarray) -> bytes:
    """Identity of an estimation copy: a hash of its pixels, shape and dtype."""
    # SHA-1 is ~2× faster than BLAKE2 here; a cache key needs no resistance to crafted collisions.
    digest = hashlib.sha1(repr((image.shape, image.dtype.str)).encode(), usedforsecurity=False)
    digest.update(np.ascontiguousarray(image).data)  # hashlib releases the GIL on large buffers
    return digest.digest()


class DigestMemo:
    """The digests of the last few images of one run, by identity: in a chain every frame is the
    moving image of one pair and the target of the next, so each is hashed once. Made per run and
    dropped with it (it holds the images, so that an id is not re-used by another array meanwhile)."""

    def __init__(self, size: int = 8) -> None:
        self.size = size
        self._entries: OrderedDict[int, tuple[np.ndarray, bytes]] = OrderedDict()
        self._lock = threading.Lock()

    def digest(self, image: np.ndarray) -> bytes:
        with self._lock:
            entry = self._entries.get(id(image))
        if entry is not None and entry[0] is image:
            return entry[1]
        value = image_digest(image)
        with self._lock:
            self._entries[id(image)] = (image, value)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return value


def pair_key(
    target: np.ndarray,
    moving: np.ndarray,
    options: AlignOptions,
    guess: np.ndarray | None,
    digests: DigestMemo | None = None,
) -> PairKey:
    """The key of ``register_pair(target, moving, options, guess)``."""
    digest = digests.digest if digests is not None else image_digest
    guess_bytes = b"" if guess is None else np.ascontiguousarray(guess, dtype=np.float64).tobytes()
    settings = tuple(getattr(options, name) for name in PAIR_SETTINGS)
    return digest(target), digest(moving), guess_bytes, settings


class RegistrationCache:
    """Pair registrations by :func:`pair_key`, least recently used dropped beyond ``max_entries``.

    Thread-safe: the pairs of one stack are registered on a small pool (two threads asking for one
    missing pair both compute it, at worst). ``hits`` and ``misses`` count the lookups.
    """

    def __init__(self, max_entries: int = DEFAULT_ENTRIES) -> None:
        if max_entries < 1:
            raise ValueError(f"a registration cache needs room for at least 1 entry, got {max_entries}")
        self.max_entries = max_entries
        self._entries: OrderedDict[PairKey, PairRegistration | str] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.hits = self.misses = 0

    def register(
        self,
        target: np.ndarray,
        moving: np.ndarray,
        options: AlignOptions,
        guess: np.ndarray | None,
        compute: Callable[[], PairRegistration],
        digests: DigestMemo | None = None,
    ) -> PairRegistration:
        """The pair's registration: the cached one, else ``compute()``'s (kept for next time);
        ``digests``: the run's memo of image digests.

        A failure (RegistrationFailed) is cached too, and raised again with its message: a pair
        that fails costs the most (both estimators run). Anything else ``compute`` raises (a
        cancel) passes and leaves nothing behind.
        """
        key = pair_key(target, moving, options, guess, digests)
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
                self.hits += 1
            else:
                self.misses += 1
        if found is None:
            try:
                found = _copy(compute())
            except RegistrationFailed as error:
                found = str(error)
            with self._lock:
                self._entries[key] = found
                self._entries.move_to_end(key)
                while len(self._entries) > self.max_entries:
                    self._entries.popitem(last=False)
        if isinstance(found, str):
            raise RegistrationFailed(found)
        return _copy(found)  # the caller may change its copy (messages are appended to)


def _copy(pair: PairRegistration) -> PairRegistration:
    return copy.deepcopy(pair)


_shared = RegistrationCache()


def registration_cache() -> RegistrationCache:
    """The process's shared cache: what the window and the batch pass to the alignment stage, so
    every fusion in one process re-uses the pairs registered before."""
    return _shared

"""Work-ahead for the registration of a stack: frames decoded (and, when chained, registered to
their neighbour) on a small thread pool ahead of the frame :func:`estimate_alignment` is at.

OpenCV and the image decoders release the GIL, so on 2 cores decoding the next frame and
registering two neighbouring pairs at once overlap. Speculation is safe because a chained pair
(frame i onto frame i∓1) does not depend on any other pair's result; only when a frame fails does
the next one need another target (the last registered frame), and that pair is then registered on
the spot. Each frame is still decoded once, and only the frames near the current one are held.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from focusstudio.core.align.pair import PairRegistration
from focusstudio.core.align.verify import RegistrationFailed
from focusstudio.core.progress import CancelToken, cancel_scope

#: Threads of the pool (more than 4 rarely pays: OpenCV parallelises inside each call as well).
MAX_WORKERS = 4
#: Below this many pixels of the estimation copy the pool costs more than it saves (tiny frames
#: register in milliseconds), and the registration runs in the calling thread as before.
PARALLEL_FROM_PIXELS = 250_000

Register = Callable[[np.ndarray, np.ndarray], PairRegistration]


def worker_count(pixels: int, frames: int) -> int:
    """Threads worth using for ``frames`` frames of ``pixels`` pixels at the estimation size
    (1: everything in the calling thread)."""
    if pixels < PARALLEL_FROM_PIXELS or frames < 3:
        return 1
    return max(1, min(MAX_WORKERS, os.cpu_count() or 1, frames - 1))


class PairSchedule:
    """Decoded frames and speculative chained pairs, ahead of the position in ``sequence``.

    ``sequence``: the order the frames are registered in (the reference first is not in it);
    ``target_of``: each frame's chain neighbour (None: pairs are not chained, nothing is speculated);
    ``decode``: a frame's grey estimation copy; ``register``: (target, moving) → the pair's fit,
    raising RegistrationFailed. With one worker nothing runs ahead (the plain sequential order).
    """

    def __init__(
        self,
        sequence: Sequence[int],
        target_of: Callable[[int], int] | None,
        decode: Callable[[int], np.ndarray],
        register: Register,
        cancel: CancelToken,
        workers: int,
        reference: tuple[int, np.ndarray],
    ) -> None:
        self.sequence = list(sequence)
        self.target_of = target_of
        self.decode = decode
        self.register = register
        self.cancel = cancel
        self.workers = workers
        self.reference = reference
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="align") if workers > 1 else None
        self._images: dict[int, Future[np.ndarray]] = {}
        self._pairs: dict[int, Future[PairRegistration | RegistrationFailed]] = {}
        self._position = 0

    # ------------------------------------------------------------------ frames
    def _image_future(self, index: int) -> Future[np.ndarray]:
        future = self._images.get(index)
        if future is None:
            if index == self.reference[0]:
                future = Future()
                future.set_result(self.reference[1])
            elif self._pool is not None:
                future = self._pool.submit(self._scoped, self.decode, index)
            else:
                future = Future()
                future.set_result(self.decode(index))
            self._images[index] = future
        return future

    def image(self, index: int) -> np.ndarray:
        """Frame ``index``'s estimation copy (decoded once; InputError of the decoder passes)."""
        return self._image_future(index).result()

    def _scoped(self, function: Callable[..., object], *args: object) -> object:
        with cancel_scope(self.cancel):  # check_cancelled() in the worker sees this run's token
            return function(*args)

    # ------------------------------------------------------------------ pairs
    def _speculate(self, index: int) -> None:
        if self._pool is None or self.target_of is None or index in self._pairs:
            return
        # The decodes are queued before the pair that waits on them: the pool takes jobs in order,
        # so a pair never waits on a decode that no thread will run.
        target, moving = self._image_future(self.target_of(index)), self._image_future(index)
        self._pairs[index] = self._pool.submit(self._scoped, self._pair_job, target, moving)

    def _pair_job(
        self, target: Future[np.ndarray], moving: Future[np.ndarray]
    ) -> PairRegistration | RegistrationFailed:
        try:
            return self.register(target.result(), moving.result())
        except RegistrationFailed as error:  # returned: whether it counts is decided in order
            return error

    def advance(self, index: int) -> None:
        """Frame ``index`` is next: queue the work of the next frames, forget the frames behind."""
        self._position = self.sequence.index(index)
        ahead = self.sequence[self._position : self._position + self.workers + 1]
        for upcoming in ahead:
            if self.target_of is None:
                self._image_future(upcoming)
            else:
                self._speculate(upcoming)
        keep = {self.reference[0], *ahead, *(self.target_of(i) for i in ahead if self.target_of is not None)}
        if self._position > 0:
            keep.add(self.sequence[self._position - 1])
        for old in [i for i in self._images if i not in keep]:
            del self._images[old]  # the pair jobs that still need a frame hold its future

    def chained(self, index: int, target_index: int, target: np.ndarray, moving: np.ndarray) -> PairRegistration:
        """Frame ``index`` registered onto frame ``target_index`` (RegistrationFailed when it cannot
        be): the speculative result when it was made for that target, else registered now."""
        future = self._pairs.pop(index, None)
        if future is not None and self.target_of is not None and self.target_of(index) == target_index:
            outcome = future.result()
        else:
            if future is not None:
                future.cancel()  # made for a neighbour that failed: not the target now
            with cancel_scope(self.cancel):
                outcome = self._pair_job(_done(target), _done(moving))
        if isinstance(outcome, RegistrationFailed):
            raise outcome
        return outcome

    def close(self) -> None:
        """Drop queued work; running OpenCV calls finish on their own (a cancelled run's at its
        next cancel check)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self._images.clear()
        self._pairs.clear()


def _done(value: np.ndarray) -> Future[np.ndarray]:
    future: Future[np.ndarray] = Future()
    future.set_result(value)
    return future

"""Process-wide tuning for large-array work that the entry points opt into (never on import).

The CLI, the window, the frozen app's self-test and batch workers call :func:`tune_process` first
thing; a host that imports the library (a notebook, a napari plugin) keeps its own allocator
unless it calls it too — changing a host process's ``malloc`` behind its back on ``import`` was
a surprise for embedders.

The deep methods allocate and free feature maps of 10–70 MB per frame many times per fusion.
With the C library's defaults every such block is a fresh ``mmap`` whose 4 KiB pages fault in one
by one, and that page-fault work took ~40 % of a 520×520 SESF-Fuse or GACN fusion
(``benchmarks/bench_deep_methods.py``: SESF 0.59 → 0.39 s, GACN 1.15 → 0.72 s with both settings).

* glibc ``malloc`` keeps blocks up to 32 MiB on its heap and keeps up to 256 MiB of freed heap,
  so the next block of that size is reused instead of faulted in again;
* torch backs larger tensors with transparent huge pages (512× fewer faults).

A user's own settings win: nothing is changed when the corresponding environment variable is set.

The retained heap is the network stage's: at the end of a fusion, before the full-size result is
allocated, :func:`release_free_memory` hands it back (a 24 MP pair: up to ~260 MiB less at the peak).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
from collections.abc import Iterator

#: ``mallopt`` parameter numbers (glibc's malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

#: Largest block served from the heap (glibc's upper limit for this setting on 64-bit systems).
HEAP_BLOCK_LIMIT = 32 * 1024 * 1024
#: Freed heap memory kept for reuse before it is returned to the system.
RETAINED_FREE_MEMORY = 256 * 1024 * 1024


_tuned = False
#: glibc, once loaded; False where the C library is not glibc (no ``malloc_trim``).
_libc: ctypes.CDLL | bool | None = None


def tune_process() -> None:
    """Apply the settings below once per process (later calls do nothing)."""
    global _tuned
    if _tuned:
        return
    _tuned = True
    tune_allocator()
    tune_openmp_waiting()


#: Iterations an idle OpenMP thread spins before it sleeps (libgomp's default: 300,000).
OPENMP_SPIN_COUNT = 10_000


def tune_openmp_waiting() -> None:
    """Let torch's idle OpenMP threads sleep after a short spin instead of ~10 ms of spinning.

    Between two parallel regions libgomp's threads spin for ``GOMP_SPINCOUNT`` iterations. When
    another process (or the window's own GUI thread) holds a core, the spinning threads take the
    time slices the working thread needs: a warm GACN fusion of a 520² pair ran 3–5× longer with
    the default spin count than with 10,000 (``benchmarks/bench_thread_policy.py``). A short spin
    still bridges the microsecond gaps between back-to-back torch operations, which
    ``OMP_WAIT_POLICY=PASSIVE`` (no spin at all) does not. It must be set before torch loads
    libgomp; a user's own ``GOMP_SPINCOUNT`` or ``OMP_WAIT_POLICY`` wins.
    """
    if "torch" in sys.modules or any(name in os.environ for name in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")):
        return
    os.environ["GOMP_SPINCOUNT"] = str(OPENMP_SPIN_COUNT)


def tune_allocator() -> None:
    """Huge pages for torch's large tensors and a heap that keeps 10–70 MB blocks for reuse."""
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
    if not sys.platform.startswith("linux"):
        return
    if any(name in os.environ for name in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, HEAP_BLOCK_LIMIT)
        libc.mallopt(_M_TRIM_THRESHOLD, RETAINED_FREE_MEMORY)
    except (OSError, AttributeError):  # not glibc (musl, …): its own defaults stay
        pass


def release_free_memory() -> None:
    """Return the heap's freed memory to the system now (glibc ``malloc_trim``); nothing elsewhere.

    The heap keeps up to :data:`RETAINED_FREE_MEMORY` of freed blocks for the next network pass,
    plus what a JPEG decode or a tiled filter freed: at the end of a fusion that reuse is over and
    the memory only adds to the peak of the full-size composition (a 24 MP pair: 1.5–1.6 GiB
    peak RSS, ~260 MiB of it free heap). Call it once where a run's full-resolution result is
    about to be allocated, not per network pass (the pages would fault in again)."""
    global _libc
    if _libc is None:
        _libc = False
        if sys.platform.startswith("linux"):
            try:
                libc = ctypes.CDLL("libc.so.6")
                libc.malloc_trim.argtypes = [ctypes.c_size_t]
                _libc = libc
            except (OSError, AttributeError):  # not glibc (musl, …)
                pass
    if _libc:
        _libc.malloc_trim(0)


@contextlib.contextmanager
def numpy_small_pages() -> Iterator[None]:
    """NumPy's new arrays on ordinary 4 KiB pages while the block runs (then as before).

    NumPy asks for transparent huge pages (``madvise``) on every array of 4 MiB or more. With the
    kernel's usual ``defrag=madvise`` a fault in such an array may first compact memory to find a
    free 2 MiB page: on a machine whose memory is fragmented by the page cache, a 24 MP sf pair
    spent 2.0–2.3 s of system time with it and 1.3 s without (wall −1.2 to −2.2 s, measured in one
    run, alternating; benchmarks/README.md, issue 20). Torch's own huge pages
    (:func:`tune_allocator`) are not affected; a user's ``NUMPY_MADVISE_HUGEPAGE`` wins.
    """
    try:
        from numpy._core.multiarray import _set_madvise_hugepage
    except ImportError:  # a NumPy without the switch
        yield
        return
    if "NUMPY_MADVISE_HUGEPAGE" in os.environ:
        yield
        return
    previous = _set_madvise_hugepage(False)
    try:
        yield
    finally:
        _set_madvise_hugepage(previous)

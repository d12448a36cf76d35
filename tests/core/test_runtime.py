"""The process tuning the entry points opt into (focusstudio.core.runtime), and that importing the
library leaves a host process alone."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

IMPORT_ONLY = "import os, focusstudio, focusstudio.api; print(os.environ.get('THP_MEM_ALLOC_ENABLE', 'unset'))"
ENTRY_POINT = (
    "import os, contextlib, io\n"
    "from focusstudio.cli import main\n"
    "with contextlib.redirect_stdout(io.StringIO()):\n"
    "    main(['methods'])\n"
    "print(os.environ.get('THP_MEM_ALLOC_ENABLE', 'unset'))"
)


def _probe(code: str, extra_env: dict[str, str]) -> str:
    env = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"} | extra_env
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return done.stdout.strip().splitlines()[-1]


def test_importing_the_library_changes_nothing_in_the_host() -> None:
    assert _probe(IMPORT_ONLY, {}) == "unset"


def test_the_cli_requests_huge_pages_for_torch_tensors() -> None:
    assert _probe(ENTRY_POINT, {}) == "1"


def test_the_users_own_setting_wins() -> None:
    assert _probe(ENTRY_POINT, {"THP_MEM_ALLOC_ENABLE": "0"}) == "0"


def test_the_cli_shortens_openmp_spinning_unless_the_user_chose() -> None:
    probe = ENTRY_POINT.replace("'THP_MEM_ALLOC_ENABLE'", "'GOMP_SPINCOUNT'")
    clean = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    run = lambda extra: subprocess.run(  # noqa: E731
        [sys.executable, "-c", probe], env=clean | extra, capture_output=True, text=True, check=True
    ).stdout.strip().splitlines()[-1]
    assert run({}) == "10000"
    assert run({"GOMP_SPINCOUNT": "5"}) == "5"
    assert run({"OMP_WAIT_POLICY": "PASSIVE"}) == "unset"


def test_tuning_runs_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    from focusstudio.core import runtime

    calls: list[str] = []
    monkeypatch.setattr(runtime, "_tuned", False)
    monkeypatch.setattr(runtime, "tune_allocator", lambda: calls.append("tuned"))
    monkeypatch.setattr(runtime, "tune_openmp_waiting", lambda: None)
    runtime.tune_process()
    runtime.tune_process()
    assert calls == ["tuned"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_tuning_is_skipped_when_the_user_tunes_malloc(monkeypatch: pytest.MonkeyPatch) -> None:
    from focusstudio.core import runtime

    calls: list[tuple[int, int]] = []

    class FakeLibc:
        def mallopt(self, parameter: int, value: int) -> int:
            calls.append((parameter, value))
            return 1

    monkeypatch.setattr(runtime.ctypes, "CDLL", lambda name: FakeLibc())
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "1000")
    runtime.tune_allocator()
    assert calls == []
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_")
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    runtime.tune_allocator()
    assert calls == [(-3, runtime.HEAP_BLOCK_LIMIT), (-1, runtime.RETAINED_FREE_MEMORY)]


RETAINED_THEN_RELEASED = (
    "import numpy as np\n"
    "from focusstudio.core import runtime\n"
    "def rss():\n"
    "    return next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmRSS')) // 1024\n"
    "runtime.tune_allocator()\n"
    # 20 blocks of 6 MiB: below the heap block limit, so on the heap; freed, they stay resident
    "blocks = [np.ones(6 * 2**20, np.uint8) for _ in range(20)]\n"
    "del blocks\n"
    "retained = rss()\n"
    "runtime.release_free_memory()\n"
    "print(retained, rss())"
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_release_free_memory_returns_the_retained_heap() -> None:
    """The heap tuning keeps freed blocks resident (the next network pass reuses them); before a
    run's full-size result is allocated, release_free_memory hands them back (issue 20)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim  # noqa: B018
    except (OSError, AttributeError):
        pytest.skip("not glibc")
    # a user's (or an in-process Dask nanny's, earlier in the suite) malloc settings turn the tuning off
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_TUNABLES"))}
    done = subprocess.run([sys.executable, "-c", RETAINED_THEN_RELEASED], env=env, capture_output=True, text=True,
                          check=True)
    retained, released = (int(v) for v in done.stdout.split())
    assert retained - released >= 80  # of the 120 MiB freed


def test_release_free_memory_is_a_no_op_without_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    from focusstudio.core import runtime

    def no_libc(name: str) -> object:
        raise OSError(name)

    monkeypatch.setattr(runtime, "_libc", None)
    monkeypatch.setattr(runtime.ctypes, "CDLL", no_libc)
    runtime.release_free_memory()
    assert runtime._libc is False

"""The allocator settings applied when the package loads (focusstudio._allocator)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = "import os, focusstudio; print(os.environ['THP_MEM_ALLOC_ENABLE'])"


def _probe(extra_env: dict[str, str]) -> str:
    env = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"} | extra_env
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_huge_pages_for_torch_tensors_are_requested() -> None:
    assert _probe({}) == "1"


def test_the_users_own_setting_wins() -> None:
    assert _probe({"THP_MEM_ALLOC_ENABLE": "0"}) == "0"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_tuning_is_skipped_when_the_user_tunes_malloc(monkeypatch: pytest.MonkeyPatch) -> None:
    from focusstudio import _allocator

    calls: list[tuple[int, int]] = []

    class FakeLibc:
        def mallopt(self, parameter: int, value: int) -> int:
            calls.append((parameter, value))
            return 1

    monkeypatch.setattr(_allocator.ctypes, "CDLL", lambda name: FakeLibc())
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "1000")
    _allocator.tune_allocator()
    assert calls == []
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_")
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    _allocator.tune_allocator()
    assert calls == [(-3, _allocator.HEAP_BLOCK_LIMIT), (-1, _allocator.RETAINED_FREE_MEMORY)]

"""Batch fusion on a real dask.distributed LocalCluster (2 worker processes started here): the same
bytes as a local run, for one task per stack and for a huge frame fanned out in tiles."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import pytest

from focusstudio.core.batch import BatchSettings, discover_stacks, run_batch
from focusstudio.core.batch.sources import StackSpec
from focusstudio.core.progress import run_to_completion
from focusstudio.core.sidecar import read_sidecar, sidecar_path
from tests.conftest import build_focus_stack
from tests.core.test_batch import BROKEN, outputs, write_stacks

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


def test_the_cluster_gives_the_local_bytes_and_reports_the_broken_stack(tmp_path: Path, scheduler: str) -> None:
    root = write_stacks(tmp_path / "root")
    specs = discover_stacks(root)
    local = run_to_completion(run_batch(specs, BatchSettings(tmp_path / "local", align=False)))
    on_cluster = run_to_completion(
        run_batch(specs, BatchSettings(tmp_path / "cluster", align=False), scheduler=scheduler)
    )
    assert [o.status for o in on_cluster.outcomes] == [o.status for o in local.outcomes]
    assert [o.name for o in on_cluster.failed] == [BROKEN]
    assert on_cluster.failed[0].reason == local.failed[0].reason
    assert outputs(tmp_path / "cluster") == outputs(tmp_path / "local")
    assert len(outputs(tmp_path / "cluster")) == 5
    assert all(o.worker.startswith("tcp://") for o in on_cluster.outcomes)
    rerun = run_to_completion(run_batch(specs, BatchSettings(tmp_path / "cluster", align=False), scheduler=scheduler))
    assert rerun.count("skipped") == 5 and rerun.count("done") == 0


def test_a_huge_frame_in_tiles_on_the_cluster_equals_the_local_run(tmp_path: Path, scheduler: str) -> None:
    folder = tmp_path / "huge"
    folder.mkdir()
    stack = build_focus_stack(4, size=200, seed=3, colour=True, dtype="uint16")
    for index, frame in enumerate(stack.frames, start=1):
        cv2.imwrite(str(folder / f"{index}.tif"), frame)
    spec = [StackSpec("huge", (folder,))]
    local = run_to_completion(run_batch(spec, BatchSettings(tmp_path / "local", align=False)))
    tiled = run_to_completion(
        run_batch(spec, BatchSettings(tmp_path / "tiled", align=False), scheduler=scheduler, split_tiles=64)
    )
    assert local.outcomes[0].status == tiled.outcomes[0].status == "done"
    assert outputs(tmp_path / "tiled") == outputs(tmp_path / "local")
    # The analysis really came from the tiles: the client ran only the finish.
    tiled_sidecar = read_sidecar(sidecar_path(tmp_path / "tiled" / "huge_sf.tif"))
    local_sidecar = read_sidecar(sidecar_path(tmp_path / "local" / "huge_sf.tif"))
    assert tiled_sidecar is not None and local_sidecar is not None
    assert "analyze" in local_sidecar["seconds"] and "analyze" not in tiled_sidecar["seconds"]

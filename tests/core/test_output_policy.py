"""The output policy (core/io/output_policy.py): checks before work, no-clobber publishing, undo.

The property test builds random folders (files, hard links, symlinks), random inputs and random
outputs, runs a plan (sometimes failing half-way) and checks the promises: an input never
changes, a refused or failed run changes nothing, a successful one writes exactly its outputs,
replacing an existing file only with force, and no temporary file is ever left behind.
"""

from __future__ import annotations

import os
import signal
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from focusstudio.core.errors import OutputError
from focusstudio.core.io import output_policy
from focusstudio.core.io.output_policy import OutputPlan, publish_bytes
from focusstudio.core.signals import Terminated, exit_on_signals
from focusstudio.core.training.manifest import update_manifest

NAMES = ("a.png", "b.png", "c.png", "sub/d.png", "sub/e.png", "new/f.png")


def _snapshot(root: Path) -> dict[str, tuple[str, bytes | str]]:
    """Every entry under ``root``: ('file', bytes) / ('link', target) / ('dir', '')."""
    state: dict[str, tuple[str, bytes | str]] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs:
            path = Path(folder) / name
            state[str(path.relative_to(root))] = ("link", os.readlink(path)) if path.is_symlink() else ("dir", "")
        for name in files:
            path = Path(folder) / name
            key = str(path.relative_to(root))
            state[key] = ("link", os.readlink(path)) if path.is_symlink() else ("file", path.read_bytes())
    return state


def _temporaries(root: Path) -> list[str]:
    return [str(p) for p in root.rglob("*.part")]


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, object]:
    kinds = draw(st.lists(st.sampled_from(["absent", "file", "hardlink", "symlink"]), min_size=len(NAMES),
                          max_size=len(NAMES)))
    targets = draw(st.lists(st.integers(0, len(NAMES) - 1), min_size=len(NAMES), max_size=len(NAMES)))
    inputs = draw(st.lists(st.integers(0, len(NAMES) - 1), max_size=3, unique=True))
    outputs = draw(st.lists(st.integers(0, len(NAMES) - 1), min_size=1, max_size=4))
    return {
        "kinds": kinds, "targets": targets, "inputs": inputs, "outputs": outputs,
        "force": draw(st.booleans()),
        "fail_after": draw(st.one_of(st.none(), st.integers(0, 3))),
    }


def _build(root: Path, kinds: list[str], targets: list[int]) -> None:
    (root / "sub").mkdir()
    for index, (name, kind) in enumerate(zip(NAMES, kinds)):
        if kind == "file" and not name.startswith("new/"):
            (root / name).write_bytes(f"original {index}".encode())
    for name, kind, target in zip(NAMES, kinds, targets):
        source = root / NAMES[target]
        if kind in ("hardlink", "symlink") and not name.startswith("new/") and source.is_file() \
                and not source.is_symlink() and not os.path.lexists(root / name):
            if kind == "hardlink":
                os.link(source, root / name)
            else:
                os.symlink(source, root / name)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_output_plan_keeps_its_promises(scenario: dict[str, object]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        _build(root, scenario["kinds"], scenario["targets"])  # type: ignore[arg-type]
        inputs = [root / NAMES[i] for i in scenario["inputs"]]  # type: ignore[attr-defined]
        outputs = [root / NAMES[i] for i in scenario["outputs"]]  # type: ignore[attr-defined]
        force = bool(scenario["force"])
        fail_after = scenario["fail_after"]
        before = _snapshot(root)
        input_bytes = {path: path.read_bytes() for path in inputs if path.is_file()}
        input_ids = {output_policy.file_identity(path) for path in inputs} - {None}

        # What the policy must refuse, computed independently of it.
        expected_refusal = None
        seen: set[Path] = set()
        seen_ids: set[tuple[int, int] | None] = set()
        for path in outputs:
            identity = output_policy.file_identity(path)
            if identity in input_ids:
                expected_refusal = "input"
            elif path in seen or (identity is not None and identity in seen_ids):
                expected_refusal = "twice"  # the same name, or two names of one file (hard links)
            elif os.path.lexists(path) and not force:
                expected_refusal = "exists"
            if expected_refusal:
                break
            seen.add(path)
            seen_ids.add(identity)

        plan = OutputPlan(inputs, force=force)
        refused = None
        failed = False
        try:
            with plan:
                plan.folder(root / "new", "a new folder")
                for path in outputs:
                    plan.file(path, f"output {path.name}")
                for count, path in enumerate(outputs):
                    if fail_after is not None and count == fail_after:
                        raise RuntimeError("the run failed")
                    plan.write_bytes(path, f"written {path.name}".encode())
                plan.commit()
        except OutputError as error:
            refused = str(error)
        except RuntimeError:
            failed = True

        after = _snapshot(root)
        assert _temporaries(root) == []
        for path, content in input_bytes.items():
            assert path.read_bytes() == content, f"input {path} changed"
        if expected_refusal is not None:
            assert refused is not None, f"expected a refusal ({expected_refusal})"
            assert after == before
        elif failed:
            assert refused is None
            assert after == before
        else:
            assert refused is None, refused
            for path in outputs:
                assert not path.is_symlink() and path.read_bytes() == f"written {path.name}".encode()
            written = {str(path.relative_to(root)) for path in outputs}
            for key, value in before.items():
                if key not in written and value[0] != "dir":
                    # Untouched entries: still the same (a replaced hard link's twin keeps its bytes).
                    assert after[key] == value, key


def test_no_clobber_publication_loses_a_race_cleanly(tmp_path: Path) -> None:
    target = tmp_path / "out.png"
    with OutputPlan() as plan:
        plan.file(target)
        plan.write_bytes(target, b"mine")
        target.write_bytes(b"theirs")  # another run published first
        with pytest.raises(OutputError, match="another program"):
            plan.commit()
    assert target.read_bytes() == b"theirs"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]


def test_a_failed_second_publication_undoes_the_first(tmp_path: Path) -> None:
    plan = OutputPlan()
    plan.file(tmp_path / "fresh.png")
    plan.file(tmp_path / "raced.png")
    plan.write_bytes(tmp_path / "fresh.png", b"new")
    plan.write_bytes(tmp_path / "raced.png", b"new")
    (tmp_path / "raced.png").write_bytes(b"theirs")  # appears between the check and the publication
    with pytest.raises(OutputError, match=r"raced\.png"):
        plan.commit()
    assert not (tmp_path / "fresh.png").exists()
    assert (tmp_path / "raced.png").read_bytes() == b"theirs"
    assert _temporaries(tmp_path) == []


def test_forced_replacement_is_restored_when_the_commit_is_undone(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "one.png").write_bytes(b"old one")
    (tmp_path / "two.png").write_bytes(b"old two")
    calls: list[str] = []

    def hook(stage: str) -> None:
        calls.append(stage)
        if calls.count("published") == 1 and stage == "published":
            raise KeyboardInterrupt

    monkeypatch.setattr(output_policy, "fault_hook", hook)
    with pytest.raises(KeyboardInterrupt), OutputPlan(force=True) as plan:
        for name in ("one.png", "two.png"):
            plan.file(tmp_path / name)
            plan.write_bytes(tmp_path / name, b"new")
        plan.commit()
    assert (tmp_path / "one.png").read_bytes() == b"old one"
    assert (tmp_path / "two.png").read_bytes() == b"old two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.png", "two.png"]


def test_symlink_and_hard_link_to_an_input_are_refused(tmp_path: Path) -> None:
    source = tmp_path / "in" / "frame.png"
    source.parent.mkdir()
    source.write_bytes(b"frame")
    os.link(source, tmp_path / "hard.png")
    os.symlink(source, tmp_path / "soft.png")
    for alias in ("hard.png", "soft.png", "in/../in/frame.png"):
        with pytest.raises(OutputError, match="input") as info:
            publish_bytes(tmp_path / alias, b"x", inputs=[source.parent], force=True)
        assert alias.split("/")[-1] in str(info.value)
    assert source.read_bytes() == b"frame"


def test_folder_outputs_are_created_and_removed_again(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), OutputPlan() as plan:
        plan.folder(tmp_path / "a" / "b")
        plan.write_bytes(tmp_path / "a" / "b" / "m.png", b"map")
        raise RuntimeError
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_folder_is_refused_before_work(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    with pytest.raises(OutputError, match="not a folder"):
        OutputPlan().file(blocker / "out.png")
    with pytest.raises(OutputError, match="not a folder"):
        OutputPlan().folder(blocker / "maps")
    with pytest.raises(OutputError, match="does not exist"):
        OutputPlan().file(tmp_path / "missing" / "out.png")


def test_sigterm_becomes_terminated_and_is_held_back_during_a_commit(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    def hook(stage: str) -> None:
        if stage == "published":
            os.kill(os.getpid(), signal.SIGTERM)  # arrives in the middle of publishing

    monkeypatch.setattr(output_policy, "fault_hook", hook)
    with pytest.raises(Terminated) as info, exit_on_signals(), OutputPlan() as plan:
        for name in ("x.png", "y.png"):
            plan.file(tmp_path / name)
            plan.write_bytes(tmp_path / name, b"data")
        plan.commit()
    assert info.value.signum == signal.SIGTERM
    assert list(tmp_path.iterdir()) == []  # both publications undone


def test_manifest_updates_leave_no_lock_file(tmp_path: Path) -> None:
    update_manifest(tmp_path / "manifest.json", "w.pt", {"sha256": "0"})
    update_manifest(tmp_path / "manifest.json", "v.pt", {"sha256": "1"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json"]


@pytest.mark.parametrize("writer", ["plan", "atomic_output"])
def test_an_interrupt_right_after_the_temporary_file_is_created_leaves_no_part_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, writer: str) -> None:
    """Ctrl+C landing just after ``os.open`` created the ``.part`` file, before the writer had
    stored its name (the batch saw such a file left behind): the clean-up still knows it."""
    from focusstudio.core.io import atomic_output

    real_open = os.open
    created: list[str] = []

    def open_then_interrupt(path: object, flags: int, mode: int = 0o777, **kwargs: object) -> int:
        descriptor = real_open(path, flags, mode, **kwargs)  # type: ignore[arg-type]
        if str(path).endswith(".part") and "probe" not in str(path):
            os.close(descriptor)
            created.append(str(path))
            raise KeyboardInterrupt
        return descriptor

    monkeypatch.setattr(os, "open", open_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        if writer == "plan":
            with OutputPlan() as plan:
                plan.write_bytes(tmp_path / "out.png", b"image")
                plan.commit()
        else:
            with atomic_output(tmp_path / "out.json") as stream:
                stream.write(b"{}")
    monkeypatch.undo()
    assert created and not os.path.exists(created[0])
    assert sorted(os.listdir(tmp_path)) == []

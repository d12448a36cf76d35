"""The output policy: every file a FocusStudio run writes is declared, checked and published here.

One :class:`OutputPlan` per run (``fuse``, ``eval``, ``train``, ``demo``, an export of the window):

1. **Declare and check before any work.** The run lists its inputs (:meth:`OutputPlan.protect`)
   and every output it will write (:meth:`OutputPlan.file`, :meth:`OutputPlan.folder`). Each
   output is checked at once: it is never an input (compared by device and inode with
   ``os.stat``, so another spelling, a symlink or a hard link to an input is caught), never
   another output of the same run, its folder exists (or is a folder this run creates) and is
   writable, and an existing file is replaced only with ``force`` (``--force``). A bad case is an
   :class:`~focusstudio.core.errors.OutputError`: one line naming the file, exit code 2.
2. **Stage.** Each output is written to a hidden ``.<name>.<hex>.part`` file in its own folder
   (same file system, so publishing is a link or a rename, never a copy).
3. **Publish everything at the end** (:meth:`OutputPlan.commit`). Without ``force`` publishing
   is no-clobber: ``os.link(temporary, target)`` fails when the target appeared meanwhile (two
   runs with the same ``-o``: exactly one wins, the other gets "already exists" and exit 2). On
   file systems without hard links an ``O_EXCL`` create plays the same role. With ``force`` the
   target is replaced with ``os.replace`` (atomic), after a hard-linked backup of the old file.
   If one publication fails, the ones already made by this commit are undone (new files
   removed, replaced files restored from their backups).
4. **A run that fails leaves nothing new.** Any exception (an error, Ctrl+C, SIGTERM or SIGHUP
   turned into :class:`Terminated` by :func:`exit_on_signals`) before or during the commit
   removes the temporary files, undoes what was published and removes the folders the run
   created. Signals arriving while a commit or a clean-up is in progress are held back until
   it is finished, so the file system is never left half-published.

Published files get the permissions a normal new file gets (the umask), or keep those of the
file they replace.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO

from focusstudio.core.errors import OutputError
from focusstudio.core.signals import Terminated, exit_on_signals, signal_pending, signals_held_back

__all__ = ["OutputPlan", "Terminated", "create_temporary", "exit_on_signals", "file_identity", "publish_bytes"]

PathLike = str | Path
Identity = tuple[int, int]

#: Errors of ``os.link`` that mean "this file system has no hard links" (FAT, some network
#: shares): publishing then falls back to an exclusive create, still no-clobber.
_NO_HARD_LINKS = frozenset(
    code for code in (errno.EPERM, getattr(errno, "ENOTSUP", None), getattr(errno, "EOPNOTSUPP", None),
                      getattr(errno, "ENOSYS", None), errno.EMLINK, errno.EXDEV) if code is not None
)
_TEMP_SUFFIX = ".part"

#: Test seam: called with "staged" when a commit starts (every output staged, none published) and
#: with "published" after each publication, so tests can stop a run at exactly those points (a
#: signal sent from outside could not hit them deterministically).
fault_hook: Callable[[str], None] | None = None


# --------------------------------------------------------------------------- identities
def file_identity(path: PathLike) -> Identity | None:
    """(device, inode) of the file ``path`` leads to (through symlinks); None when there is none."""
    try:
        info = os.stat(path)
    except (OSError, ValueError):
        return None
    return info.st_dev, info.st_ino


def _abspath(path: PathLike) -> Path:
    return Path(os.path.abspath(os.fspath(path)))


def _name_key(path: Path) -> tuple[str, str]:
    """Two outputs collide when they are the same name in the same real folder. Names compare
    case-insensitively: on macOS and Windows ``Decision.png`` and ``decision.png`` are one file."""
    return os.path.normcase(os.path.realpath(path.parent)), path.name.casefold()


def _folder_key(path: Path) -> str:
    return os.path.normcase(os.path.realpath(path))


def _probe_writable(folder: Path) -> None:
    """Create and remove a hidden file: the only reliable test (ACLs, read-only mounts, root)."""
    probe = folder / f".focusstudio-probe-{secrets.token_hex(4)}{_TEMP_SUFFIX}"
    try:
        descriptor = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise OutputError(f"cannot write in this folder ({exc.strerror or exc})", folder) from None
    os.close(descriptor)
    with contextlib.suppress(OSError):
        os.unlink(probe)


def _nearest_existing(path: Path) -> Path:
    current = path
    while not os.path.lexists(current) and current.parent != current:
        current = current.parent
    return current


# --------------------------------------------------------------------------- the plan
@dataclass
class _Output:
    path: Path
    role: str
    replace: bool
    temporary: Path | None = None
    identity: Identity | None = None  # of the staged file: a rollback removes only our own file
    backup: Path | None = None
    published: bool = False
    created: bool = False


class OutputPlan:
    """The outputs of one run: checked when declared, staged while working, published at the end.

    ``inputs`` are files or folders the run reads (see :meth:`protect`); ``force`` allows
    replacing existing files. Use as a context manager: leaving the block by an exception, or
    without :meth:`commit`, removes everything the run staged or published.
    """

    def __init__(self, inputs: Iterable[PathLike | None] = (), *, force: bool = False) -> None:
        self.force = force
        self._inputs: dict[Identity, Path] = {}
        self._outputs: dict[tuple[str, str], _Output] = {}
        self._order: list[_Output] = []
        self._folders: dict[str, tuple[Path, str]] = {}
        self._created_folders: list[Path] = []
        self._committed = False
        self.protect(inputs)

    # ------------------------------------------------------------------ declaring
    def protect(self, paths: Iterable[PathLike | None], *, recursive: bool = False,
                only: Callable[[Path], bool] | None = None) -> None:
        """Add inputs: files, and folders with the files in them (every level with ``recursive``;
        only those ``only`` accepts, when given: e.g. the images of a training folder, not the
        weights a user keeps next to them).

        Missing paths are skipped (the readers report them); ``None`` entries are ignored.
        """
        for item in paths:
            if item is None:
                continue
            path = Path(item)
            identity = file_identity(path)
            if identity is None:
                continue
            self._inputs.setdefault(identity, path)
            if not path.is_dir():
                continue
            try:  # an unreadable folder: the readers report it; os.walk skips it silently
                walker = os.walk(path) if recursive else [(str(path), [], os.listdir(path))]
            except OSError:
                continue
            for folder, _dirs, names in walker:
                for name in names:
                    child = Path(folder) / name
                    child_identity = file_identity(child)
                    if child_identity is not None and not os.path.isdir(child) and (only is None or only(child)):
                        self._inputs.setdefault(child_identity, child)

    @property
    def input_paths(self) -> list[Path]:
        """The protected inputs (one path per file)."""
        return list(self._inputs.values())

    def declared(self, path: PathLike) -> bool:
        """Whether ``path`` is already one of this run's outputs."""
        return _name_key(_abspath(path)) in self._outputs

    def is_input(self, path: PathLike) -> bool:
        identity = file_identity(path)
        return identity is not None and identity in self._inputs

    def folder(self, path: PathLike, role: str = "the output folder") -> Path:
        """Declare a folder the run writes into (created when it is first written to)."""
        folder = _abspath(path)
        if os.path.lexists(folder) and not folder.is_dir():
            raise OutputError(f"is a file, not a folder for {role}", path)
        self._check_folder_writable(folder, path)
        self._folders[_folder_key(folder)] = (folder, role)
        return folder

    def file(self, path: PathLike, role: str = "the output", *, replace: bool = False) -> Path:
        """Declare an output file and check it now; returns its absolute path.

        ``replace`` allows replacing an existing file without ``force`` (files the run owns,
        such as its own checkpoint).
        """
        target = _abspath(path)
        if target.name in ("", ".", "..") or target.is_dir():
            raise OutputError("is a folder; give a file name", path)
        identity = file_identity(target)
        if identity is not None and identity in self._inputs:
            source = self._inputs[identity]
            same = "" if _abspath(source) == target else f" (the same file as {source})"
            raise OutputError(f"is one of the input files{same} and is never overwritten; choose another name",
                              path)
        key = _name_key(target)
        other = self._outputs.get(key)
        if other is not None:
            raise OutputError(f"would be written twice by this run (it is also {other.role}); "
                              "choose another name", path)
        for planned in self._order:
            if identity is not None and planned.identity is None and file_identity(planned.path) == identity:
                raise OutputError(f"is the same file as {planned.path} ({planned.role}); choose another name",
                                  path)
        self._check_parent(target, path)
        if os.path.lexists(target) and not (replace or self.force):
            raise OutputError("already exists; choose another name or allow replacing it (--force)", path)
        output = _Output(target, role, replace or self.force)
        self._outputs[key] = output
        self._order.append(output)
        return target

    def _check_parent(self, target: Path, shown: PathLike) -> None:
        parent = target.parent
        if parent.is_dir():
            self._check_folder_writable(parent, shown)
            return
        if self._planned_folder_above(parent) is None:
            if os.path.lexists(parent):
                raise OutputError(f"cannot be written: {parent} is not a folder", shown)
            raise OutputError(f"cannot be written: the folder {parent} does not exist", shown)

    def _planned_folder_above(self, folder: Path) -> Path | None:
        current = folder
        while True:
            entry = self._folders.get(_folder_key(current))
            if entry is not None:
                return entry[0]
            if current.parent == current:
                return None
            current = current.parent

    def _check_folder_writable(self, folder: Path, shown: PathLike) -> None:
        existing = _nearest_existing(folder)
        if not existing.is_dir():
            raise OutputError(f"cannot be created: {existing} is not a folder", shown)
        _probe_writable(existing)

    # ------------------------------------------------------------------ staging
    @contextlib.contextmanager
    def open(self, path: PathLike, role: str = "an output") -> Iterator[IO[bytes]]:
        """A binary stream to a hidden temporary file for ``path`` (declared now if it was not).

        Published by :meth:`commit`; removed if the block raises.
        """
        output = self._outputs.get(_name_key(_abspath(path)))
        if output is None:
            self.file(path, role)
            output = self._outputs[_name_key(_abspath(path))]
        if output.temporary is not None:
            raise OutputError("would be written twice by this run", path)
        self._make_folders(output.path.parent)

        def record(candidate: Path | None) -> None:
            output.temporary = candidate

        try:
            with signals_held_back():
                descriptor = create_temporary(output.path.parent, output.path.name, record)
        except OSError as exc:
            raise OutputError(f"cannot create a temporary file ({exc.strerror or exc})", output.path.parent) from exc
        temporary = output.temporary
        assert temporary is not None
        try:
            with os.fdopen(descriptor, "wb") as stream:
                yield stream
                stream.flush()
                os.fsync(stream.fileno())
            output.identity = file_identity(temporary)
        except BaseException:
            with signals_held_back():
                output.temporary = None
                with contextlib.suppress(OSError):
                    os.unlink(temporary)
            raise

    def write_bytes(self, path: PathLike, payload: bytes, role: str = "an output") -> Path:
        try:
            with self.open(path, role) as stream:
                stream.write(payload)
        except OSError as exc:
            raise OutputError(f"cannot be written ({exc.strerror or exc})", path) from exc
        return _abspath(path)

    def write_text(self, path: PathLike, text: str, role: str = "an output", encoding: str = "utf-8") -> Path:
        return self.write_bytes(path, text.encode(encoding), role)

    def _make_folders(self, folder: Path) -> None:
        missing: list[Path] = []
        current = folder
        while not os.path.lexists(current):
            missing.append(current)
            current = current.parent
        for item in reversed(missing):
            try:
                os.mkdir(item)
            except FileExistsError:
                continue
            except OSError as exc:
                raise OutputError(f"cannot create the folder ({exc.strerror or exc})", item) from exc
            self._created_folders.append(item)

    def staged_stat(self, path: PathLike) -> os.stat_result:
        """``os.stat`` of the staged file for ``path``: publishing links or renames that very file,
        so its size and modification time are those the published file will have."""
        output = self._outputs.get(_name_key(_abspath(path)))
        if output is None or output.temporary is None:
            raise OutputError("has not been written by this run yet", path)
        return os.stat(output.temporary)

    @property
    def staged(self) -> list[Path]:
        return [output.path for output in self._order if output.temporary is not None]

    # ------------------------------------------------------------------ publishing
    def commit(self) -> list[Path]:
        """Publish every staged output (all or none); returns their paths in declaration order.

        A signal arriving while publishing is held back until the end, and then undoes the
        publication: a run stopped before it returned leaves nothing new.
        """
        if fault_hook is not None:
            fault_hook("staged")
        with signals_held_back():
            try:
                for output in self._order:
                    if output.temporary is not None:
                        self._publish(output)
                        if fault_hook is not None:
                            fault_hook("published")
            except BaseException:
                self._abort()
                raise
            if signal_pending():
                self._abort()
                return []  # leaving the block raises Terminated
            for output in self._order:
                if output.backup is not None:
                    with contextlib.suppress(OSError):
                        os.unlink(output.backup)
                    output.backup = None
            self._committed = True
        return [output.path for output in self._order if output.published]

    def _publish(self, output: _Output) -> None:
        temporary, target = output.temporary, output.path
        assert temporary is not None
        try:
            if not output.replace:
                _link_no_clobber(temporary, target)
                output.created = True
            else:
                if os.path.lexists(target):
                    output.backup = _backup(target)
                    with contextlib.suppress(OSError):
                        os.chmod(temporary, stat.S_IMODE(os.stat(target).st_mode))
                else:
                    output.created = True
                os.replace(temporary, target)
        except FileExistsError:
            raise OutputError("was created by another program (or run) while this run was working; "
                              "nothing was replaced", target) from None
        except OSError as exc:
            raise OutputError(f"cannot be written ({exc.strerror or exc})", target) from exc
        output.published = True
        with contextlib.suppress(OSError):
            if os.path.lexists(temporary):
                os.unlink(temporary)
        output.temporary = None

    def abort(self) -> None:
        """Remove the staged files, undo the publications, remove the folders this run created."""
        with signals_held_back():
            self._abort()

    def _abort(self) -> None:
        for output in reversed(self._order):
            if output.temporary is not None:
                with contextlib.suppress(OSError):
                    os.unlink(output.temporary)
                output.temporary = None
            if output.published:
                if output.backup is not None:
                    with contextlib.suppress(OSError):
                        os.replace(output.backup, output.path)
                elif output.created and output.identity is not None and \
                        file_identity(output.path) == output.identity:
                    with contextlib.suppress(OSError):
                        os.unlink(output.path)
                output.published = False
            if output.backup is not None:
                with contextlib.suppress(OSError):
                    os.unlink(output.backup)
                output.backup = None
        for folder in reversed(self._created_folders):
            with contextlib.suppress(OSError):
                os.rmdir(folder)  # only when empty: never removes anything but our own folder
        self._created_folders.clear()

    def __enter__(self) -> OutputPlan:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if not self._committed:
            self.abort()


# --------------------------------------------------------------------------- primitives
def create_temporary(folder: Path, name: str, record: Callable[[Path | None], None]) -> int:
    """Create a new hidden ``.<name>.<hex>.part`` file next to the destination (same file system,
    so publishing is a link or a rename) and return its descriptor, open for writing.

    ``record`` is told the file's path *before* the file is created (and None again when that name
    was taken): an interruption (Ctrl+C) landing just after the create, before the caller has
    stored the path, would otherwise leave a ``.part`` file no clean-up knows of. Callers hold
    signals back around this call too (:func:`signals_held_back`). Mode 0o666 lets the umask give
    the permissions a normal new file would get. OSError when the folder is not writable.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        candidate = folder / f".{name}.{secrets.token_hex(4)}{_TEMP_SUFFIX}"
        record(candidate)
        try:
            return os.open(candidate, flags, 0o666)
        except FileExistsError:
            record(None)  # another run's file: never ours to remove
            continue
        except OSError:
            record(None)  # nothing was created
            raise
        # Anything else (KeyboardInterrupt) may come after the create: the name stays recorded.
    raise FileExistsError(errno.EEXIST, "no free temporary file name", str(folder))


def _link_no_clobber(temporary: Path, target: Path) -> None:
    """Publish ``temporary`` as ``target`` unless ``target`` exists (FileExistsError then)."""
    try:
        os.link(temporary, target)
        return
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in _NO_HARD_LINKS:
            raise
    # No hard links here: reserve the name with O_EXCL, then copy. Still never replaces a file.
    descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(descriptor, "wb") as destination, open(temporary, "rb") as source:
            shutil.copyfileobj(source, destination)
            destination.flush()
            os.fsync(destination.fileno())
        # Keep the staged file's times, as a link would: a batch sidecar records the image's mtime.
        staged = os.stat(temporary)
        os.utime(target, ns=(staged.st_atime_ns, staged.st_mtime_ns))
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(target)
        raise


def _backup(target: Path) -> Path | None:
    """A hard link to the file about to be replaced, so a failed commit can put it back."""
    for _ in range(100):
        candidate = target.with_name(f".{target.name}.{secrets.token_hex(4)}.old{_TEMP_SUFFIX}")
        try:
            os.link(target, candidate, follow_symlinks=False)
            return candidate
        except FileExistsError:
            continue
        except (OSError, NotImplementedError):
            return None  # no hard links here: the replacement stays atomic, only not undoable
    return None


def publish_bytes(path: PathLike, payload: bytes, *, inputs: Iterable[PathLike | None] = (),
                  force: bool = False, role: str = "the output") -> Path:
    """Check, stage and publish one file: the whole policy for a single-file writer."""
    with OutputPlan(inputs, force=force) as plan:
        plan.file(path, role)
        plan.write_bytes(path, payload, role)
        plan.commit()
    return _abspath(path)

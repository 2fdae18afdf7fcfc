"""Atomic file writes and run directories (unique names, a lock, stale temp files).

Every file minigan writes during training (checkpoint, sample grids, plots, GIF, logs) goes
through :func:`atomic_write`: the bytes go to a uniquely named temporary file in the target's
directory, are flushed to disk, and the temporary file is renamed over the target with
:func:`os.replace` (atomic on POSIX and Windows). So a reader never sees half a file, a crash
leaves the previous version intact, two writers never share a temporary file, and a symbolic
link placed at the target is *replaced* by the new file instead of being written through.

A run directory (:class:`RunDir`) is held under a lock file (:mod:`filelock`) for the whole
run, so a second run into the same directory is refused instead of mixing its files with the
first; when the lock is taken, temporary files left by a killed run are removed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

__all__ = ["atomic_write", "RunDir", "RunDirInUseError", "new_run_dir", "RUN_FILES"]

TMP_SUFFIX = ".tmp"
LOCK_NAME = ".minigan.lock"
#: The files (and folder) a training run writes; a directory holding one of them holds a run.
RUN_FILES = (
    "checkpoint.npz",
    "log.json",
    "log.csv",
    "losses.png",
    "progress.gif",
    "metrics.png",
    "metrics.json",
    "samples",
)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _name_the_file(e: OSError, path: Path) -> OSError:
    """The same OSError with the target named (``[Errno 28] ...`` alone says not which file)."""
    if e.errno == errno.ENOSPC:
        return OSError(e.errno, f"no space left on the device while writing {path}")
    return OSError(e.errno, f"{e.strerror or e} (writing {path})")


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", **open_kw) -> Iterator[IO]:
    """Open a temporary file next to ``path``; on success fsync it and ``os.replace`` it there.

    Parameters
    ----------
    path : path
        The target. Its directory must exist. A symlink there is replaced, never followed.
    mode : {"wb", "w"}
        Binary or text.
    **open_kw
        Passed to :func:`os.fdopen` (``encoding=``, ``newline=``).

    Yields
    ------
    file object
        Write the content to it; leave the ``with`` block to publish it.

    Raises
    ------
    OSError
        The write failed (the target is untouched and the temporary file removed); the message
        names the target (``ENOSPC``: "no space left on the device while writing PATH").

    Notes
    -----
    The temporary file is ``.<name>.<random>.tmp`` (:func:`tempfile.mkstemp`), unique per
    writer, with the permissions of a normal new file (0666 minus the umask).
    """
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    except OSError as e:
        raise _name_the_file(e, path) from e
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600
        with os.fdopen(fd, mode, **open_kw) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise _name_the_file(e, path) from e
        raise


class RunDirInUseError(ValueError):
    """Another process holds the run directory's lock."""


class RunDir:
    """Hold ``path`` as a run directory: its lock, and the removal of stale temp files.

    ``with RunDir(path) as rd:`` creates ``path`` if needed, takes ``path/.minigan.lock``
    without waiting (:class:`filelock.FileLock`) and removes ``.*.tmp`` files left in it and
    in ``samples/`` by a run that was killed while writing.

    Parameters
    ----------
    path : path
        The run directory.

    Raises
    ------
    RunDirInUseError
        Another run holds the lock (a ``ValueError``: the CLI reports it as bad input).

    Notes
    -----
    The lock is advisory and released when the process ends (also on SIGKILL), so a killed
    run never leaves the directory locked.
    """

    def __init__(self, path: str | os.PathLike):
        from filelock import FileLock

        self.path = Path(path)
        self.lock = FileLock(str(self.path / LOCK_NAME), timeout=0)
        self.removed: list[Path] = []

    def __enter__(self) -> RunDir:
        from filelock import Timeout

        self.path.mkdir(parents=True, exist_ok=True)
        try:
            self.lock.acquire()
        except Timeout:
            raise RunDirInUseError(
                f"out_dir {self.path} is in use by another run (it holds {LOCK_NAME}); wait "
                "for it to finish or choose another directory (out_dir= / --out)"
            ) from None
        self.removed = self.clean_stale_temps()
        return self

    def __exit__(self, *exc) -> bool:
        self.lock.release()
        return False

    def clean_stale_temps(self) -> list[Path]:
        """Remove the ``.*.tmp`` files of earlier writers (call it holding the lock)."""
        removed = []
        for folder in (self.path, self.path / "samples"):
            for p in folder.glob(f".*{TMP_SUFFIX}") if folder.is_dir() else ():
                with contextlib.suppress(OSError):
                    p.unlink()
                    removed.append(p)
        return removed

    def holds_run(self) -> bool:
        """True if the directory holds files of a training run (:data:`RUN_FILES`)."""
        for name in RUN_FILES:
            p = self.path / name
            if name == "samples" and p.is_dir() and not p.is_symlink():
                if any(p.glob("*.png")):  # an empty samples/ is no run
                    return True
            elif p.exists() or p.is_symlink():
                return True
        return False

    def clear_run(self) -> None:
        """Remove the files of an earlier run (only :data:`RUN_FILES`; other files stay)."""
        for name in RUN_FILES:
            p = self.path / name
            if p.is_dir() and not p.is_symlink():
                for f in p.glob("*.png"):
                    f.unlink()
                with contextlib.suppress(OSError):
                    p.rmdir()
            elif p.exists() or p.is_symlink():
                p.unlink()


def new_run_dir(parent: str | os.PathLike, stem: str) -> Path:
    """Create and return a new directory ``parent/<stem>-<YYYYmmdd-HHMMSS>`` (``-2``, ``-3``...
    appended when that name exists, e.g. two runs started in the same second).

    Parameters
    ----------
    parent : path
        Where the run directories live (``runs``); created if missing.
    stem : str
        The first part of the name (the dataset).

    Returns
    -------
    Path
        A directory that did not exist before this call (``mkdir`` without ``exist_ok``
        claims it, so two processes never get the same one).
    """
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    base = f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    for i in range(1, 10_000):
        path = parent / (base if i == 1 else f"{base}-{i}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise ValueError(f"cannot find a free run directory name {base}-N in {parent}")

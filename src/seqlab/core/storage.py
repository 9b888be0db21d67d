"""Atomic file writes and deterministic array archives.

Every output is written to a temporary file in the same directory and renamed over the target,
so a killed process never leaves a half-written file behind. Array archives are zip files with
fixed timestamps, so the same arrays always give the same bytes (DVC hashes stay stable), and
zip CRCs make a truncated or edited file fail loudly on load.
"""

from __future__ import annotations

import glob
import hashlib
import io
import json
import os
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np

from seqlab.core.errors import DataError

_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
_UMASK = os.umask(0)
os.umask(_UMASK)


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path` in one rename."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(target)
    # The writer's pid is in the name, so a later write can tell a killed writer's leftover from a live one.
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=suffix + ".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp creates 0600; outputs should be readable like any file
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


def _remove_stale_temps(target: Path) -> None:
    """Delete temporary files left beside `target` by writers that were killed (kill -9, OOM, power)."""
    prefix = f".{target.name}."
    for tmp in target.parent.glob(glob.escape(prefix) + "*.tmp"):
        pid = tmp.name[len(prefix):].split(".", 1)[0]
        if pid.isdigit() and not _process_alive(int(pid)):
            tmp.unlink(missing_ok=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. PermissionError: it exists but belongs to someone else
        return True
    return True


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], Any]) -> None:
    """Call `write(fh)` on a binary handle whose contents atomically become `path`."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        write(fh)


def write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))


def sha256_file(path: str | os.PathLike) -> str:
    """The hex sha256 of a file's bytes (font and corpus manifests name their sources by it)."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def save_arrays(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    """Save named arrays as an .npz-compatible zip with fixed timestamps (byte-deterministic)."""

    def write(fh: IO[bytes]) -> None:
        with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
            for name in sorted(arrays):
                buf = io.BytesIO()
                np.lib.format.write_array(buf, np.asarray(arrays[name]), allow_pickle=False)
                info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_EPOCH)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                zf.writestr(info, buf.getvalue())

    atomic_write(path, write)


class Arrays(dict):
    """The arrays of one archive; a missing name (an edited or foreign file) raises DataError, not KeyError."""

    def __init__(self, path: Path, arrays: dict[str, np.ndarray]) -> None:
        super().__init__(arrays)
        self.path = path

    def __missing__(self, name: str) -> np.ndarray:
        raise DataError(f"{self.path}: data file is corrupt or was edited (no array {name!r}); "
                        "regenerate it with dvc repro -f")


def load_arrays(path: str | os.PathLike) -> Arrays:
    """Load every array of an archive written by `save_arrays`; corrupt files raise DataError."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: data file is missing (run the generate stage first: dvc repro)")
    try:
        if not zipfile.is_zipfile(path):
            raise ValueError("not a zip archive")
        with np.load(path, allow_pickle=False) as npz:
            return Arrays(path, {name: npz[name] for name in npz.files})
    except Exception as exc:  # noqa: BLE001 - zlib.error, NotImplementedError... any damage is the same error
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: data file is corrupt or truncated ({detail}); regenerate it with dvc repro -f") from None

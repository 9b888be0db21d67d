"""Atomic file writes and deterministic array archives.

Every output is written to a temporary file in the same directory and renamed over the target,
so a killed process never leaves a half-written file behind. Array archives are zip files with
fixed timestamps, so the same arrays always give the same bytes (DVC hashes stay stable), and
zip CRCs make a truncated or edited file fail loudly on load.
"""

from __future__ import annotations

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

from seqlab.errors import DataError

_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
_UMASK = os.umask(0)
os.umask(_UMASK)


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path` in one rename."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix + ".tmp", dir=target.parent)
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


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], Any]) -> None:
    """Call `write(fh)` on a binary handle whose contents atomically become `path`."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        write(fh)


def write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))


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


def load_arrays(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Load every array of an archive written by `save_arrays`; corrupt files raise DataError."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: data file is missing (run the generate stage first: dvc repro)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise DataError(f"{path}: data file is corrupt or truncated ({exc}); regenerate it with dvc repro -f") from exc

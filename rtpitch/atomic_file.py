"""Write a file whole or not at all: what a reader (a DAW, a resumed run) finds
at the path is the old file or the new one, never half of one."""

from __future__ import annotations

import os
import tempfile


def umask() -> int:
    """This process's umask (read without changing it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: str | os.PathLike, data: bytes) -> None:
    """``data`` into ``path``: a temporary file beside it, flushed to disk, then
    renamed over ``path``, with the mode of an ordinary new file (0666 less the
    umask; mkstemp makes 0600). The folder must exist. Raises OSError; the
    temporary file is removed then."""
    path = os.fspath(path)
    folder = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~umask())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise

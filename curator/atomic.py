"""Files replaced whole: written beside their place under a name of the writer's own, then renamed.

A reader never sees half a file, a kill mid-write leaves the previous file whole, and two
writers at once (processes or threads: each has its own temporary name) each put a whole file
in place, the last one staying.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path


def write(path: str | os.PathLike, writer: Callable[[Path], object]) -> Path:
    """``writer(tmp)`` writes the file at ``tmp`` (same folder and suffix as ``path``), which then
    replaces ``path``; on an error the temporary file is removed and the error raised.

    Returns:
        ``path``, as a Path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}-{threading.get_ident()}.tmp{path.suffix}")
    try:
        writer(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_text(path: str | os.PathLike, text: str) -> Path:
    """``text`` (UTF-8) as the whole of ``path``, replaced atomically."""
    return write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))

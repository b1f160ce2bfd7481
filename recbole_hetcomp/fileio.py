"""Atomic file writes: readers (and a rerun after a kill) see the old file or the new one,
never half of one."""

import os
import tempfile


def atomic_write(path, write, suffix=""):
    """Write ``path`` through a temporary file in the same folder, then rename it into place.

    Args:
        path (str): destination file (its folder is created if missing).
        write (callable): ``write(tmp_path)`` writes the whole content to ``tmp_path``.
        suffix (str): suffix of the temporary file (some writers look at it).
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=suffix)
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)  # mkstemp creates 0600; give the file the permissions open() would
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_json_atomic(path, payload):
    """Write ``payload`` as indented JSON, atomically (see :func:`atomic_write`)."""
    import json

    def dump(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(payload, f, indent=2, default=str)

    atomic_write(path, dump, suffix=".json")

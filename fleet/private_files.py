"""Files only their owner may read (mode 0600) from the moment they exist: secrets (keys,
broker passwords, device settings) and the SQLite database.

Written with os.open(..., 0o600): a file created with the default mode and chmod'ed after
is readable by everyone in between, and stays so if the process dies there. The umask can
only take bits away, never add them.
"""
from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

PRIVATE = 0o600
log = logging.getLogger("telegest.files")


def write_private(path: str | Path, data: bytes | str, *, exclusive: bool = False) -> None:
    """Write `data` to `path`, mode 0600 from its creation. `exclusive`: refuse (FileExistsError)
    a path that exists; otherwise an existing file is first narrowed to 0600, then truncated."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    fd = os.open(path, flags, PRIVATE)
    try:
        os.fchmod(fd, PRIVATE)  # an existing file keeps its mode through O_TRUNC otherwise
        os.write(fd, data.encode() if isinstance(data, str) else data)
    finally:
        os.close(fd)


def create_private(path: str | Path) -> bool:
    """Create `path` empty with mode 0600 when it does not exist (True if it was created); an
    existing file of ours that others may read is narrowed to 0600, as older versions left it."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE))
        return True
    except FileExistsError:
        pass
    st = os.stat(path)
    if st.st_mode & 0o077 and st.st_uid == os.geteuid() and stat.S_ISREG(st.st_mode):
        os.chmod(path, PRIVATE)
        log.warning("%s was readable by others (mode %o): now 0600", path,
                    stat.S_IMODE(st.st_mode))
    return False

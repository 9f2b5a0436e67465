"""Which file system a path is on, from the kernel's mount table (``/proc/self/mountinfo``).

The local store keeps its index in SQLite in WAL mode, whose readers and writers share
memory through a file next to the database; on a network file system that file is not shared
between machines, and two machines writing at once corrupt the index (sqlite.org/wal.html).
:func:`network_filesystem` lets the store refuse such a path with the team store named as
the way. Where there is no mount table (not Linux) nothing is refused.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

MOUNTINFO = Path("/proc/self/mountinfo")

#: File system types that reach another machine, or a disk other machines mount too.
NETWORK = frozenset({
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "afs", "ceph", "glusterfs", "lustre", "gpfs",
    "beegfs", "davfs", "ncpfs", "coda", "ocfs2", "gfs2",
})
#: FUSE file systems (``fuse.NAME``) that do. Other FUSE types — fuse-overlayfs of rootless
#: containers, ntfs-3g (``fuseblk``), lxcfs — are local and pass.
NETWORK_FUSE = frozenset({
    "sshfs", "rclone", "s3fs", "goofys", "gcsfuse", "juicefs", "glusterfs", "ceph-fuse", "davfs",
    "mountpoint-s3", "blobfuse", "blobfuse2", "seaweedfs", "mfs", "lizardfs",
})

_ESCAPE = re.compile(r"\\([0-7]{3})")


def _unescape(field: str) -> str:
    """A mount point as the kernel writes it (space as ``\\040``) back to a path."""
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def mounts(mountinfo: str) -> list[tuple[str, str]]:
    """``(mount point, file system type)`` for each line of a mountinfo text."""
    out = []
    for line in mountinfo.splitlines():
        fields = line.split()
        if " - " not in line or len(fields) < 5:
            continue
        after = line.split(" - ", 1)[1].split()
        if after:
            out.append((_unescape(fields[4]), after[0]))
    return out


def mount_type(path: str, mountinfo: str) -> str | None:
    """The type of the deepest mount in ``mountinfo`` that holds the absolute, resolved ``path``."""
    best, kind = -1, None
    for point, fstype in mounts(mountinfo):  # later mounts shadow earlier ones on the same point
        inside = path == point or path.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= best:
            best, kind = len(point), fstype
    return kind


def is_network(kind: str | None) -> bool:
    """Whether a file system type reaches another machine."""
    if kind is None:
        return False
    return kind in NETWORK or (kind.startswith("fuse.") and kind[len("fuse."):] in NETWORK_FUSE)


def filesystem_type(path: str | os.PathLike) -> str | None:
    """The type of the file system ``path`` is on (``ext4``, ``nfs4``, ``fuse.sshfs``).

    A path that does not exist yet is judged by its nearest existing ancestor (where it
    would be created); links are followed. None where the mount table cannot be read.
    """
    try:
        mountinfo = MOUNTINFO.read_text()
    except OSError:
        return None
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return mount_type(os.path.realpath(path), mountinfo)


def network_filesystem(path: str | os.PathLike) -> str | None:
    """The type of the network file system ``path`` is on, or None if it is on a local one."""
    kind = filesystem_type(path)
    return kind if is_network(kind) else None

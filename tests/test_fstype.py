"""Which file system a path is on: the local store refuses network ones."""

from __future__ import annotations

import pytest

from mlnb.fstype import filesystem_type, is_network, mount_type, mounts, network_filesystem

# lines as /proc/self/mountinfo writes them: ID PARENT MAJ:MIN ROOT POINT OPTIONS ... - TYPE SOURCE OPTIONS
MOUNTINFO = "\n".join([
    "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw",
    "30 22 0:5 / /proc rw,nosuid - proc proc rw",
    "40 22 0:40 / /home/ann rw,relatime shared:9 - nfs4 files:/export/ann rw,vers=4.2",
    "41 40 8:2 / /home/ann/scratch rw - ext4 /dev/sdb1 rw",
    "42 22 0:41 / /mnt/team\\040share rw - cifs //nas/team rw",
    "43 22 0:42 / /mnt/remote rw shared:12 master:3 - fuse.sshfs ann@host:/ rw",
    "44 22 0:43 / /var/lib/containers rw - fuse.fuse-overlayfs fuse-overlayfs rw",
    "45 22 8:3 / /media/usb rw - fuseblk /dev/sdc1 rw",
    "46 22 0:44 / /mnt/s3 rw - fuse.rclone remote: rw",
    "47 22 0:45 / /mnt/later rw - ext4 /dev/sdd1 rw",
    "48 22 0:46 / /mnt/later rw - nfs server:/later rw",
])


def test_mount_points_are_read_with_their_escapes():
    assert ("/mnt/team share", "cifs") in mounts(MOUNTINFO)
    assert len(mounts(MOUNTINFO)) == 11


@pytest.mark.parametrize("path, kind, network", [
    ("/home/ann/runs", "nfs4", "nfs4"),
    ("/home/ann", "nfs4", "nfs4"),
    ("/home/annex/runs", "ext4", None),  # a prefix of the name is not a parent directory
    ("/home/ann/scratch/runs", "ext4", None),  # the deepest mount wins
    ("/mnt/team share/runs", "cifs", "cifs"),
    ("/mnt/remote/x", "fuse.sshfs", "fuse.sshfs"),
    ("/mnt/s3/runs", "fuse.rclone", "fuse.rclone"),
    ("/var/lib/containers/runs", "fuse.fuse-overlayfs", None),  # rootless containers: a local disk
    ("/media/usb/runs", "fuseblk", None),
    ("/mnt/later/runs", "nfs", "nfs"),  # a later mount on the same point shadows the earlier
    ("/srv/runs", "ext4", None),
])
def test_the_file_system_of_a_path_is_its_deepest_mount(path, kind, network):
    assert mount_type(path, MOUNTINFO) == kind
    assert is_network(kind) == (network is not None)


def test_a_path_not_yet_created_is_judged_where_it_would_be_created(tmp_path):
    assert filesystem_type(tmp_path / "a" / "b" / "runs") == filesystem_type(tmp_path)
    assert filesystem_type(tmp_path) is not None


def test_without_a_mount_table_nothing_is_refused(tmp_path, monkeypatch):
    import mlnb.fstype

    assert mount_type("/home/ann/runs", "") is None
    monkeypatch.setattr(mlnb.fstype, "MOUNTINFO", tmp_path / "no-such-table")
    assert filesystem_type(tmp_path) is None and network_filesystem(tmp_path) is None

#!/usr/bin/env python3
"""Writes an md RAID1 member superblock (metadata 1.2) into a partition of a disk image.

The installed-system harness builds its disks on the host, whose kernel may have no md driver,
so `mdadm --create` cannot run there. The version-1 superblock is a documented on-disk format
(the kernel's include/uapi/linux/raid/md_p.h, struct mdp_superblock_1): for 1.2 it lies 4 KiB
into the member, the data starts at data_offset, and the kernel checks a 32-bit folded sum of
the first 256 + 2*max_dev bytes. The array is written clean (resync_offset = MaxSector), so the
members' data areas must already be identical: the caller copies one onto the other.

usage: installed-md.py ARRAY_UUID NAME MEMBER...   (MEMBER: IMAGE:PART_OFFSET:PART_SIZE, in bytes)
Member i gets role i; all get the same creation time and event count, which mdadm compares.
Prints "DATA_OFFSET DATA_SIZE" in bytes (relative to the partition).
"""
import os
import struct
import sys
import time
import uuid

MAGIC = 0xA92B4EFC
SUPER_OFFSET_SECTORS = 8           # 1.2: 4 KiB from the start of the member
DATA_OFFSET_SECTORS = 2048         # 1 MiB, what mdadm leaves on small members
MAX_DEV = 384                      # room in the roles table, as mdadm writes it
ROLE_SPARE = 0xFFFF
MAX_SECTOR = 0xFFFFFFFFFFFFFFFF    # resync_offset: the whole array is in sync


def checksum(sb: bytes) -> int:
    """The kernel's calc_sb_1_csum: little-endian 32-bit words summed in 64 bits, then folded."""
    total = sum(struct.unpack_from('<%dI' % (len(sb) // 4), sb))
    return ((total & 0xFFFFFFFF) + (total >> 32)) & 0xFFFFFFFF


def superblock(array_uuid: bytes, name: str, dev_number: int, raid_disks: int, data_sectors: int, now: int) -> bytes:
    sb = bytearray(256 + 2 * MAX_DEV)
    struct.pack_into('<IIII', sb, 0, MAGIC, 1, 0, 0)          # magic, major_version, feature_map, pad0
    sb[16:32] = array_uuid
    sb[32:64] = name.encode()[:32].ljust(32, b'\0')
    struct.pack_into('<QIIQ', sb, 64, now, 1, 0, data_sectors)  # ctime, level 1, layout, size
    struct.pack_into('<III', sb, 88, 0, raid_disks, 0)          # chunksize, raid_disks, bitmap_offset
    struct.pack_into('<QQQQ', sb, 128, DATA_OFFSET_SECTORS, data_sectors, SUPER_OFFSET_SECTORS, 0)
    struct.pack_into('<II', sb, 160, dev_number, 0)             # dev_number, cnt_corrected_read
    sb[168:184] = uuid.uuid4().bytes                            # this member's device_uuid
    struct.pack_into('<QQQ', sb, 192, now, 1, MAX_SECTOR)      # utime, events, resync_offset
    struct.pack_into('<I', sb, 220, MAX_DEV)
    for i in range(MAX_DEV):
        struct.pack_into('<H', sb, 256 + 2 * i, i if i < raid_disks else ROLE_SPARE)
    struct.pack_into('<I', sb, 216, checksum(bytes(sb)))
    return bytes(sb)


def main() -> None:
    if len(sys.argv) < 4:
        sys.exit(__doc__.split('\n\n')[-1])
    array_uuid, name, members = uuid.UUID(sys.argv[1]).bytes, sys.argv[2], sys.argv[3:]
    parsed = []
    for m in members:
        image, offset, size = m.rsplit(':', 2)
        offset, size = int(offset), int(size)
        if offset % 512 or size % 512:
            sys.exit('%s: the partition must be sector aligned' % m)
        parsed.append((image, offset, size))
    # The used size: what follows the data offset on the smallest member, in whole 4 KiB blocks.
    data_sectors = (min(s for _, _, s in parsed) // 512 - DATA_OFFSET_SECTORS) // 8 * 8
    if data_sectors <= 0:
        sys.exit('the partitions are too small for md members')
    now = int(time.time())
    for role, (image, offset, _) in enumerate(parsed):
        sb = superblock(array_uuid, name, role, len(parsed), data_sectors, now)
        with open(image, 'r+b') as f:
            f.seek(offset + SUPER_OFFSET_SECTORS * 512)
            f.write(sb.ljust(4096, b'\0'))
            f.flush()
            os.fsync(f.fileno())
    print(DATA_OFFSET_SECTORS * 512, data_sectors * 512)


if __name__ == '__main__':
    main()

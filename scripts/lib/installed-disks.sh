# shellcheck shell=bash disable=SC2034  # ROOT_ARG, DISKS, ... are read by the caller
# The installed system's disks, built on the host (faster than inside TCG) from the root
# filesystem directory: GPT with sfdisk, LVM metadata written by the host's lvm2 without
# device-mapper (the LV is then a plain byte range of the PV), md RAID1 superblocks written by
# installed-md.py (the host kernel may lack md), file systems made on loop devices over byte
# ranges. Sourced by scripts/installed-system (log, die).
#
# Layouts (LAYOUT):
#   plain-ext4   GPT + one ext4 root partition (root=UUID=)
#   lvm-ext4     GPT + one PV partition, VG debian-vg, LVs root (ext4) and swap_1 (Debian installer, guided LVM)
#   lvm-xfs      GPT + one PV partition, VG rhel, LVs root (xfs) and swap (RHEL's default names)
#   md-lvm-ext4  two disks, GPT + one RAID partition each, md RAID1 (metadata 1.2) as the PV of
#                VG raid-vg, LVs root (ext4) and swap_1
#
# The swap LVs exist (the VG holds more than the root LV, as installers leave it) but are not
# in fstab: under TCG the initramfs's udev can exit before the swap LV's activation event is
# processed, and systemd then waits 90 s for a device it never sees as ready (measured here).
#
# After prepare_layout: ROOT_ARG (root= for the kernel). After make_layout_disks: DISKS, in QEMU order.

LAYOUTS="plain-ext4 lvm-ext4 lvm-xfs md-lvm-ext4"
DISK_MIB=3072
ROOT_LV_MIB=2048
SWAP_LV_MIB=256
GPT_LINUX_FS=0FC63DAF-8483-4772-8E79-3D69D8477DE4
GPT_LINUX_LVM=E6D6D379-F507-44C2-A23C-238F2A3DF928
GPT_LINUX_RAID=A19D880F-05FC-4D3B-A006-743F0F84911E
MD_PY=$(dirname "${BASH_SOURCE[0]}")/installed-md.py

LOOPS=()
detach_loops() {
  local l
  for l in "${LOOPS[@]}"; do losetup -d "$l" 2>/dev/null || true; done
  LOOPS=()
}

new_uuid() { cat /proc/sys/kernel/random/uuid; }

# loop_range IMAGE OFFSET SIZE: LOOP_DEV, a loop device over that byte range, recorded for
# detach_loops (so never call it in a subshell: the record would be lost with it).
loop_range() {
  LOOP_DEV=$(losetup --find --show --offset "$2" --sizelimit "$3" "$1") || die "losetup over $1 at $2 failed"
  LOOPS+=("$LOOP_DEV")
}

# gpt_disk IMAGE TYPE_GUID NAME: a sparse disk with one partition from 1 MiB to the end;
# sets PART_OFFSET and PART_SIZE (bytes).
gpt_disk() {
  local image=$1 type=$2 name=$3 start size
  rm -f "$image"
  truncate -s "${DISK_MIB}M" "$image"
  printf 'label: gpt\nstart=2048, type=%s, name=%s\n' "$type" "$name" | sfdisk -q "$image" >/dev/null \
    || die "sfdisk on $image failed"
  read -r start size < <(sfdisk -d "$image" | sed -n 's/.*start= *\([0-9]*\), size= *\([0-9]*\).*/\1 \2/p' | head -n1)
  [ -n "$size" ] || die "no partition on $image after sfdisk"
  PART_OFFSET=$(( start * 512 )) PART_SIZE=$(( size * 512 ))
}

# fill_fs DEVICE FSTYPE UUID LABEL ROOTDIR: a new file system holding ROOTDIR.
fill_fs() {
  local dev=$1 fstype=$2 uuid=$3 label=$4 root=$5 mnt
  case $fstype in
    ext4)
      mkfs.ext4 -q -F -U "$uuid" -L "$label" -d "$root" "$dev" || die "mkfs.ext4 -d on $dev failed" ;;
    xfs)
      # mkfs.xfs cannot copy a tree (the bookworm version has no protofile helper): mount it.
      mkfs.xfs -q -f -m uuid="$uuid" -L "$label" "$dev" || die "mkfs.xfs on $dev failed"
      mnt=$(mktemp -d)
      mount -t xfs "$dev" "$mnt" || { rmdir "$mnt"; die "mounting the new xfs failed"; }
      ( cd "$root" && tar --numeric-owner --xattrs --acls -cf - . ) | ( cd "$mnt" && tar --numeric-owner --xattrs --acls -xpf - ) \
        || { umount "$mnt"; rmdir "$mnt"; die "copying the root into xfs failed"; }
      umount "$mnt"; rmdir "$mnt" ;;
    *) die "fill_fs: unknown type $fstype" ;;
  esac
}

# The host's lvm2, confined: its own (empty) system directory, no udev, no backups, no
# device-mapper (LVs are never activated here), and only the device named with --devices.
lvm_host() {
  local cmd=$1; shift
  LVM_SYSTEM_DIR=$LVM_DIR LVM_SUPPRESS_FD_WARNINGS=1 lvm "$cmd" --driverloaded n \
    --config 'devices { obtain_device_list_from_udev = 0 use_devicesfile = 0 md_component_detection = 0 }
              activation { udev_sync = 0 udev_rules = 0 monitoring = 0 }
              backup { backup = 0 archive = 0 }' "$@" 2>> "$LVM_DIR/stderr"
}

# lvm_or_die MESSAGE LVM-ARGS...: lvm_host, and on failure its messages and MESSAGE.
lvm_or_die() {
  local message=$1; shift
  lvm_host "$@" > /dev/null || { grep -v WARNING "$LVM_DIR/stderr" >&2; die "$message"; }
}

# lv_range PVDEV VG LV: the LV's byte offset in the PV and its size (linear, one segment).
lv_range() {
  local pv=$1 vg=$2 lv=$3 pe_start extent ranges first last
  pe_start=$(lvm_host pvs --devices "$pv" --noheadings --nosuffix --units b -o pe_start "$pv" | tr -d ' ')
  extent=$(lvm_host vgs --devices "$pv" --noheadings --nosuffix --units b -o vg_extent_size "$vg" | tr -d ' ')
  ranges=$(lvm_host lvs --devices "$pv" --noheadings -o seg_pe_ranges "$vg/$lv" | tr -d ' ')
  case $ranges in *:*-*) ;; *) die "unexpected segment of $vg/$lv: '$ranges'" ;; esac
  first=${ranges##*:}; last=${first#*-}; first=${first%-*}
  echo "$(( pe_start + first * extent )) $(( (last - first + 1) * extent ))"
}

# make_lvm IMAGE OFFSET SIZE VG ROOTLV SWAPLV FSTYPE ROOTDIR: PV over the byte range, VG, the
# root LV filled with ROOTDIR and a swap LV.
make_lvm() {
  local image=$1 offset=$2 size=$3 vg=$4 rootlv=$5 swaplv=$6 fstype=$7 root=$8 pv r
  LVM_DIR=$(mktemp -d)
  loop_range "$image" "$offset" "$size"; pv=$LOOP_DEV
  lvm_or_die "pvcreate on $pv failed" pvcreate -q -y "$pv" --devices "$pv"
  lvm_or_die "vgcreate $vg failed" vgcreate -q "$vg" "$pv" --devices "$pv"
  lvm_or_die "lvcreate $vg/$rootlv failed" lvcreate -q -an -Zn -Wn -y -L "${ROOT_LV_MIB}M" -n "$rootlv" "$vg" --devices "$pv"
  lvm_or_die "lvcreate $vg/$swaplv failed" lvcreate -q -an -Zn -Wn -y -L "${SWAP_LV_MIB}M" -n "$swaplv" "$vg" --devices "$pv"
  read -r r size < <(lv_range "$pv" "$vg" "$rootlv")
  loop_range "$image" $(( offset + r )) "$size"
  fill_fs "$LOOP_DEV" "$fstype" "$ROOT_UUID" root "$root"
  read -r r size < <(lv_range "$pv" "$vg" "$swaplv")
  loop_range "$image" $(( offset + r )) "$size"
  mkswap -q "$LOOP_DEV" >/dev/null || die "mkswap on $vg/$swaplv failed"
  detach_loops
  rm -rf "$LVM_DIR"
}

# The device-mapper name of VG/LV, as udev and the initramfs spell it (a '-' is doubled).
dm_name() { echo "${1//-/--}-${2//-/--}"; }

# layout_fstab LAYOUT: /etc/fstab as the distribution's installer writes it.
layout_fstab() {
  case $1 in
    plain-ext4) echo "UUID=$ROOT_UUID / ext4 errors=remount-ro 0 1" ;;
    lvm-ext4)    echo "/dev/mapper/$(dm_name debian-vg root) / ext4 errors=remount-ro 0 1" ;;
    lvm-xfs)     echo "/dev/mapper/rhel-root / xfs defaults 0 0" ;;
    md-lvm-ext4) echo "/dev/mapper/$(dm_name raid-vg root) / ext4 errors=remount-ro 0 1" ;;
  esac
}

# prepare_layout LAYOUT ROOTDIR: identities chosen up front (fstab and mdadm.conf name them);
# sets ROOT_UUID, MD_UUID, ROOT_ARG and writes fstab (and mdadm.conf) into ROOTDIR.
prepare_layout() {
  local layout=$1 root=$2 host
  ROOT_UUID=$(new_uuid) MD_UUID=$(new_uuid)
  host=$(cat "$root/etc/hostname")
  case $layout in
    plain-ext4)  ROOT_ARG="root=UUID=$ROOT_UUID" ;;
    lvm-ext4)    ROOT_ARG="root=/dev/mapper/$(dm_name debian-vg root)" ;;
    lvm-xfs)     ROOT_ARG="root=/dev/mapper/rhel-root" ;;
    md-lvm-ext4) ROOT_ARG="root=/dev/mapper/$(dm_name raid-vg root)"
                 # What `mdadm --detail --scan` gives the installer (mdadm's UUID: 4 groups of 4 bytes).
                 printf 'HOMEHOST <system>\nMAILADDR root\nARRAY /dev/md/0 metadata=1.2 UUID=%s name=%s:0\n' \
                   "$(echo "${MD_UUID//-/}" | sed 's/\(........\)/\1:/g; s/:$//')" "$host" > "$root/etc/mdadm/mdadm.conf" ;;
    *) die "unknown layout $layout (one of: $LAYOUTS)" ;;
  esac
  layout_fstab "$layout" > "$root/etc/fstab"
}

# make_layout_disks LAYOUT ROOTDIR WORKDIR: the disk images; sets DISKS.
make_layout_disks() {
  local layout=$1 root=$2 d0=$3/disk0.img d1=$3/disk1.img data_off data_size host
  host=$(cat "$root/etc/hostname")
  DISKS=("$d0")
  case $layout in
    plain-ext4)
      gpt_disk "$d0" "$GPT_LINUX_FS" root
      loop_range "$d0" "$PART_OFFSET" "$PART_SIZE"
      fill_fs "$LOOP_DEV" ext4 "$ROOT_UUID" root "$root"
      detach_loops ;;
    lvm-ext4)
      gpt_disk "$d0" "$GPT_LINUX_LVM" lvm
      make_lvm "$d0" "$PART_OFFSET" "$PART_SIZE" debian-vg root swap_1 ext4 "$root" ;;
    lvm-xfs)
      gpt_disk "$d0" "$GPT_LINUX_LVM" lvm
      make_lvm "$d0" "$PART_OFFSET" "$PART_SIZE" rhel root swap xfs "$root" ;;
    md-lvm-ext4)
      gpt_disk "$d0" "$GPT_LINUX_RAID" raid
      # Superblocks first only to learn the data area; rewritten on both members below.
      read -r data_off data_size < <(python3 "$MD_PY" "$MD_UUID" "$host:0" "$d0:$PART_OFFSET:$PART_SIZE") \
        || die "writing the md superblock failed"
      make_lvm "$d0" $(( PART_OFFSET + data_off )) "$data_size" raid-vg root swap_1 ext4 "$root"
      # RAID1: the second member's data area is a copy of the first's; its own disk identity.
      cp --sparse=always "$d0" "$d1"
      sfdisk -q --disk-id "$d1" "$(new_uuid)" >/dev/null || die "giving the second RAID disk its own GPT identity failed"
      sfdisk -q --part-uuid "$d1" 1 "$(new_uuid)" >/dev/null || die "giving the second RAID partition its own GPT identity failed"
      python3 "$MD_PY" "$MD_UUID" "$host:0" "$d0:$PART_OFFSET:$PART_SIZE" "$d1:$PART_OFFSET:$PART_SIZE" >/dev/null \
        || die "writing the md superblocks failed"
      DISKS+=("$d1") ;;
    *) die "unknown layout $layout (one of: $LAYOUTS)" ;;
  esac
}

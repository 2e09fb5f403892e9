# shellcheck shell=bash
# LVM dump targets for scripts/e2e (sourced): PV disk images made by the real lvm2 on loop devices
# with --driverloaded n (the host needs no device-mapper, nothing is activated), an ext4
# filesystem written into the LV where lvm says its extents are (scripts/lib/lv-image.py), and the
# LV gathered back from the images after the capture.
#
#   lvm-linear   one disk, its partition 1 a PV (vda1) of VG "e2e-vg", LV "dump-linear",
#                target = UUID= of the ext4 in it
#   lvm-striped  two disks, LV "dump-striped" striped over both (64 KiB chunks),
#                target = /dev/mapper/e2e--vg-dump--striped
#   lvm-md       two whole disks as the members of an md RAID1 (metadata 1.2, superblocks written by
#                scripts/lib/installed-md.py), the array the PV of LV "dump-md",
#                target = /dev/e2e-vg/dump-md (the agent assembles the array, then the LV on it)
#
# lvm_prepare SCENARIO MIB  sets LVM_CONF (the target lines) and LVM_DRIVES (QEMU -drive options)
# lvm_gather IMAGE          writes the LV's content to IMAGE (for pull_dump)

LVM_VG=e2e-vg

# lvm on our loop devices only; its stderr (warnings about the missing device-mapper) only if it fails.
lvm_run() {
  local err rc=0
  err=$(mktemp)
  LVM_SUPPRESS_FD_WARNINGS=1 lvm "$1" --driverloaded n --devices "$(IFS=,; echo "${LVM_LOOPS[*]}")" \
    --config "backup { backup = 0 archive = 0 }" "${@:2}" 2> "$err" || rc=$?
  [ "$rc" -eq 0 ] || cat "$err" >&2
  rm -f "$err"
  return "$rc"
}

lvm_prepare() {
  local scenario=$1 mib=$2 disks=1 i img lv layout=() uuid label=lvmdump extent size
  ensure_packages lvm:lvm2 python3:python3-minimal sfdisk:fdisk
  [ "$scenario" = lvm-striped ] && { disks=2; layout=(-i 2 -I 64k); mib=$(( mib / 2 + 16 )); }
  lv=dump-${scenario#lvm-}
  LVM_IMAGES=() LVM_LOOPS=() LVM_BASES=()
  if [ "$scenario" = lvm-md ]; then
    lvm_md_members "$mib"
  else for i in $(seq "$disks"); do
    img=$BUILD/pv$i.img
    rm -f "$img"; truncate -s "${mib}M" "$img"
    LVM_IMAGES+=("$img")
    if [ "$scenario" = lvm-linear ]; then
      # As an installer leaves it: an MBR partition of type Linux LVM from 1 MiB, the PV inside (vda1).
      echo "start=2048, type=8e" | sfdisk -q "$img"
      LVM_BASES+=(2048)
      LVM_LOOPS+=("$(as_root losetup --show -f -o $(( 2048 * 512 )) --sizelimit $(( (mib << 20) - 2048 * 512 )) "$img")")
    else
      LVM_BASES+=(0)
      LVM_LOOPS+=("$(as_root losetup --show -f "$img")")
    fi
    LOOPS+=("${LVM_LOOPS[-1]}")
  done; fi
  lvm_run pvcreate -qq "${LVM_LOOPS[@]}"
  lvm_run vgcreate -qq -s 4m "$LVM_VG" "${LVM_LOOPS[@]}"
  lvm_run lvcreate -qq -an -Zn -Wn -y "${layout[@]}" -n "$lv" -l 100%FREE "$LVM_VG"
  lvm_run lvs --reportformat json --units s --nosuffix --segments \
    -o lv_name,seg_start,seg_size,stripes,stripe_size,seg_pe_ranges "$LVM_VG/$lv" > "$BUILD/lvm-segments.json"
  lvm_run pvs --reportformat json --units s --nosuffix -o pv_name,pe_start > "$BUILD/lvm-pvs.json"
  extent=$(lvm_run vgs --noheadings --units s --nosuffix -o vg_extent_size "$LVM_VG" | tr -d ' ')
  size=$(lvm_run lvs --noheadings --units b --nosuffix -o lv_size "$LVM_VG/$lv" | tr -d ' ')
  local pairs=()
  for i in "${!LVM_LOOPS[@]}"; do pairs+=("${LVM_LOOPS[$i]}=${LVM_IMAGES[$i]}+${LVM_BASES[$i]}"); done
  python3 "$SCRIPTS_DIR/lib/lv-image.py" map "$BUILD/lvm-segments.json" "$BUILD/lvm-pvs.json" "$extent" "${pairs[@]}" > "$BUILD/lvm.map"
  log "LV $LVM_VG/$lv: $(( size >> 20 )) MiB; map: $(tr '\n' ';' < "$BUILD/lvm.map")"
  # Detached before QEMU starts: the images are QEMU's disks now (and the loop numbers are free for
  # others, so the exit trap must not detach them again).
  for i in "${LVM_LOOPS[@]}"; do as_root losetup -d "$i"; done
  LOOPS=()

  uuid=$(python3 -c 'import uuid; print(uuid.uuid4())')
  rm -f "$BUILD/lv.img"; truncate -s "$size" "$BUILD/lv.img"
  mkfs.ext4 -q -F -U "$uuid" -L "$label" "$BUILD/lv.img"
  python3 "$SCRIPTS_DIR/lib/lv-image.py" write "$BUILD/lvm.map" "$BUILD/lv.img"
  rm -f "$BUILD/lv.img"
  [ "$scenario" = lvm-md ] && lvm_md_mirror

  if [ "$scenario" = lvm-linear ]; then
    LVM_CONF="target = UUID=$uuid"
  elif [ "$scenario" = lvm-md ]; then
    LVM_CONF="target = /dev/$LVM_VG/$lv"
  else
    LVM_CONF="target = /dev/mapper/${LVM_VG//-/--}-${lv//-/--}"
  fi
  LVM_DRIVES=()
  for img in "${LVM_IMAGES[@]}" ${LVM_MD_SECOND:+"$LVM_MD_SECOND"}; do LVM_DRIVES+=(-drive "file=$img,format=raw,if=virtio"); done
  LVM_SIZE=$size
}

# lvm_md_members MIB: the first RAID1 member (a whole disk) with its superblock; the PV is a loop
# device over its data area. The second member is a copy made by lvm_md_mirror once the LV holds
# its filesystem (RAID1 members carry the same data; installed-md.py writes them clean).
lvm_md_members() {
  local mib=$1 img=$BUILD/md1.img data_off data_size
  LVM_MD_UUID=$(python3 -c 'import uuid; print(uuid.uuid4())')
  rm -f "$img"; truncate -s "${mib}M" "$img"
  read -r data_off data_size < <(python3 "$SCRIPTS_DIR/lib/installed-md.py" "$LVM_MD_UUID" e2e:dump "$img:0:$(( mib << 20 ))") \
    || die "writing the md superblock failed"
  LVM_IMAGES=("$img") LVM_BASES=($(( data_off / 512 )))
  LVM_LOOPS=("$(as_root losetup --show -f -o "$data_off" --sizelimit "$data_size" "$img")")
  LOOPS+=("${LVM_LOOPS[-1]}")
  LVM_MD_MIB=$mib LVM_MD_SECOND=$BUILD/md2.img
}

lvm_md_mirror() {
  cp --sparse=always "${LVM_IMAGES[0]}" "$LVM_MD_SECOND"
  python3 "$SCRIPTS_DIR/lib/installed-md.py" "$LVM_MD_UUID" e2e:dump "${LVM_IMAGES[0]}:0:$(( LVM_MD_MIB << 20 ))" \
    "$LVM_MD_SECOND:0:$(( LVM_MD_MIB << 20 ))" > /dev/null || die "writing the md superblocks failed"
}

lvm_gather() {
  rm -f "$1"; truncate -s "$LVM_SIZE" "$1"
  python3 "$SCRIPTS_DIR/lib/lv-image.py" read "$BUILD/lvm.map" "$1"
}

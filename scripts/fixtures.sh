#!/bin/bash
# Build REAL Linux kdump vmcores from Debian cloud kernels under QEMU (TCG, no KVM needed).
#
# Usage: scripts/fixtures.sh [KERNEL_SERIES...]      series: 6.1, 6.12 (default: both)
#
# Environment:
#   CAPTURE_AGENT_CACHE  cache root (default ~/.cache/capture-agent; outside the git tree)
#   MEM=1024             guest RAM in MiB
#   PAGING=4|5           5 = `-cpu max` (LA57, 5-level page tables), fixture name gets "-la57"
#   CRASHKERNEL=256M     crashkernel= reservation of the first kernel
#   TIMEOUT=1800         seconds before QEMU is killed
#   FILL=MiB             workload size (default: 55% of the guest's MemAvailable)
#   SKIP_DBG=1           do not fetch the ~1 GB -dbg package for the debug vmlinux
#   KERNEL_PKG_6_1 / KERNEL_PKG_6_12   pin a kernel package instead of the newest (see lib/kernel-selection.sh)
#   KERNEL_SELECTION=keep              use the last resolution in $CACHE/selection instead of resolving afresh
#
# For each series it produces $CACHE/vmcores/<series>-<MEM>[-la57]/ with:
#   vmcore              /proc/vmcore of the capture kernel, byte for byte (ELF64 core)
#   kernel-release.txt  uname -r of the crashed kernel
#   vmlinux             symlink to the debug vmlinux (only if the -dbg package was available)
#   console.log         serial console of both kernels
#   marker.txt          random marker written to the crashed kernel's log ("CAPTURE-FIXTURE-MARKER <hex>")
#   fixture.env         package, version, memory, paging, timings
#
# How: the first kernel (booted with crashkernel=) runs a workload, loads a capture kernel with
# `kexec -s -p` and crashes with sysrq-c. The capture kernel copies /proc/vmcore to an ext4
# virtio disk image and powers off; the host extracts the file with debugfs (no loop mounts).
set -euo pipefail

# shellcheck source=lib/fixture-common.sh
source "$(dirname "$0")/lib/fixture-common.sh"

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit "${1:-0}"; }
case ${1:-} in -h|--help) usage 0 ;; esac

SERIES=("$@")
[ ${#SERIES[@]} -gt 0 ] || SERIES=(6.1 6.12)
for s in "${SERIES[@]}"; do
  series_row "$s" >/dev/null
done

guest_params
CRASHKERNEL=${CRASHKERNEL:-256M}
TIMEOUT=${TIMEOUT:-1800}

mkdir -p "$CACHE/vmcores"
# One fixture build at a time per cache: TCG runs are CPU-bound and share the build dir.
exec 9>"$CACHE/.fixtures.lock"
flock 9

RESULTS=()

make_fixture() {
  local series=$1 name out work disk marker append t0 t1 rc size osrel l5 want_l5 status
  name=$series-$MEM$NAME_SUFFIX
  out=$CACHE/vmcores/$name
  select_kernel "$series"
  if [ -s "$out/vmcore" ] && fixture_is_current "$out"; then
    log "$name: already present for $KPKG $KPKG_VERSION, skipping ($out/vmcore)"
    RESULTS+=("$out")
    return 0
  fi
  [ -s "$out/vmcore" ] && log "$name: made from $(sed -n 's/^kernel_package=//p' "$out/fixture.env" 2>/dev/null) $(sed -n 's/^kernel_package_version=//p' "$out/fixture.env" 2>/dev/null), selected $KPKG $KPKG_VERSION: rebuilding"
  rm -rf "$out"   # an incomplete or outdated directory is never trusted

  ensure_host_tools
  fetch_kernel
  build_initramfs

  # Everything is built in a temp dir and renamed at the end, so an interrupted run
  # never leaves a fixture that looks complete.
  work=$CACHE/vmcores/.$name.tmp
  rm -rf "$work"; mkdir -p "$work"
  disk=$work/disk.img
  # Sparse image; the vmcore is smaller than guest RAM (crashkernel region is excluded).
  truncate -s $(( MEM + 768 ))M "$disk"
  mkfs.ext4 -F -q -L vmcore "$disk"

  marker=$(random_marker)
  echo "CAPTURE-FIXTURE-MARKER $marker" > "$work/marker.txt"
  append="console=ttyS0 crashkernel=$CRASHKERNEL panic=-1 quiet fixture.mode=kdump fixture.marker=$marker"
  [ -n "${FILL:-}" ] && append="$append fixture.fill=$FILL"
  local -a qemu=(qemu-system-x86_64 -accel tcg -cpu "$CPU_MODEL" -smp 2 -m "$MEM"
    -display none -serial stdio -monitor none -no-reboot -nic none
    -device vmcoreinfo
    -kernel "$KDIR/root/boot/vmlinuz-$KREL" -initrd "$BUILD/first.img" -append "$append"
    -drive "file=$disk,format=raw,if=virtio")
  printf '%q ' "${qemu[@]}" > "$work/qemu-cmd.txt"; echo >> "$work/qemu-cmd.txt"

  log "$name: booting $KREL under QEMU TCG (-m $MEM, -cpu $CPU_MODEL); console: $work/console.log"
  t0=$(date +%s)
  rc=0
  start_qemu "$work/console.log" "${qemu[@]}"
  wait_qemu || rc=$?
  t1=$(date +%s)
  log "$name: QEMU exited rc=$rc after $(( t1 - t0 ))s"
  [ "$rc" -eq 124 ] && die "$name: QEMU timed out after ${TIMEOUT}s; see $work/console.log"
  grep -a 'FIXTURE:' "$work/console.log" | tr -d '\r' | sed 's/^/    /' >&2 || true

  # Pull results out of the ext4 image without mounting it.
  debugfs -R "dump -p /capture-status.txt $work/capture-status.txt" "$disk" >/dev/null 2>&1 || true
  [ -s "$work/capture-status.txt" ] || die "$name: capture kernel left no status; see $work/console.log"
  status=$(sed -n 's/^status=//p' "$work/capture-status.txt")
  [ "$status" = ok ] || die "$name: capture copy failed: $(tr '\n' ' ' < "$work/capture-status.txt")"
  debugfs -R "dump -p /capture-dmesg.txt $work/capture-dmesg.txt" "$disk" >/dev/null 2>&1 || true
  debugfs -R "dump -p /vmcore $work/vmcore.part" "$disk" >/dev/null 2>&1
  rm -f "$disk"

  # Sanity: complete copy, ELF core, VMCOREINFO of the kernel we booted, expected paging mode.
  size=$(stat -c %s "$work/vmcore.part")
  [ "$size" = "$(sed -n 's/^vmcore_size=//p' "$work/capture-status.txt")" ] \
    || die "$name: extracted vmcore size $size does not match /proc/vmcore"
  is_elf_core "$work/vmcore.part" || die "$name: vmcore is not an ELF core file"
  osrel=$(vmcoreinfo_field "$work/vmcore.part" OSRELEASE)
  [ "$osrel" = "$KREL" ] || die "$name: VMCOREINFO OSRELEASE '$osrel' != '$KREL'"
  l5=$(vmcoreinfo_field "$work/vmcore.part" 'NUMBER(pgtable_l5_enabled)')
  want_l5=0; [ -n "$NAME_SUFFIX" ] && want_l5=1
  [ "${l5:-0}" = "$want_l5" ] || log "WARNING: $name: pgtable_l5_enabled=${l5:-unset}, expected $want_l5"
  mv "$work/vmcore.part" "$work/vmcore"

  echo "$KREL" > "$work/kernel-release.txt"
  # Relative link so the cache directory can be moved as a whole.
  if [ -s "$KDIR/vmlinux" ]; then ln -sfn "../../kernels/$KREL/vmlinux" "$work/vmlinux"; fi
  cat > "$work/fixture.env" <<EOF
series=$series
kernel_package=$KPKG
kernel_package_version=$KPKG_VERSION
kernel_release=$KREL
debug_vmlinux=$( [ -s "$KDIR/vmlinux" ] && echo yes || echo no )
mem_mib=$MEM
cpu=$CPU_MODEL
pgtable_l5_enabled=${l5:-0}
crashkernel=$CRASHKERNEL
marker=$marker
vmcore_bytes=$size
qemu_seconds=$(( t1 - t0 ))
qemu_version=$(qemu-system-x86_64 --version | head -n1)
created=$(date -u +%Y-%m-%dT%H:%M:%SZ)
EOF
  mv "$work" "$out"
  log "$name: done ($out/vmcore)"
  RESULTS+=("$out")
}

for s in "${SERIES[@]}"; do make_fixture "$s"; done

echo
echo "fixtures (path, bytes, kernel release):"
for d in "${RESULTS[@]}"; do
  printf '%s\t%s\t%s\n' "$d/vmcore" "$(stat -c %s "$d/vmcore")" "$(cat "$d/kernel-release.txt" 2>/dev/null || echo '?')"
done

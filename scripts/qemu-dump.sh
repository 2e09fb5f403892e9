#!/bin/bash
# Faster, extra fixture source: QEMU's own `dump-guest-memory` of a LIVE guest (no crash, no kexec).
#
# Usage: scripts/qemu-dump.sh [KERNEL_SERIES...]      series: 6.1, 6.12 (default: both)
#
# Boots the same first kernel and workload as scripts/fixtures.sh (fixture.mode=live), waits
# until the guest prints CAPTURE-FIXTURE-READY, then asks QEMU over a QMP unix socket for an
# ELF dump of guest memory (paging=false: physical memory only, like /proc/vmcore).
# The guest loads qemu_fw_cfg so `-device vmcoreinfo` puts a VMCOREINFO note into the dump.
#
# Output: $CACHE/vmcores/<series>-<MEM>[-la57]-qemu/vmcore.elf (+ kernel-release.txt,
# console.log, marker.txt, fixture.env, vmlinux symlink when the debug vmlinux exists).
# Same environment variables as fixtures.sh (CAPTURE_AGENT_CACHE, MEM, PAGING, TIMEOUT,
# FILL, SKIP_DBG, KERNEL_PKG_*).
#
# Differences from a kdump vmcore: it covers ALL guest RAM (no crashkernel hole), has no
# kernel-text duplicate segment, and its NT_PRSTATUS notes come from QEMU, not the kernel.
# makedumpfile 1.7.2 rejects QEMU 7.2's ELF header layout ("Can't get the number of PT_LOAD").
set -euo pipefail

# shellcheck source=lib/fixture-common.sh
source "$(dirname "$0")/lib/fixture-common.sh"

case ${1:-} in -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;; esac
SERIES=("$@")
[ ${#SERIES[@]} -gt 0 ] || SERIES=(6.1 6.12)
for s in "${SERIES[@]}"; do
  series_row "$s" >/dev/null
done

guest_params
TIMEOUT=${TIMEOUT:-1800}
mkdir -p "$CACHE/vmcores"
exec 9>"$CACHE/.fixtures.lock"
flock 9

# Minimal QMP client: negotiate capabilities, run the dump (synchronous), quit.
qmp_dump() {
  python3 - "$1" "$2" <<'PY'
import json, socket, sys
sock_path, out = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sock_path)
f = s.makefile("rw")
json.loads(f.readline())  # greeting

def cmd(name, **args):
    f.write(json.dumps({"execute": name, "arguments": args}) + "\n")
    f.flush()
    while True:
        msg = json.loads(f.readline())
        if "event" in msg:
            continue  # e.g. STOP/RESUME/DUMP_COMPLETED
        if "error" in msg:
            sys.exit(f"QMP {name} failed: {msg['error']}")
        return msg["return"]

cmd("qmp_capabilities")
cmd("dump-guest-memory", paging=False, protocol="file:" + out, format="elf")
cmd("quit")
PY
}

RESULTS=()

make_qemu_dump() {
  local series=$1 name out work marker t0 t1 rc=0 osrel size waited=0
  name=$series-$MEM$NAME_SUFFIX-qemu
  out=$CACHE/vmcores/$name
  select_kernel "$series"
  if [ -s "$out/vmcore.elf" ] && fixture_is_current "$out"; then
    log "$name: already present for $KPKG $KPKG_VERSION, skipping ($out/vmcore.elf)"
    RESULTS+=("$out"); return 0
  fi
  rm -rf "$out"   # absent, incomplete or made from another kernel

  ensure_host_tools
  fetch_kernel
  build_initramfs

  work=$CACHE/vmcores/.$name.tmp
  rm -rf "$work"; mkdir -p "$work"
  # Unix socket paths are limited to ~108 bytes, so keep the socket in a short temp dir.
  SOCK_DIR=$(mktemp -d /tmp/capture-qmp.XXXXXX)
  marker=$(random_marker)
  echo "CAPTURE-FIXTURE-MARKER $marker" > "$work/marker.txt"
  local append="console=ttyS0 panic=-1 quiet fixture.mode=live fixture.marker=$marker"
  [ -n "${FILL:-}" ] && append="$append fixture.fill=$FILL"
  local -a qemu=(qemu-system-x86_64 -accel tcg -cpu "$CPU_MODEL" -smp 2 -m "$MEM"
    -display none -serial stdio -monitor none -no-reboot -nic none
    -device vmcoreinfo -qmp "unix:$SOCK_DIR/qmp.sock,server=on,wait=off"
    -kernel "$KDIR/root/boot/vmlinuz-$KREL" -initrd "$BUILD/first.img" -append "$append")
  printf '%q ' "${qemu[@]}" > "$work/qemu-cmd.txt"; echo >> "$work/qemu-cmd.txt"

  log "$name: booting $KREL (live) under QEMU TCG; console: $work/console.log"
  t0=$(date +%s)
  start_qemu "$work/console.log" "${qemu[@]}"
  # The console log is new for this run, so a READY line in it cannot be stale.
  until grep -aq 'FIXTURE: CAPTURE-FIXTURE-READY' "$work/console.log" 2>/dev/null; do
    kill -0 "$QEMU_PID" 2>/dev/null || die "$name: QEMU exited before the guest was ready; see $work/console.log"
    [ "$waited" -lt "$TIMEOUT" ] || die "$name: guest not ready after ${TIMEOUT}s"
    sleep 2; waited=$(( waited + 2 ))
  done
  log "$name: guest ready after $(( $(date +%s) - t0 ))s; dumping guest memory"
  qmp_dump "$SOCK_DIR/qmp.sock" "$work/vmcore.elf.part" || die "$name: dump-guest-memory failed"
  wait_qemu || rc=$?
  rm -rf "$SOCK_DIR"; SOCK_DIR=""
  t1=$(date +%s)
  log "$name: QEMU exited rc=$rc after $(( t1 - t0 ))s"
  grep -a 'FIXTURE:' "$work/console.log" | tr -d '\r' | sed 's/^/    /' >&2 || true

  # QEMU creates the dump with mode 0400.
  chmod 644 "$work/vmcore.elf.part"
  is_elf_core "$work/vmcore.elf.part" || die "$name: dump is not an ELF core file"
  osrel=$(vmcoreinfo_field "$work/vmcore.elf.part" OSRELEASE)
  [ "$osrel" = "$KREL" ] || die "$name: VMCOREINFO OSRELEASE '$osrel' != '$KREL' (qemu_fw_cfg not loaded?)"
  size=$(stat -c %s "$work/vmcore.elf.part")
  mv "$work/vmcore.elf.part" "$work/vmcore.elf"

  echo "$KREL" > "$work/kernel-release.txt"
  if [ -s "$KDIR/vmlinux" ]; then ln -sfn "../../kernels/$KREL/vmlinux" "$work/vmlinux"; fi
  cat > "$work/fixture.env" <<EOF
series=$series
source=qemu-dump-guest-memory
kernel_package=$KPKG
kernel_package_version=$KPKG_VERSION
kernel_release=$KREL
debug_vmlinux=$( [ -s "$KDIR/vmlinux" ] && echo yes || echo no )
mem_mib=$MEM
cpu=$CPU_MODEL
pgtable_l5_enabled=$(vmcoreinfo_field "$work/vmcore.elf" 'NUMBER(pgtable_l5_enabled)')
marker=$marker
vmcore_bytes=$size
qemu_seconds=$(( t1 - t0 ))
qemu_version=$(qemu-system-x86_64 --version | head -n1)
created=$(date -u +%Y-%m-%dT%H:%M:%SZ)
EOF
  mv "$work" "$out"
  log "$name: done ($out/vmcore.elf)"
  RESULTS+=("$out")
}

for s in "${SERIES[@]}"; do make_qemu_dump "$s"; done

echo
echo "QEMU dumps (path, bytes, kernel release):"
for d in "${RESULTS[@]}"; do
  printf '%s\t%s\t%s\n' "$d/vmcore.elf" "$(stat -c %s "$d/vmcore.elf")" "$(cat "$d/kernel-release.txt" 2>/dev/null || echo '?')"
done

# shellcheck shell=bash disable=SC2034  # BOOT_*, CRASH_AT, QEMU_PID are read by the caller
# Booting the installed system in QEMU (TCG) and talking to it through a transfer disk.
# Sourced by scripts/installed-system (log, die).
#
# The guest's own kernel and initrd (from its /boot, built by the kernel package's postinst)
# boot with -kernel/-initrd (no bootloader); -no-reboot ends QEMU when the capture kernel
# reboots, so one QEMU run covers "arm, crash, capture" and the next one the boot after.
# The transfer disk is a raw virtio disk with serial=$XFER_SERIAL: the host writes a tar of
# the stage's inputs on it, the guest's capture-harness.service unpacks it, runs the stage
# and writes a tar of its results over it; the host untars that after QEMU has exited.

XFER_SERIAL=capharness
XFER_MIB=128
# The kernel command-line word that enables capture-harness.service. A dotted word is taken
# for a module parameter: the capture kernel inherits it harmlessly (it never reaches /init).
HARNESS_WORD=capture_harness.run=1

# The unit and its starter, written into the root filesystem before the disks are made.
install_harness_unit() {
  local root=$1
  install -d "$root/usr/local/sbin" "$root/etc/systemd/system/multi-user.target.wants"
  cat > "$root/usr/local/sbin/capture-harness" <<EOF
#!/bin/sh
# Installed-system test harness: unpack the stage from the transfer disk and run it.
XFER=/dev/disk/by-id/virtio-$XFER_SERIAL
IN=/run/capture-harness
i=0
while [ ! -b "\$XFER" ] && [ \$i -lt 60 ]; do sleep 1; i=\$((i + 1)); done
mkdir -p "\$IN"
if ! tar -C "\$IN" -xf "\$XFER"; then
  echo "harness: cannot read the transfer disk \$XFER" > /dev/console
  systemctl poweroff
  exit 1
fi
IN=\$IN XFER=\$XFER exec /bin/bash "\$IN/guest.sh"
EOF
  chmod 0755 "$root/usr/local/sbin/capture-harness"
  cat > "$root/etc/systemd/system/capture-harness.service" <<EOF
[Unit]
Description=capture-agent installed-system test harness
ConditionKernelCommandLine=$HARNESS_WORD
# On the boot after a capture the stage checks what the service armed at boot.
After=capture-agent.service capture-agent-savecore.service

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/capture-harness
StandardOutput=journal
StandardError=journal

[Install]
WantedBy=multi-user.target
EOF
  ln -sf /etc/systemd/system/capture-harness.service "$root/etc/systemd/system/multi-user.target.wants/capture-harness.service"
}

# Units a test VM has no use for (logins, periodic housekeeping), masked: under TCG on a busy
# host they cost minutes of boot. Storage (udev, lvm2, mdadm, fsck) is left as installed.
QUIET_UNITS="getty.target getty-static.service e2scrub_reap.service apt-daily.timer apt-daily-upgrade.timer
  dpkg-db-backup.timer e2scrub_all.timer fstrim.timer systemd-tmpfiles-clean.timer"
quiet_units() {
  local u
  for u in $QUIET_UNITS; do ln -sf /dev/null "$1/etc/systemd/system/$u"; done
}

# write_xfer IMAGE STAGE AGENT GUEST_SCRIPT: the stage's inputs as a tar at the start of the disk.
write_xfer() {
  local image=$1 stage=$2 agent=$3 guest=$4 dir
  dir=$(mktemp -d)
  echo "$stage" > "$dir/stage"
  install -m 0755 "$agent" "$dir/capture-agent"
  install -m 0755 "$guest" "$dir/guest.sh"
  rm -f "$image"; truncate -s "${XFER_MIB}M" "$image"
  tar -C "$dir" -cf - . | dd of="$image" conv=notrunc status=none || die "writing the transfer disk failed"
  rm -rf "$dir"
}

# read_xfer IMAGE DIR: the guest's results (empty DIR when it wrote none).
read_xfer() {
  mkdir -p "$2"
  tar -C "$2" -xf "$1" 2>/dev/null || true
  # What the host wrote is still there if the guest never got as far as writing results.
  [ -f "$2/result.env" ] || rm -rf "${2:?}"/*
}

# boot_vm NAME CONSOLE TIMEOUT: one QEMU run on DISKS + the transfer disk XFER_IMG with
# KERNEL/INITRD/APPEND; waits for QEMU to exit. Sets BOOT_SECONDS, BOOT_TIMED_OUT, CRASH_AT
# (seconds into the run when the console first showed the crash, or empty) and BOOT_RETRIES.
# A boot that stalls before the harness's stage starts is started once more (see early_stall).
boot_vm() {
  local name=$1 console=$2 timeout=$3
  BOOT_RETRIES=0
  run_qemu "$name" "$console" "$timeout"
  if [ "$BOOT_STALLED" = 1 ]; then
    mv "$console" "$console.stalled"
    BOOT_RETRIES=1
    log "$name: the guest stalled before its stage started (console kept in $console.stalled): booting again"
    run_qemu "$name" "$console" "$timeout"
  fi
}

# early_stall CONSOLE SINCE_LINES: true when the guest kernel reports RCU stalls, its harness
# stage has not started, and the console has shown nothing but stall reports since it had
# SINCE_LINES other lines. Under TCG with two vCPUs a halted vCPU's timer interrupt is now and
# then never delivered (measured: 10 min of stall reports every 21 s, QEMU at 6 % CPU, right after
# /init); nothing on the disks has changed yet, so booting again is the same test.
early_stall() {
  local console=$1 since=$2
  grep -qa 'rcu: INFO: rcu_preempt detected stalls' "$console" 2>/dev/null || return 1
  grep -qa '^harness: ' "$console" 2>/dev/null && return 1
  [ "$(progress_lines "$console")" -le "$since" ]
}

# progress_lines CONSOLE: console lines that are not part of an RCU stall report.
progress_lines() {
  grep -acv -e 'rcu' -e 'NMI' -e 'Call Trace' -e 'detected by' -e '^\[ *[0-9.]*\]  ' "$1" 2>/dev/null
}

# run_qemu NAME CONSOLE TIMEOUT: one QEMU run; sets BOOT_SECONDS, BOOT_TIMED_OUT, CRASH_AT and
# BOOT_STALLED (1 when stopped by early_stall after STALL_SECONDS without progress).
run_qemu() {
  local name=$1 console=$2 timeout=$3 ram=$WORK_LAYOUT/guest-ram i pid t0 lines seen seen_at tick=0
  local -a drives=()
  for i in "${!DISKS[@]}"; do
    drives+=(-drive "file=${DISKS[$i]},format=raw,if=none,id=d$i,cache=unsafe"
             -device "virtio-blk-pci,drive=d$i,serial=disk$i")
  done
  drives+=(-drive "file=$XFER_IMG,format=raw,if=none,id=xfer,cache=unsafe"
           -device "virtio-blk-pci,drive=xfer,serial=$XFER_SERIAL")
  log "$name: booting (console: $console)"
  # Guest RAM in a file: an anonymous-memory VM was once taken by the host's OOM killer.
  qemu-system-x86_64 -accel tcg -cpu max,la57=off -smp 2 -m "$MEM" \
    -object "memory-backend-file,id=ram,size=${MEM}M,mem-path=$ram,share=on" -machine pc,memory-backend=ram \
    -nodefaults -display none -serial "file:$console" -monitor none -no-reboot -nic none \
    -kernel "$KERNEL" -initrd "$INITRD" -append "$APPEND" "${drives[@]}" < /dev/null > "$console.qemu" 2>&1 &
  pid=$!
  QEMU_PID=$pid   # fixture-common.sh's exit trap stops it if the script is interrupted
  t0=$SECONDS CRASH_AT="" BOOT_TIMED_OUT=0 BOOT_STALLED=0 seen=0 seen_at=$SECONDS
  while kill -0 "$pid" 2>/dev/null; do
    if [ -z "$CRASH_AT" ] && grep -qa 'sysrq: Trigger a crash' "$console" 2>/dev/null; then CRASH_AT=$(( SECONDS - t0 )); fi
    if (( SECONDS - t0 > timeout )); then
      BOOT_TIMED_OUT=1; log "$name: timed out after $timeout s: stopping QEMU"
      kill "$pid" 2>/dev/null || true
      break
    fi
    if (( ++tick % 10 == 0 )); then
      lines=$(progress_lines "$console")
      if (( lines > seen )); then seen=$lines seen_at=$SECONDS
      elif (( SECONDS - seen_at > ${STALL_SECONDS:-300} )) && early_stall "$console" "$seen"; then
        BOOT_STALLED=1; log "$name: no progress for $(( SECONDS - seen_at )) s, only RCU stall reports: stopping QEMU"
        kill "$pid" 2>/dev/null || true
        break
      fi
    fi
    sleep 1
  done
  wait "$pid" 2>/dev/null || true
  QEMU_PID=""
  BOOT_SECONDS=$(( SECONDS - t0 ))
  rm -f "$ram"
  cat "$console.qemu" >> "$console"; rm -f "$console.qemu"
  log "$name: QEMU ended after $BOOT_SECONDS s"
}

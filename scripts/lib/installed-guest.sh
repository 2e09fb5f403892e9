#!/bin/bash
# Runs INSIDE the installed system (started by capture-harness.service, from the transfer disk
# unpacked in $IN). The stage file says which boot this is:
#   arm    first boot: capture-agent install, the real service arms (load --auto), status, the
#          results are written back to the transfer disk, then test --crash --yes.
#   check  the boot after the capture: the service has re-armed at boot, the dump is in
#          /var/crash, verify and report; results written back, then poweroff.
# Every line meant for the host starts with "harness: " on the console; results/ holds the
# commands' outputs and result.env (KEY=VALUE lines the host reads).
set -u
IN=${IN:?}
XFER=${XFER:?}
OUT=$IN/results
mkdir -p "$OUT"
STAGE=$(cat "$IN/stage")

say() { echo "harness: $*" > /dev/console; echo "$*" >> "$OUT/log.txt"; }
put() { echo "$1=$2" >> "$OUT/result.env"; say "$1=$2"; }
uptime_s() { cut -d' ' -f1 /proc/uptime; }

# run NAME CMD...: the command's output to results/NAME.txt and the console; its status as NAME_rc.
run() {
  local name=$1 rc; shift
  say "\$ $*"
  "$@" > "$OUT/$name.txt" 2>&1; rc=$?
  sed 's/^/harness:   /' "$OUT/$name.txt" > /dev/console
  put "${name}_rc" "$rc"
  return "$rc"
}

# quiet NAME CMD...: the output to results/NAME.txt only (long listings).
quiet() { local name=$1; shift; "$@" > "$OUT/$name.txt" 2>&1; }

# The results go back over the transfer disk (the host untars it after QEMU exits).
write_results() {
  tar -C "$OUT" -cf "$XFER" . && sync
}

stage_arm() {
  put boot_to_unit_s "$(uptime_s)"
  put kernel_release "$(uname -r)"
  install -m 0755 "$IN/capture-agent" /root/capture-agent
  run install /root/capture-agent install || return 1
  run config cat /etc/capture-agent.conf
  run config_check capture-agent config check
  # What the unit does at boot, started the way an administrator does after install.
  local t0 t1
  t0=$(uptime_s)
  run service_start systemctl start capture-agent.service
  t1=$(uptime_s)
  put service_start_s "$(awk "BEGIN{printf \"%.1f\", $t1 - $t0}")"
  put boot_to_armed_s "$t1"
  run journal journalctl -b -u capture-agent.service --no-pager -o short-monotonic
  put kexec_crash_loaded "$(cat /sys/kernel/kexec_crash_loaded)"
  run status capture-agent status
  local img
  img=/var/lib/capture-agent/$(uname -r)/initramfs.img
  put capture_image_bytes "$(stat -c %s "$img" 2>/dev/null || echo 0)"
  run lsblk lsblk -o NAME,TYPE,FSTYPE,UUID,MOUNTPOINT
  [ "$(cat /sys/kernel/kexec_crash_loaded)" = 1 ] || { say "not armed: no crash"; return 1; }
  put crashing 1
  write_results || say "writing the results failed"
  say "crashing now"
  capture-agent test --crash --yes
  say "test --crash returned $?: no crash happened"
  return 1
}

stage_check() {
  put boot_to_unit_s "$(uptime_s)"
  # The enabled service armed at boot (load --auto); how long after the kernel started.
  local active
  active=$(systemctl show -p ActiveEnterTimestampMonotonic --value capture-agent.service)
  put armed_at_boot_s "$(awk "BEGIN{printf \"%.1f\", ${active:-0}/1000000}")"
  put service_result "$(systemctl show -p Result --value capture-agent.service)"
  put kexec_crash_loaded "$(cat /sys/kernel/kexec_crash_loaded)"
  run status capture-agent status
  run dumps find /var/crash -printf '%M %u %s %p\n'
  local dir
  dir=$(find /var/crash -mindepth 1 -maxdepth 1 -type d | sort | tail -n1)
  put dump_dir "${dir:-none}"
  if [ -n "$dir" ]; then
    put vmcore_bytes "$(stat -c %s "$dir/vmcore" 2>/dev/null || echo 0)"
    run verify capture-agent verify "$dir"
    cp "$dir/manifest.json" "$OUT/" 2>/dev/null
    tail -n 60 "$dir/dmesg.txt" > "$OUT/dmesg-tail.txt" 2>/dev/null
  fi
  run report capture-agent report
  run report_json capture-agent report --json
  run lsblk lsblk -o NAME,TYPE,FSTYPE,UUID,MOUNTPOINT
  quiet journal journalctl -b -u capture-agent.service -u capture-agent-savecore.service --no-pager -o short-monotonic
  quiet boot_time systemd-analyze
  quiet boot_blame systemd-analyze blame
  quiet journal_boot journalctl -b --no-pager -o short-monotonic
}

say "stage $STAGE starts"
case $STAGE in
  arm) stage_arm ;;
  check) stage_check ;;
  *) say "unknown stage '$STAGE'" ;;
esac
put stage_done "$STAGE"
write_results || say "writing the results failed"
say "stage $STAGE ends: powering off"
systemctl poweroff

#!/bin/bash
# Runs INSIDE the installed system for scripts/installed-package (started by
# capture-harness.service from the transfer disk unpacked in $IN). The stage file says which boot:
#   install  dpkg -i the capture-agent .deb (its postinst: config from fstab, capture images,
#            units enabled, armed); early_load = yes and update-initramfs through the package's
#            initramfs-tools hook; a later kernel package installed by dpkg, whose /etc/kernel
#            hook must build that kernel's capture image; the rebuilt host initrd goes back to
#            the host (the crash boot uses it). Then the switch to Debian's dracut (the .debs in
#            dracut/, installed offline by apt, which removes initramfs-tools; dracut's trigger
#            rebuilds every kernel's initrd, hostonly), whose initrd goes back too. No crash.
#   crash    the boot with that initrd: the capture kernel was armed before the root was mounted
#            (the host reads the console); capture-agent.service armed under systemd; then
#            test --crash --yes.
#   check    the boot after the capture, with the dracut initrd (its pre-mount hook armed before
#            the root was mounted: the host reads the console; armed after boot): savecore
#            service, the dump, verify, report; then dpkg --purge (dracut's trigger rebuilds the
#            initrds) and what is left of the package on the disk.
# Lines for the host start with "harness: " on the console; results/result.env has KEY=VALUE lines.
set -u
IN=${IN:?}
XFER=${XFER:?}
OUT=$IN/results
mkdir -p "$OUT"
STAGE=$(cat "$IN/stage")
KVER=$(uname -r)
# The root filesystem's paths before the package came, kept on the guest's disk for the purge check.
BEFORE=/root/harness-paths-before-package.txt

say() { echo "harness: $*" > /dev/console; echo "$*" >> "$OUT/log.txt"; }
put() { echo "$1=$2" >> "$OUT/result.env"; say "$1=$2"; }
uptime_s() { cut -d' ' -f1 /proc/uptime; }
since() { awk "BEGIN{printf \"%.1f\", $(uptime_s) - $1}"; }

# run NAME CMD...: the output to results/NAME.txt and the console; the status as NAME_rc.
run() {
  local name=$1 rc; shift
  say "\$ $*"
  "$@" > "$OUT/$name.txt" 2>&1; rc=$?
  sed 's/^/harness:   /' "$OUT/$name.txt" > /dev/console
  put "${name}_rc" "$rc"
  return "$rc"
}
quiet() { local name=$1; shift; "$@" > "$OUT/$name.txt" 2>&1; }
write_results() { tar -C "$OUT" -cf "$XFER" . && sync; }

# The root filesystem's paths, less what changes on every boot whoever is installed (logs, the
# journal, caches, apt/dpkg bookkeeping of other packages, the harness's own files).
root_paths() {
  find / -xdev \( -path /proc -o -path /sys -o -path /dev -o -path /run -o -path /tmp -o -path /var/tmp \
      -o -path /var/log -o -path /var/cache -o -path /root \) -prune -o -print 2>/dev/null | sort
}

# agent_files_in INITRD: how many of its listing's lines name capture-agent (0 when none): dracut's
# lsinitrd once dracut is installed (its listing also names the dracut module), else lsinitramfs.
agent_files_in() {
  if command -v lsinitrd > /dev/null; then lsinitrd "$1"; else lsinitramfs "$1"; fi 2>/dev/null | grep -c 'capture-agent'
}

stage_install() {
  put boot_to_unit_s "$(uptime_s)"
  put kernel_release "$KVER"
  root_paths > "$BEFORE"
  put initrd_agent_files_before "$(agent_files_in "/boot/initrd.img-$KVER")"
  local t0
  t0=$(uptime_s)
  run dpkg_install dpkg -i "$IN/capture-agent.deb" || return 1
  put dpkg_install_s "$(since "$t0")"
  quiet dpkg_files dpkg -L capture-agent
  run dpkg_status dpkg -s capture-agent
  put enabled "$(systemctl is-enabled capture-agent.service)"
  put savecore_enabled "$(systemctl is-enabled capture-agent-savecore.service)"
  put active_after_install "$(systemctl is-active capture-agent.service)"
  put kexec_after_install "$(cat /sys/kernel/kexec_crash_loaded)"
  run config cat /etc/capture-agent.conf
  put capture_image_bytes "$(stat -c %s "/var/lib/capture-agent/$KVER/initramfs.img" 2>/dev/null || echo 0)"

  # Early arming, as the package's README tells an administrator: the key, then the host initramfs.
  if grep -Eq '^[#[:space:]]*early_load[[:space:]]*=' /etc/capture-agent.conf; then
    sed -Ei 's/^[#[:space:]]*early_load[[:space:]]*=.*/early_load = yes/' /etc/capture-agent.conf
  else
    echo 'early_load = yes' >> /etc/capture-agent.conf
  fi
  run config_check capture-agent config check
  t0=$(uptime_s)
  run update_initramfs update-initramfs -u -k "$KVER" || return 1
  put update_initramfs_s "$(since "$t0")"
  put initrd_agent_files "$(agent_files_in "/boot/initrd.img-$KVER")"
  quiet initrd_agent_list sh -c "lsinitramfs /boot/initrd.img-$KVER | grep capture-agent"
  put initrd_bytes "$(stat -c %s "/boot/initrd.img-$KVER")"

  # A later kernel package: its postinst runs /etc/kernel/postinst.d/, the package's hook among them.
  local later_pkg later
  later_pkg=$(dpkg-deb -f "$IN/later-kernel.deb" Package)
  later=${later_pkg#linux-image-}
  put later_kernel "$later"
  put later_image_before "$(test -e "/var/lib/capture-agent/$later/initramfs.img" && echo present || echo absent)"
  t0=$(uptime_s)
  run kernel_install dpkg -i "$IN/later-kernel.deb"
  put kernel_install_s "$(since "$t0")"
  put later_capture_image_bytes "$(stat -c %s "/var/lib/capture-agent/$later/initramfs.img" 2>/dev/null || echo 0)"
  put later_initrd_agent_files "$(agent_files_in "/boot/initrd.img-$later")"
  run status capture-agent status
  cp "/boot/initrd.img-$KVER" "$OUT/initrd.img" || say "copying the host initrd failed"
  switch_to_dracut "$later"
}

# switch_to_dracut LATER: Debian's dracut replaces initramfs-tools, as an administrator does it
# (apt, offline from the .debs the host fetched); its trigger rebuilds every kernel's initrd with
# the package's dracut module. hostonly, as Fedora's and RHEL's dracut default to: this machine's
# drivers only (the initramfs-tools side has MODULES=dep for the same reason).
switch_to_dracut() {
  local later=$1 t0
  install -d /etc/dracut.conf.d
  echo 'hostonly="yes"' > /etc/dracut.conf.d/harness-hostonly.conf
  t0=$(uptime_s)
  run dracut_install env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$IN"/dracut/*.deb || return 1
  put dracut_install_s "$(since "$t0")"
  put initramfs_tools_after_dracut "$(dpkg-query -W -f '${db:Status-Abbrev}' initramfs-tools 2>/dev/null | tr -d ' ')"
  put dracut_version "$(dpkg-query -W -f '${Version}' dracut-core 2>/dev/null)"
  put dracut_initrd_agent_files "$(agent_files_in "/boot/initrd.img-$KVER")"
  quiet dracut_initrd_list lsinitrd "/boot/initrd.img-$KVER"
  put dracut_initrd_bytes "$(stat -c %s "/boot/initrd.img-$KVER")"
  put dracut_later_initrd_agent_files "$(agent_files_in "/boot/initrd.img-$later")"
  # The inputs are used up; $IN is on /run, a tmpfs of a tenth of the RAM, too small for them and
  # both initrds (measured: the copy of the second one failed halfway).
  rm -rf "$IN/dracut" "$IN/later-kernel.deb" "$IN/capture-agent.deb"
  cp "/boot/initrd.img-$KVER" "$OUT/initrd-dracut.img" || { say "copying the dracut initrd failed"; rm -f "$OUT/initrd-dracut.img"; }
}

stage_crash() {
  put boot_to_unit_s "$(uptime_s)"
  local active
  active=$(systemctl show -p ActiveEnterTimestampMonotonic --value capture-agent.service)
  put armed_at_boot_s "$(awk "BEGIN{printf \"%.1f\", ${active:-0}/1000000}")"
  put service_result "$(systemctl show -p Result --value capture-agent.service)"
  put kexec_crash_loaded "$(cat /sys/kernel/kexec_crash_loaded)"
  run journal journalctl -b -u capture-agent.service --no-pager -o short-monotonic
  # The service warns when the early load used another command line than its own.
  put early_cmdline_differs "$(grep -c 'armed with another command line' "$OUT/journal.txt")"
  run status capture-agent status
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
  put service_result "$(systemctl show -p Result --value capture-agent.service)"
  put savecore_result "$(systemctl show -p Result --value capture-agent-savecore.service)"
  put kexec_crash_loaded "$(cat /sys/kernel/kexec_crash_loaded)"
  quiet journal journalctl -b -u capture-agent.service -u capture-agent-savecore.service --no-pager -o short-monotonic
  # This boot's initrd is dracut's: its pre-mount hook armed first, the service again after.
  quiet pre_mount_journal journalctl -b -u dracut-pre-mount.service --no-pager -o short-monotonic
  put early_cmdline_differs "$(grep -c 'armed with another command line' "$OUT/journal.txt")"
  run status capture-agent status
  put status_armed "$(grep -c '^armed: ' "$OUT/status.txt")"
  run dumps find /var/crash -printf '%M %u %s %p\n'
  local dir
  dir=$(find /var/crash -mindepth 1 -maxdepth 1 -type d | sort | tail -n1)
  put dump_dir "${dir:-none}"
  if [ -n "$dir" ]; then
    put vmcore_bytes "$(stat -c %s "$dir/vmcore" 2>/dev/null || echo 0)"
    run verify capture-agent verify "$dir"
  fi
  run report capture-agent report

  # Purge: what the package and its scripts made must go, the dumps (the administrator's) stay.
  local t0
  t0=$(uptime_s)
  run dpkg_purge dpkg --purge capture-agent
  put dpkg_purge_s "$(since "$t0")"
  put kexec_after_purge "$(cat /sys/kernel/kexec_crash_loaded)"
  local state
  state=$(dpkg-query -W -f '${db:Status-Abbrev}' capture-agent 2>/dev/null | tr -d ' ')
  put dpkg_state "${state:-not-known}"
  root_paths | comm -13 "$BEFORE" - > "$OUT/paths-added.txt"
  root_paths | comm -23 "$BEFORE" - > "$OUT/paths-removed.txt"
  # What is left that names the agent, outside the dumps.
  grep -i 'capture-agent' "$OUT/paths-added.txt" > "$OUT/leftovers.txt"
  put leftover_paths "$(wc -l < "$OUT/leftovers.txt")"
  put paths_added "$(wc -l < "$OUT/paths-added.txt")"
  local k n total=0
  for k in /boot/initrd.img-*; do
    n=$(agent_files_in "$k")
    echo "$k $n" >> "$OUT/initrd-agent-files-after-purge.txt"
    total=$((total + n))
  done
  put initrd_agent_files_after_purge "$total"
  put units_left "$(find /etc/systemd /usr/lib/systemd /var/lib/systemd -name '*capture-agent*' 2>/dev/null | tee "$OUT/units-left.txt" | wc -l)"
}

say "stage $STAGE starts"
case $STAGE in
  install) stage_install ;;
  crash) stage_crash ;;
  check) stage_check ;;
  *) say "unknown stage '$STAGE'" ;;
esac
put stage_done "$STAGE"
write_results || say "writing the results failed"
say "stage $STAGE ends: powering off"
systemctl poweroff

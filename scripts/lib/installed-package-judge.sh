# shellcheck shell=bash
# The host's verdict on scripts/installed-package: the first check that failed, with the reason,
# and the figures, as KEY=VALUE lines. Sourced after installed-judge.sh (env_get, captured,
# capture_reason, console_tail, last_step).

EARLY_LINE='early arming from the initramfs'
# The initramfs mounting the root filesystem (ext4 or xfs, on a partition or an LV).
ROOT_MOUNT_RE='EXT4-fs \([^)]*\): mounted filesystem|XFS \([^)]*\): Ending clean mount'

# console_lines CONSOLE: printable lines without carriage returns.
console_lines() { tr -d '\r' < "$1" | tr -c '[:print:]\n' '?'; }

# early_block CONSOLE: the early hook's own lines (from the agent's first line to the next line of
# the kernel or of the initramfs's scripts).
early_block() {
  console_lines "$1" | awk -v first="$EARLY_LINE" '
    done { next }
    index($0, first) { on = 1 }
    on && (/^\[ *[0-9]+\.[0-9]+\]/ || /^Begin: / || /^done\./) && !index($0, first) { done = 1; next }
    on { print }'
}

# dracut_early_block CONSOLE: the dracut pre-mount hook's lines (the agent's stderr, which
# dracut-pre-mount.service sends to the journal and the console; journald prefixes each line on the
# console with the time and "dracut-pre-mount[PID]: "): from the agent's first line on, the lines
# with that same prefix, the prefix removed.
dracut_early_block() {
  console_lines "$1" | awk -v first="$EARLY_LINE" '
    { line = $0; sub(/^\[ *[0-9]+\.[0-9]+\] /, "", line) }
    !on && (i = index(line, first)) { on = 1; head = substr(line, 1, i - 1); print substr(line, i); next }
    on && head != "" && index(line, head) == 1 && n++ < 40 { print substr(line, length(head) + 1) }'
}

# line_of CONSOLE ERE: the number of the first line matching, empty when none.
# (awk reads to the end: an early exit would end the writer with SIGPIPE, fatal under pipefail)
line_of() { console_lines "$1" | awk -v re="$2" '!n && $0 ~ re { n = NR } END { if (n) print n }'; }

# kernel_time_around CONSOLE LINE: the printk times of the last kernel line before LINE and the
# first one after it ("a-b" seconds): when the early hook ran, by the kernel's clock.
kernel_time_around() {
  console_lines "$1" | awk -v n="$2" '
    match($0, /^\[ *[0-9]+\.[0-9]+\]/) { t = substr($0, 2, RLENGTH - 2); gsub(/ /, "", t)
      if (NR < n) before = t; else if (after == "") after = t }
    END { printf "%s-%s", before, after }'
}

# judge_package DIR DEB: result.env lines.
judge_package() {
  local dir=$1 deb=$2 stage="" reason="" tail_of="" early_at mount_at
  inst() { env_get "$dir/install/result.env" "$1"; }
  crash() { stage_value "$dir" crash "$1"; }
  check() { env_get "$dir/check/result.env" "$1"; }
  host() { env_get "$dir/host.env" "$1"; }
  local con_i=$dir/console-install.log con_c=$dir/console-crash.log con_k=$dir/console-check.log

  echo "deb_bytes=$(stat -c %s "$deb")"
  echo "installed_size_kib=$(dpkg-deb -f "$deb" Installed-Size)"
  for k in dpkg_install_s enabled savecore_enabled active_after_install kexec_after_install capture_image_bytes \
           update_initramfs_s initrd_agent_files initrd_bytes later_kernel kernel_install_s later_capture_image_bytes \
           later_initrd_agent_files; do
    echo "$k=$(inst "$k")"
  done
  [ -f "$con_c" ] && early_block "$con_c" > "$dir/early-console.txt"
  early_at="" mount_at=""
  if [ -f "$con_c" ]; then
    early_at=$(line_of "$con_c" "$EARLY_LINE") mount_at=$(line_of "$con_c" "$ROOT_MOUNT_RE")
  fi
  echo "early_console_line=$early_at"
  echo "root_mount_console_line=$mount_at"
  [ -n "$early_at" ] && echo "early_armed_kernel_time_s=$(kernel_time_around "$con_c" "$early_at")"
  local dracut_at="" dracut_mount_at=""
  for k in dracut_version dracut_install_s initramfs_tools_after_dracut dracut_initrd_bytes dracut_initrd_agent_files \
           dracut_later_initrd_agent_files; do
    echo "$k=$(inst "$k")"
  done
  if [ -f "$con_k" ]; then
    dracut_early_block "$con_k" > "$dir/dracut-early-console.txt"
    dracut_at=$(line_of "$con_k" "$EARLY_LINE") dracut_mount_at=$(line_of "$con_k" "$ROOT_MOUNT_RE")
  fi
  echo "dracut_early_console_line=$dracut_at"
  echo "dracut_root_mount_console_line=$dracut_mount_at"
  [ -n "$dracut_at" ] && echo "dracut_early_armed_kernel_time_s=$(kernel_time_around "$con_k" "$dracut_at")"
  echo "dracut_boot_kexec_crash_loaded=$(check kexec_crash_loaded)"
  echo "dracut_boot_status_armed=$(check status_armed)"
  echo "dracut_boot_cmdline_differs=$(check early_cmdline_differs)"
  echo "armed_at_boot_s=$(crash armed_at_boot_s)"
  echo "early_cmdline_differs=$(crash early_cmdline_differs)"
  local crash_at; crash_at=$(host crash_at_s)
  if [ -n "$crash_at" ]; then
    echo "crash_at_s=$crash_at"
    echo "capture_s=$(( $(host crash_boot_s) - crash_at ))"
  fi
  [ -f "$con_c" ] && echo "vmcore_save_s=$(grep -aoE 'vmcore saved: .* in [0-9.]+ s' "$con_c" | tail -n1 | grep -oE '[0-9.]+ s$' | tr -d ' s')"
  [ -f "$con_c" ] && echo "agent_peak_kib=$(grep -aoE 'capture-agent: peak memory [0-9]+ KiB' "$con_c" | tail -n1 | grep -oE '[0-9]+' || true)"
  for k in savecore_result vmcore_bytes verify_rc dpkg_purge_s kexec_after_purge dpkg_state leftover_paths paths_added \
           initrd_agent_files_after_purge units_left; do
    echo "$k=$(check "$k")"
  done
  for b in install crash check; do echo "${b}_boot_s=$(host "${b}_boot_s")"; echo "${b}_boot_retries=$(host "${b}_boot_retries")"; done

  if [ ! -f "$dir/install/result.env" ]; then
    stage=install tail_of=$con_i reason="the install boot wrote no results; the guest was at: $(last_step "$con_i")"
  elif [ "$(inst dpkg_install_rc)" != 0 ]; then
    stage=install tail_of=$con_i reason="dpkg -i failed: $(tail -n3 "$dir/install/dpkg_install.txt" | tr '\n' ' ')"
  elif [ "$(inst enabled)" != enabled ] || [ "$(inst active_after_install)" != active ] || [ "$(inst kexec_after_install)" != 1 ]; then
    stage=install tail_of=$con_i reason="after dpkg -i: capture-agent.service $(inst enabled), $(inst active_after_install), kexec_crash_loaded=$(inst kexec_after_install)"
  elif [ "$(inst update_initramfs_rc)" != 0 ] || [ "$(inst initrd_agent_files)" = 0 ]; then
    stage=install tail_of=$con_i reason="update-initramfs with early_load = yes: exit $(inst update_initramfs_rc), $(inst initrd_agent_files) capture-agent files in the host initrd"
  elif [ "$(inst kernel_install_rc)" != 0 ] || [ "$(inst later_capture_image_bytes)" = 0 ]; then
    stage=install tail_of=$con_i reason="the later kernel package (exit $(inst kernel_install_rc)) left no capture image for $(inst later_kernel)"
  elif [ ! -s "$dir/install/initrd.img" ]; then
    stage=install tail_of=$con_i reason="the host initrd did not come back from the guest"
  elif [ "$(inst dracut_install_rc)" != 0 ] || [ "$(inst initramfs_tools_after_dracut)" = ii ]; then
    stage=install tail_of=$con_i reason="the switch to dracut: apt-get exit $(inst dracut_install_rc), initramfs-tools '$(inst initramfs_tools_after_dracut)': $(tail -n3 "$dir/install/dracut_install.txt" 2>/dev/null | tr '\n' ' ')"
  elif [ "$(inst dracut_initrd_agent_files)" = 0 ] || [ "$(stat -c %s "$dir/install/initrd-dracut.img" 2>/dev/null)" != "$(inst dracut_initrd_bytes)" ]; then
    stage=install tail_of=$con_i reason="dracut with early_load = yes: $(inst dracut_initrd_agent_files) capture-agent files in its initrd of $(inst dracut_initrd_bytes) bytes, $(stat -c %s "$dir/install/initrd-dracut.img" 2>/dev/null || echo 0) of them came back"
  elif [ -z "$early_at" ]; then
    stage=crash tail_of=$con_c reason="no early arming line ('$EARLY_LINE') on the console"
  elif [ -z "$mount_at" ] || [ "$early_at" -gt "$mount_at" ]; then
    stage=crash tail_of=$con_c reason="the early arming line (console line $early_at) is not before the root mount (line ${mount_at:-none})"
  elif grep -qa 'early arming failed' "$con_c"; then
    stage=crash tail_of=$con_c reason="the early hook said: $(grep -a -m1 'early arming failed' "$con_c")"
  elif [ "$(crash crashing)" != 1 ]; then
    stage=crash tail_of=$con_c reason="not armed after boot by capture-agent.service (result $(crash service_result), kexec_crash_loaded=$(crash kexec_crash_loaded))"
  elif ! captured "$con_c"; then
    stage=capture tail_of=$con_c reason=$(capture_reason "$con_c")
  elif [ ! -f "$dir/check/result.env" ]; then
    stage=check tail_of=$con_k reason="the boot after the capture wrote no results; the guest was at: $(last_step "$con_k")"
  elif [ -z "$dracut_at" ]; then
    stage=dracut tail_of=$con_k reason="booted with the dracut initrd: no early arming line ('$EARLY_LINE') on the console"
  elif [ -z "$dracut_mount_at" ] || [ "$dracut_at" -gt "$dracut_mount_at" ]; then
    stage=dracut tail_of=$con_k reason="the dracut hook's early arming line (console line $dracut_at) is not before the root mount (line ${dracut_mount_at:-none})"
  elif grep -qa 'early arming failed' "$con_k" || ! grep -q '^armed: ' "$dir/dracut-early-console.txt"; then
    stage=dracut tail_of=$con_k reason="the dracut hook did not arm: $(tail -n2 "$dir/dracut-early-console.txt" | tr '\n' ' ')"
  elif [ "$(check kexec_crash_loaded)" != 1 ] || [ "$(check status_armed)" != 1 ]; then
    stage=dracut tail_of=$con_k reason="after the dracut boot: kexec_crash_loaded=$(check kexec_crash_loaded), capture-agent status: $(head -n1 "$dir/check/status.txt" 2>/dev/null)"
  elif [ "$(check dump_dir)" = none ] || [ "$(check verify_rc)" != 0 ]; then
    stage=check tail_of=$con_k reason="dump $(check dump_dir), verify exit $(check verify_rc)"
  elif ! grep -qa 'sysrq triggered crash' "$dir/check/report.txt"; then
    stage=check tail_of=$con_k reason="capture-agent report does not show the sysrq panic"
  elif [ "$(check savecore_result)" != success ]; then
    stage=check tail_of=$con_k reason="capture-agent-savecore.service result: $(check savecore_result)"
  elif [ "$(check dpkg_purge_rc)" != 0 ]; then
    stage=purge tail_of=$con_k reason="dpkg --purge failed: $(tail -n3 "$dir/check/dpkg_purge.txt" | tr '\n' ' ')"
  elif [ "$(check leftover_paths)" != 0 ] || [ "$(check units_left)" != 0 ] || [ "$(check initrd_agent_files_after_purge)" != 0 ] \
       || [ "$(check kexec_after_purge)" != 0 ] || ! [[ $(check dpkg_state) =~ ^(not-known|[up]n)$ ]]; then
    stage=purge tail_of=$con_k reason="left after dpkg --purge: $(check leftover_paths) paths naming capture-agent ($(head -n3 "$dir/check/leftovers.txt" | tr '\n' ' ')), $(check units_left) unit files, $(check initrd_agent_files_after_purge) files in host initrds, kexec_crash_loaded=$(check kexec_after_purge), dpkg state '$(check dpkg_state)'"
  fi

  if [ -z "$stage" ]; then
    echo "verdict=pass"
  else
    echo "verdict=fail"
    echo "failed_stage=$stage"
    echo "reason=$(tr -d '\n' <<< "$reason" | cut -c1-500)"
    [ -f "$tail_of" ] && console_tail "$tail_of" 60 > "$dir/failure-console-tail.txt"
    echo "console_tail=$dir/failure-console-tail.txt"
  fi
}

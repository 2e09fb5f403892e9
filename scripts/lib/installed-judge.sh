# shellcheck shell=bash
# The host's verdict on one layout of scripts/installed-system, from the two consoles and the
# guest's results: which stage failed first and why, and the figures. Sourced.

# env_get FILE KEY: the value of KEY=... in FILE (the last one), empty if absent.
env_get() { if [ -f "$1" ]; then sed -n "s/^$2=//p" "$1" | tail -n1; fi; }

# after_crash CONSOLE: the console from the first kernel's crash on (the capture kernel's part).
after_crash() { sed -n '/sysrq: Trigger a crash/,$p' "$1" | tr -d '\r'; }

# console_tail FILE N: the last N lines, printable only (the failure reason shown by the test).
console_tail() { tr -d '\r' < "$1" | tr -c '[:print:]\n' '?' | tail -n "$2"; }

# captured CONSOLE: the capture kernel said it saved a complete dump.
captured() { after_crash "$1" | grep -qa 'complete dump saved'; }

# capture_reason CONSOLE: why the capture kernel did not save a complete dump, in one line.
capture_reason() {
  local after line
  after=$(after_crash "$1")
  for pattern in 'capture-agent: .* failed: ' 'capture failed' 'capture incomplete' 'Kernel panic' 'Out of memory'; do
    line=$(grep -a -m1 -E "$pattern" <<< "$after" || true)
    [ -n "$line" ] && { echo "${line#"${line%%[! ]*}"}"; return; }
  done
  grep -qa 'capture-agent: capture kernel started' <<< "$after" \
    && echo "the agent started but saved no complete dump" || echo "the capture kernel never started the agent"
}

# last_printk_seconds TEXT: the last kernel timestamp ("[   12.345678]") in TEXT.
last_printk_seconds() { grep -aoE '^\[ *[0-9]+\.[0-9]+\]' | tail -n1 | tr -d '[] '; }

# judge_layout LAYOUT DIR BUILD_S ARM_S ARM_TIMEOUT CRASH_AT CHECK_S CHECK_TIMEOUT: result.env lines.
judge_layout() {
  local layout=$1 dir=$2 arm_env=$2/arm/result.env check_env=$2/check/result.env
  local con_arm=$2/console-arm.log con_check=$2/console-check.log
  local stage="" reason="" tail_of=""
  echo "layout=$layout"
  echo "build_s=$3"
  echo "arm_boot_s=$4"
  echo "check_boot_s=$7"
  # Figures from the first boot.
  echo "boot_to_unit_s=$(env_get "$arm_env" boot_to_unit_s)"
  echo "service_start_s=$(env_get "$arm_env" service_start_s)"
  echo "boot_to_armed_s=$(env_get "$arm_env" boot_to_armed_s)"
  echo "capture_image_bytes=$(env_get "$arm_env" capture_image_bytes)"
  if [ -n "$6" ]; then
    echo "crash_at_s=$6"
    echo "capture_s=$(( $4 - $6 ))"
  fi
  echo "capture_kernel_uptime_s=$(after_crash "$con_arm" | last_printk_seconds)"
  echo "agent_peak_kib=$(grep -aoE 'capture-agent: peak memory [0-9]+ KiB' "$con_arm" | tail -n1 | grep -oE '[0-9]+' || true)"
  # Figures from the second boot.
  echo "armed_at_boot_s=$(env_get "$check_env" armed_at_boot_s)"
  echo "vmcore_bytes=$(env_get "$check_env" vmcore_bytes)"
  echo "verify_rc=$(env_get "$check_env" verify_rc)"

  if [ "$(env_get "$arm_env" crashing)" != 1 ]; then
    stage=arm tail_of=$con_arm
    if [ ! -f "$arm_env" ]; then reason="the first boot never ran the harness stage${5:+ (timed out: $5)}"
    elif [ "$(env_get "$arm_env" install_rc)" != 0 ]; then reason="capture-agent install failed: $(head -n3 "$dir/arm/install.txt" | tr '\n' ' ')"
    elif [ "$(env_get "$arm_env" service_start_rc)" != 0 ]; then reason="systemctl start capture-agent failed: $(tail -n3 "$dir/arm/journal.txt" 2>/dev/null | tr '\n' ' ')"
    else reason="the capture kernel was not armed: $(head -n2 "$dir/arm/status.txt" 2>/dev/null | tr '\n' ' ')"; fi
  elif ! grep -qa 'sysrq: Trigger a crash' "$con_arm"; then
    stage=arm tail_of=$con_arm reason="test --crash --yes did not crash the kernel"
  elif ! captured "$con_arm"; then
    stage=capture tail_of=$con_arm reason=$(capture_reason "$con_arm")
    [ "$5" = 1 ] && reason="$reason (timed out)"
  elif [ ! -f "$check_env" ]; then
    stage=check tail_of=$con_check reason="the boot after the capture never ran the harness stage${8:+ (timed out: $8)}"
  elif [ "$(env_get "$check_env" dump_dir)" = none ]; then
    stage=check tail_of=$con_check reason="no dump directory in /var/crash after the capture"
  elif [ "$(env_get "$check_env" verify_rc)" != 0 ]; then
    stage=check tail_of=$con_check reason="capture-agent verify exited $(env_get "$check_env" verify_rc): $(head -n3 "$dir/check/verify.txt" | tr '\n' ' ')"
  elif ! grep -qa 'sysrq triggered crash' "$dir/check/report.txt"; then
    stage=check tail_of=$con_check reason="capture-agent report does not show the sysrq panic"
  fi

  if [ -z "$stage" ]; then
    echo "verdict=pass"
  else
    echo "verdict=fail"
    echo "failed_stage=$stage"
    echo "reason=$(tr -d '\n' <<< "$reason" | cut -c1-400)"
    console_tail "$tail_of" 60 > "$dir/failure-console-tail.txt"
    echo "console_tail=$dir/failure-console-tail.txt"
  fi
}

# summary_line LAYOUT RESULT_ENV: one line of figures and the verdict.
summary_line() {
  local f=$2 kib img
  kib=$(env_get "$f" agent_peak_kib) img=$(env_get "$f" capture_image_bytes)
  printf '%-12s %s  boot-to-armed %ss (service start %ss, re-armed at boot %ss)  capture %ss (capture kernel uptime %ss)  agent peak %s  image %s  vmcore %s B  layout %ss%s\n' \
    "$1" "$(env_get "$f" verdict)" "$(env_get "$f" boot_to_armed_s)" "$(env_get "$f" service_start_s)" \
    "$(env_get "$f" armed_at_boot_s)" "$(env_get "$f" capture_s)" "$(env_get "$f" capture_kernel_uptime_s)" \
    "${kib:+$(awk "BEGIN{printf \"%.1f MiB\", $kib/1024}")}" "${img:+$(awk "BEGIN{printf \"%.2f MB\", $img/1000000}")}" \
    "$(env_get "$f" vmcore_bytes)" "$(env_get "$f" layout_seconds)" \
    "$( [ "$(env_get "$f" verdict)" = pass ] || echo "  [$(env_get "$f" failed_stage)] $(env_get "$f" reason)")"
}

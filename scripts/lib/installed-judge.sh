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

# stage_value DIR BOOT KEY: what the guest reported for KEY in boot BOOT (arm, check): its
# result.env, or when it never wrote one (a timeout), the "harness: KEY=VALUE" console lines.
stage_value() {
  if [ -f "$1/$2/result.env" ]; then env_get "$1/$2/result.env" "$3"
  elif [ -f "$1/console-$2.log" ]; then tr -d '\r' < "$1/console-$2.log" | sed -n "s/^harness: $3=//p" | tail -n1; fi
}

# last_step CONSOLE: the last command the guest's stage started.
last_step() { tr -d '\r' < "$1" | sed -n 's/^harness: \$ //p' | tail -n1; }

# judge_layout LAYOUT DIR BUILD_S ARM_S ARM_TIMED_OUT CRASH_AT CHECK_S CHECK_TIMED_OUT: result.env lines.
judge_layout() {
  local layout=$1 dir=$2 build_s=$3 arm_s=$4 arm_timeout=$5 crash_at=$6 check_s=$7 check_timeout=$8
  local con_arm=$2/console-arm.log con_check=$2/console-check.log stage="" reason="" tail_of=""
  arm_value() { stage_value "$dir" arm "$1"; }
  check_value() { stage_value "$dir" check "$1"; }
  echo "layout=$layout"
  echo "build_s=$build_s"
  echo "arm_boot_s=$arm_s"
  echo "check_boot_s=$check_s"
  # Figures from the first boot.
  echo "boot_to_unit_s=$(arm_value boot_to_unit_s)"
  echo "service_start_s=$(arm_value service_start_s)"
  echo "boot_to_armed_s=$(arm_value boot_to_armed_s)"
  echo "capture_image_bytes=$(arm_value capture_image_bytes)"
  if [ -n "$crash_at" ]; then
    echo "crash_at_s=$crash_at"
    echo "capture_s=$(( arm_s - crash_at ))"
  fi
  # The agent's own time for the vmcore (the capture kernel's printk clock is not used: under TCG
  # its clocksource was marked unstable and its timestamps ran ahead of the host's clock).
  echo "vmcore_save_s=$(grep -aoE 'vmcore saved: .* in [0-9.]+ s' "$con_arm" | tail -n1 | grep -oE '[0-9.]+ s$' | tr -d ' s')"
  echo "agent_peak_kib=$(grep -aoE 'capture-agent: peak memory [0-9]+ KiB' "$con_arm" | tail -n1 | grep -oE '[0-9]+' || true)"
  # Figures from the second boot.
  echo "armed_at_boot_s=$(check_value armed_at_boot_s)"
  echo "vmcore_bytes=$(check_value vmcore_bytes)"
  echo "verify_rc=$(check_value verify_rc)"

  if [ "$(arm_value crashing)" != 1 ]; then
    stage=arm tail_of=$con_arm
    if ! grep -qa 'harness: stage arm starts' "$con_arm"; then
      reason="the first boot never started the harness stage"
      [ "$arm_timeout" = 1 ] && reason="$reason (stopped after $arm_s s)"
    elif [ "$(arm_value install_rc)" != 0 ]; then reason="capture-agent install failed: $(head -n3 "$dir/arm/install.txt" 2>/dev/null | tr '\n' ' ')"
    elif [ "$arm_timeout" = 1 ]; then reason="the first boot was stopped after $arm_s s; the guest was at: $(last_step "$con_arm")"
    elif [ "$(arm_value service_start_rc)" != 0 ]; then reason="systemctl start capture-agent failed: $(tail -n3 "$dir/arm/journal.txt" 2>/dev/null | tr '\n' ' ')"
    else reason="the capture kernel was not armed: $(head -n2 "$dir/arm/status.txt" 2>/dev/null | tr '\n' ' ')"; fi
  elif ! grep -qa 'sysrq: Trigger a crash' "$con_arm"; then
    stage=arm tail_of=$con_arm reason="test --crash --yes did not crash the kernel"
  elif ! captured "$con_arm"; then
    stage=capture tail_of=$con_arm reason=$(capture_reason "$con_arm")
    [ "$arm_timeout" = 1 ] && reason="$reason (stopped after $arm_s s)"
  elif [ ! -f "$dir/check/result.env" ]; then
    stage=check tail_of=$con_check
    if [ "$check_timeout" = 1 ]; then reason="the boot after the capture was stopped after $check_s s; the guest was at: $(last_step "$con_check")"
    else reason="the boot after the capture never finished the harness stage"; fi
  elif [ "$(check_value dump_dir)" = none ]; then
    stage=check tail_of=$con_check reason="no dump directory in /var/crash after the capture"
  elif [ "$(check_value verify_rc)" != 0 ]; then
    stage=check tail_of=$con_check reason="capture-agent verify exited $(check_value verify_rc): $(head -n3 "$dir/check/verify.txt" | tr '\n' ' ')"
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
  printf '%-12s %s  boot-to-armed %ss (service start %ss, re-armed at boot %ss)  capture %ss (vmcore written in %ss)  agent peak %s  image %s  vmcore %s B  layout %ss%s\n' \
    "$1" "$(env_get "$f" verdict)" "$(env_get "$f" boot_to_armed_s)" "$(env_get "$f" service_start_s)" \
    "$(env_get "$f" armed_at_boot_s)" "$(env_get "$f" capture_s)" "$(env_get "$f" vmcore_save_s)" \
    "${kib:+$(awk "BEGIN{printf \"%.1f MiB\", $kib/1024}")}" "${img:+$(awk "BEGIN{printf \"%.2f MB\", $img/1000000}")}" \
    "$(env_get "$f" vmcore_bytes)" "$(env_get "$f" layout_seconds)" \
    "$( [ "$(env_get "$f" verdict)" = pass ] || echo "  [$(env_get "$f" failed_stage)] $(env_get "$f" reason)")"
}

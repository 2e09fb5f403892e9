#!/bin/bash
# dracut module: arm capture-agent's capture kernel from the initramfs, before the root
# filesystem is mounted. Included only when /etc/capture-agent.conf says early_load = yes.
# shellcheck disable=SC2154   # $kernel and $moddir are dracut's

capture_agent_files() {
    local agent="${CAPTURE_AGENT_ROOT:-}/usr/sbin/capture-agent"
    [[ -x $agent ]] || return 1
    "$agent" kernel-hook early "$kernel"
}

check() {
    [[ -n $(capture_agent_files 2>/dev/null) ]] || return 1
    return 0
}

depends() {
    return 0
}

install() {
    local dest src files
    # A here-string, not < <(...): process substitution needs /dev/fd, which a chroot without /proc
    # (an installer's, a rescue system's) has not.
    files=$(capture_agent_files) || return 1
    while read -r dest src; do
        if [[ $dest == /usr/bin/capture-agent ]]; then
            inst_binary "$src" "$dest"
        else
            inst_simple "$src" "$dest"
        fi
    done <<< "$files"
    inst_hook pre-mount 00 "$moddir/capture-agent-load.sh"
}

#!/bin/bash
# dracut module: arm the capture kernel from the initramfs, before root is mounted.

# `capture-agent install` puts it in /usr/sbin; a hand-copied one may be in /usr/bin.
agent_path() {
    local p
    for p in /usr/sbin/capture-agent /usr/bin/capture-agent; do
        [[ -x $p ]] && { echo "$p"; return 0; }
    done
    return 1
}

check() {
    # Only when a capture initramfs exists for the kernel being packed.
    agent_path >/dev/null && [[ -f /var/lib/capture-agent/initramfs-${kernel}.img ]] || return 255
    return 0
}

depends() {
    return 0
}

install() {
    inst_binary "$(agent_path)" /usr/bin/capture-agent
    inst_simple "/boot/vmlinuz-${kernel}" /capture-agent/vmlinuz
    inst_simple "/var/lib/capture-agent/initramfs-${kernel}.img" /capture-agent/initramfs.img
    inst_hook pre-mount 00 "$moddir/capture-agent-load.sh"
}

#!/bin/bash
# dracut module: arm the capture kernel from the initramfs, before root is mounted.

check() {
    # Only when a capture initramfs exists for the kernel being packed.
    [[ -x /usr/bin/capture-agent && -f /var/lib/capture-agent/initramfs-${kernel}.img ]] || return 255
    return 0
}

depends() {
    return 0
}

install() {
    inst_binary /usr/bin/capture-agent
    inst_simple "/boot/vmlinuz-${kernel}" /capture-agent/vmlinuz
    inst_simple "/var/lib/capture-agent/initramfs-${kernel}.img" /capture-agent/initramfs.img
    inst_hook pre-mount 00 "$moddir/capture-agent-load.sh"
}

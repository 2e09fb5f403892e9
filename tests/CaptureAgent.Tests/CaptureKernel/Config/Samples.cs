namespace CaptureAgent.Tests.CaptureKernel.Config;

/// <summary>
/// Configuration files as RHEL/Fedora and Debian/Ubuntu systems have them (written for these
/// tests after the formats of kdump-utils' kdump.conf and sysconfig and kdump-tools' defaults).
/// </summary>
public static class Samples
{
    /// <summary>RHEL 9 as installed: only auto_reset_crashkernel, path and core_collector are active.</summary>
    public const string Rhel9KdumpConf = """
        # Directives for the kdump capture kernel, run after a crash of the
        # first kernel. They only matter inside the kdump initramfs.
        #
        # raw <partition>          - dd the vmcore into <partition>
        # nfs <nfs mount>          - copy to <mnt>/<path>/%HOST-%DATE/
        # ssh <user@server>        - stream to <user@server>:<path>/%HOST-%DATE/
        # sshkey <path>            - the key for ssh dumps
        # <fs type> <partition>    - mount and copy to <mnt>/<path>/%HOST_IP-%DATE/
        # path <path>              - where the vmcore goes
        # core_collector <command> - the program that copies the vmcore
        #

        #raw /dev/vg/lv_kdump
        #ext4 /dev/vg/lv_kdump
        #ext4 LABEL=/boot
        #nfs my.server.com:/export/tmp
        #ssh user@my.server.com
        #sshkey /root/.ssh/kdump_id_rsa
        auto_reset_crashkernel yes
        path /var/crash
        core_collector makedumpfile -l --message-level 7 -d 31
        #core_collector scp
        #kdump_post /var/crash/scripts/kdump-post.sh
        #failure_action shell
        """;

    /// <summary>/etc/sysconfig/kdump of RHEL 9 on x86_64.</summary>
    public const string Rhel9Sysconfig = """
        # Kernel version of the kdump kernel; empty means the running one.
        KDUMP_KERNELVER=""

        # The whole command line of the kdump kernel; empty means /proc/cmdline.
        KDUMP_COMMANDLINE=""

        # Parameters removed from the command line taken above.
        KDUMP_COMMANDLINE_REMOVE="hugepages hugepagesz slub_debug quiet log_buf_len swiotlb hugetlb_cma ignition.firstboot"

        # Parameters appended after the removal.
        KDUMP_COMMANDLINE_APPEND="irqpoll nr_cpus=1 reset_devices cgroup_disable=memory mce=off numa=off udev.children-max=2 panic=10 rootflags=nofail acpi_no_memhotplug transparent_hugepage=never nokaslr hest_disable novmcoredd cma=0 hugetlb_cma=0"

        # Extra kexec arguments.
        KEXEC_ARGS="-s"

        #KDUMP_BOOTDIR="/boot"

        KDUMP_IMG="vmlinuz"

        KDUMP_IMG_EXT=""

        # KDUMP_STDLOGLVL=3
        """;

    /// <summary>RHEL 9 default install: LVM root on xfs.</summary>
    public const string Rhel9Fstab = """

        #
        # /etc/fstab
        # Created by anaconda on Tue Mar  5 10:12:44 2024
        #
        /dev/mapper/rhel-root   /                       xfs     defaults        0 0
        UUID=5a1b6c2e-90d1-4f3a-8e77-3c1d2a4b5f60 /boot                   xfs     defaults        0 0
        UUID=7C3A-11F2          /boot/efi               vfat    umask=0077,shortname=winnt 0 2
        /dev/mapper/rhel-swap   none                    swap    defaults        0 0
        """;

    /// <summary>Every kdump.conf directive, with trailing comments, quotes, tabs and odd spacing.</summary>
    public const string RhelEverythingKdumpConf = """
        # kdump.conf of a clustered database server
        xfs   UUID=8e3b1f0c-2d47-4c1e-9a55-0f7d3e2b6c11     # the dedicated dump disk
        path	/crash
        core_collector "makedumpfile -c --message-level 7 -d 17,31 --num-threads 4"
        sshkey /root/.ssh/kdump_id_rsa
        kdump_pre /usr/local/sbin/kdump-pre.sh
        kdump_post /usr/local/sbin/kdump-post.sh
        kdump_emergency /usr/local/sbin/kdump-emergency.sh
        extra_bins /usr/bin/lftp /usr/bin/curl
        extra_modules	gfs2   mlx5_core
        failure_action dump_to_rootfs
        final_action poweroff
          force_rebuild 1
        force_no_rebuild 0
        dracut_args --omit-drivers "cfg80211 snd" --add-drivers "ext2 ext3" --omit plymouth
        fence_kdump_args -p 7410 -f auto -c 0 -i 10
        fence_kdump_nodes node1 node2
        auto_reset_crashkernel no
        disk_timeout 90
        link_delay 20
        debug_mem_level 2
        blacklist nouveau amdgpu
        options loop max_loop=1
        mystery_directive 42
        """;

    public const string RhelEverythingFstab = """
        UUID=0d4c3b2a-1f0e-4d9c-8b7a-6f5e4d3c2b1a /      ext4 defaults 1 1
        UUID=8e3b1f0c-2d47-4c1e-9a55-0f7d3e2b6c11 /crash xfs  defaults,nofail 0 0
        tmpfs /tmp tmpfs defaults 0 0
        """;

    /// <summary>NFS over IPv6 with the fstab line it is mounted with, a flattened collector.</summary>
    public const string RhelNfsKdumpConf = """
        nfs [2001:db8::1:2:3:4]:/export/tmp
        path /kdump
        core_collector makedumpfile -F -l --message-level 7 -d 31
        failure_action shell
        """;

    public const string RhelNfsFstab = """
        /dev/vda1 / xfs defaults 0 0
        [2001:db8::1:2:3:4]:/export/tmp /mnt/dumps nfs4 rw,vers=4.2,soft,timeo=100,_netdev,x-systemd.automount 0 0
        """;

    /// <summary>ssh to an IPv6 literal without brackets (kdump.conf allows it), a raw partition, a copy collector.</summary>
    public const string RhelSshRawKdumpConf = """
        ssh kdump@2001:db8::5
        raw /dev/disk/by-partlabel/kdumpraw
        core_collector scp
        path /var/crash/remote
        default halt
        """;

    /// <summary>Fedora Workstation: btrfs root in subvolume "root", no target in kdump.conf.</summary>
    public const string FedoraKdumpConf = """
        auto_reset_crashkernel yes
        path /var/crash
        core_collector makedumpfile -l --message-level 7 -d 31
        """;

    public const string FedoraFstab = """
        UUID=2f0b6d1e-3c4a-4b5d-9e8f-7a6b5c4d3e2f /                       btrfs   subvol=root,compress=zstd:1 0 0
        UUID=1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d /boot                   ext4    defaults        1 2
        UUID=2f0b6d1e-3c4a-4b5d-9e8f-7a6b5c4d3e2f /home                   btrfs   subvol=home,compress=zstd:1 0 0
        """;

    public const string FedoraSysconfig = """
        KDUMP_COMMANDLINE_REMOVE="hugepages hugepagesz slub_debug quiet log_buf_len swiotlb cma hugetlb_cma ignition.firstboot"
        KDUMP_COMMANDLINE_APPEND="irqpoll nr_cpus=1 reset_devices cgroup_disable=memory mce=off numa=off udev.children-max=2 panic=10 acpi_no_memhotplug transparent_hugepage=never nokaslr hest_disable novmcoredd cma=0 hugetlb_cma=0 rd.driver.blacklist=nouveau rd.memdebug=2"
        KEXEC_ARGS="-s"
        KDUMP_IMG="vmlinuz"
        """;

    /// <summary>Debian 12 /etc/default/kdump-tools as the package installs it (after `dpkg-reconfigure kdump-tools` to yes).</summary>
    public const string Debian12KdumpTools = """
        # kdump-tools settings
        # ---------------------------------------------------------------------------
        # USE_KDUMP - whether kdump is armed at boot (0 or 1)
        USE_KDUMP=1

        # ---------------------------------------------------------------------------
        # KDUMP_KERNEL, KDUMP_INITRD - the capture kernel and its initrd
        KDUMP_KERNEL=/var/lib/kdump/vmlinuz
        KDUMP_INITRD=/var/lib/kdump/initrd.img

        # KDUMP_SYSCTL - sysctls applied when the capture kernel is loaded
        KDUMP_SYSCTL="kernel.panic_on_oops=1"

        # ---------------------------------------------------------------------------
        # Where vmcores go, what to do when saving fails, whether dmesg is saved
        KDUMP_COREDIR="/var/crash"
        #KDUMP_FAIL_CMD="reboot -f"
        #KDUMP_DUMP_DMESG=
        #KDUMP_NUM_DUMPS=

        # ---------------------------------------------------------------------------
        # MAKEDUMP_ARGS - makedumpfile's arguments (default "-c -d 31")
        #MAKEDUMP_ARGS="-c -d 31"

        # ---------------------------------------------------------------------------
        # Kexec/Kdump args
        #KDUMP_KEXEC_ARGS=""
        #KDUMP_CMDLINE=""
        #KDUMP_CMDLINE_APPEND="reset_devices systemd.unit=kdump-tools-dump.service nr_cpus=1 irqpoll usbcore.nousb"

        # ---------------------------------------------------------------------------
        # Remote dumps
        # SSH="<user at server>"
        # SSH_KEY="<path>"
        # HOSTTAG="hostname|[ip]"
        # NFS="<nfs mount>"
        # NFS_TIMEO="600"
        # NFS_RETRANS="3"
        """;

    public const string Debian12Fstab = """
        # /etc/fstab: static file system information.
        #
        # <file system> <mount point>   <type>  <options>       <dump>  <pass>
        # / was on /dev/sda1 during installation
        UUID=4b1f6a0e-7d9c-4e2b-a1f3-5c6d7e8f9a0b /               ext4    errors=remount-ro 0       1
        # swap was on /dev/sda5 during installation
        UUID=9e8d7c6b-5a4f-4e3d-2c1b-0a9f8e7d6c5b none            swap    sw              0       0
        /dev/sr0        /media/cdrom0   udf,iso9660 user,noauto     0       0
        """;

    /// <summary>Ubuntu with an ssh collector, shell quoting of every kind, export, a line of shell code, secrets.</summary>
    public const string UbuntuSshKdumpTools = """
        # Managed by hand
        export USE_KDUMP=1
        KDUMP_COREDIR='/srv/crash'    # on the collector
        KDUMP_NUM_DUMPS=5
        MAKEDUMP_ARGS="-z -d 31 --num-threads=2"
        KDUMP_FAIL_CMD="echo 'makedumpfile FAILED.'; /bin/bash; reboot -f"
        KDUMP_DUMP_DMESG=0
          KDUMP_CMDLINE_APPEND="reset_devices systemd.unit=kdump-tools-dump.service nr_cpus=1 irqpoll usbcore.nousb modprobe.blacklist=nouveau"
        KDUMP_CMDLINE=""
        SSH="ubuntu@crash-collector.example.com"
        SSH_KEY=/root/.ssh/kdump_ed25519
        HOSTTAG=ip
        KDUMP_COMPRESSION=xz
        FTP_PASSWORD="s3cret-Passw0rd"
        if [ -f /etc/default/kdump-local ]; then . /etc/default/kdump-local; fi
        """;

    /// <summary>Debian with NFS, a continued line and a variable expansion.</summary>
    public const string DebianNfsKdumpTools = """
        USE_KDUMP=1
        SERVER=10.0.0.2
        NFS="$SERVER:/srv/crash"
        NFS_TIMEO=300
        KDUMP_CMDLINE_APPEND="nr_cpus=1 \
          irqpoll reset_devices"
        KDUMP_FAIL_CMD="reboot -f"
        MAKEDUMP_ARGS="-c -d 1"
        """;

    /// <summary>Ubuntu on btrfs: root in subvolume @.</summary>
    public const string UbuntuBtrfsFstab = """
        UUID=77aa88bb-99cc-4dde-8eff-001122334455 /     btrfs defaults,subvol=@ 0 1
        UUID=77aa88bb-99cc-4dde-8eff-001122334455 /home btrfs defaults,subvol=@home 0 2
        """;
}

namespace CaptureAgent.Host;

/// <summary>
/// The scripts the kernel packages run when a kernel comes or goes, and the systemd units. Each
/// script only hands the kernel release to `capture-agent kernel-hook` and always exits 0: a
/// missing capture initramfs is reported, it never fails a package installation. Without the agent
/// (the package removed but not purged: the scripts in /etc/kernel are conffiles and stay) they do
/// nothing and say nothing. The same texts are in dist/ for packagers (a test keeps them equal).
/// </summary>
public static class KernelHooks
{
    public const string DebianPostinst = "/etc/kernel/postinst.d/capture-agent";
    public const string DebianPostrm = "/etc/kernel/postrm.d/capture-agent";
    public const string KernelInstallPlugin = "/usr/lib/kernel/install.d/45-capture-agent.install";
    // The package's place for units (and install's): the administrator's overrides go to /etc/systemd/system.
    public const string Service = "/usr/lib/systemd/system/capture-agent.service";
    public const string SavecoreService = "/usr/lib/systemd/system/capture-agent-savecore.service";

    // $CAPTURE_AGENT_ROOT (empty on a real system) lets the same script run against a scratch root.
    public const string DebianPostinstScript = """
        #!/bin/sh
        # capture-agent: build the capture initramfs of a newly installed kernel.
        # Debian's kernel packages run this with the kernel release and the image path. It never
        # fails the package operation: a problem is reported and the script exits 0.
        version="${1:-}"
        image="${2:-}"
        agent="${CAPTURE_AGENT_ROOT:-}/usr/sbin/capture-agent"
        if [ -z "$version" ]; then
            echo "capture-agent: kernel hook called without a kernel release; nothing done" >&2
            exit 0
        fi
        # Removed but not purged: this conffile stays, and has nothing to do.
        [ -x "$agent" ] || exit 0
        if ! "$agent" kernel-hook add "$version" ${image:+"$image"}; then
            echo "capture-agent: no capture initramfs for $version (retry: capture-agent kernel-hook add $version)" >&2
        fi
        exit 0

        """;

    public const string DebianPostrmScript = """
        #!/bin/sh
        # capture-agent: drop the capture initramfs of a removed kernel.
        # Debian's kernel packages run this with the kernel release and the image path. It never
        # fails the package operation: a problem is reported and the script exits 0.
        version="${1:-}"
        agent="${CAPTURE_AGENT_ROOT:-}/usr/sbin/capture-agent"
        if [ -z "$version" ]; then
            echo "capture-agent: kernel hook called without a kernel release; nothing done" >&2
            exit 0
        fi
        # Removed but not purged: this conffile stays, and has nothing to do.
        [ -x "$agent" ] || exit 0
        if ! "$agent" kernel-hook remove "$version"; then
            echo "capture-agent: could not remove the capture initramfs of $version" >&2
        fi
        exit 0

        """;

    // kernel-install(8): "add KVER ENTRY_DIR IMAGE [INITRD...]" and "remove KVER ENTRY_DIR".
    // Exit 77 would stop the other plugins, any other failure fails the installation: always 0.
    // 45-: before 50-dracut.install, so dracut's early-arming module (initramfs/dracut) finds the
    // capture initramfs of the kernel being installed; modules.dep is not needed (modinfo depends=).
    public const string KernelInstallScript = """
        #!/bin/sh
        # capture-agent: kernel-install(8) plugin, the capture initramfs of each installed kernel.
        # It never fails the kernel installation: a problem is reported and the plugin exits 0.
        command="${1:-}"
        version="${2:-}"
        image="${4:-}"
        agent="${CAPTURE_AGENT_ROOT:-}/usr/sbin/capture-agent"
        case "$command" in
            add|remove) ;;
            *) exit 0 ;;
        esac
        if [ -z "$version" ]; then
            echo "capture-agent: kernel-install $command without a kernel release; nothing done" >&2
            exit 0
        fi
        [ -x "$agent" ] || exit 0
        if [ "$command" = add ]; then
            "$agent" kernel-hook add "$version" ${image:+"$image"} \
                || echo "capture-agent: no capture initramfs for $version (retry: capture-agent kernel-hook add $version)" >&2
        else
            "$agent" kernel-hook remove "$version" \
                || echo "capture-agent: could not remove the capture initramfs of $version" >&2
        fi
        exit 0

        """;

    public const string ServiceUnit = """
        [Unit]
        Description=Arm the capture kernel for kernel crash dumps (capture-agent)
        Documentation=man:capture-agent(8) man:capture-agent.conf(5)
        After=local-fs.target

        [Service]
        Type=oneshot
        RemainAfterExit=yes
        # Picks the pinned or running kernel and rebuilds its capture initramfs first when the
        # config, the target's drivers, the module tree or the agent changed since it was built.
        ExecStart=/usr/sbin/capture-agent load --auto
        ExecStop=/usr/sbin/capture-agent unload

        [Install]
        WantedBy=multi-user.target

        """;

    public const string SavecoreUnit = """
        [Unit]
        Description=Extract a crash dump left on a raw dump device (capture-agent savecore)
        Documentation=man:capture-agent(8)
        After=local-fs.target
        # Before the capture kernel is armed again, so a second crash cannot overwrite the first.
        Before=capture-agent.service
        ConditionPathExists=/etc/capture-agent.conf

        [Service]
        Type=oneshot
        # Exits 0 at once when the config has no raw: target or nothing is waiting on it.
        ExecStart=/usr/sbin/capture-agent savecore

        [Install]
        WantedBy=multi-user.target

        """;
}

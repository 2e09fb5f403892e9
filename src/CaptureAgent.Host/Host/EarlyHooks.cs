using CaptureAgent.Config;

namespace CaptureAgent.Host;

/// <summary>A host initramfs generator and the files that make it arm the capture kernel early.</summary>
/// <param name="Detect">Files of the host that say the generator is installed (any one).</param>
public sealed record InitramfsGenerator(string Name, string[] Detect, (string Path, string Text)[] Files, string Rebuild);

/// <summary>One file the early hooks pack into the host's initramfs: where it goes there, and where it is on the host.</summary>
public sealed record EarlyFile(string Destination, string Source);

/// <summary>
/// Arming the capture kernel from the host's initramfs, before the root filesystem is mounted
/// (early_load = yes). The generator's hook asks `capture-agent kernel-hook early KVER` what to
/// pack: the agent, the capture kernel and initramfs `load --auto` would arm for KVER, and
/// /etc/capture-agent.conf, so that `load --early` there builds the same command line as
/// capture-agent.service does later (kernel_cmdline_append, blacklist). Nothing is packed when
/// early_load is not yes, so the hooks can be installed everywhere. The same texts are in
/// initramfs/ of the repository (a test keeps them equal).
/// </summary>
public static class EarlyHooks
{
    /// <summary>Where the packed files are in the host's initramfs; `load --early` reads them there.</summary>
    public const string AgentInImage = "/usr/bin/capture-agent";
    public const string KernelInImage = "/capture-agent/vmlinuz";
    public const string InitramfsInImage = "/capture-agent/initramfs.img";

    /// <summary>
    /// The files for the host initramfs of <paramref name="release"/>, or none (with the reason)
    /// when early_load is not yes or the capture initramfs cannot be had. A stale capture
    /// initramfs is rebuilt first, as load --auto would.
    /// </summary>
    public static List<EarlyFile> Files(HostLayout host, string release, Action<string> report, out string? reason)
    {
        reason = null;
        var config = AgentConfig.Load(host.ConfigPath);
        if (!config.EarlyLoad)
        {
            reason = $"early_load is not yes in {HostLayout.ConfigFile}";
            return [];
        }
        var choice = CaptureStore.Choose(host, release);
        if (!choice.KernelExists)
        {
            reason = $"no kernel image for {choice.Release} ({choice.KernelPath})";
            return [];
        }
        var store = CaptureStore.EnsureCurrent(host, choice.Release, report);
        if (!store.Usable)
        {
            reason = $"no capture initramfs for {choice.Release}: {store.Error}";
            return [];
        }
        return
        [
            new(AgentInImage, host.AgentPath),
            new(KernelInImage, choice.KernelPath),
            new(InitramfsInImage, store.ImagePath),
            new(HostLayout.ConfigFile, host.ConfigPath),
        ];
    }

    // ----- initramfs-tools (Debian, Ubuntu) -----

    public const string InitramfsToolsHook = "/usr/share/initramfs-tools/hooks/capture-agent";
    public const string InitramfsToolsPremount = "/usr/share/initramfs-tools/scripts/init-premount/capture-agent";

    // $version is the kernel being packed (mkinitramfs exports it). A failure never fails the build.
    public const string InitramfsToolsHookScript = """
        #!/bin/sh
        # initramfs-tools hook: arm capture-agent's capture kernel from the initramfs, before the root
        # filesystem is mounted. Packs nothing unless /etc/capture-agent.conf says early_load = yes.
        PREREQ=""
        prereqs() { echo "$PREREQ"; }
        case "$1" in prereqs) prereqs; exit 0 ;; esac
        # shellcheck source=/dev/null
        . /usr/share/initramfs-tools/hook-functions

        agent="${CAPTURE_AGENT_ROOT:-}/usr/sbin/capture-agent"
        [ -x "$agent" ] || exit 0
        # One "DESTINATION SOURCE" line per file; nothing when early arming is off.
        if ! files=$("$agent" kernel-hook early "${version:?}"); then
            echo "capture-agent: early arming skipped for ${version} (see above)" >&2
            exit 0
        fi
        [ -n "$files" ] || exit 0
        echo "$files" | while read -r dest src; do
            if [ "$dest" = /usr/bin/capture-agent ]; then
                copy_exec "$src" "$dest"
            else
                mkdir -p "${DESTDIR}${dest%/*}"
                cp "$src" "${DESTDIR}${dest}"
            fi
        done
        exit 0

        """;

    public const string InitramfsToolsPremountScript = """
        #!/bin/sh
        # Arm the capture kernel before the root filesystem is mounted; never stop the boot.
        PREREQ=""
        prereqs() { echo "$PREREQ"; }
        case "$1" in prereqs) prereqs; exit 0 ;; esac
        [ -x /usr/bin/capture-agent ] && [ -f /capture-agent/vmlinuz ] || exit 0
        /usr/bin/capture-agent load --early || echo "capture-agent: early arming failed; capture-agent.service arms after boot" >&2
        exit 0

        """;

    // ----- dracut (Fedora, RHEL, SUSE; Debian's dracut too) -----

    public const string DracutModuleDirectory = "/usr/lib/dracut/modules.d/90capture-agent";
    public const string DracutModuleSetup = DracutModuleDirectory + "/module-setup.sh";
    public const string DracutLoadHook = DracutModuleDirectory + "/capture-agent-load.sh";

    // dracut sources this file and calls check/depends/install; $kernel is the kernel being packed.
    public const string DracutModuleSetupScript = """
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

        """;

    public const string DracutLoadHookScript = """
        #!/bin/sh
        # dracut pre-mount hook: arm the capture kernel early; a failure is reported, boot goes on.
        if [ -x /usr/bin/capture-agent ] && [ -f /capture-agent/vmlinuz ]; then
            /usr/bin/capture-agent load --early || echo "capture-agent: early arming failed; capture-agent.service arms after boot" >&2
        fi

        """;

    // ----- mkinitcpio (Arch) -----

    public const string MkinitcpioInstall = "/etc/initcpio/install/capture-agent";
    public const string MkinitcpioHook = "/etc/initcpio/hooks/capture-agent";

    public const string MkinitcpioInstallScript = """
        #!/bin/bash
        # mkinitcpio install hook: capture-agent's early arming (add capture-agent to HOOKS in
        # /etc/mkinitcpio.conf). Packs nothing unless /etc/capture-agent.conf says early_load = yes.

        build() {
            local agent="${CAPTURE_AGENT_ROOT:-}/usr/sbin/capture-agent" files dest src
            [[ -x $agent ]] || return 0
            if ! files=$("$agent" kernel-hook early "$KERNELVERSION"); then
                warning "capture-agent: early arming skipped for $KERNELVERSION"
                return 0
            fi
            [[ -n $files ]] || return 0
            while read -r dest src; do
                if [[ $dest == /usr/bin/capture-agent ]]; then
                    add_binary "$src" "$dest"
                else
                    add_file "$src" "$dest"
                fi
            done <<< "$files"
            add_runscript
        }

        help() {
            echo "Arms capture-agent's capture kernel before the root filesystem is mounted (early_load = yes)."
        }

        """;

    public const string MkinitcpioHookScript = """
        #!/usr/bin/ash
        # mkinitcpio runtime hook: arm the capture kernel early; never stop the boot.
        run_earlyhook() {
            [ -x /usr/bin/capture-agent ] && [ -f /capture-agent/vmlinuz ] || return 0
            /usr/bin/capture-agent load --early || echo "capture-agent: early arming failed; capture-agent.service arms after boot"
        }

        """;

    // ----- which generator the host has -----

    public static readonly InitramfsGenerator[] Generators =
    [
        new("initramfs-tools", ["/usr/sbin/mkinitramfs", "/usr/sbin/update-initramfs"],
            [(InitramfsToolsHook, InitramfsToolsHookScript), (InitramfsToolsPremount, InitramfsToolsPremountScript)],
            "update-initramfs -u -k all"),
        new("dracut", ["/usr/bin/dracut", "/usr/sbin/dracut"],
            [(DracutModuleSetup, DracutModuleSetupScript), (DracutLoadHook, DracutLoadHookScript)],
            "dracut -f --regenerate-all"),
        new("mkinitcpio", ["/usr/bin/mkinitcpio"],
            [(MkinitcpioInstall, MkinitcpioInstallScript), (MkinitcpioHook, MkinitcpioHookScript)],
            "add capture-agent to HOOKS in /etc/mkinitcpio.conf, then mkinitcpio -P"),
    ];

    /// <summary>The generators installed below the host's root (usually one).</summary>
    public static List<InitramfsGenerator> Installed(HostLayout host) =>
        Generators.Where(g => g.Detect.Any(p => File.Exists(host.Under(p)))).ToList();
}

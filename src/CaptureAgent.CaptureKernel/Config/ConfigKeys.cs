namespace CaptureAgent.Config;

/// <summary>
/// One key of capture-agent.conf: its value syntax, its default as `config check` prints it (null
/// when the default is not a value: derived from the targets, or none), and what it does.
/// </summary>
/// <param name="Default">The value an unset key has, written as the config would write it; null when there is none to write.</param>
/// <param name="DefaultText">The default in words, for keys whose default is not a value.</param>
/// <param name="Example">A value the parser accepts (tests parse every one).</param>
public sealed record ConfigKey(string Name, string Syntax, string? Default, string Doc, string Example, bool Repeatable = false, string? DefaultText = null)
{
    public string DefaultDescription => Default ?? DefaultText ?? "none";
}

/// <summary>
/// Every key capture-agent.conf accepts: the one source for the parser's list of keys
/// (<see cref="AgentConfig"/> refuses any other), capture-agent.conf(5), the commented defaults of
/// the config `install` writes, and the order `config import` writes keys in.
/// </summary>
public static class ConfigKeys
{
    public static readonly ConfigKey[] All =
    [
        new("target", "UUID=... | LABEL=... | PARTUUID=... | PARTLABEL=... | /dev/NAME | raw:DEVICE | nfs:HOST:/EXPORT | ssh:USER@HOST[:PORT]",
            null, "A dump target; repeat the line for more. Targets are tried in order until one holds a complete dump. " +
                  "Local targets are found by reading superblocks and partition tables; raw: targets are extracted on the next boot by " +
                  "`capture-agent savecore`; nfs: mounts the export with the kernel's client; ssh: streams the flattened dump to the " +
                  "collector's cat (set it up with `capture-agent propagate`).",
            "LABEL=crashdump", Repeatable: true, DefaultText: "none: the capture kernel has nowhere to save"),
        new("fstype", "ext4 | ext3 | ext2 | xfs | btrfs | vfat", null,
            "The filesystem type of local targets.", "ext4", DefaultText: "read from each target's superblock"),
        new("path", "ABSOLUTE-PATH", "/var/crash/{host}-{date}",
            "The dump directory below the target's root. {host}, {date}, {kver} and {boot_id} are replaced; a path without " +
            "any of them is a parent directory and gets /{host}-{date} added.", "/var/crash"),
        new("dump_level", "0-31", "31",
            "makedumpfile's dump level: a bit mask of the pages left out (1 zero, 2 non-private cache, 4 private cache, 8 user, 16 free).", "31"),
        new("fallback_dump_level", "0-31", "31",
            "The dump level used instead when the estimate or the free space says the dump will not fit.", "31"),
        new("compression", "zstd | lzo | snappy | zlib | none | auto", "zstd",
            "How each page is compressed in the kdump-compressed file (lzo, snappy and zlib as makedumpfile -l, -p and -c write them). " +
            "auto: the codec that gets the dump onto the target first, chosen in the first seconds of the capture from each codec's cost " +
            "and size on a sample of the dump's own pages and the target's speed on the first 4 MiB written; the pages written while " +
            "measuring stay zstd, and the choice is logged and kept in the manifest.", "auto"),
        new("keep_dumps", "0-10000", "0",
            "Older dumps on the target are removed before the new one so that at most this many remain, the new one included (0 keeps all).", "3"),
        new("keep_size", "SIZE", "0",
            "Older dumps are removed so that the dumps on the target, the new one included, stay below this size (0 = no limit).", "20G"),
        new("min_free", "SIZE", "64M", "Space left free on the target; the dump level is raised, then the dump cut short, to keep it.", "64M"),
        new("final_action", "reboot | halt | poweroff | shell", "reboot", "What the capture kernel does after a dump was saved.", "reboot"),
        new("failure_action", "reboot | halt | poweroff | shell", "reboot", "What the capture kernel does when no target took the dump.", "reboot"),
        new("stall_timeout", "10-86400", "300",
            "Seconds the capture may make no progress before the capture kernel's PID 1 stops it and goes on with the next target or the failure action.", "300"),
        new("device_timeout", "1-3600", "60", "Seconds to wait for a local or raw target's device to appear.", "60"),
        new("network", "dhcp | none | ADDR/PREFIX [via GATEWAY]", null,
            "How the capture kernel brings the network up for nfs: and ssh: targets.", "dhcp",
            DefaultText: "dhcp when a target needs the network, else none"),
        new("network_interface", "auto | NAME | MAC", "auto",
            "The interface to use. Names can differ in the capture kernel (no udev): prefer auto or the MAC address.", "auto"),
        new("network_timeout", "1-3600", "30", "Seconds to wait for a link, an address, and each network step.", "30"),
        new("dns", "ADDRESS[,ADDRESS...]", null, "Name servers for the capture kernel (DHCP's are used otherwise).", "10.0.2.3", DefaultText: "none"),
        new("ssh_key", "ABSOLUTE-PATH", "/root/.ssh/capture-agent_id_ed25519",
            "The private key for ssh: targets, copied into the capture initramfs. `capture-agent propagate` makes it.", "/root/.ssh/capture-agent_id_ed25519"),
        new("ssh_known_hosts", "ABSOLUTE-PATH", "/etc/capture-agent/known_hosts",
            "The collectors' host keys, copied into the capture initramfs; ssh checks them strictly. `capture-agent propagate` writes it.",
            "/etc/capture-agent/known_hosts"),
        new("nfs_options", "OPTION[,OPTION...]", null, "Mount options for nfs: targets.", "soft,timeo=100,retrans=3",
            DefaultText: "soft,timeo=100,retrans=3, NFS version 4.2 down to 3"),
        new("pre_hook", "ABSOLUTE-PATH", null,
            "A program run in the capture kernel before the dump (repeatable): an ELF program, or a script whose interpreter is in the image. " +
            "It is carried into the capture initramfs.", "/usr/lib/capture-agent/pre", Repeatable: true, DefaultText: "none"),
        new("post_hook", "ABSOLUTE-PATH", null,
            "A program run after the dump (repeatable), with CAPTURE_AGENT_STATUS=complete|incomplete|failed and CAPTURE_AGENT_DUMP set.",
            "/usr/lib/capture-agent/post", Repeatable: true, DefaultText: "none"),
        new("extra_modules", "MODULE[,MODULE...]", null, "More kernel modules for the capture initramfs (with their dependencies).", "nvme", DefaultText: "none"),
        new("blacklist", "MODULE[,MODULE...]", null,
            "Modules kept out of the capture initramfs and blacklisted on the capture kernel's command line.", "nouveau", DefaultText: "none"),
        new("kernel_cmdline_append", "PARAMETERS", null,
            "Added to the capture kernel's command line by `capture-agent load` (and by early arming).", "acpi_no_memhotplug", DefaultText: "none"),
        new("save_raw_copy", "yes | no", "no",
            "Also keep a byte copy of /proc/vmcore (vmcore.raw) after the dump: for verification; costs the size of the crashed machine's memory.", "no"),
        new("early_load", "yes | no", "no",
            "Also arm the capture kernel from the host's initramfs, before the root filesystem is mounted, so a crash during boot is " +
            "captured too. The initramfs-tools, dracut or mkinitcpio hook then packs the agent, the capture kernel, its capture initramfs " +
            "and this file into the host's initramfs (about 10 MiB more) and runs the same `load` as capture-agent.service; " +
            "rebuild the host's initramfs after changing it (update-initramfs -u, dracut -f, mkinitcpio -P).", "yes"),
    ];

    public static ConfigKey? Find(string name) => All.FirstOrDefault(k => k.Name == name);

    /// <summary>The keys in the order the config lists them.</summary>
    public static IEnumerable<string> Names => All.Select(k => k.Name);
}

using System.Net;
using System.Net.Sockets;
using CaptureAgent.Targets.Ssh;

namespace CaptureAgent.Config;

/// <summary>A configuration file read for import: the name shown in notes and its text.</summary>
public sealed record ImportFile(string DisplayName, string Text);

/// <summary>
/// RHEL/Fedora kdump (kexec-tools, kdump-utils): /etc/kdump.conf directives and the
/// KDUMP_COMMANDLINE_* settings of /etc/sysconfig/kdump, into capture-agent.conf settings.
/// </summary>
public static class KdumpConfImporter
{
    public const string ConfPath = "/etc/kdump.conf";
    public const string SysconfigPath = "/etc/sysconfig/kdump";
    public const string DefaultSshKey = "/root/.ssh/kdump_id_rsa";
    public const string RootKnownHosts = "/root/.ssh/known_hosts";
    private const string DefaultPath = "/var/crash";

    /// <summary>How capture-agent picks the capture kernel, for settings that named it.</summary>
    internal const string KernelChoiceWhy =
        "capture-agent.service arms the running kernel (`capture-agent pin KVER` makes it arm another installed kernel); "
        + "`capture-agent load --kernel PATH` arms any kernel by hand";

    private static readonly string[] FsTypes = ["ext4", "ext3", "ext2", "xfs", "btrfs", "vfat", "minix", "virtiofs"];
    private static readonly string[] Actions = ["reboot", "halt", "poweroff", "shell"];

    private sealed record Target(string Kind, string Value, ImportOrigin Origin, string? NfsOptions = null);

    /// <param name="rootDir">The imported system's root: its /etc/fstab and /etc/kdump/{pre,post}.d.</param>
    public static void Import(ConfigImport import, ImportFile? kdumpConf, ImportFile? sysconfig, string rootDir)
    {
        var fstab = Fstab.Load(rootDir);
        var targets = new List<Target>();
        (string Value, ImportOrigin Origin)? path = null, sshKey = null, collector = null, failure = null, final = null;
        var extraModules = new List<string>();
        var blacklist = new List<string>();
        var cmdline = new List<string>();
        ImportOrigin? modulesOrigin = null, blacklistOrigin = null, cmdlineOrigin = null;
        var preHooks = new List<(string, ImportOrigin)>();
        var postHooks = new List<(string, ImportOrigin)>();
        var seen = new Dictionary<string, ImportOrigin>();

        if (kdumpConf is not null)
        {
            import.Sources.Add(kdumpConf.DisplayName);
            int lineNo = 0;
            foreach (var raw in kdumpConf.Text.Split('\n'))
            {
                lineNo++;
                string line = raw.Trim();
                if (line.Length == 0 || line[0] == '#') continue;
                int sp = line.IndexOfAny([' ', '\t']);
                string opt = sp < 0 ? line : line[..sp];
                string val = sp < 0 ? "" : line[(sp + 1)..];
                // kdump reads a trailing comment off the value, then one pair of surrounding quotes.
                int hash = val.IndexOf('#');
                if (hash >= 0) val = val[..hash];
                val = val.Trim();
                if (val.Length >= 2 && val[0] == '"' && val[^1] == '"') val = val[1..^1];
                var origin = new ImportOrigin($"{kdumpConf.DisplayName}:{lineNo}", (opt + " " + val).Trim());
                if (val.Length == 0 && opt is not ("force_rebuild" or "force_no_rebuild"))
                {
                    import.Drop(origin, $"'{opt}' has no value (kdump refuses it too)");
                    continue;
                }
                if (seen.TryGetValue(opt, out var earlier) && opt is not ("extra_modules" or "blacklist" or "options" or "extra_bins" or "dracut_args"))
                    import.Note($"{origin.Where}: {opt} repeats {earlier.Where}; the last one is used (kdump refuses duplicates)");
                seen[opt] = origin;

                switch (opt)
                {
                    case var fs when FsTypes.Contains(fs): targets.Add(new Target(fs, val, origin)); break;
                    case "raw" or "nfs" or "nfs4" or "ssh": targets.Add(new Target(opt, val, origin)); break;
                    case "net":
                        // The old name for nfs and ssh.
                        targets.Add(new Target(val.Contains('@') ? "ssh" : "nfs", val, origin));
                        import.Note($"{origin.Where}: 'net' is the old name of nfs/ssh");
                        break;
                    case "path": path = (val, origin); break;
                    case "sshkey": sshKey = (val, origin); break;
                    case "core_collector": collector = (val, origin); break;
                    case "failure_action": failure = (val, origin); break;
                    case "default":
                        failure = (val, origin);
                        import.Note($"{origin.Where}: 'default' is the old name of failure_action");
                        break;
                    case "final_action": final = (val, origin); break;
                    case "extra_modules":
                        extraModules.AddRange(val.Split([' ', '\t', ','], StringSplitOptions.RemoveEmptyEntries));
                        modulesOrigin ??= origin;
                        break;
                    case "blacklist":
                        blacklist.AddRange(val.Split([' ', '\t', ','], StringSplitOptions.RemoveEmptyEntries));
                        blacklistOrigin ??= origin;
                        break;
                    case "kdump_pre": preHooks.Add((val, origin)); break;
                    case "kdump_post": postHooks.Add((val, origin)); break;
                    case "kdump_emergency":
                        import.Drop(origin, "capture-agent has no emergency hook: failure_action decides what happens after a failure");
                        break;
                    case "options":
                    {
                        // options MODULE a=1 b=2 -> MODULE.a=1 MODULE.b=2 on the capture kernel's command line.
                        var words = val.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
                        if (words.Length < 2) { import.Drop(origin, "expected 'options MODULE PARAM=VALUE...'"); break; }
                        cmdline.AddRange(words.Skip(1).Select(p => words[0] + "." + p));
                        cmdlineOrigin ??= origin;
                        break;
                    }
                    case "disk_timeout":
                        if (import.Set("device_timeout", val, origin))
                            import.Remark("device_timeout", "from kdump's old disk_timeout: how long to wait for the target device");
                        break;
                    case "dracut_args": ImportDracutArgs(import, val, origin, targets, extraModules, blacklist, ref modulesOrigin, ref blacklistOrigin); break;
                    case "extra_bins":
                        import.Drop(origin, "capture-agent.conf has no extra programs: the programs named by pre_hook and post_hook are carried with their libraries; "
                                            + "others only in an image built by hand (`capture-agent initramfs build --executable PATH`, armed with `capture-agent load --initrd IMAGE`)");
                        break;
                    case "fence_kdump_args" or "fence_kdump_nodes":
                        import.Drop(origin, "fence_kdump notification is not built in: name a program that runs fence_kdump_send as pre_hook "
                                            + "(a script needs its interpreter and fence_kdump_send in the image: `capture-agent initramfs build --executable PATH`)");
                        break;
                    case "force_rebuild" or "force_no_rebuild":
                        import.Drop(origin, "capture-agent rebuilds a kernel's capture initramfs when what it was built from changed (the config, the target's "
                                            + "drivers, the kernel's modules, the agent: stamp.json in /var/lib/capture-agent/KVER); "
                                            + "`capture-agent kernel-hook add KVER --force` rebuilds it at once");
                        break;
                    case "auto_reset_crashkernel":
                        import.Drop(origin, "capture-agent changes crashkernel= only when asked: `capture-agent crashkernel --size auto --apply` "
                                            + "writes the size this host needs into the boot loader's configuration (shown as a diff first); nothing resets it after a kernel update");
                        break;
                    case "link_delay":
                        import.Drop(origin, "capture-agent waits for the link itself, up to network_timeout");
                        break;
                    case "debug_mem_level":
                        import.Drop(origin, "capture-agent reports the capture kernel's memory by itself");
                        break;
                    default:
                        import.Drop(origin, $"'{opt}' is not a kdump.conf directive capture-agent knows");
                        break;
                }
            }
        }

        string dumpPath = path?.Value ?? DefaultPath;
        var pathOrigin = path?.Origin ?? new ImportOrigin(kdumpConf?.DisplayName ?? SysconfigPath, "(kdump's default path /var/crash)");
        if (!dumpPath.StartsWith('/'))
        {
            import.Drop(pathOrigin, "path must be absolute; /var/crash is used");
            dumpPath = DefaultPath;
        }

        // Targets.
        string pathPrefix = "";
        var fsTypes = new List<(string Type, ImportOrigin Origin)>();
        bool anySsh = false, anyNfs = false;
        if (targets.Count > 1)
            import.Note("kdump took one target; capture-agent tries these targets in order, the next when one fails");
        foreach (var t in targets)
        {
            switch (t.Kind)
            {
                case "minix" or "virtiofs":
                    import.DropTarget(t.Origin, $"capture-agent cannot write to {t.Kind} (it writes ext2/3/4, xfs, btrfs, vfat, raw devices, NFS and SSH)");
                    break;
                case "raw":
                    import.Set("target", "raw:" + t.Value, t.Origin);
                    break;
                case "nfs" or "nfs4":
                {
                    if (!import.Set("target", "nfs:" + t.Value, t.Origin)) break;
                    anyNfs = true;
                    string? options = t.NfsOptions ?? fstab.Where(e => e.Type is "nfs" or "nfs4" && e.Spec == t.Value).Select(Fstab.NfsKernelOptions).LastOrDefault();
                    if (t.Kind == "nfs4" && (options is null || NfsVersionMissing(options))) options = options is null ? "vers=4" : options + ",vers=4";
                    if (options is not null && import.Get("nfs_options") is null && import.Set("nfs_options", options, t.Origin))
                        import.Remark("nfs_options", "the options this export is mounted with in fstab (kdump mounted it the same way)");
                    NfsNameRemark(import, t.Value);
                    break;
                }
                case "ssh":
                {
                    string dest = BracketIpv6(t.Value);
                    try
                    {
                        SshDestination.Parse(dest);
                    }
                    catch (FormatException e)
                    {
                        import.DropTarget(t.Origin, e.Message);
                        break;
                    }
                    if (import.Set("target", "ssh:" + dest, t.Origin)) anySsh = true;
                    break;
                }
                default:
                {
                    string device = t.Value.Trim('"');
                    if (!import.Set("target", device, t.Origin)) break;
                    fsTypes.Add((t.Kind, t.Origin));
                    // A btrfs target mounted with subvol= here: the agent mounts the top level, so the path goes inside the subvolume.
                    var entry = fstab.LastOrDefault(e => e.Spec == device && e.Type == t.Kind);
                    if (entry is not null && fsTypes.Count == 1 && Fstab.AsTarget(entry) is { Prefix.Length: > 0 } m) pathPrefix = m.Prefix;
                    break;
                }
            }
        }

        import.WarnIfNoTargetLeft();
        if (targets.Count == 0)
        {
            // No target: kdump saves to the filesystem that holds path, at path's place inside it.
            var holder = Fstab.Holding(fstab, dumpPath);
            if (holder is null)
                import.Warn($"no target: kdump.conf names none and no filesystem of {Path.Combine(rootDir, "etc/fstab")} holds {dumpPath}; add a `target =` line");
            else
            {
                var (spec, fsType, prefix, why) = Fstab.AsTarget(holder);
                var origin = FstabOrigin(holder);
                if (spec is null) import.Warn($"no target: {dumpPath} is on {holder.MountPoint}, and {why}");
                else if (import.Set("target", spec, origin,
                             $"kdump.conf names no target: kdump saved to the filesystem holding {dumpPath}, {holder.MountPoint} in /etc/fstab"))
                {
                    if (spec.StartsWith("nfs:", StringComparison.Ordinal))
                    {
                        anyNfs = true;
                        if (Fstab.NfsKernelOptions(holder) is { } o) import.Set("nfs_options", o, origin);
                        NfsNameRemark(import, holder.Spec);
                    }
                    else if (fsType is not null) fsTypes.Add((fsType, origin));
                    pathPrefix = prefix;
                    dumpPath = Fstab.Below(holder, dumpPath);
                }
            }
        }

        // failure_action, with dump_to_rootfs as one more local target: the root filesystem.
        string? finalValue = null;
        if (final is { } fa)
        {
            if (Actions.Contains(fa.Value)) { import.Set("final_action", fa.Value, fa.Origin); finalValue = fa.Value; }
            else import.Drop(fa.Origin, $"final_action must be reboot, halt or poweroff, got '{fa.Value}'");
        }
        if (failure is { } fl)
        {
            if (Actions.Contains(fl.Value)) import.Set("failure_action", fl.Value, fl.Origin);
            else if (fl.Value == "dump_to_rootfs") DumpToRootfs(import, fstab, rootDir, fl.Origin, finalValue, fsTypes, pathPrefix);
            else import.Drop(fl.Origin, $"failure_action must be reboot, halt, poweroff, shell or dump_to_rootfs, got '{fl.Value}'");
        }

        // One fstype for every local target: only when they agree (the superblock says it otherwise).
        var distinct = fsTypes.Select(f => f.Type is "ext2" or "ext3" ? "ext4" : f.Type).Distinct().ToList();
        if (distinct.Count == 1)
        {
            var old = fsTypes.Select(f => f.Type).Where(f => f is "ext2" or "ext3").Distinct().ToList();
            if (import.Set("fstype", distinct[0], fsTypes[0].Origin) && old.Count > 0)
                import.Remark("fstype", $"{string.Join("/", old)} is mounted with the ext4 driver");
        }
        else if (distinct.Count > 1)
            import.Warn($"local targets of different types ({string.Join(", ", distinct)}): fstype is left to each superblock");

        if (import.Set("path", pathPrefix + (dumpPath == "/" && pathPrefix.Length > 0 ? "" : dumpPath), pathOrigin))
        {
            import.Remark("path", "each dump goes to {host}-{date} below it (kdump named it <ip>-<date>)");
            if (pathPrefix.Length > 0)
                import.Remark("path", $"inside btrfs subvolume {pathPrefix.TrimStart('/')}: capture-agent mounts the filesystem's top level");
            if (targets.Count > 0 && targets.All(t => t.Kind == "raw"))
                import.Remark("path", "a raw target ignores path");
        }

        ImportCollector(import, collector, kdumpConf?.DisplayName ?? ConfPath);

        // ssh: kdump's key default and root's known_hosts, which kdump checked host keys against.
        if (anySsh)
        {
            var keyOrigin = sshKey?.Origin ?? new ImportOrigin(kdumpConf!.DisplayName, "(kdump's default sshkey)");
            if (import.Set("ssh_key", sshKey?.Value ?? DefaultSshKey, keyOrigin) && sshKey is null)
                import.Remark("ssh_key", "kdump's default key");
            if (import.Set("ssh_known_hosts", RootKnownHosts, keyOrigin))
                import.Remark("ssh_known_hosts", "kdump checked the server's host key against root's known_hosts");
        }
        else if (sshKey is { } k) import.Drop(k.Origin, "no ssh target uses it");
        if (anySsh || anyNfs)
            import.Warn("kdump brought the network up from NetworkManager's profile; capture-agent uses DHCP unless `network = ADDR/PREFIX via GATEWAY` is set");

        // Hooks: kdump_pre then /etc/kdump/pre.d; /etc/kdump/post.d then kdump_post.
        foreach (var (hook, origin) in preHooks)
            if (import.Set("pre_hook", hook, origin))
                import.Remark("pre_hook", "a failing pre hook does not stop the dump in capture-agent (kdump went to the final action)");
        AddHookDir(import, rootDir, "pre.d", "pre_hook");
        AddHookDir(import, rootDir, "post.d", "post_hook");
        foreach (var (hook, origin) in postHooks)
            if (import.Set("post_hook", hook, origin))
                import.Remark("post_hook", "kdump passed the dump's exit status as $1; capture-agent sets CAPTURE_AGENT_STATUS (complete, incomplete, failed)");
        string emergency = Path.Combine(rootDir, "etc/kdump/emergency.d");
        if (Directory.Exists(emergency))
            foreach (var f in Directory.GetFiles(emergency).Order(StringComparer.Ordinal))
                import.Drop(new ImportOrigin("/etc/kdump/emergency.d", Path.GetFileName(f)), "capture-agent has no emergency hook");

        // /etc/sysconfig/kdump.
        if (sysconfig is not null) ImportSysconfig(import, sysconfig, cmdline, blacklist, ref cmdlineOrigin, ref blacklistOrigin);

        if (extraModules.Count > 0) import.Set("extra_modules", string.Join(',', extraModules.Distinct()), modulesOrigin!);
        if (blacklist.Count > 0) import.Set("blacklist", string.Join(',', blacklist.Distinct()), blacklistOrigin!);
        if (cmdline.Count > 0) import.Set("kernel_cmdline_append", string.Join(' ', cmdline), cmdlineOrigin!);
    }

    internal static ImportOrigin FstabOrigin(FstabEntry e) =>
        new($"/etc/fstab:{e.Line}", $"{e.Spec} {e.MountPoint} {e.Type} {e.Options}");

    private static bool NfsVersionMissing(string options) =>
        !options.Split(',').Any(o => o.StartsWith("vers=", StringComparison.Ordinal) || o.StartsWith("nfsvers=", StringComparison.Ordinal));

    internal static void NfsNameRemark(ConfigImport import, string spec)
    {
        string server = spec.StartsWith('[') ? spec[1..Math.Max(1, spec.IndexOf(']'))] : spec.Split(':')[0];
        if (!IPAddress.TryParse(server, out _))
            import.Warn($"NFS server '{server}' is a name: the capture kernel has no DNS for NFS, so write its IP address or list it in the image's /etc/hosts");
    }

    /// <summary>ssh user@2001:db8::1 (as kdump.conf allows) becomes user@[2001:db8::1].</summary>
    internal static string BracketIpv6(string dest)
    {
        int at = dest.LastIndexOf('@');
        string host = dest[(at + 1)..];
        if (host.Count(c => c == ':') > 1 && !host.StartsWith('[') && IPAddress.TryParse(host, out var ip) && ip.AddressFamily == AddressFamily.InterNetworkV6)
            return dest[..(at + 1)] + "[" + host + "]";
        return dest;
    }

    private static void DumpToRootfs(ConfigImport import, List<FstabEntry> fstab, string rootDir, ImportOrigin origin, string? finalValue,
        List<(string Type, ImportOrigin Origin)> fsTypes, string pathPrefix)
    {
        var root = Fstab.Root(fstab);
        if (root is null)
        {
            import.Drop(origin, $"dump_to_rootfs: no / entry in {Path.Combine(rootDir, "etc/fstab")} to name the root filesystem by; add it as the last target");
            return;
        }
        var (spec, fsType, prefix, why) = Fstab.AsTarget(root);
        if (spec is null)
        {
            import.Drop(origin, $"dump_to_rootfs: {why}");
            return;
        }
        bool already = import.GetAll("target").Contains(spec);
        if (already)
            import.Note($"{origin.Where}: dump_to_rootfs: the root filesystem is already the target");
        else
        {
            import.Set("target", spec, origin, "dump_to_rootfs: the root filesystem (from /etc/fstab) is tried after the targets above");
            if (fsType is not null) fsTypes.Add((fsType, origin));
        }
        if (!already && prefix != pathPrefix)
            import.Warn($"dump_to_rootfs: the root filesystem is btrfs subvolume {prefix.TrimStart('/')}, but one path serves every target: there the dump goes below the top level");
        string action = finalValue ?? "reboot";
        if (import.Set("failure_action", action, origin))
            import.Remark("failure_action", "after dump_to_rootfs kdump did the final action");
    }

    private static void AddHookDir(ConfigImport import, string rootDir, string dir, string key)
    {
        string full = Path.Combine(rootDir, "etc/kdump", dir);
        if (!Directory.Exists(full)) return;
        foreach (var f in Directory.GetFiles(full).Order(StringComparer.Ordinal))
        {
            string system = "/etc/kdump/" + dir + "/" + Path.GetFileName(f);
            var origin = new ImportOrigin("/etc/kdump/" + dir, Path.GetFileName(f));
            var mode = File.GetUnixFileMode(f);
            if ((mode & (UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute)) == 0)
                import.Drop(origin, "not executable, so kdump skipped it too");
            else if (import.Set(key, system, origin))
                import.Remark(key, $"from /etc/kdump/{dir}, which kdump ran in name order");
        }
    }

    internal static void ImportCollector(ConfigImport import, (string Value, ImportOrigin Origin)? collector, string confName)
    {
        var origin = collector?.Origin ?? new ImportOrigin(confName, "(kdump's default core_collector makedumpfile -l --message-level 7 -d 31)");
        var c = CollectorSettings.Parse(collector?.Value ?? "makedumpfile -l --message-level 7 -d 31");
        ApplyCollector(import, c, origin, "core_collector");
    }

    internal static void ApplyCollector(ConfigImport import, CollectorSettings c, ImportOrigin origin, string what)
    {
        if (c.Unknown)
        {
            import.Drop(origin, $"{what} is not makedumpfile or a copy program; capture-agent filters and compresses itself (dump_level 31, zstd by default)");
            return;
        }
        import.Set("dump_level", c.DumpLevel.ToString(), origin);
        if (c.FallbackDumpLevel is { } f && import.Set("fallback_dump_level", f.ToString(), origin))
            import.Remark("fallback_dump_level", "makedumpfile's second -d level: used when the dump would not fit");
        import.Set("compression", c.Compression, origin);
        foreach (var (key, text) in c.Remarks) import.Remark(key, text);
        foreach (var (option, why) in c.Unmapped) import.Drop(origin with { Text = $"{origin.Text} [{option}]" }, why);
    }

    private static void ImportDracutArgs(ConfigImport import, string val, ImportOrigin origin, List<Target> targets,
        List<string> extraModules, List<string> blacklist, ref ImportOrigin? modulesOrigin, ref ImportOrigin? blacklistOrigin)
    {
        var words = ConfigImport.Words(val);
        for (int i = 0; i < words.Count; i++)
        {
            string w = words[i];
            string name = w, value;
            int eq = w.IndexOf('=');
            if (w.StartsWith("--", StringComparison.Ordinal) && eq > 0) { name = w[..eq].TrimEnd('+'); value = w[(eq + 1)..]; }
            else value = i + 1 < words.Count && name is "--mount" or "--omit-drivers" or "--add-drivers" or "--force-drivers" or "--filesystems" or "-o" or "--omit" or "-a" or "--add" or "-d" or "--drivers" ? words[++i] : "";
            var part = origin with { Text = $"{origin.Text} [{w}{(value.Length > 0 && eq < 0 ? " " + value : "")}]" };
            switch (name)
            {
                case "--mount":
                {
                    // --mount "DEVICE MOUNTPOINT FSTYPE [OPTIONS]": kdump dumps to that filesystem.
                    var f = value.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
                    if (f.Length < 3) { import.Drop(part, "expected --mount \"DEVICE MOUNTPOINT FSTYPE [OPTIONS]\""); break; }
                    if (f[2] is "nfs" or "nfs4")
                    {
                        string? opts = f.Length > 3 ? Fstab.NfsKernelOptions(new FstabEntry(f[0], f[1], f[2], f[3], 0)) : null;
                        targets.Add(new Target(f[2], f[0], part, opts));
                    }
                    else if (FsTypes.Contains(f[2])) targets.Add(new Target(f[2], f[0], part));
                    else import.DropTarget(part, $"capture-agent cannot write to {f[2]} (it writes ext2/3/4, xfs, btrfs, vfat, raw devices, NFS and SSH)");
                    break;
                }
                case "--omit-drivers":
                    blacklist.AddRange(value.Split([' ', ','], StringSplitOptions.RemoveEmptyEntries));
                    blacklistOrigin ??= origin;
                    break;
                case "--add-drivers" or "--force-drivers" or "-d" or "--drivers" or "--filesystems":
                    extraModules.AddRange(value.Split([' ', ','], StringSplitOptions.RemoveEmptyEntries));
                    modulesOrigin ??= origin;
                    break;
                default:
                    import.Drop(part, "a dracut option; capture-agent builds its initramfs without dracut");
                    break;
            }
        }
    }

    private static void ImportSysconfig(ConfigImport import, ImportFile sysconfig, List<string> cmdline, List<string> blacklist,
        ref ImportOrigin? cmdlineOrigin, ref ImportOrigin? blacklistOrigin)
    {
        import.Sources.Add(sysconfig.DisplayName);
        var (assignments, other) = ShellAssignments.Parse(sysconfig.Text);
        foreach (var s in other)
            import.Drop(new ImportOrigin($"{sysconfig.DisplayName}:{s.Line}", s.Text), "shell code, not a setting: not run");
        foreach (var a in ShellAssignments.Last(assignments).Values.OrderBy(a => a.Line))
        {
            var origin = new ImportOrigin($"{sysconfig.DisplayName}:{a.Line}", a.Text);
            if (a.Problem is not null) { import.Drop(origin, a.Problem); continue; }
            if (a.Value.Trim().Length == 0) continue;   // empty is unset for kdumpctl
            switch (a.Name)
            {
                case "KDUMP_COMMANDLINE_APPEND":
                {
                    var sorted = CmdlineAppend.Sort(a.Value);
                    cmdline.AddRange(sorted.Kept);
                    if (sorted.Kept.Count > 0) cmdlineOrigin ??= origin;
                    if (sorted.Blacklist.Count > 0) { blacklist.AddRange(sorted.Blacklist); blacklistOrigin ??= origin; }
                    foreach (var (token, why) in sorted.Dropped) import.Drop(origin with { Text = $"{a.Name} [{token}]" }, why);
                    if (sorted.AlreadyAdded.Count > 0)
                        import.Note($"{origin.Where}: {string.Join(' ', sorted.AlreadyAdded)} left out: `capture-agent load` adds them itself");
                    break;
                }
                case "KDUMP_COMMANDLINE_REMOVE":
                {
                    var names = a.Value.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries).Select(t => t.Split('=')[0]).ToList();
                    var missing = names.Where(n => !CaptureCommandLine.Dropped.Contains(n)).ToList();
                    if (missing.Count > 0)
                        import.Drop(origin, $"capture-agent has no remove list (`capture-agent load` drops crashkernel=, hugepages= and the like itself); these stay on the capture kernel's command line: {string.Join(' ', missing)}");
                    else import.Note($"{origin.Where}: KDUMP_COMMANDLINE_REMOVE needs nothing: `capture-agent load` drops all of these itself");
                    break;
                }
                case "KDUMP_COMMANDLINE":
                    import.Drop(origin, "capture-agent always starts from the running command line; put additions in kernel_cmdline_append");
                    break;
                case "FADUMP_COMMANDLINE_APPEND":
                    import.Drop(origin, "firmware-assisted dump (POWER) is not supported");
                    break;
                case "KEXEC_ARGS":
                    import.Drop(origin, "capture-agent loads with kexec_file_load(2) itself (what kexec -s does); kexec options do not apply");
                    break;
                case "KDUMP_KERNELVER" or "KDUMP_BOOTDIR" or "KDUMP_IMG" or "KDUMP_IMG_EXT":
                    import.Drop(origin, KernelChoiceWhy);
                    break;
                case "VMCORE_CREATION_NOTIFICATION":
                    import.Drop(origin, "`capture-agent verify` tells whether a saved dump is complete");
                    break;
                case "KDUMP_STDLOGLVL" or "KDUMP_SYSLOGLVL" or "KDUMP_KMSGLOGLVL":
                    import.Drop(origin, "the capture kernel's console always gets capture-agent's summary, and nothing goes to syslog or kmsg; "
                                        + "capture-agent.conf has no log level (`capture-agent dump` takes -q, -v and --message-level for runs by hand)");
                    break;
                case "MKDUMPRD_ARGS":
                    import.Drop(origin, "capture-agent builds its initramfs without mkdumprd/dracut");
                    break;
                default:
                    import.Drop(origin, $"'{a.Name}' is not a /etc/sysconfig/kdump setting capture-agent knows");
                    break;
            }
        }
    }
}

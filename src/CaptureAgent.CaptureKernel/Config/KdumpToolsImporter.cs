namespace CaptureAgent.Config;

/// <summary>
/// Debian/Ubuntu kdump-tools: the shell settings of /etc/default/kdump-tools into capture-agent.conf.
/// kdump-tools boots the real root filesystem in the capture kernel and saves there (or mounts NFS
/// over KDUMP_COREDIR, or streams over ssh); capture-agent names that filesystem as its target.
/// </summary>
public static class KdumpToolsImporter
{
    public const string DefaultsPath = "/etc/default/kdump-tools";
    public const string DefaultSshKey = "/root/.ssh/kdump_id_rsa";
    private const string DefaultCoreDir = "/var/crash";

    public static void Import(ConfigImport import, ImportFile file, string rootDir)
    {
        var settings = ReadSettings(import, file);
        var fstab = Fstab.Load(rootDir);
        ImportUseKdump(import, settings.Take("USE_KDUMP"));
        var coreDir = ReadCoreDir(import, settings.Take("KDUMP_COREDIR"), file);
        bool remote = ImportTarget(import, settings, file, fstab, rootDir, coreDir);
        ImportHostTag(import, settings.Take("HOSTTAG"));
        if (settings.Take("KDUMP_NUM_DUMPS") is { } num)
        {
            if (import.Set("keep_dumps", num.Value, num.Origin) && remote)
                import.Remark("keep_dumps", "kdump-tools kept this many only for local dumps; capture-agent applies it to this target");
        }
        var makedump = settings.Take("MAKEDUMP_ARGS");
        var c = CollectorSettings.Parse("makedumpfile " + (makedump?.Value ?? "-c -d 31"));
        KdumpConfImporter.ApplyCollector(import, c, makedump?.Origin ?? new ImportOrigin(file.DisplayName, "(kdump-tools' default MAKEDUMP_ARGS=\"-c -d 31\")"), "MAKEDUMP_ARGS");
        if (settings.Take("KDUMP_FAIL_CMD") is { } fail) ImportFailCmd(import, fail.Value, fail.Origin);
        if (settings.Take("KDUMP_DUMP_DMESG") is { } dmesg && dmesg.Value != "1")
            import.Drop(dmesg.Origin, "capture-agent always saves the crashed kernel's log (dmesg.txt) first, before the dump");
        if (settings.Take("KDUMP_CMDLINE_APPEND") is { } append) ImportCmdlineAppend(import, append);
        // Everything else has no equivalent; say why for the known ones.
        foreach (var (name, origin) in settings.Rest())
            import.Drop(origin, WhySettingIsDropped(name));
    }

    /// <summary>The file's settings by name, each taken out once imported so that what is left is known to be dropped.</summary>
    private sealed class Settings
    {
        private readonly Dictionary<string, (string Value, ImportOrigin Origin)> _byName = new(StringComparer.Ordinal);

        public void Add(string name, string value, ImportOrigin origin) => _byName[name] = (value, origin);

        public (string Value, ImportOrigin Origin)? Take(string name) => _byName.Remove(name, out var v) ? v : null;

        /// <summary>The settings not taken, in file order.</summary>
        public IEnumerable<(string Name, ImportOrigin Origin)> Rest() =>
            _byName.OrderBy(v => v.Value.Origin.Where, StringComparer.Ordinal).Select(v => (v.Key, v.Value.Origin));
    }

    /// <summary>KDUMP_COREDIR as kdump-tools used it; <paramref name="Given"/> when the file set it.</summary>
    private sealed record CoreDir(string Path, ImportOrigin Origin, bool Given);

    private static Settings ReadSettings(ConfigImport import, ImportFile file)
    {
        import.Sources.Add(file.DisplayName);
        var (assignments, other) = ShellAssignments.Parse(file.Text);
        foreach (var stmt in other)
            import.Drop(new ImportOrigin($"{file.DisplayName}:{stmt.Line}", stmt.Text), "shell code, not a setting: not run");
        var settings = new Settings();
        foreach (var a in ShellAssignments.Last(assignments).Values.OrderBy(a => a.Line))
        {
            string text = a.Name.StartsWith("FTP_PASSWORD", StringComparison.Ordinal) ? a.Name + "=(not copied)" : a.Text;
            var origin = new ImportOrigin($"{file.DisplayName}:{a.Line}", text);
            if (a.Problem is not null) { import.Drop(origin, a.Problem); continue; }
            // kdump-config gives its default to an empty variable too (${X:=default}).
            if (a.Value.Trim().Length == 0) continue;
            settings.Add(a.Name, a.Value.Trim(), origin);
        }
        return settings;
    }

    private static void ImportUseKdump(ConfigImport import, (string Value, ImportOrigin Origin)? useKdump)
    {
        if (useKdump is not { } u) return;
        if (u.Value == "0")
        {
            import.Drop(u.Origin, "capture-agent has no on/off setting: capture-agent.service arms at boot unless disabled (systemctl disable capture-agent)");
            import.Warn("USE_KDUMP=0: kdump-tools was switched off on this system; capture-agent.service arms at boot unless you disable it");
        }
        else import.Note($"{u.Origin.Where}: {u.Origin.Text}: capture-agent.service arms the capture kernel at boot (capture-agent load --auto)");
    }

    private static CoreDir ReadCoreDir(ConfigImport import, (string Value, ImportOrigin Origin)? coreDir, ImportFile file)
    {
        string dir = coreDir?.Value ?? DefaultCoreDir;
        var dirOrigin = coreDir?.Origin ?? new ImportOrigin(file.DisplayName, "(kdump-tools' default KDUMP_COREDIR=/var/crash)");
        if (!dir.StartsWith('/'))
        {
            import.Drop(dirOrigin, "KDUMP_COREDIR must be an absolute path; /var/crash is used");
            dir = DefaultCoreDir;
        }
        return new CoreDir(dir, dirOrigin, coreDir is not null);
    }

    /// <summary>
    /// kdump-tools' choice of target: SSH before NFS, else the booted system's filesystem holding
    /// KDUMP_COREDIR (FTP is not supported). True when the target is remote.
    /// </summary>
    private static bool ImportTarget(ConfigImport import, Settings settings, ImportFile file, List<FstabEntry> fstab, string rootDir, CoreDir coreDir)
    {
        var ssh = settings.Take("SSH");
        var nfs = settings.Take("NFS");
        var ftp = settings.Take("FTP");
        var sshKey = settings.Take("SSH_KEY");
        var timeo = settings.Take("NFS_TIMEO");
        var retrans = settings.Take("NFS_RETRANS");
        bool remote = false;
        if (ssh is { } s)
        {
            remote = ImportSshTarget(import, s, sshKey, file, coreDir);
            if (nfs is { } n) import.Drop(n.Origin, "kdump-tools saves over SSH when SSH and NFS are both set");
        }
        else if (sshKey is { } k) import.Drop(k.Origin, "no SSH target uses it");
        if (ssh is null && nfs is { } nf) remote = ImportNfsTarget(import, nf, timeo, retrans, coreDir);
        else
        {
            if (timeo is { } to) import.Drop(to.Origin, "no NFS target uses it");
            if (retrans is { } rt) import.Drop(rt.Origin, "no NFS target uses it");
        }
        if (remote)
        {
            import.Warn("kdump-tools used the booted system's network; capture-agent uses DHCP unless `network = ADDR/PREFIX via GATEWAY` is set");
            if (coreDir.Given && ssh is null) import.Note($"{coreDir.Origin.Where}: KDUMP_COREDIR was only the NFS mount point");
        }
        else
        {
            if (ftp is { } f)
                import.DropTarget(f.Origin, "FTP targets are not supported (nfs: and ssh: are); the filesystem holding KDUMP_COREDIR is the target instead");
            LocalTarget(import, fstab, rootDir, coreDir.Path, coreDir.Origin);
        }
        if (remote && ftp is { } unused) import.Drop(unused.Origin, "kdump-tools used SSH or NFS, not FTP, with both set");
        return remote;
    }

    /// <summary>SSH=user@host, with KDUMP_COREDIR as the path on the server; true when it became the target.</summary>
    private static bool ImportSshTarget(ConfigImport import, (string Value, ImportOrigin Origin) ssh, (string Value, ImportOrigin Origin)? sshKey,
        ImportFile file, CoreDir coreDir)
    {
        string dest = KdumpConfImporter.BracketIpv6(ssh.Value);
        string? bad = null;
        try { Targets.Ssh.SshDestination.Parse(dest); }
        catch (FormatException e) { bad = e.Message; }
        if (bad is not null)
        {
            import.DropTarget(ssh.Origin, bad + "; the filesystem holding KDUMP_COREDIR is the target instead");
            return false;
        }
        if (!import.Set("target", "ssh:" + dest, ssh.Origin)) return false;
        import.Set("path", coreDir.Path, coreDir.Origin, "on the ssh server, as kdump-tools did; each dump goes to {host}-{date} below it");
        var keyOrigin = sshKey?.Origin ?? new ImportOrigin(file.DisplayName, "(kdump-tools' default SSH_KEY)");
        if (import.Set("ssh_key", sshKey?.Value ?? DefaultSshKey, keyOrigin) && sshKey is null) import.Remark("ssh_key", "kdump-tools' default key");
        if (import.Set("ssh_known_hosts", KdumpConfImporter.RootKnownHosts, keyOrigin))
            import.Remark("ssh_known_hosts", "kdump-tools' ssh checked the server's host key against root's known_hosts");
        return true;
    }

    /// <summary>NFS=server:/export, mounted as kdump-tools mounted it; true when it became the target.</summary>
    private static bool ImportNfsTarget(ConfigImport import, (string Value, ImportOrigin Origin) nfs, (string Value, ImportOrigin Origin)? timeo,
        (string Value, ImportOrigin Origin)? retrans, CoreDir coreDir)
    {
        if (!import.Set("target", "nfs:" + nfs.Value, nfs.Origin)) return false;
        // kdump-tools mounted the export on KDUMP_COREDIR: dumps went to the top of the export.
        import.Set("path", "/", nfs.Origin, $"the top of the export: kdump-tools mounted it on {coreDir.Path} and saved there; each dump goes to {{host}}-{{date}}");
        string t = timeo?.Value ?? "600", r = retrans?.Value ?? "3";
        if (import.Set("nfs_options", $"soft,timeo={t},retrans={r}", timeo?.Origin ?? retrans?.Origin ?? nfs.Origin))
            import.Remark("nfs_options", "kdump-tools mounted with nolock,tcp,soft and these (600 and 3 by default); capture-agent adds nolock for NFSv3 itself");
        KdumpConfImporter.NfsNameRemark(import, nfs.Value);
        return true;
    }

    private static void ImportHostTag(ConfigImport import, (string Value, ImportOrigin Origin)? hostTag)
    {
        if (hostTag is not { } h) return;
        if (h.Value == "hostname") import.Note($"{h.Origin.Where}: HOSTTAG=hostname is what capture-agent's {{host}} gives");
        else import.Drop(h.Origin, "capture-agent names dump directories by host name ({host}); the IP address is not available as a placeholder");
    }

    private static void ImportCmdlineAppend(ConfigImport import, (string Value, ImportOrigin Origin) append)
    {
        var sorted = CmdlineAppend.Sort(append.Value);
        if (sorted.Kept.Count > 0) import.Set("kernel_cmdline_append", string.Join(' ', sorted.Kept), append.Origin);
        if (sorted.Blacklist.Count > 0) import.Set("blacklist", string.Join(',', sorted.Blacklist.Distinct()), append.Origin);
        foreach (var (token, why) in sorted.Dropped) import.Drop(append.Origin with { Text = $"KDUMP_CMDLINE_APPEND [{token}]" }, why);
        if (sorted.AlreadyAdded.Count > 0)
            import.Note($"{append.Origin.Where}: {string.Join(' ', sorted.AlreadyAdded)} left out: `capture-agent load` adds them itself");
    }

    /// <summary>What capture-agent does instead of a kdump-tools setting it does not import.</summary>
    private static string WhySettingIsDropped(string name) => name switch
    {
        "KDUMP_CMDLINE" => "capture-agent always starts from the running command line; put additions in kernel_cmdline_append",
        "KDUMP_KEXEC_ARGS" => "capture-agent loads with kexec_file_load(2) itself; kexec options do not apply",
        "KDUMP_KERNEL" => KdumpConfImporter.KernelChoiceWhy,
        "KDUMP_INITRD" => "capture-agent arms its own capture initramfs, kept for each kernel in /var/lib/capture-agent by the kernel hooks "
                          + "(`capture-agent load --initrd IMAGE` arms another by hand)",
        "KDUMP_SYSCTL" => "capture-agent does not set sysctls: put kernel.panic_on_oops=1 and the like in /etc/sysctl.d",
        "KDUMP_COMPRESSION" => "capture-agent compresses each page (compression = zstd|lzo|snappy|zlib|auto); whole-file bzip2/gzip/lz4/xz is not supported",
        "NFS_MOUNT_RETRY" => "capture-agent mounts once per NFS version (4.2 down to 3); retransmissions are the kernel's, by nfs_options' timeo and retrans; a failed mount goes on to the next target",
        "SSH_KDUMP_RETRY" => $"capture-agent tries an ssh connection that does not come up {Targets.Ssh.SshDestination.DefaultRetries} times, {(int)Targets.Ssh.SshDestination.DefaultRetryPause.TotalSeconds} s apart (kdump-tools' default), each for up to network_timeout; the count is not configurable",
        "FTP" or "FTP_USER" or "FTP_PASSWORD" or "FTP_PORT" or "FTP_PATH" => "FTP targets are not supported (use nfs: or ssh:)",
        "KDUMP_FADUMP" or "FADUMP_COMMANDLINE_APPEND" => "firmware-assisted dump (POWER) is not supported",
        _ => $"'{name}' is not a kdump-tools setting capture-agent knows",
    };

    /// <summary>The filesystem holding KDUMP_COREDIR on the booted system, as a local target.</summary>
    private static void LocalTarget(ConfigImport import, List<FstabEntry> fstab, string rootDir, string dir, ImportOrigin dirOrigin)
    {
        var holder = Fstab.Holding(fstab, dir);
        if (holder is null)
        {
            import.Warn($"no target: no filesystem of {Path.Combine(rootDir, "etc/fstab")} holds {dir}; add a `target =` line");
            import.Set("path", dir, dirOrigin);
            return;
        }
        var (spec, fsType, prefix, why) = Fstab.AsTarget(holder);
        var origin = KdumpConfImporter.FstabOrigin(holder);
        if (spec is null)
        {
            import.Warn($"no target: {dir} is on {holder.MountPoint}, and {why}");
            import.Set("path", dir, dirOrigin);
            return;
        }
        import.Set("target", spec, origin, $"kdump-tools saved on the booted system; {dir} is on {holder.MountPoint} in /etc/fstab");
        if (spec.StartsWith("nfs:", StringComparison.Ordinal))
        {
            if (Fstab.NfsKernelOptions(holder) is { } o) import.Set("nfs_options", o, origin);
            KdumpConfImporter.NfsNameRemark(import, holder.Spec);
        }
        else if (fsType is not null && import.Set("fstype", fsType is "ext2" or "ext3" ? "ext4" : fsType, origin) && fsType is "ext2" or "ext3")
            import.Remark("fstype", $"{fsType} is mounted with the ext4 driver");
        string below = Fstab.Below(holder, dir);
        string path = prefix + (below == "/" && prefix.Length > 0 ? "" : below);
        if (import.Set("path", path, dirOrigin, "each dump goes to {host}-{date} below it (kdump-tools named it YYYYMMDDHHMM)") && prefix.Length > 0)
            import.Remark("path", $"inside btrfs subvolume {prefix.TrimStart('/')}: capture-agent mounts the filesystem's top level");
    }

    /// <summary>
    /// KDUMP_FAIL_CMD is shell run when saving fails: a shell in it means failure_action = shell,
    /// otherwise its last reboot/halt/poweroff. Other commands are not run.
    /// </summary>
    private static void ImportFailCmd(ConfigImport import, string value, ImportOrigin origin)
    {
        string? action = null;
        bool shell = false;
        var others = new List<string>();
        foreach (var part in value.Split([";", "&&", "||", "\n"], StringSplitOptions.RemoveEmptyEntries))
        {
            var words = ConfigImport.Words(part);
            if (words.Count == 0) continue;
            string cmd = Path.GetFileName(words[0]);
            if (cmd == "busybox" && words.Count > 1) cmd = words[1];
            switch (cmd)
            {
                case "sh" or "bash" or "dash" or "ash" or "zsh": shell = true; break;
                case "reboot" or "halt" or "poweroff": action = cmd; break;
                case "shutdown": action = words.Contains("-r") ? "reboot" : words.Contains("-H") ? "halt" : "poweroff"; break;
                case "echo" or "true" or ":" or "sync": break;
                default: others.Add(part.Trim()); break;
            }
        }
        if (shell)
        {
            if (import.Set("failure_action", "shell", origin) && action is not null)
                import.Remark("failure_action", $"kdump-tools ran {action} after the shell; capture-agent's shell action ends as the shell does");
        }
        else if (action is not null) import.Set("failure_action", action, origin);
        if (others.Count > 0)
            import.Drop(origin with { Text = $"KDUMP_FAIL_CMD [{string.Join("; ", others)}]" },
                "failure_action is one of reboot, halt, poweroff, shell; other commands are not run (a post_hook sees CAPTURE_AGENT_STATUS=failed)");
        else if (!shell && action is null)
            import.Drop(origin, "no reboot, halt, poweroff or shell in it; failure_action stays reboot");
    }
}

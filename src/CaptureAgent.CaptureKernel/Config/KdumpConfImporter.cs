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
        var run = new Run(import, Fstab.Load(rootDir), rootDir, kdumpConf?.DisplayName);
        if (kdumpConf is not null) run.ReadKdumpConf(kdumpConf);
        run.ResolveDumpPath();
        run.ImportTargets();
        run.ImportActions();
        run.ImportFsType();
        run.ImportPath();
        ImportCollector(import, run.Collector, kdumpConf?.DisplayName ?? ConfPath);
        run.ImportSsh();
        run.ImportHooks();
        if (sysconfig is not null) run.ReadSysconfig(sysconfig);
        run.ImportGatheredLists();
    }

    /// <summary>
    /// Values that several lines add to (module lists, command-line words), with the first line
    /// that added to them: one setting is written for all of them, attributed to that line.
    /// </summary>
    private sealed class Gathered
    {
        public List<string> Values { get; } = new();
        public ImportOrigin? Origin { get; private set; }

        public void Add(IEnumerable<string> values, ImportOrigin origin)
        {
            Values.AddRange(values);
            Origin ??= origin;
        }
    }

    /// <summary>
    /// One import: kdump.conf's directives are gathered first, since a path, an sshkey or a
    /// failure_action bears on targets named on any line, then turned into settings step by step
    /// (the steps' order is the order of the notes and warnings shown).
    /// </summary>
    private sealed class Run(ConfigImport import, List<FstabEntry> fstab, string rootDir, string? confName)
    {
        private static readonly char[] ListSeparators = [' ', '\t', ','];

        private readonly List<Target> _targets = new();
        private (string Value, ImportOrigin Origin)? _path, _sshKey, _failure, _final;
        private readonly Gathered _extraModules = new(), _blacklist = new(), _cmdline = new();
        private readonly List<(string Hook, ImportOrigin Origin)> _preHooks = new(), _postHooks = new();

        // Worked out from the gathered directives.
        private string _dumpPath = DefaultPath;
        private ImportOrigin _pathOrigin = null!;
        private string _pathPrefix = "";
        private readonly List<(string Type, ImportOrigin Origin)> _fsTypes = new();
        private bool _anySsh, _anyNfs;

        public (string Value, ImportOrigin Origin)? Collector { get; private set; }

        // ---- /etc/kdump.conf, gathered ----

        public void ReadKdumpConf(ImportFile conf)
        {
            import.Sources.Add(conf.DisplayName);
            var seen = new Dictionary<string, ImportOrigin>();
            int lineNo = 0;
            foreach (var raw in conf.Text.Split('\n'))
            {
                lineNo++;
                if (SplitDirective(raw) is not var (opt, val)) continue;
                var origin = new ImportOrigin($"{conf.DisplayName}:{lineNo}", (opt + " " + val).Trim());
                if (val.Length == 0 && opt is not ("force_rebuild" or "force_no_rebuild"))
                {
                    import.Drop(origin, $"'{opt}' has no value (kdump refuses it too)");
                    continue;
                }
                if (seen.TryGetValue(opt, out var earlier) && opt is not ("extra_modules" or "blacklist" or "options" or "extra_bins" or "dracut_args"))
                    import.Note($"{origin.Where}: {opt} repeats {earlier.Where}; the last one is used (kdump refuses duplicates)");
                seen[opt] = origin;
                GatherDirective(opt, val, origin);
            }
        }

        /// <summary>A kdump.conf line as directive and value; null for a blank or comment line.</summary>
        private static (string Option, string Value)? SplitDirective(string raw)
        {
            string line = raw.Trim();
            if (line.Length == 0 || line[0] == '#') return null;
            int sp = line.IndexOfAny([' ', '\t']);
            string opt = sp < 0 ? line : line[..sp];
            string val = sp < 0 ? "" : line[(sp + 1)..];
            // kdump reads a trailing comment off the value, then one pair of surrounding quotes.
            int hash = val.IndexOf('#');
            if (hash >= 0) val = val[..hash];
            val = val.Trim();
            if (val.Length >= 2 && val[0] == '"' && val[^1] == '"') val = val[1..^1];
            return (opt, val);
        }

        private void GatherDirective(string opt, string val, ImportOrigin origin)
        {
            switch (opt)
            {
                case var fs when FsTypes.Contains(fs): _targets.Add(new Target(fs, val, origin)); break;
                case "raw" or "nfs" or "nfs4" or "ssh": _targets.Add(new Target(opt, val, origin)); break;
                case "net":
                    // The old name for nfs and ssh.
                    _targets.Add(new Target(val.Contains('@') ? "ssh" : "nfs", val, origin));
                    import.Note($"{origin.Where}: 'net' is the old name of nfs/ssh");
                    break;
                case "path": _path = (val, origin); break;
                case "sshkey": _sshKey = (val, origin); break;
                case "core_collector": Collector = (val, origin); break;
                case "failure_action": _failure = (val, origin); break;
                case "default":
                    _failure = (val, origin);
                    import.Note($"{origin.Where}: 'default' is the old name of failure_action");
                    break;
                case "final_action": _final = (val, origin); break;
                case "extra_modules": _extraModules.Add(val.Split(ListSeparators, StringSplitOptions.RemoveEmptyEntries), origin); break;
                case "blacklist": _blacklist.Add(val.Split(ListSeparators, StringSplitOptions.RemoveEmptyEntries), origin); break;
                case "kdump_pre": _preHooks.Add((val, origin)); break;
                case "kdump_post": _postHooks.Add((val, origin)); break;
                case "options": GatherModuleOptions(val, origin); break;
                case "disk_timeout":
                    if (import.Set("device_timeout", val, origin))
                        import.Remark("device_timeout", "from kdump's old disk_timeout: how long to wait for the target device");
                    break;
                case "dracut_args": GatherDracutArgs(val, origin); break;
                default: import.Drop(origin, WhyDirectiveIsDropped(opt)); break;
            }
        }

        /// <summary>options MODULE a=1 b=2 -> MODULE.a=1 MODULE.b=2 on the capture kernel's command line.</summary>
        private void GatherModuleOptions(string val, ImportOrigin origin)
        {
            var words = val.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
            if (words.Length < 2) { import.Drop(origin, "expected 'options MODULE PARAM=VALUE...'"); return; }
            _cmdline.Add(words.Skip(1).Select(p => words[0] + "." + p), origin);
        }

        /// <summary>What capture-agent does instead of a kdump.conf directive it does not import.</summary>
        private static string WhyDirectiveIsDropped(string opt) => opt switch
        {
            "kdump_emergency" => "capture-agent has no emergency hook: failure_action decides what happens after a failure",
            "extra_bins" => "capture-agent.conf has no extra programs: the programs named by pre_hook and post_hook are carried with their libraries; "
                            + "others only in an image built by hand (`capture-agent initramfs build --executable PATH`, armed with `capture-agent load --initrd IMAGE`)",
            "fence_kdump_args" or "fence_kdump_nodes" =>
                "fence_kdump notification is not built in: name a program that runs fence_kdump_send as pre_hook "
                + "(a script needs its interpreter and fence_kdump_send in the image: `capture-agent initramfs build --executable PATH`)",
            "force_rebuild" or "force_no_rebuild" =>
                "capture-agent rebuilds a kernel's capture initramfs when what it was built from changed (the config, the target's "
                + "drivers, the kernel's modules, the agent: stamp.json in /var/lib/capture-agent/KVER); "
                + "`capture-agent kernel-hook add KVER --force` rebuilds it at once",
            "auto_reset_crashkernel" =>
                "capture-agent changes crashkernel= only when asked: `capture-agent crashkernel --size auto --apply` "
                + "writes the size this host needs into the boot loader's configuration (shown as a diff first); nothing resets it after a kernel update",
            "link_delay" => "capture-agent waits for the link itself, up to network_timeout",
            "debug_mem_level" => "capture-agent reports the capture kernel's memory by itself",
            _ => $"'{opt}' is not a kdump.conf directive capture-agent knows",
        };

        /// <summary>dracut_args: --mount names a target, the driver lists add to extra_modules and blacklist; the rest is dracut's own.</summary>
        private void GatherDracutArgs(string val, ImportOrigin origin)
        {
            var words = ConfigImport.Words(val);
            for (int i = 0; i < words.Count; i++)
            {
                var (name, value, part) = NextDracutOption(words, ref i, origin);
                switch (name)
                {
                    case "--mount": GatherDracutMount(value, part); break;
                    case "--omit-drivers": _blacklist.Add(value.Split([' ', ','], StringSplitOptions.RemoveEmptyEntries), origin); break;
                    case "--add-drivers" or "--force-drivers" or "-d" or "--drivers" or "--filesystems":
                        _extraModules.Add(value.Split([' ', ','], StringSplitOptions.RemoveEmptyEntries), origin);
                        break;
                    default: import.Drop(part, "a dracut option; capture-agent builds its initramfs without dracut"); break;
                }
            }
        }

        /// <summary>
        /// The dracut option at words[i] with its value (--opt=value, or the next word for an option
        /// that takes one, which moves i past it), and its origin naming just that option.
        /// </summary>
        private static (string Name, string Value, ImportOrigin Part) NextDracutOption(List<string> words, ref int i, ImportOrigin origin)
        {
            string w = words[i];
            string name = w, value;
            int eq = w.IndexOf('=');
            if (w.StartsWith("--", StringComparison.Ordinal) && eq > 0) { name = w[..eq].TrimEnd('+'); value = w[(eq + 1)..]; }
            else value = i + 1 < words.Count && name is "--mount" or "--omit-drivers" or "--add-drivers" or "--force-drivers" or "--filesystems" or "-o" or "--omit" or "-a" or "--add" or "-d" or "--drivers" ? words[++i] : "";
            var part = origin with { Text = $"{origin.Text} [{w}{(value.Length > 0 && eq < 0 ? " " + value : "")}]" };
            return (name, value, part);
        }

        /// <summary>--mount "DEVICE MOUNTPOINT FSTYPE [OPTIONS]": kdump dumps to that filesystem.</summary>
        private void GatherDracutMount(string value, ImportOrigin part)
        {
            var f = value.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
            if (f.Length < 3) { import.Drop(part, "expected --mount \"DEVICE MOUNTPOINT FSTYPE [OPTIONS]\""); return; }
            if (f[2] is "nfs" or "nfs4")
            {
                string? opts = f.Length > 3 ? Fstab.NfsKernelOptions(new FstabEntry(f[0], f[1], f[2], f[3], 0)) : null;
                _targets.Add(new Target(f[2], f[0], part, opts));
            }
            else if (FsTypes.Contains(f[2])) _targets.Add(new Target(f[2], f[0], part));
            else import.DropTarget(part, $"capture-agent cannot write to {f[2]} (it writes ext2/3/4, xfs, btrfs, vfat, raw devices, NFS and SSH)");
        }

        // ---- path and targets ----

        public void ResolveDumpPath()
        {
            _dumpPath = _path?.Value ?? DefaultPath;
            _pathOrigin = _path?.Origin ?? new ImportOrigin(confName ?? SysconfigPath, "(kdump's default path /var/crash)");
            if (!_dumpPath.StartsWith('/'))
            {
                import.Drop(_pathOrigin, "path must be absolute; /var/crash is used");
                _dumpPath = DefaultPath;
            }
        }

        public void ImportTargets()
        {
            if (_targets.Count > 1)
                import.Note("kdump took one target; capture-agent tries these targets in order, the next when one fails");
            foreach (var t in _targets) ImportTarget(t);
            import.WarnIfNoTargetLeft();
            if (_targets.Count == 0) ImportPathHolderAsTarget();
        }

        private void ImportTarget(Target t)
        {
            switch (t.Kind)
            {
                case "minix" or "virtiofs":
                    import.DropTarget(t.Origin, $"capture-agent cannot write to {t.Kind} (it writes ext2/3/4, xfs, btrfs, vfat, raw devices, NFS and SSH)");
                    break;
                case "raw": import.Set("target", "raw:" + t.Value, t.Origin); break;
                case "nfs" or "nfs4": ImportNfsTarget(t); break;
                case "ssh": ImportSshTarget(t); break;
                default: ImportLocalTarget(t); break;
            }
        }

        private void ImportNfsTarget(Target t)
        {
            if (!import.Set("target", "nfs:" + t.Value, t.Origin)) return;
            _anyNfs = true;
            string? options = t.NfsOptions ?? fstab.Where(e => e.Type is "nfs" or "nfs4" && e.Spec == t.Value).Select(Fstab.NfsKernelOptions).LastOrDefault();
            if (t.Kind == "nfs4" && (options is null || NfsVersionMissing(options))) options = options is null ? "vers=4" : options + ",vers=4";
            if (options is not null && import.Get("nfs_options") is null && import.Set("nfs_options", options, t.Origin))
                import.Remark("nfs_options", "the options this export is mounted with in fstab (kdump mounted it the same way)");
            NfsNameRemark(import, t.Value);
        }

        private void ImportSshTarget(Target t)
        {
            string dest = BracketIpv6(t.Value);
            try
            {
                SshDestination.Parse(dest);
            }
            catch (FormatException e)
            {
                import.DropTarget(t.Origin, e.Message);
                return;
            }
            if (import.Set("target", "ssh:" + dest, t.Origin)) _anySsh = true;
        }

        /// <summary>A filesystem on a device; its fstype is decided once every target is known.</summary>
        private void ImportLocalTarget(Target t)
        {
            string device = t.Value.Trim('"');
            if (!import.Set("target", device, t.Origin)) return;
            _fsTypes.Add((t.Kind, t.Origin));
            // A btrfs target mounted with subvol= here: the agent mounts the top level, so the path goes inside the subvolume.
            var entry = fstab.LastOrDefault(e => e.Spec == device && e.Type == t.Kind);
            if (entry is not null && _fsTypes.Count == 1 && Fstab.AsTarget(entry) is { Prefix.Length: > 0 } m) _pathPrefix = m.Prefix;
        }

        /// <summary>No target: kdump saves to the filesystem that holds path, at path's place inside it.</summary>
        private void ImportPathHolderAsTarget()
        {
            var holder = Fstab.Holding(fstab, _dumpPath);
            if (holder is null)
            {
                import.Warn($"no target: kdump.conf names none and no filesystem of {Path.Combine(rootDir, "etc/fstab")} holds {_dumpPath}; add a `target =` line");
                return;
            }
            var (spec, fsType, prefix, why) = Fstab.AsTarget(holder);
            var origin = FstabOrigin(holder);
            if (spec is null)
            {
                import.Warn($"no target: {_dumpPath} is on {holder.MountPoint}, and {why}");
                return;
            }
            if (!import.Set("target", spec, origin,
                    $"kdump.conf names no target: kdump saved to the filesystem holding {_dumpPath}, {holder.MountPoint} in /etc/fstab"))
                return;
            if (spec.StartsWith("nfs:", StringComparison.Ordinal))
            {
                _anyNfs = true;
                if (Fstab.NfsKernelOptions(holder) is { } o) import.Set("nfs_options", o, origin);
                NfsNameRemark(import, holder.Spec);
            }
            else if (fsType is not null) _fsTypes.Add((fsType, origin));
            _pathPrefix = prefix;
            _dumpPath = Fstab.Below(holder, _dumpPath);
        }

        // ---- actions, fstype, path ----

        /// <summary>final_action, then failure_action, with dump_to_rootfs as one more local target: the root filesystem.</summary>
        public void ImportActions()
        {
            string? finalValue = null;
            if (_final is { } fa)
            {
                if (Actions.Contains(fa.Value)) { import.Set("final_action", fa.Value, fa.Origin); finalValue = fa.Value; }
                else import.Drop(fa.Origin, $"final_action must be reboot, halt or poweroff, got '{fa.Value}'");
            }
            if (_failure is { } fl)
            {
                if (Actions.Contains(fl.Value)) import.Set("failure_action", fl.Value, fl.Origin);
                else if (fl.Value == "dump_to_rootfs") DumpToRootfs(fl.Origin, finalValue);
                else import.Drop(fl.Origin, $"failure_action must be reboot, halt, poweroff, shell or dump_to_rootfs, got '{fl.Value}'");
            }
        }

        private void DumpToRootfs(ImportOrigin origin, string? finalValue)
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
                if (fsType is not null) _fsTypes.Add((fsType, origin));
            }
            if (!already && prefix != _pathPrefix)
                import.Warn($"dump_to_rootfs: the root filesystem is btrfs subvolume {prefix.TrimStart('/')}, but one path serves every target: there the dump goes below the top level");
            string action = finalValue ?? "reboot";
            if (import.Set("failure_action", action, origin))
                import.Remark("failure_action", "after dump_to_rootfs kdump did the final action");
        }

        /// <summary>One fstype for every local target: only when they agree (the superblock says it otherwise).</summary>
        public void ImportFsType()
        {
            var distinct = _fsTypes.Select(f => f.Type is "ext2" or "ext3" ? "ext4" : f.Type).Distinct().ToList();
            if (distinct.Count == 1)
            {
                var old = _fsTypes.Select(f => f.Type).Where(f => f is "ext2" or "ext3").Distinct().ToList();
                if (import.Set("fstype", distinct[0], _fsTypes[0].Origin) && old.Count > 0)
                    import.Remark("fstype", $"{string.Join("/", old)} is mounted with the ext4 driver");
            }
            else if (distinct.Count > 1)
                import.Warn($"local targets of different types ({string.Join(", ", distinct)}): fstype is left to each superblock");
        }

        public void ImportPath()
        {
            if (!import.Set("path", _pathPrefix + (_dumpPath == "/" && _pathPrefix.Length > 0 ? "" : _dumpPath), _pathOrigin)) return;
            import.Remark("path", "each dump goes to {host}-{date} below it (kdump named it <ip>-<date>)");
            if (_pathPrefix.Length > 0)
                import.Remark("path", $"inside btrfs subvolume {_pathPrefix.TrimStart('/')}: capture-agent mounts the filesystem's top level");
            if (_targets.Count > 0 && _targets.All(t => t.Kind == "raw"))
                import.Remark("path", "a raw target ignores path");
        }

        // ---- ssh, network, hooks ----

        /// <summary>ssh: kdump's key default and root's known_hosts, which kdump checked host keys against.</summary>
        public void ImportSsh()
        {
            if (_anySsh)
            {
                var keyOrigin = _sshKey?.Origin ?? new ImportOrigin(confName!, "(kdump's default sshkey)");
                if (import.Set("ssh_key", _sshKey?.Value ?? DefaultSshKey, keyOrigin) && _sshKey is null)
                    import.Remark("ssh_key", "kdump's default key");
                if (import.Set("ssh_known_hosts", RootKnownHosts, keyOrigin))
                    import.Remark("ssh_known_hosts", "kdump checked the server's host key against root's known_hosts");
            }
            else if (_sshKey is { } k) import.Drop(k.Origin, "no ssh target uses it");
            if (_anySsh || _anyNfs)
                import.Warn("kdump brought the network up from NetworkManager's profile; capture-agent uses DHCP unless `network = ADDR/PREFIX via GATEWAY` is set");
        }

        /// <summary>Hooks in kdump's order: kdump_pre then /etc/kdump/pre.d; /etc/kdump/post.d then kdump_post.</summary>
        public void ImportHooks()
        {
            foreach (var (hook, origin) in _preHooks)
                if (import.Set("pre_hook", hook, origin))
                    import.Remark("pre_hook", "a failing pre hook does not stop the dump in capture-agent (kdump went to the final action)");
            AddHookDir("pre.d", "pre_hook");
            AddHookDir("post.d", "post_hook");
            foreach (var (hook, origin) in _postHooks)
                if (import.Set("post_hook", hook, origin))
                    import.Remark("post_hook", "kdump passed the dump's exit status as $1; capture-agent sets CAPTURE_AGENT_STATUS (complete, incomplete, failed)");
            string emergency = Path.Combine(rootDir, "etc/kdump/emergency.d");
            if (Directory.Exists(emergency))
                foreach (var f in Directory.GetFiles(emergency).Order(StringComparer.Ordinal))
                    import.Drop(new ImportOrigin("/etc/kdump/emergency.d", Path.GetFileName(f)), "capture-agent has no emergency hook");
        }

        private void AddHookDir(string dir, string key)
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

        // ---- /etc/sysconfig/kdump ----

        public void ReadSysconfig(ImportFile sysconfig)
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
                    case "KDUMP_COMMANDLINE_APPEND": GatherCommandLineAppend(a.Name, a.Value, origin); break;
                    case "KDUMP_COMMANDLINE_REMOVE": ImportCommandLineRemove(a.Value, origin); break;
                    default: import.Drop(origin, WhySysconfigSettingIsDropped(a.Name)); break;
                }
            }
        }

        private void GatherCommandLineAppend(string name, string value, ImportOrigin origin)
        {
            var sorted = CmdlineAppend.Sort(value);
            if (sorted.Kept.Count > 0) _cmdline.Add(sorted.Kept, origin);
            if (sorted.Blacklist.Count > 0) _blacklist.Add(sorted.Blacklist, origin);
            foreach (var (token, why) in sorted.Dropped) import.Drop(origin with { Text = $"{name} [{token}]" }, why);
            if (sorted.AlreadyAdded.Count > 0)
                import.Note($"{origin.Where}: {string.Join(' ', sorted.AlreadyAdded)} left out: `capture-agent load` adds them itself");
        }

        private void ImportCommandLineRemove(string value, ImportOrigin origin)
        {
            var names = value.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries).Select(t => t.Split('=')[0]).ToList();
            var missing = names.Where(n => !CaptureCommandLine.Dropped.Contains(n)).ToList();
            if (missing.Count > 0)
                import.Drop(origin, $"capture-agent has no remove list (`capture-agent load` drops crashkernel=, hugepages= and the like itself); these stay on the capture kernel's command line: {string.Join(' ', missing)}");
            else import.Note($"{origin.Where}: KDUMP_COMMANDLINE_REMOVE needs nothing: `capture-agent load` drops all of these itself");
        }

        /// <summary>What capture-agent does instead of a /etc/sysconfig/kdump setting it does not import.</summary>
        private static string WhySysconfigSettingIsDropped(string name) => name switch
        {
            "KDUMP_COMMANDLINE" => "capture-agent always starts from the running command line; put additions in kernel_cmdline_append",
            "FADUMP_COMMANDLINE_APPEND" => "firmware-assisted dump (POWER) is not supported",
            "KEXEC_ARGS" => "capture-agent loads with kexec_file_load(2) itself (what kexec -s does); kexec options do not apply",
            "KDUMP_KERNELVER" or "KDUMP_BOOTDIR" or "KDUMP_IMG" or "KDUMP_IMG_EXT" => KernelChoiceWhy,
            "VMCORE_CREATION_NOTIFICATION" => "`capture-agent verify` tells whether a saved dump is complete",
            "KDUMP_STDLOGLVL" or "KDUMP_SYSLOGLVL" or "KDUMP_KMSGLOGLVL" =>
                "the capture kernel's console always gets capture-agent's summary, and nothing goes to syslog or kmsg; "
                + "capture-agent.conf has no log level (`capture-agent dump` takes -q, -v and --message-level for runs by hand)",
            "MKDUMPRD_ARGS" => "capture-agent builds its initramfs without mkdumprd/dracut",
            _ => $"'{name}' is not a /etc/sysconfig/kdump setting capture-agent knows",
        };

        /// <summary>The lists several lines added to, each as one setting (kdump.conf's first, then sysconfig's).</summary>
        public void ImportGatheredLists()
        {
            if (_extraModules.Values.Count > 0) import.Set("extra_modules", string.Join(',', _extraModules.Values.Distinct()), _extraModules.Origin!);
            if (_blacklist.Values.Count > 0) import.Set("blacklist", string.Join(',', _blacklist.Values.Distinct()), _blacklist.Origin!);
            if (_cmdline.Values.Count > 0) import.Set("kernel_cmdline_append", string.Join(' ', _cmdline.Values), _cmdline.Origin!);
        }
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
}

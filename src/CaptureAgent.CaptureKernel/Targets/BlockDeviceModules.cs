namespace CaptureAgent.Targets;

/// <summary>One step of a block device's way to the hardware: a sysfs device and the driver bound to it.</summary>
/// <param name="Device">The device's path below /sys/devices ("pci0000:00/0000:00:02.0/virtio1").</param>
/// <param name="Module">The module the driver comes from, or null when it is built into the kernel.</param>
public sealed record DriverLevel(string Device, string Driver, string? Module, bool BuiltIn);

/// <summary>What the capture initramfs must carry for a device: modules to load, and how they were found.</summary>
/// <param name="Modules">Loadable module names, lowest level first, built-in ones left out. Their own
/// dependencies (virtio_ring, scsi_mod...) are for modules.dep to add.</param>
/// <param name="Levels">Every driver met on the way, built in or not, for the log.</param>
/// <param name="Notes">Things the caller should tell the user (an encrypted layer, a guessed module).</param>
public sealed record ModuleChain(IReadOnlyList<string> Modules, IReadOnlyList<DriverLevel> Levels, IReadOnlyList<string> Notes);

/// <summary>
/// The kernel modules a block device needs, read from sysfs on the running (first) kernel while the
/// capture initramfs is built: from the device (a partition counts as its disk) up through each
/// parent in /sys/devices, the module behind each bound driver (vda: virtio_blk, then virtio_pci);
/// through the members of dm and md devices; then the filesystem's module.
/// </summary>
public static class BlockDeviceModules
{
    private const int MaxDepth = 8;   // dm on md on partitions... deeper stacks are not real

    /// <param name="device">A kernel name (vda1) or a /dev path (/dev/vda1, /dev/mapper/root: links are followed within /dev).</param>
    /// <param name="filesystemType">blkid's TYPE of the volume (ext4...), or null to add no filesystem module.</param>
    /// <param name="builtIn">Module names built into the capture kernel (<see cref="ReadModulesBuiltin"/>); null: judge by
    /// the running kernel (/sys/module, and /proc/filesystems for a filesystem no module provides).</param>
    /// <param name="procRoot">Where /proc is; by default /proc when <paramref name="sysRoot"/> is /sys, else not consulted.</param>
    public static ModuleChain Resolve(string device, string? filesystemType, IReadOnlySet<string>? builtIn = null,
        string sysRoot = "/sys", string devRoot = "/dev", string? procRoot = null)
    {
        string name = KernelName(device, devRoot);
        var modules = new List<string>();
        var levels = new List<DriverLevel>();
        var notes = new List<string>();
        var sysReal = LinkSafePath.Resolve(sysRoot, out _) ?? throw new IOException($"{sysRoot} cannot be read");
        if (SysfsBlockDevices.Get(name, sysRoot, devRoot) is null)
            throw new IOException($"no block device {name} in {Path.Combine(sysRoot, "class", "block")}");
        Walk(name, 0, new HashSet<string>(StringComparer.Ordinal));

        if (filesystemType is { Length: > 0 } fs)
        {
            var fsModules = FilesystemModules(fs);
            foreach (var m in fsModules)
                Add(m, builtIn is not null ? builtIn.Contains(Normalize(m)) : IsBuiltInHere(m) || m == fsModules[0] && FilesystemBuiltInHere(fs, m));
        }
        if (filesystemType is "linux_raid_member")
            foreach (var (m, note) in RaidMemberModules(name, sysRoot, devRoot))
            {
                Add(m, builtIn is not null ? builtIn.Contains(m) : IsBuiltInHere(m));
                if (note is not null && !notes.Contains(note)) notes.Add(note);
            }
        return new ModuleChain(modules, levels, notes);

        void Add(string module, bool isBuiltIn)
        {
            string m = Normalize(module);
            if (!isBuiltIn && !modules.Contains(m)) modules.Add(m);
        }

        void Walk(string blockName, int depth, HashSet<string> visited)
        {
            if (depth > MaxDepth || !visited.Add(blockName)) return;
            var d = SysfsBlockDevices.Get(blockName, sysRoot, devRoot);
            if (d is null) return;
            string disk = d.IsPartition && d.Parent is not null ? d.Parent : d.Name;
            var diskDevice = d.IsPartition ? SysfsBlockDevices.Get(disk, sysRoot, devRoot) ?? d : d;

            // Stacked devices: their members first, then the layer itself.
            foreach (var slave in diskDevice.Slaves) Walk(slave, depth + 1, visited);
            foreach (var (module, why) in VirtualLayerModules(diskDevice))
            {
                Add(module, builtIn is not null ? builtIn.Contains(module) : IsBuiltInHere(module));
                if (why is not null && !notes.Contains(why)) notes.Add(why);
            }

            string? hardware = LinkSafePath.Resolve(Path.Combine(diskDevice.SysfsPath, "device"), out _);
            string devicesRoot = Path.Combine(sysReal, "devices");
            for (string? level = hardware;
                 level is not null && LinkSafePath.IsInside(level, devicesRoot) && level.Length > devicesRoot.Length;
                 level = Path.GetDirectoryName(level))
            {
                string? driver = SysfsAttribute.LinkName(Path.Combine(level, "driver"));
                if (driver is null) continue;   // buses, hosts, targets: nothing bound at this level
                string? module = SysfsAttribute.LinkName(Path.Combine(level, "driver", "module"));
                // No module link: the driver is built into the running kernel. The capture kernel may
                // differ, but the driver name is then all there is to go on.
                bool isBuiltIn = module is null || (builtIn is not null ? builtIn.Contains(Normalize(module)) : IsBuiltInHere(module));
                levels.Add(new DriverLevel(level[(devicesRoot.Length + 1)..], driver, module is null ? null : Normalize(module), isBuiltIn));
                if (module is not null) Add(module, isBuiltIn);
            }
        }

        // Registered in /proc/filesystems with no loaded module behind it: compiled in.
        bool FilesystemBuiltInHere(string type, string module)
        {
            procRoot ??= sysRoot == "/sys" ? "/proc" : null;
            if (procRoot is null || File.Exists(Path.Combine(sysRoot, "module", Normalize(module), "initstate"))) return false;
            try
            {
                return File.ReadLines(Path.Combine(procRoot, "filesystems"))
                    .Any(l => l.Split('\t', StringSplitOptions.RemoveEmptyEntries).LastOrDefault()?.Trim() == (type is "ext2" or "ext3" ? "ext4" : type));
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return false; }
        }

        bool IsBuiltInHere(string module)
        {
            // A loaded module has /sys/module/NAME/initstate; a built-in one (that has parameters or a
            // driver) has the directory without it.
            string dir = Path.Combine(sysRoot, "module", Normalize(module));
            return Directory.Exists(dir) && !File.Exists(Path.Combine(dir, "initstate"));
        }
    }

    /// <summary>The module names in a kernel's modules.builtin ("kernel/fs/ext4/ext4.ko" → ext4), '-' as '_'.</summary>
    public static HashSet<string> ReadModulesBuiltin(string path)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var line in File.ReadLines(path))
        {
            string file = Path.GetFileName(line.Trim());
            if (file.Length == 0) continue;
            int ko = file.IndexOf(".ko", StringComparison.Ordinal);
            names.Add(Normalize(ko > 0 ? file[..ko] : file));
        }
        return names;
    }

    /// <summary>The modules that mount a blkid TYPE. ext2 and ext3 are served by the ext4 driver.</summary>
    public static IReadOnlyList<string> FilesystemModules(string filesystemType) => filesystemType switch
    {
        "ext2" or "ext3" or "ext4" or "ext4dev" => ["ext4"],
        "vfat" => ["vfat", "nls_cp437"],   // the default codepage=437 is loaded at mount
        "jbd" or "swap" or "swsuspend" or "unknown" => [],
        "crypto_LUKS" => ["dm_crypt"],
        "linux_raid_member" => ["md_mod"],
        "LVM2_member" => ["dm_mod"],
        _ => [Normalize(filesystemType)],
    };

    /// <summary>
    /// A member of an md array that is not assembled here (a disk moved in, an array stopped): the
    /// personality comes from the member's own superblock, as the capture kernel will see it.
    /// </summary>
    private static IEnumerable<(string Module, string? Note)> RaidMemberModules(string name, string sysRoot, string devRoot)
    {
        var d = SysfsBlockDevices.Get(name, sysRoot, devRoot);
        if (d is null) yield break;
        List<Md.MdSuperblock> found;
        try
        {
            using var handle = File.OpenHandle(d.Node, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            found = Md.MdSuperblock.ReadAll(BlockSource.FromHandle(handle, d.SizeBytes), d.SizeBytes);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { found = []; }
        var sb = found.OrderByDescending(s => s.MajorVersion).FirstOrDefault();
        if (sb is null) yield break;
        if (Md.MdSuperblock.PersonalityModule(sb.Level) is { } personality)
            yield return (personality, null);
        else
            yield return ("md_mod", $"{name} is a member of {sb.LevelName} md array {sb.ArrayUuid}: {sb.UnsupportedReason()}");
    }

    /// <summary>Module names use '_' where file names may use '-'.</summary>
    public static string Normalize(string module) => module.Replace('-', '_');

    private static IEnumerable<(string Module, string? Note)> VirtualLayerModules(SysfsBlockDevice d)
    {
        if (d.Name.StartsWith("dm-", StringComparison.Ordinal))
        {
            yield return ("dm_mod", null);
            string uuid = d.DmUuid ?? "";
            if (uuid.StartsWith("CRYPT-", StringComparison.Ordinal))
                yield return ("dm_crypt", $"{d.Name} ({d.DmName}) is dm-crypt: the capture kernel cannot unlock it without its key");
            else if (uuid.StartsWith("mpath-", StringComparison.Ordinal))
                yield return ("dm_multipath", null);
            else if (uuid.StartsWith("LVM-", StringComparison.Ordinal))
                yield return ("dm_mod", $"{d.Name} ({d.DmName}) is an LVM volume: the capture kernel activates it itself (linear and striped LVs, in dm_mod)");
        }
        else if (d.Name.StartsWith("md", StringComparison.Ordinal) && !d.IsPartition)
        {
            yield return ("md_mod", null);
            string level = SysfsAttribute.Read(d.SysfsPath, "md/level") ?? "";
            string? personality = level switch
            {
                "raid0" => "raid0",
                "raid1" => "raid1",
                "raid10" => "raid10",
                "raid4" or "raid5" or "raid6" => "raid456",
                "linear" => "linear",
                _ => null,
            };
            if (personality is not null) yield return (personality, null);
        }
        else if (d.Name.StartsWith("loop", StringComparison.Ordinal))
            yield return ("loop", $"{d.Name} is a loop device: its backing file must be reachable in the capture kernel too");
    }

    private static string KernelName(string device, string devRoot)
    {
        if (!device.Contains('/')) return device;
        // /dev/mapper/NAME and /dev/disk/by-*/ links point at the kernel-named node; follow them, but only within /dev.
        string? real = LinkSafePath.Resolve(device, out _);
        string? root = LinkSafePath.Resolve(devRoot, out _);
        if (real is not null && root is not null && LinkSafePath.IsInside(real, root) && real != root)
            return real[(root.TrimEnd('/').Length + 1)..].Replace('/', '!');
        return Path.GetFileName(device);
    }
}

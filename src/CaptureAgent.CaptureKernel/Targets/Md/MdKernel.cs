using CaptureAgent.Native;

namespace CaptureAgent.Targets.Md;

/// <summary>What assembling needs from the kernel; tests replace it.</summary>
public interface IMdKernel
{
    /// <summary>Why arrays of this superblock's level cannot be started (driver or personality not loaded), or null.</summary>
    string? DriverProblem(MdSuperblock reference);

    /// <summary>Whether md_mod.start_dirty_degraded is set (a degraded raid4/5/6 that was not shut down cleanly needs it).</summary>
    bool StartsDirtyDegraded { get; }

    /// <summary>Creates an unused md device and returns its kernel name: mdN for the array's preferred number when free, else md127 down.</summary>
    string Allocate(int? preferred);

    /// <summary>Adds the members to the new device and runs it; throws IOException with a one-line reason, the device then stopped.</summary>
    void Start(string md, MdArrayPlan plan);
}

/// <summary>
/// The running kernel's md driver: arrays are made through /sys/module/md_mod/parameters/new_array
/// (or, on kernels without it, by opening a fresh /dev/mdN node), and assembled with the ioctls
/// mdadm uses for native metadata: SET_ARRAY_INFO naming the superblock version, ADD_NEW_DISK per
/// member, RUN_ARRAY. Nodes are made with mknod when devtmpfs has not made them (no udev here).
/// </summary>
public sealed class MdKernel(string sysRoot = "/sys", string devRoot = "/dev", string procRoot = "/proc") : IMdKernel
{
    private const int FirstMinor = 127;   // mdadm's habit: arrays without a fixed number count down from md127

    private string ModuleDir => Path.Combine(sysRoot, "module", "md_mod");

    public bool StartsDirtyDegraded => SysfsAttribute.Read(Path.Combine(ModuleDir, "parameters"), "start_dirty_degraded") is "1" or "Y";

    public string? DriverProblem(MdSuperblock reference)
    {
        if (!Directory.Exists(ModuleDir))
            return "the md driver (md_mod) is not loaded: it is not in the capture initramfs (extra_modules = md_mod)";
        string? module = MdSuperblock.PersonalityModule(reference.Level);
        if (module is null) return reference.UnsupportedReason();
        var personalities = Personalities();
        if (personalities is null) return null;   // no /proc/mdstat to ask: let RUN_ARRAY say
        string[] names = reference.Level is 4 or 5 or 6 ? [reference.LevelName] : [module];
        return names.Any(personalities.Contains) ? null
            : $"the {reference.LevelName} personality is not loaded: {module} is not in the capture initramfs (extra_modules = {module})";
    }

    /// <summary>The "Personalities : [raid1] [raid10]" line of /proc/mdstat, or null when there is no mdstat.</summary>
    private HashSet<string>? Personalities()
    {
        string? first;
        try { first = File.ReadLines(Path.Combine(procRoot, "mdstat")).FirstOrDefault(); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return null; }
        var set = new HashSet<string>(StringComparer.Ordinal);
        foreach (var word in (first ?? "").Split(' ', StringSplitOptions.RemoveEmptyEntries))
            if (word.Length > 2 && word[0] == '[' && word[^1] == ']') set.Add(word[1..^1]);
        return set;
    }

    public string Allocate(int? preferred)
    {
        string newArray = Path.Combine(ModuleDir, "parameters", "new_array");
        var numbers = Enumerable.Range(0, FirstMinor + 1).Reverse();
        if (preferred is >= 0 and <= 255) numbers = numbers.Prepend(preferred.Value).Distinct();
        foreach (int n in numbers)
        {
            string name = $"md{n}";
            if (Directory.Exists(Path.Combine(sysRoot, "block", name))) continue;
            // new_array takes "mdN" since Linux 5.16 or so; older kernels (and a refusal) fall back
            // to opening a node of the unused minor, which makes the device too (md_probe).
            bool made = false;
            if (File.Exists(newArray))
            {
                try { File.WriteAllText(newArray, name); made = true; }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    if (Directory.Exists(Path.Combine(sysRoot, "block", name))) continue;   // made meanwhile
                }
            }
            if (!made) OpenFreshNode(name, n);
            if (WaitFor(Path.Combine(sysRoot, "block", name, "md"), TimeSpan.FromSeconds(2))) return name;
            throw new IOException($"the kernel did not create {name} (neither md_mod's new_array nor opening /dev/{name} made it)");
        }
        throw new IOException("no unused md device number left");
    }

    private void OpenFreshNode(string name, int minor)
    {
        string node = Path.Combine(devRoot, name);
        if (!File.Exists(node) && Libc.MakeBlockNode(node, Libc.MdMajor, minor) is int e and not 0 and not Libc.EEXIST)
            throw new IOException($"cannot make {node}: {Libc.ErrnoName(e)}");
        try { Libc.OpenFile(node, Libc.O_RDONLY, 0).Dispose(); } catch (IOException) { }
    }

    public void Start(string md, MdArrayPlan plan)
    {
        string node = EnsureNode(md);
        using (var h = Libc.OpenFile(node, Libc.O_RDWR, 0))
        {
            var sb = plan.Reference;
            Check(Libc.MdSetArrayVersion(h, sb.MajorVersion, sb.MinorVersion), h, $"{md} refused metadata {sb.Version}");
            foreach (var m in plan.Members)
                Check(Libc.MdAddDisk(h, m.Major, m.Minor), h, $"{md} refused member {m.Device} ({m.Major}:{m.Minor})");
            Check(Libc.MdRunArray(h), h, $"{md} did not start");
        }
        // The dump is written now; a resync of a mirror left dirty by the crash would halve the
        // write speed. Frozen, it resumes on the next boot (md reads unsynced regions from one member).
        try { File.WriteAllText(Path.Combine(sysRoot, "block", md, "md", "sync_action"), "frozen"); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        // Partitions on the array are read when it is next opened after it gained its size.
        try { Libc.OpenFile(node, Libc.O_RDONLY, 0).Dispose(); } catch (IOException) { }
        LinkByName(md, plan.Reference.Name);
    }

    /// <summary>/dev/md/NAME → ../mdN, as udev's rules make it (a config may name the array so, like fstab does).</summary>
    private void LinkByName(string md, string? arrayName)
    {
        string? shortName = MdArrays.ShortName(arrayName);
        if (shortName is null) return;
        try
        {
            string dir = Path.Combine(devRoot, "md");
            Directory.CreateDirectory(dir);
            string link = Path.Combine(dir, shortName);
            if (!Path.Exists(link) && new FileInfo(link).LinkTarget is null) File.CreateSymbolicLink(link, Path.Combine("..", md));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }   // the kernel name still works
    }

    private static void Check(int errno, Microsoft.Win32.SafeHandles.SafeFileHandle h, string what)
    {
        if (errno == 0) return;
        Libc.MdStopArray(h);   // members go back to being plain devices
        string hint = errno == Libc.EINVAL ? " (the kernel log says why: a member's superblock, or a personality missing)" : "";
        throw new IOException($"{what}: {Libc.ErrnoName(errno)}{hint}");
    }

    /// <summary>/dev/mdN as devtmpfs made it, or made now from sysfs's major:minor.</summary>
    private string EnsureNode(string md)
    {
        string node = Path.Combine(devRoot, md);
        if (File.Exists(node) && Libc.IsBlockDevice(node)) return node;
        string? dev = SysfsAttribute.Read(Path.Combine(sysRoot, "block", md), "dev");
        int colon = dev?.IndexOf(':') ?? -1;
        if (colon <= 0 || !int.TryParse(dev.AsSpan(0, colon), out int major) || !int.TryParse(dev.AsSpan(colon + 1), out int minor))
            throw new IOException($"{md} has no device number in sysfs");
        // devtmpfs may be making it right now.
        if (WaitFor(node, TimeSpan.FromMilliseconds(500)) && Libc.IsBlockDevice(node)) return node;
        int e = Libc.MakeBlockNode(node, major, minor);
        if (e != 0 && e != Libc.EEXIST) throw new IOException($"cannot make {node}: {Libc.ErrnoName(e)}");
        return node;
    }

    private static bool WaitFor(string path, TimeSpan limit)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (!Path.Exists(path))
        {
            if (clock.Elapsed >= limit) return false;
            Thread.Sleep(20);
        }
        return true;
    }
}

using System.Text;
using CaptureAgent.Targets;

namespace CaptureAgent.Config;

/// <summary>One line of /etc/fstab.</summary>
public sealed record FstabEntry(string Spec, string MountPoint, string Type, string Options, int Line)
{
    public IEnumerable<string> OptionList => Options.Split(',', StringSplitOptions.RemoveEmptyEntries);

    public string? Option(string name) =>
        OptionList.Where(o => o.StartsWith(name + "=", StringComparison.Ordinal)).Select(o => o[(name.Length + 1)..]).LastOrDefault();
}

/// <summary>
/// /etc/fstab of the system being imported: which filesystem holds a directory, and how that
/// filesystem is named as a capture-agent target.
/// </summary>
public static class Fstab
{
    private static readonly string[] LocalTypes = ["ext4", "ext3", "ext2", "xfs", "btrfs", "vfat"];

    public static List<FstabEntry> Parse(string text)
    {
        var entries = new List<FstabEntry>();
        int lineNo = 0;
        foreach (var raw in text.Split('\n'))
        {
            lineNo++;
            string line = raw.Trim();
            if (line.Length == 0 || line[0] == '#') continue;
            var f = line.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
            if (f.Length < 3) continue;
            entries.Add(new FstabEntry(Unescape(f[0]), Unescape(f[1]), f[2], f.Length > 3 ? f[3] : "defaults", lineNo));
        }
        return entries;
    }

    public static List<FstabEntry> Load(string rootDir)
    {
        string path = System.IO.Path.Combine(rootDir, "etc/fstab");
        return File.Exists(path) ? Parse(File.ReadAllText(path)) : [];
    }

    /// <summary>The mounted-at-boot filesystem whose mount point is the longest prefix of <paramref name="path"/>.</summary>
    public static FstabEntry? Holding(IEnumerable<FstabEntry> entries, string path)
    {
        FstabEntry? best = null;
        foreach (var e in entries)
        {
            if (!e.MountPoint.StartsWith('/') || e.Type is "swap" || e.OptionList.Contains("noauto") || e.OptionList.Contains("bind")) continue;
            string mp = Norm(e.MountPoint);
            bool under = mp == "/" || path == mp || path.StartsWith(mp + "/", StringComparison.Ordinal);
            // A later line with the same mount point is mounted over the earlier one.
            if (under && (best is null || mp.Length >= Norm(best.MountPoint).Length)) best = e;
        }
        return best;
    }

    private static string Norm(string mountPoint) => mountPoint.Length > 1 ? mountPoint.TrimEnd('/') : "/";

    public static FstabEntry? Root(IEnumerable<FstabEntry> entries) =>
        entries.LastOrDefault(e => e.MountPoint == "/" && e.Type != "swap");

    /// <summary>The path below the entry's mount point ("/" when they are the same).</summary>
    public static string Below(FstabEntry e, string path)
    {
        string mp = Norm(e.MountPoint);
        string rest = mp == "/" ? path : path[mp.Length..];
        return rest.Length == 0 ? "/" : rest;
    }

    /// <summary>
    /// The capture-agent target for a filesystem of fstab, its fstype and the directory that the
    /// capture agent must prefix to paths (a btrfs subvolume: the agent mounts the filesystem's
    /// default subvolume, the top level unless someone ran `btrfs subvolume set-default`).
    /// Null target with the reason when it cannot be one.
    /// </summary>
    public static (string? Target, string? FsType, string Prefix, string? Why) AsTarget(FstabEntry e)
    {
        if (e.Type is "nfs" or "nfs4")
        {
            string spec = e.Spec;
            int split = spec.StartsWith('[') ? spec.IndexOf("]:", StringComparison.Ordinal) + 1 : spec.IndexOf(':');
            if (split <= 0 || split + 1 >= spec.Length || spec[split + 1] != '/')
                return (null, null, "", $"'{spec}' is not HOST:/export");
            return ("nfs:" + spec, null, "", null);
        }
        if (!TargetSpec.TryParse(e.Spec, out _, out var specError))
            return (null, null, "", $"'{e.Spec}' ({e.Type}) on {e.MountPoint} cannot be a capture-agent target: {specError}");
        string? fsType = e.Type == "auto" ? null : e.Type;
        if (fsType is not null && !LocalTypes.Contains(fsType))
            return (null, null, "", $"{e.MountPoint} is {fsType}, which capture-agent cannot write (ext2/3/4, xfs, btrfs, vfat)");
        string prefix = "";
        if (fsType == "btrfs")
        {
            if (e.Option("subvol") is { } subvol)
            {
                string s = subvol.Trim('/');
                if (s.Length > 0) prefix = "/" + s;
            }
            else if (e.Option("subvolid") is { } id && id != "5")
                return (null, null, "", $"{e.MountPoint} is btrfs subvolume id {id}: name it with subvol= in fstab so the path inside it can be given");
        }
        return (e.Spec, fsType, prefix, null);
    }

    /// <summary>NFS mount options of fstab that also mean something to the kernel's mount(2).</summary>
    public static string? NfsKernelOptions(FstabEntry e)
    {
        string[] userSpace = ["defaults", "auto", "noauto", "user", "users", "nouser", "nofail", "_netdev", "rw", "bg", "fg", "owner", "group"];
        var kept = e.OptionList.Where(o => !userSpace.Contains(o) && !o.StartsWith("x-", StringComparison.Ordinal)
                                           && !o.StartsWith("comment=", StringComparison.Ordinal) && !o.StartsWith("retry=", StringComparison.Ordinal)
                                           && !o.StartsWith("mountproto=", StringComparison.Ordinal) && !o.StartsWith("mounthost=", StringComparison.Ordinal)).ToList();
        return kept.Count == 0 ? null : string.Join(',', kept);
    }

    /// <summary>fstab's octal escapes (\040 for a space).</summary>
    private static string Unescape(string s)
    {
        if (!s.Contains('\\')) return s;
        var sb = new StringBuilder();
        for (int i = 0; i < s.Length; i++)
        {
            if (s[i] == '\\' && IsOctal(s, i + 1))
            {
                sb.Append((char)Convert.ToInt32(s.Substring(i + 1, 3), 8));
                i += 3;
            }
            else sb.Append(s[i]);
        }
        return sb.ToString();
    }

    private static bool IsOctal(string s, int at) =>
        at + 3 <= s.Length && s[at] is >= '0' and <= '3' && s[at + 1] is >= '0' and <= '7' && s[at + 2] is >= '0' and <= '7';
}

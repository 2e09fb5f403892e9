namespace CaptureAgent.Capture;

/// <summary>
/// Removes old dumps before a new one is written, oldest first, so that at most KeepDumps remain
/// counting the new one, and the old ones plus the new one's estimate stay under KeepBytes. Only
/// directories that are dumps are touched (they hold a manifest, a vmcore or a kernel log); a
/// symbolic link is never followed nor removed.
/// </summary>
public static class Retention
{
    private static readonly string[] DumpFiles =
        [DumpManifest.FileName, "vmcore", "vmcore-incomplete", "vmcore.flat", "vmcore-incomplete.flat", "dmesg.txt", "vmcore-dmesg.txt"];

    public sealed record SavedDump(string Path, DateTimeOffset When, long Bytes);

    /// <summary>The dumps directly under parent, oldest first.</summary>
    public static List<SavedDump> List(string parent)
    {
        var dumps = new List<SavedDump>();
        if (!Directory.Exists(parent)) return dumps;
        foreach (var d in new DirectoryInfo(parent).EnumerateDirectories())
        {
            if (d.LinkTarget is not null) continue;
            if (!DumpFiles.Any(f => File.Exists(System.IO.Path.Combine(d.FullName, f)))) continue;
            DateTimeOffset when = d.LastWriteTimeUtc;
            string manifest = System.IO.Path.Combine(d.FullName, DumpManifest.FileName);
            try
            {
                if (File.Exists(manifest) && DumpManifest.Parse(File.ReadAllText(manifest)).CrashTime is { } t && t > DateTimeOffset.UnixEpoch) when = t;
            }
            catch (Exception e) when (e is InvalidDataException or IOException) { }
            long bytes = d.EnumerateFiles("*", SearchOption.TopDirectoryOnly).Where(f => f.LinkTarget is null).Sum(f => f.Length);
            dumps.Add(new SavedDump(d.FullName, when, bytes));
        }
        return dumps.OrderBy(d => d.When).ThenBy(d => d.Path, StringComparer.Ordinal).ToList();
    }

    /// <summary>Applies the limits; returns the directories removed.</summary>
    public static List<string> Apply(string parent, int keepDumps, long keepBytes, long incomingBytes)
    {
        var removed = new List<string>();
        if (keepDumps <= 0 && keepBytes <= 0) return removed;
        var dumps = List(parent);
        long total = dumps.Sum(d => d.Bytes);
        foreach (var d in dumps)
        {
            bool tooMany = keepDumps > 0 && dumps.Count - removed.Count >= keepDumps;
            bool tooBig = keepBytes > 0 && total + incomingBytes > keepBytes;
            if (!tooMany && !tooBig) break;
            Directory.Delete(d.Path, recursive: true);   // links inside are removed, not followed
            removed.Add(d.Path);
            total -= d.Bytes;
        }
        return removed;
    }
}

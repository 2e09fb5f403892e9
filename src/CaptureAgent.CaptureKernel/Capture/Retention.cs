using CaptureAgent.Formats;

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
            long bytes;
            try
            {
                // A manifest is a few hundred bytes: a link or a huge file there is not one.
                var manifest = new FileInfo(System.IO.Path.Combine(d.FullName, DumpManifest.FileName));
                if (manifest.Exists && manifest.LinkTarget is null && manifest.Length < 1 << 20
                    && DumpManifest.Parse(File.ReadAllText(manifest.FullName)).CrashTime is { } t && t > DateTimeOffset.UnixEpoch) when = t;
            }
            catch (Exception e) when (e is InvalidDataException or IOException or UnauthorizedAccessException) { }
            try
            {
                bytes = d.EnumerateFiles("*", SearchOption.TopDirectoryOnly).Where(f => f.LinkTarget is null).Sum(f => f.Length);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { continue; }   // unreadable: not ours to judge
            dumps.Add(new SavedDump(d.FullName, when, bytes));
        }
        return dumps.OrderBy(d => d.When).ThenBy(d => d.Path, StringComparer.Ordinal).ToList();
    }

    /// <summary>
    /// Applies the limits; returns the directories removed. A dump that cannot be removed is
    /// reported through <paramref name="problem"/> and skipped: the new dump matters more.
    /// </summary>
    public static List<string> Apply(string parent, int keepDumps, long keepBytes, long incomingBytes, Action<string>? problem = null)
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
            try
            {
                Directory.Delete(d.Path, recursive: true);   // links inside are removed, not followed
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                problem?.Invoke($"old dump {d.Path} could not be removed: {e.Message}");
                continue;
            }
            removed.Add(d.Path);
            total -= d.Bytes;
        }
        return removed;
    }
}

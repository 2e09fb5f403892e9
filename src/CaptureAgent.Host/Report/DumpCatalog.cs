namespace CaptureAgent.Report;

/// <summary>
/// The saved dumps under a directory, for `report` and `status`: found by <see cref="DumpFinder"/>,
/// each read by <see cref="DumpEntryReader"/> (names, manifest, headers; never the pages) and its
/// crash analysed by <see cref="DumpAnalyzer"/>; rendering is the command's.
/// </summary>
public static class DumpCatalog
{
    /// <summary>
    /// The dumps under <paramref name="root"/> (or root itself when it is one), newest first;
    /// at most <paramref name="limit"/> when positive. With <paramref name="analyze"/> each entry's
    /// kernel log is read for the panic and signature; <paramref name="readVmcoreLog"/> allows
    /// reading it from the vmcore when no log file was saved (slower on big dumps).
    /// </summary>
    public static List<DumpEntry> Scan(string root, int limit = 0, bool analyze = true, bool readVmcoreLog = true)
    {
        var entries = DumpFinder.Find(root).Select(DumpEntryReader.ReadOrDescribe)
            .OrderByDescending(e => e.CrashTime ?? DateTimeOffset.MinValue)
            .ThenBy(e => e.Directory, StringComparer.Ordinal)
            .ToList();
        if (limit > 0 && entries.Count > limit) entries = entries.GetRange(0, limit);
        if (analyze)
            foreach (var e in entries) DumpAnalyzer.Analyze(e, readVmcoreLog);
        return entries;
    }
}

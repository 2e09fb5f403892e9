using System.Globalization;
using System.Text.RegularExpressions;
using CaptureAgent.Formats;

namespace CaptureAgent.Report;

/// <summary>
/// The names dump directories use: capture-agent's &lt;host&gt;-&lt;date&gt;/ (manifest.json,
/// dmesg.txt, vmcore[-incomplete][.flat]), RHEL's &lt;ip&gt;-&lt;date&gt;/ (vmcore, vmcore-dmesg.txt)
/// and Debian's &lt;YYYYMMDDHHMM&gt;/ (dump.STAMP, dmesg.STAMP). Names only: nothing here opens a file.
/// </summary>
public static partial class DumpLayout
{
    private static readonly string[] DumpNames = ["vmcore", "vmcore-incomplete", "vmcore.flat", "vmcore-incomplete.flat", "dump-incomplete", "vmcore.raw"];
    private static readonly string[] LogNames = ["dmesg.txt", "vmcore-dmesg.txt", "vmcore-dmesg-incomplete.txt"];

    [GeneratedRegex(@"^(.+)-(\d{4}-\d{2}-\d{2}-\d{2}:\d{2}:\d{2})(?:-\d+)?$")]
    private static partial Regex HostDateName();
    [GeneratedRegex(@"^(\d{12})$")]
    private static partial Regex DebianStampName();
    [GeneratedRegex(@"^(?:dump|dmesg)\.\d{12}$")]
    private static partial Regex DebianFile();

    /// <summary>Whether a file of this name marks its directory as a dump directory.</summary>
    public static bool IsDumpDirectoryFile(string name) =>
        name == DumpManifest.FileName || DumpNames.Contains(name) || LogNames.Contains(name) || DebianFile().IsMatch(name);

    /// <summary>The dump file among a directory's files: ours and RHEL's names first, then Debian's dump.STAMP.</summary>
    public static string? DumpFile(IReadOnlySet<string> names) =>
        DumpNames.FirstOrDefault(names.Contains) ?? FirstStartingWith(names, "dump.");

    /// <summary>The saved kernel log among a directory's files.</summary>
    public static string? LogFile(IReadOnlySet<string> names) =>
        LogNames.FirstOrDefault(names.Contains) ?? FirstStartingWith(names, "dmesg.");

    private static string? FirstStartingWith(IEnumerable<string> names, string prefix) =>
        names.Where(n => n.StartsWith(prefix, StringComparison.Ordinal)).Order(StringComparer.Ordinal).FirstOrDefault();

    /// <summary>
    /// Who made the directory: "capture-agent" (manifest.json or dmesg.txt), "rhel" (vmcore-dmesg.txt),
    /// "debian" (dump.STAMP, dmesg.STAMP), "kdump" (a bare host-date/vmcore either could have left) or "unknown".
    /// </summary>
    public static string Layout(string directoryName, IReadOnlySet<string> names)
    {
        if (names.Contains(DumpManifest.FileName) || names.Contains("dmesg.txt")) return "capture-agent";
        if (names.Contains("vmcore-dmesg.txt") || names.Contains("vmcore-dmesg-incomplete.txt")) return "rhel";
        if (names.Any(n => DebianFile().IsMatch(n)) || names.Contains("dump-incomplete")) return "debian";
        return HostDateName().IsMatch(directoryName) ? "kdump" : "unknown";
    }

    /// <summary>The host in a directory's name (host-2024-01-31-10:22:33), if it has one.</summary>
    public static string? HostFromName(string name) => HostDateName().Match(name) is { Success: true } m ? m.Groups[1].Value : null;

    /// <summary>The crash time in a directory's name: host-2024-01-31-10:22:33 (ours, RHEL) or 202401311022 (Debian).</summary>
    public static DateTimeOffset? TimeFromName(string name)
    {
        var m = HostDateName().Match(name);
        if (m.Success) return ParseUtc(m.Groups[2].Value, "yyyy-MM-dd-HH:mm:ss");
        m = DebianStampName().Match(name);
        return m.Success ? ParseUtc(m.Groups[1].Value, "yyyyMMddHHmm") : null;
    }

    private static DateTimeOffset? ParseUtc(string text, string format) =>
        DateTime.TryParseExact(text, format, CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal, out var t)
            ? new DateTimeOffset(t, TimeSpan.Zero) : null;
}

using CaptureAgent.Common;
using CaptureAgent.Formats;
using CaptureAgent.Vmcore;

namespace CaptureAgent.Report;

/// <summary>
/// Everything about one dump directory except its kernel log (<see cref="DumpAnalyzer"/>): which
/// files it holds, its manifest (read leniently), the dump's headers, and from them the host,
/// kernel, crash time and status. Symbolic links in it are not read.
/// </summary>
public static class DumpEntryReader
{
    /// <summary>One unreadable directory must not hide the others: it becomes an entry saying so.</summary>
    public static DumpEntry ReadOrDescribe(string dir)
    {
        try { return Read(dir); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            var entry = new DumpEntry { Directory = dir, Layout = "unknown", Status = DumpStatus.Unverified, StatusDetail = $"unreadable: {ErrorText.Of(e)}" };
            entry.Problems.Add(ErrorText.Of(e));
            return entry;
        }
    }

    public static DumpEntry Read(string dir)
    {
        var info = new DirectoryInfo(dir);
        var files = PlainFiles(info);
        var names = files.Keys.ToHashSet(StringComparer.Ordinal);
        string? dump = DumpLayout.DumpFile(names), log = DumpLayout.LogFile(names);
        var e = new DumpEntry
        {
            Directory = info.FullName,
            Layout = DumpLayout.Layout(info.Name, names),
            DumpFile = dump,
            DumpBytes = dump is null ? null : files[dump],
            DmesgFile = log,
            DmesgBytes = log is null ? null : files[log],
            TotalBytes = files.Values.Sum(),
        };
        var manifest = names.Contains(DumpManifest.FileName) ? ReadManifest(e) : null;
        var (header, headerError) = dump is null ? (null, null) : ReadHeader(e, dump);
        e.DumpFormat = header?.Format;
        SetFacts(e, info, manifest, header);
        (e.Status, e.StatusDetail) = DumpStatusRules.Judge(dump, manifest, header, headerError, files);
        return e;
    }

    /// <summary>Name → size of the directory's regular files, links left out.</summary>
    private static Dictionary<string, long> PlainFiles(DirectoryInfo info)
    {
        var files = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var f in info.EnumerateFiles())
            if (f.LinkTarget is null) files[f.Name] = f.Length;
        return files;
    }

    private static DumpManifest? ReadManifest(DumpEntry e)
    {
        try
        {
            return ManifestReader.Read(Path.Combine(e.Directory, DumpManifest.FileName), ManifestReading.Lenient);
        }
        catch (Exception x) when (x is IOException or UnauthorizedAccessException or InvalidDataException)
        {
            e.Problems.Add($"{DumpManifest.FileName}: {ErrorText.Of(x)}");
            return null;
        }
    }

    private static (HeaderFacts?, string?) ReadHeader(DumpEntry e, string dump)
    {
        try
        {
            return (DumpHeaderProbe.Read(Path.Combine(e.Directory, dump)), null);
        }
        catch (Exception x) when (x is IOException or UnauthorizedAccessException or VmcoreException or InvalidDataException)
        {
            e.Problems.Add($"{dump}: {ErrorText.Of(x)}");
            return (null, ErrorText.Of(x));
        }
    }

    /// <summary>The manifest first (written by the agent from the crashed kernel), then the dump's headers, then the names.</summary>
    private static void SetFacts(DumpEntry e, DirectoryInfo info, DumpManifest? manifest, HeaderFacts? header)
    {
        e.Host = DumpFacts.NonEmpty(manifest?.Host) ?? DumpFacts.NonEmpty(header?.Host) ?? DumpLayout.HostFromName(info.Name);
        e.KernelRelease = DumpFacts.NonEmpty(manifest?.KernelRelease) ?? DumpFacts.NonEmpty(header?.Release);
        if (manifest?.CrashTime is { } mt && mt > DateTimeOffset.UnixEpoch) (e.CrashTime, e.CrashTimeSource) = (mt, "manifest");
        else if (header?.VmcoreInfoTime is { } vt) (e.CrashTime, e.CrashTimeSource) = (vt, "vmcoreinfo");
        else if (header?.HeaderTime is { } ht) (e.CrashTime, e.CrashTimeSource) = (ht, "kdump-header");
        else if (DumpLayout.TimeFromName(info.Name) is { } nt) (e.CrashTime, e.CrashTimeSource) = (nt, "directory-name");
        else (e.CrashTime, e.CrashTimeSource) = (new DateTimeOffset(info.LastWriteTimeUtc, TimeSpan.Zero), "mtime");
    }
}

/// <summary>Placeholders writers use for facts they did not know.</summary>
internal static class DumpFacts
{
    public static string? NonEmpty(string? s) => string.IsNullOrWhiteSpace(s) || s == "unknown-host" || s == "unknown-kernel" ? null : s;
}

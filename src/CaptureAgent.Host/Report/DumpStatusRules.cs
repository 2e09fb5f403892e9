using CaptureAgent.Formats;

namespace CaptureAgent.Report;

/// <summary>
/// A dump directory's status from what was read cheaply (no page is decompressed: that is
/// `verify`'s work): the first rule that speaks decides. Incomplete when the dump is unreadable,
/// the manifest says so or disagrees with the files, or the name or header says the capture did
/// not finish; complete only when a manifest vouches for it; unverified otherwise.
/// </summary>
internal static class DumpStatusRules
{
    public static (DumpStatus, string) Judge(string? dump, DumpManifest? manifest, HeaderFacts? header, string? headerError,
                                             IReadOnlyDictionary<string, long> files)
    {
        if (dump is null)
            return (DumpStatus.NoVmcore, manifest?.IncompleteReason is { Length: > 0 } r ? $"no vmcore: {r}" : "no vmcore in this directory");
        if (headerError is not null) return (DumpStatus.Incomplete, $"{dump} unreadable: {headerError}");
        if (manifest is not null && ManifestSays(manifest, files) is { } said) return (DumpStatus.Incomplete, said);
        if (dump.Contains("incomplete", StringComparison.Ordinal) || header?.Incomplete == true)
            return (DumpStatus.Incomplete, header?.IncompleteWhy ?? $"{dump}: the capture did not finish");
        return manifest is not null
            ? (DumpStatus.Complete, "manifest: complete, file sizes match")
            : (DumpStatus.Unverified, "no manifest (made by another tool or an older agent): run capture-agent verify");
    }

    /// <summary>Why the manifest makes the dump incomplete (it says so, or a file is missing or of another size), or null.</summary>
    private static string? ManifestSays(DumpManifest manifest, IReadOnlyDictionary<string, long> files)
    {
        if (!manifest.Complete)
            return "manifest: incomplete" + (manifest.IncompleteReason is { Length: > 0 } r ? $": {r}" : "");
        foreach (var f in manifest.Files)
        {
            if (!files.TryGetValue(f.Name, out long actual)) return $"{f.Name} is listed in the manifest but missing";
            if (f.Size >= 0 && actual != f.Size) return $"{f.Name} is {actual} bytes, the manifest says {f.Size} (run capture-agent verify)";
        }
        return null;
    }
}

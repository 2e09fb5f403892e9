using CaptureAgent.Vmcore;
using CaptureAgent.Common;
using CaptureAgent.Formats;

namespace CaptureAgent.Dump;

/// <summary>
/// Is a saved dump whole? The manifest's sizes and CRC-64s, then the dump's own structure, every
/// stored page decompressed: `capture-agent verify` and selftest judge with it. Exit 0 complete,
/// 3 incomplete (cut short, readable up to where it stopped), 1 corrupt or unreadable.
/// </summary>
public static class DumpVerifier
{
    private static readonly string[] DumpNames = ["vmcore", "vmcore-incomplete", "vmcore.flat", "vmcore-incomplete.flat"];

    /// <summary>Worst last: the verdict of a directory is the worst of its parts.</summary>
    public enum Verdict { Complete, Incomplete, Corrupt }

    /// <summary>The check `verify` runs, for other commands (selftest): exit code 0/3/1 and the one-line summary.</summary>
    public static (int ExitCode, string Summary) Verify(string path, List<string> lines)
    {
        var (verdict, summary) = CheckReadable(path, lines);
        return (ExitCode(verdict), summary);
    }

    public static int ExitCode(Verdict v) => v switch { Verdict.Complete => ExitCodes.Ok, Verdict.Incomplete => ExitCodes.Degraded, _ => ExitCodes.Failed };

    /// <summary><see cref="Check"/>, with a file that cannot be read at all judged corrupt.</summary>
    public static (Verdict, string) CheckReadable(string path, List<string> lines)
    {
        try
        {
            return Check(path, lines);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or VmcoreException or InvalidDataException)
        {
            return (Verdict.Corrupt, $"unreadable: {ErrorText.Of(e)}");
        }
    }

    private static (Verdict, string) Check(string path, List<string> lines)
    {
        if (!Directory.Exists(path)) return CheckDumpFile(path, lines);
        string manifestPath = Path.Combine(path, DumpManifest.FileName);
        var verdict = Verdict.Complete;
        string? dump = DumpNames.Select(n => Path.Combine(path, n)).FirstOrDefault(File.Exists);
        string? reason = null;
        DumpManifest? manifest = null;
        if (File.Exists(manifestPath))
        {
            // Never read through a link planted in a dump directory, nor a manifest of any size.
            var info = new FileInfo(manifestPath);
            if (info.LinkTarget is not null) return (Verdict.Corrupt, $"corrupt: {DumpManifest.FileName} is a symbolic link");
            if (info.Length > 1 << 20) return (Verdict.Corrupt, $"corrupt: {DumpManifest.FileName} is {info.Length} bytes, not a manifest");
            manifest = DumpManifest.Parse(InputFile.ReadText(manifestPath, 1 << 20));
            foreach (var f in manifest.Files)
            {
                string file = Path.Combine(path, f.Name);
                if (!File.Exists(file)) return (Verdict.Corrupt, $"corrupt: {f.Name} is listed in the manifest but missing");
                if (new FileInfo(file).LinkTarget is not null) return (Verdict.Corrupt, $"corrupt: {f.Name} is a symbolic link");
                var actual = DumpManifest.Checksum(file);
                if (actual.Size != f.Size) return (Verdict.Corrupt, $"corrupt: {f.Name} is {actual.Size} bytes, the manifest says {f.Size}");
                if (f.Crc64.Length > 0 && actual.Crc64 != f.Crc64) return (Verdict.Corrupt, $"corrupt: {f.Name} CRC-64 {actual.Crc64}, the manifest says {f.Crc64}");
                lines.Add($"{f.Name}: {f.Size} bytes, CRC-64 {f.Crc64} matches");
            }
            if (!manifest.Complete)
            {
                verdict = Verdict.Incomplete;
                reason = manifest.IncompleteReason;
                lines.Add($"the manifest says incomplete: {manifest.IncompleteReason}");
            }
        }
        else lines.Add($"no {DumpManifest.FileName}: the capture did not finish, or predates manifests");
        if (dump is null) return (Verdict.Corrupt, "no vmcore in this directory");
        if (new FileInfo(dump).LinkTarget is not null) return (Verdict.Corrupt, $"corrupt: {Path.GetFileName(dump)} is a symbolic link");
        // A complete manifest vouches for the page count: the dump's bitmap must say the same.
        ulong? manifestPages = manifest is { Complete: true, DumpablePages: > 0 } ? manifest.DumpablePages : null;
        var (v, s) = CheckDumpFile(dump, lines, reason, manifestPages);
        return (v > verdict ? v : verdict, s);
    }

    private static (Verdict, string) CheckDumpFile(string path, List<string> lines, string? reason = null, ulong? manifestPages = null)
    {
        var head = new byte[DumpProbe.HeadLength];
        int got;
        using (var f = InputFile.OpenStream(path)) got = f.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
        var kind = DumpProbe.Kind(head.AsSpan(0, got));
        if (kind == DumpKind.Flattened) return CheckFlattened(path);
        if (kind == DumpKind.Elf) return CheckElf(path, lines);
        using var kd = new KdumpFile(path);
        var structure = kd.CheckStructure();
        if (manifestPages is ulong pages && pages != kd.DumpablePages)
            structure.Add($"the manifest says {pages} pages were saved, the dump's bitmap {kd.DumpablePages}");
        lines.AddRange(structure);
        if (structure.Count > 0) return (Verdict.Corrupt, $"corrupt: {structure[0]}");
        var scan = kd.Scan();
        lines.Add($"{Path.GetFileName(path)}: {kd.DumpablePages} pages in the bitmap: {scan.Ok} read back, {scan.Missing} not saved, {scan.Corrupt} corrupt");
        if (scan.NotPresent > 0)
            scan.Problems.Insert(0, $"{scan.NotPresent} stored pages are marked absent in the 1st bitmap");
        lines.AddRange(scan.Problems);
        if (scan.Corrupt > 0 || scan.NotPresent > 0) return (Verdict.Corrupt, $"corrupt: {scan.Problems[0]}");
        if (kd.Incomplete || scan.StoppedAt is not null || Path.GetFileName(path).Contains("incomplete"))
        {
            reason ??= kd.Incomplete ? "the header says the writer did not finish (killed, power cut or target full)"
                : scan.StoppedAt is ulong at ? $"no page is stored from pfn 0x{at:x} on"
                : "the file is named incomplete";
            return (Verdict.Incomplete, $"incomplete: pages stored up to pfn 0x{scan.LastGoodPfn:x} ({scan.Ok} of {kd.DumpablePages}), {reason}");
        }
        string note = scan.Missing > 0 ? $", {scan.Missing} marked missing (unreadable in the vmcore)" : "";
        return (Verdict.Complete, $"complete, {scan.Ok} pages OK{note}");
    }

    /// <summary>An ELF core (-E): its headers, notes and segments against the file.</summary>
    private static (Verdict, string) CheckElf(string path, List<string> lines)
    {
        using var elf = new ElfVmcore(path);
        lines.AddRange(elf.Problems);
        ulong pages = 0;
        foreach (var s in elf.Segments) pages += s.FileSize / (ulong)elf.PageSize;
        if (elf.TruncationWarning is { } cut) return (Verdict.Incomplete, $"incomplete: {cut}");
        if (elf.Problems.Count > 0) return (Verdict.Corrupt, $"corrupt: {elf.Problems[0]}");
        return (Verdict.Complete, $"complete ELF core, {elf.Segments.Count} segments, {pages} pages of data" +
                                  (elf.Info is null ? " (no VMCOREINFO: its log and kernel data cannot be read)" : ""));
    }

    /// <summary>
    /// A flattened stream: every record read and judged as rearranging would (nothing written),
    /// up to the end marker, with nothing after it.
    /// </summary>
    private static (Verdict, string) CheckFlattened(string path)
    {
        using var f = InputFile.OpenStream(path, 1 << 20);
        long length = f.Length;
        var outcome = new FlattenedReader(f, length).CopyTo(static (_, _) => { });
        if (outcome.Cut) return (Verdict.Incomplete, $"incomplete: {outcome.Describe("the flattened stream")}");
        if (!outcome.Ended) return (Verdict.Corrupt, $"corrupt: {outcome.Describe("the flattened stream")}");
        long after = length - (outcome.StreamOffset + 16);
        if (after != 0) return (Verdict.Corrupt, $"corrupt: {after} bytes after the end marker");
        return (Verdict.Complete, $"complete flattened stream, {outcome.Records} records (rearrange it to check its pages)");
    }
}

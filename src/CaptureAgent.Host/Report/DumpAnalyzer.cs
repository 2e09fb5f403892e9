using System.Text;
using CaptureAgent.Common;
using CaptureAgent.Dmesg;
using CaptureAgent.Dump;
using CaptureAgent.Translation;
using CaptureAgent.Vmcore;

namespace CaptureAgent.Report;

/// <summary>
/// What crashed: reads a dump entry's kernel log — the saved file, else the tail of the vmcore's
/// printk buffer — for the panic report and its signature.
/// </summary>
public static class DumpAnalyzer
{
    /// <param name="readVmcoreLog">Whether the vmcore may be read when no log file was saved (slower on big dumps).</param>
    public static void Analyze(DumpEntry e, bool readVmcoreLog = true)
    {
        if (e.DmesgFile is not null && e.DmesgBytes > 0) FromLogFile(e);
        if (e.Panic is null && readVmcoreLog && e.DumpFile is not null && e.DumpFormat is "kdump-compressed" or "elf") FromVmcore(e);
        if (e.Panic is null)
        {
            NoteMissingPanic(e);
            return;
        }
        e.KernelRelease ??= e.Panic.KernelRelease;
        e.Signature = CrashSignature.From(e.Panic);
    }

    private static void FromLogFile(DumpEntry e)
    {
        try
        {
            e.Panic = PanicAnalysis.AnalyzeFile(Path.Combine(e.Directory, e.DmesgFile!));
            e.LogSource = e.DmesgFile;
        }
        catch (Exception x) when (x is IOException or UnauthorizedAccessException)
        {
            e.Problems.Add($"{e.DmesgFile}: {ErrorText.Of(x)}");
        }
    }

    private static void FromVmcore(DumpEntry e)
    {
        try
        {
            var text = ReadVmcoreLog(Path.Combine(e.Directory, e.DumpFile!));
            e.Panic = PanicAnalysis.Analyze(text, e.KernelRelease);
            e.LogSource = "vmcore";
        }
        // A damaged dump can break the ring walk in any way: say so and go on with the other dumps.
        catch (Exception x) when (x is not OutOfMemoryException)
        {
            e.Problems.Add($"kernel log not readable from {e.DumpFile}: {ErrorText.Of(x)}");
        }
    }

    private static void NoteMissingPanic(DumpEntry e)
    {
        if (e.DmesgFile is null && e.LogSource is null && !e.Problems.Any(p => p.StartsWith("kernel log not readable", StringComparison.Ordinal)))
            e.Problems.Add("no kernel log saved and none read from the dump");
        else if (e.LogSource is not null) e.Problems.Add($"no panic, oops or lockup report found in the log ({e.LogSource})");
    }

    /// <summary>The tail of the crashed kernel's log from a vmcore (ELF or kdump-compressed).</summary>
    public static string ReadVmcoreLog(string path)
    {
        using var mem = DumpOpener.OpenMemory(path, out var info, out var segments);
        if (info is null) throw new VmcoreException($"{Path.GetFileName(path)} has no VMCOREINFO");
        var tables = X86_64PageTables.FromVmcoreInfo((IPhysicalMemory)mem, info, segments);
        var log = new PrintkLog(new KernelMemory((IPhysicalMemory)mem, tables), info);
        var tail = new TailStream(PanicAnalysis.TailBytes);
        log.WriteTo(tail);
        return Encoding.Latin1.GetString(tail.ToArray());
    }
}

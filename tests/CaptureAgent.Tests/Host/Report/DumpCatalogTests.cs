using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using CaptureAgent.Cli;
using CaptureAgent.Output;
using CaptureAgent.Report;
using Xunit;
using CaptureAgent.Common;
using CaptureAgent.Formats;

namespace CaptureAgent.Tests.Host.Report;

public class DumpCatalogTests
{
    /// <summary>
    /// The header blocks of a kdump-compressed file (what `report` reads), with a VMCOREINFO note;
    /// no bitmaps or pages.
    /// </summary>
    internal static void WriteKdumpHeader(string path, string node, string release, long crashTime, bool incomplete = false, int padTo = 0)
    {
        string info = $"OSRELEASE={release}\nPAGESIZE=4096\n" + (crashTime > 0 ? $"CRASHTIME={crashTime}\n" : "");
        var desc = Encoding.ASCII.GetBytes(info);
        var note = new byte[12 + 12 + ((desc.Length + 3) & ~3)];
        BinaryPrimitives.WriteInt32LittleEndian(note, 11);
        BinaryPrimitives.WriteInt32LittleEndian(note.AsSpan(4), desc.Length);
        "VMCOREINFO"u8.CopyTo(note.AsSpan(12));
        desc.CopyTo(note, 24);
        var h = new KdumpHeader
        {
            Utsname = KdumpHeader.MakeUtsname("Linux", node, release, "#1 SMP PREEMPT_DYNAMIC Debian", "x86_64", "(none)"),
            CrashTime = crashTime,
            Status = incomplete ? KdumpHeader.StatusIncomplete : 0,
            Notes = note,
            VmcoreInfoOffsetInNotes = 24,
            VmcoreInfoSize = desc.Length,
        };
        using var f = File.Create(path);
        f.Write(h.BuildMainHeader());
        f.Position = h.BlockSize;
        f.Write(h.BuildSubHeader());
        f.Write(note);
        if (f.Length < padTo) f.SetLength(padTo);
    }

    private static string Dir(TempDir t, string rel) => Directory.CreateDirectory(Path.Combine(t.Path, rel)).FullName;

    private static void Manifest(string dir, bool complete, string? reason, string crashTime, params (string Name, long Size)[] files)
    {
        var sb = new StringBuilder();
        sb.Append("{\n  \"version\": 1,\n  \"complete\": ").Append(complete ? "true" : "false")
          .Append(",\n  \"incomplete_reason\": ").Append(reason is null ? "null" : JsonSerializerEscape(reason))
          .Append(",\n  \"host\": \"web1\",\n  \"kernel_release\": \"6.1.0-21-amd64\",\n  \"crash_time\": \"").Append(crashTime).Append("\",\n")
          .Append("  \"dump_level\": 31,\n  \"compression\": \"zstd\",\n  \"format\": \"kdump-compressed\",\n  \"files\": [");
        sb.AppendJoin(',', files.Select(f => $"\n    {{ \"name\": \"{f.Name}\", \"size\": {f.Size}, \"crc64\": \"0123456789abcdef\" }}"));
        sb.Append("\n  ],\n  \"problems\": []\n}\n");
        File.WriteAllText(Path.Combine(dir, "manifest.json"), sb.ToString());
    }

    private static string JsonSerializerEscape(string s) => "\"" + s.Replace("\\", "\\\\").Replace("\"", "\\\"") + "\"";

    [Fact]
    public void CompleteDumpWithManifest()
    {
        using var t = new TempDir();
        var d = Dir(t, "web1-2026-03-01-10:00:07");
        WriteKdumpHeader(Path.Combine(d, "vmcore"), "web1", "6.1.0-21-amd64", 1772359207, padTo: 65536);
        File.WriteAllText(Path.Combine(d, "dmesg.txt"), KernelLogSamples.BugOn);
        long logSize = new FileInfo(Path.Combine(d, "dmesg.txt")).Length;
        Manifest(d, true, null, "2026-03-01T10:00:07Z", ("dmesg.txt", logSize), ("vmcore", 65536));

        var e = Assert.Single(DumpCatalog.Scan(t.Path));
        Assert.Equal(d, e.Directory);
        Assert.Equal("capture-agent", e.Layout);
        Assert.Equal(DumpStatus.Complete, e.Status);
        Assert.Equal("web1", e.Host);
        Assert.Equal("6.1.0-21-amd64", e.KernelRelease);
        Assert.Equal(new DateTimeOffset(2026, 3, 1, 10, 0, 7, TimeSpan.Zero), e.CrashTime);
        Assert.Equal("manifest", e.CrashTimeSource);
        Assert.Equal(("vmcore", "kdump-compressed", 65536L), (e.DumpFile, e.DumpFormat, e.DumpBytes!.Value));
        Assert.Equal(("dmesg.txt", logSize), (e.DmesgFile, e.DmesgBytes!.Value));
        Assert.Equal(65536 + logSize + new FileInfo(Path.Combine(d, "manifest.json")).Length, e.TotalBytes);
        Assert.Equal("dmesg.txt", e.LogSource);
        Assert.Equal("kernel BUG at fs/ext4/inode.c:3698!", e.Panic!.Headline);
        Assert.Equal(CrashSignature.From(PanicAnalysis.Analyze(KernelLogSamples.BugOn)!).Id, e.Signature!.Id);
        Assert.Empty(e.Problems);
    }

    [Fact]
    public void IncompleteDumps()
    {
        using var t = new TempDir();
        // Cut short by a full target: the manifest says why.
        var cut = Dir(t, "web1-2026-03-02-08:00:00");
        WriteKdumpHeader(Path.Combine(cut, "vmcore-incomplete"), "web1", "6.12.117+deb12-amd64", 1772438400, incomplete: true);
        File.WriteAllText(Path.Combine(cut, "dmesg.txt"), KernelLogSamples.SoftLockup);
        Manifest(cut, false, "the target filled up after 1200 of 5000 pages", "2026-03-02T08:00:00Z");
        // Interrupted before the manifest: only the name and header say so.
        var noManifest = Dir(t, "web1-2026-03-03-08:00:00");
        WriteKdumpHeader(Path.Combine(noManifest, "vmcore"), "web1", "6.12.117+deb12-amd64", 1772524800, incomplete: true);
        // A vmcore shorter than its manifest says.
        var shortened = Dir(t, "web1-2026-03-04-08:00:00");
        WriteKdumpHeader(Path.Combine(shortened, "vmcore"), "web1", "6.12.117+deb12-amd64", 1772611200, padTo: 8192);
        Manifest(shortened, true, null, "2026-03-04T08:00:00Z", ("vmcore", 1 << 20));
        // Not a dump at all.
        var garbage = Dir(t, "web1-2026-03-05-08:00:00");
        File.WriteAllText(Path.Combine(garbage, "vmcore"), "this is not a dump\n");

        var all = DumpCatalog.Scan(t.Path);
        Assert.Equal([garbage, shortened, noManifest, cut], all.Select(e => e.Directory));   // newest first
        Assert.All(all, e => Assert.Equal(DumpStatus.Incomplete, e.Status));
        Assert.Equal("manifest: incomplete: the target filled up after 1200 of 5000 pages", all[3].StatusDetail);
        Assert.Equal(CrashKind.SoftLockup, all[3].Panic!.Kind);
        Assert.Contains("DUMP_DH_COMPRESSED_INCOMPLETE", all[2].StatusDetail);
        Assert.Equal("vmcoreinfo", all[2].CrashTimeSource);
        Assert.Equal(new DateTimeOffset(2026, 3, 3, 8, 0, 0, TimeSpan.Zero), all[2].CrashTime);
        Assert.Equal("vmcore is 8192 bytes, the manifest says 1048576 (run capture-agent verify)", all[1].StatusDetail);
        Assert.StartsWith("vmcore unreadable: neither a kdump-compressed, flattened nor ELF dump", all[0].StatusDetail);
        Assert.Equal("directory-name", all[0].CrashTimeSource);
        Assert.Contains(all[0].Problems, p => p.StartsWith("vmcore: neither"));
        Assert.Contains(all[0].Problems, p => p == "no kernel log saved and none read from the dump");

        Assert.Equal([garbage, shortened], DumpCatalog.Scan(t.Path, limit: 2).Select(e => e.Directory));
    }

    [Fact]
    public void OnlyALogAndNestedTemplatesAndLinksNotFollowed()
    {
        using var t = new TempDir();
        // path = /var/crash/{host}/{date}: two levels below the root.
        var nested = Dir(t, "db7/2026-04-01-00:00:00");
        File.WriteAllText(Path.Combine(nested, "dmesg.txt"), KernelLogSamples.HungTask);
        var elsewhere = Dir(t, "../" + Path.GetFileName(t.Path) + "-elsewhere");
        try
        {
            File.WriteAllText(Path.Combine(elsewhere, "dmesg.txt"), KernelLogSamples.OutOfMemory);
            Directory.CreateSymbolicLink(Path.Combine(t.Path, "planted-2026-05-01-00:00:00"), elsewhere);
            File.CreateSymbolicLink(Path.Combine(nested, "vmcore"), Path.Combine(elsewhere, "dmesg.txt"));

            var e = Assert.Single(DumpCatalog.Scan(t.Path));
            Assert.Equal(nested, e.Directory);
            Assert.Equal(DumpStatus.NoVmcore, e.Status);   // the vmcore symlink is not a dump
            Assert.Null(e.DumpFile);
            Assert.Equal(CrashKind.HungTask, e.Panic!.Kind);
            Assert.Equal("6.1.0-21-amd64", e.KernelRelease);   // from the log's "Linux version" line
            // The directory given may be a dump directory itself.
            Assert.Equal(nested, Assert.Single(DumpCatalog.Scan(nested)).Directory);
        }
        finally
        {
            Directory.Delete(elsewhere, recursive: true);
        }
    }

    [Fact]
    public void DefaultDirectoryComesFromTheConfigPath()
    {
        using var t = new TempDir();
        File.WriteAllText(t.File("a.conf"), "target = LABEL=crashdump\npath = /srv/dumps/{host}/{date}\n");
        File.WriteAllText(t.File("b.conf"), "path = /data/crash\n");
        Assert.Equal("/srv/dumps", DumpFinder.DefaultDirectory(t.File("a.conf")));
        Assert.Equal("/data/crash", DumpFinder.DefaultDirectory(t.File("b.conf")));
        Assert.Equal("/var/crash", DumpFinder.DefaultDirectory(t.File("missing.conf")));
    }

    [Fact]
    public void TimesFromDirectoryNames()
    {
        Assert.Equal(new DateTimeOffset(2024, 3, 5, 14, 22, 9, TimeSpan.Zero), DumpLayout.TimeFromName("127.0.0.1-2024-03-05-14:22:09"));
        Assert.Equal(new DateTimeOffset(2024, 3, 5, 14, 22, 9, TimeSpan.Zero), DumpLayout.TimeFromName("web-1-2024-03-05-14:22:09-1"));
        Assert.Equal(new DateTimeOffset(2024, 3, 5, 14, 22, 0, TimeSpan.Zero), DumpLayout.TimeFromName("202403051422"));
        Assert.Null(DumpLayout.TimeFromName("lost+found"));
    }

    [Fact]
    public void TextAndJsonOutput()
    {
        using var t = new TempDir();
        var d = Dir(t, "web1-2026-03-01-10:00:07");
        WriteKdumpHeader(Path.Combine(d, "vmcore"), "web1", "6.12.117+deb12-amd64", 1772359207);
        File.WriteAllText(Path.Combine(d, "dmesg.txt"), KernelLogSamples.WarnPanicOnWarn);
        var entries = DumpCatalog.Scan(t.Path);

        string text = ReportCommand.FormatText(entries);
        var lines = text.Split('\n');
        Assert.Matches(@"^CRASH TIME \(UTC\)\s+HOST\s+KERNEL\s+STATUS\s+SIZE\s+SIGNATURE\s+CRASH$", lines[0]);
        Assert.Matches(@"^2026-03-01T10:00:07Z\s+web1\s+6\.12\.117\+deb12-amd64\s+unverified\s+\d+ B\s+sig:[0-9a-f]{16}\s+WARNING: CPU: 0 PID: 1873 at lib/refcount.c:28 refcount_warn_saturate\+0xba/0x110$", lines[1]);
        Assert.Contains("  panic:      Kernel panic - not syncing: kernel: panic_on_warn set ...\n", text);
        Assert.Contains("  tainted:    GWO\n", text);
        Assert.Contains("  call trace:\n    foo_conn_put+0x4e/0x60 [foomod]\n    foo_release_work+0x2b/0x80 [foomod]\n", text);

        var ms = new MemoryStream();
        ReportCommand.WriteJson(ms, entries);
        using var doc = JsonDocument.Parse(ms.ToArray());
        var e = Assert.Single(doc.RootElement.EnumerateArray().ToList());
        Assert.Equal("web1", e.GetProperty("host").GetString());
        Assert.Equal("2026-03-01T10:00:07Z", e.GetProperty("crash_time").GetString());
        Assert.Equal("unverified", e.GetProperty("status").GetString());
        Assert.Equal("warning", e.GetProperty("crash").GetProperty("kind").GetString());
        Assert.Equal("refcount_warn_saturate+0xba/0x110", e.GetProperty("crash").GetProperty("rip").GetString());
        Assert.Equal(7, e.GetProperty("crash").GetProperty("call_trace").GetArrayLength());
        Assert.Equal(entries[0].Signature!.Id, e.GetProperty("signature").GetProperty("id").GetString());
        Assert.Equal(["foo_conn_put", "foo_release_work", "process_one_work", "worker_thread"],
            e.GetProperty("signature").GetProperty("frames").EnumerateArray().Select(f => f.GetString()!));
        Assert.Contains("\"rip\": \"refcount_warn_saturate+0xba/0x110\"", Encoding.UTF8.GetString(ms.ToArray()));   // '+' unescaped
    }

    [Fact]
    public void CommandLineErrors()
    {
        Assert.Equal(ExitCodes.Usage, ReportCommand.Run(["--limit", "zero"]));
        Assert.Equal(ExitCodes.Usage, ReportCommand.Run(["/a", "/b"]));
        Assert.Equal(ExitCodes.Failed, ReportCommand.Run(["/nonexistent/crash/dir"]));
    }
}

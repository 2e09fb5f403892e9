using System.Text.RegularExpressions;
using CaptureAgent.Compression;
using CaptureAgent.Dump;
using CaptureAgent.Filtering;
using CaptureAgent.Report;
using CaptureAgent.Tests.Engine.Dump;
using CaptureAgent.Vmcore;
using Xunit;
using Xunit.Abstractions;
using CaptureAgent.Formats;

namespace CaptureAgent.Tests.Integration;

/// <summary>
/// Every codec of the kdump format between us and the other tools, on a real vmcore: makedumpfile
/// (Debian's 1.7.2 has lzo and zlib) reads and re-filters ours and we read, verify and re-filter
/// its; libkdumpfile and crash (both built with lzo, snappy and zstd in Debian) read ours.
/// </summary>
[Trait("Category", "Fixture")]
public class CodecInteropTests(ITestOutputHelper log)
{
    private const string Fx = "6.1-1024";

    private static string Digest(string path) =>
        Regex.Match(Fixtures.Sh($"/usr/bin/python3 {Fixtures.OracleScript("kdumpfile_digest.py")} {path}"), "digest ([0-9a-f]{64})").Groups[1].Value;

    /// <summary>makedumpfile decompresses every page of ours when it filters our dump again, and reads its log.</summary>
    [Theory]
    [InlineData(PageCodec.Lzo)]
    [InlineData(PageCodec.Zlib)]
    public void MakedumpfileRefiltersOurDump(PageCodec codec)
    {
        using var dir = new TempDir();
        var vmcore = Fixtures.Vmcore(Fx);
        SyntheticDumpTests.Dump(vmcore, dir.File("ours"), new DumpOptions { Level = DumpLevel.Zero, Codec = codec });
        var r = Fixtures.Exec(Fixtures.Makedumpfile, ["-d", "31", "-c", dir.File("ours"), dir.File("refiltered")]);
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal(0, Fixtures.Exec(Fixtures.Makedumpfile, ["-d", "31", "-c", vmcore, dir.File("direct")]).ExitCode);
        Assert.Equal(0, KdumpFileFacts.CountDifferentBits(KdumpFileFacts.Read(dir.File("refiltered")).Bitmap2, KdumpFileFacts.Read(dir.File("direct")).Bitmap2));
        Assert.Equal(Digest(dir.File("direct")), Digest(dir.File("refiltered")));
        Assert.Equal(0, Fixtures.Exec(Fixtures.Makedumpfile, ["--dump-dmesg", dir.File("ours"), dir.File("dmesg.txt")]).ExitCode);
        Assert.Contains("sysrq triggered crash", File.ReadAllText(dir.File("dmesg.txt")));
    }

    /// <summary>libkdumpfile reads the same page content from our lzo and snappy dumps as from makedumpfile's; crash opens them.</summary>
    [Theory]
    [InlineData(PageCodec.Lzo)]
    [InlineData(PageCodec.Snappy)]
    public void LibkdumpfileAndCrashReadOurDump(PageCodec codec)
    {
        using var dir = new TempDir();
        var vmcore = Fixtures.Vmcore(Fx);
        SyntheticDumpTests.Dump(vmcore, dir.File("ours"), new DumpOptions { Level = DumpLevel.All, Codec = codec });
        Assert.Equal(0, Fixtures.Exec(Fixtures.Makedumpfile, ["-d", "31", "-l", vmcore, dir.File("theirs")]).ExitCode);
        Assert.Equal(Digest(dir.File("theirs")), Digest(dir.File("ours")));
        var r = Fixtures.Exec("/usr/bin/crash", ["-s", Fixtures.Vmlinux(Fx), dir.File("ours")], stdin: "sys\nbt\nlog | grep CAPTURE-FIXTURE-MARKER\nquit\n");
        log.WriteLine(r.Stdout + r.Stderr);
        Assert.Contains("PANIC: \"Kernel panic - not syncing: sysrq triggered crash\"", r.Stdout);
        Assert.Contains("sysrq_handle_crash", r.Stdout);
        Assert.Contains("CAPTURE-FIXTURE-MARKER " + Fixtures.Marker(Fx).Split(' ')[^1], r.Stdout);
    }

    /// <summary>
    /// A makedumpfile dump (RHEL's default collector is -l) is complete to `verify`, its log is the
    /// vmcore's to `dmesg`, and `report` finds the panic in it with no dmesg file beside it.
    /// </summary>
    [Theory]
    [InlineData("-l")]
    [InlineData("-c")]
    [InlineData("")]
    public void VerifyDmesgAndReportReadMakedumpfilesDump(string codecOption)
    {
        using var dir = new TempDir();
        var vmcore = Fixtures.Vmcore(Fx);
        string crashDir = Directory.CreateDirectory(dir.File("crash/127.0.0.1-2026-01-01-00:00:00")).FullName;
        string dump = Path.Combine(crashDir, "vmcore");
        var args = new List<string> { "-d", "31", "--message-level", "0" };
        if (codecOption.Length > 0) args.Add(codecOption);
        Assert.Equal(0, Fixtures.Exec(Fixtures.Makedumpfile, [.. args, vmcore, dump]).ExitCode);

        var lines = new List<string>();
        var (exit, summary) = CaptureAgent.Dump.DumpVerifier.Verify(dump, lines);
        Assert.True(exit == 0, summary + "\n" + string.Join("\n", lines));
        using (var kd = new KdumpFile(dump))
        {
            var scan = kd.Scan();
            Assert.Equal((kd.DumpablePages, 0UL, 0UL), (scan.Ok, scan.Missing, scan.Corrupt));
        }

        Assert.Equal(0, CaptureAgent.Cli.DmesgCommand.Run([vmcore, dir.File("from-vmcore.txt")]));
        Assert.Equal(0, CaptureAgent.Cli.DmesgCommand.Run([dump, dir.File("from-dump.txt")]));
        Assert.Equal(File.ReadAllText(dir.File("from-vmcore.txt")), File.ReadAllText(dir.File("from-dump.txt")));

        var e = Assert.Single(DumpCatalog.Scan(dir.File("crash")));
        Assert.Equal("vmcore", e.LogSource);
        Assert.Equal("sysrq triggered crash", e.Panic!.PanicMessage);
        Assert.Empty(e.Problems);
    }

    /// <summary>
    /// We filter makedumpfile's -l dump again, as makedumpfile does: the same pages as makedumpfile's
    /// own re-filtering and as a dump of the vmcore at that level, with the same content.
    /// </summary>
    [Fact]
    public void WeRefilterMakedumpfilesLzoDumpAsItDoes()
    {
        using var dir = new TempDir();
        var vmcore = Fixtures.Vmcore(Fx);
        Assert.Equal(0, Fixtures.Exec(Fixtures.Makedumpfile, ["-d", "1", "-l", vmcore, dir.File("lzo-d1")]).ExitCode);
        var r = SyntheticDumpTests.Dump(dir.File("lzo-d1"), dir.File("ours"), new DumpOptions { Level = DumpLevel.All, Codec = PageCodec.Snappy });
        Assert.Empty(r.Problems);
        Assert.Equal(0, Fixtures.Exec(Fixtures.Makedumpfile, ["-d", "31", "-l", dir.File("lzo-d1"), dir.File("theirs")]).ExitCode);
        var ours = KdumpFileFacts.Read(dir.File("ours"));
        var theirs = KdumpFileFacts.Read(dir.File("theirs"));
        Assert.Equal(theirs.Bitmap1, ours.Bitmap1);
        Assert.Equal(0, KdumpFileFacts.CountDifferentBits(theirs.Bitmap2, ours.Bitmap2));
        Assert.Equal((theirs.MaxMapnr, theirs.PhysBase, theirs.SizeNote), (ours.MaxMapnr, ours.PhysBase, ours.SizeNote));
        Assert.Equal(theirs.Utsname, ours.Utsname);
        Assert.Equal(Digest(dir.File("theirs")), Digest(dir.File("ours")));
        RealVmcoreTests.AssertEveryStoredPageEqualsVmcore(vmcore, dir.File("ours"));
        log.WriteLine($"re-filtered {r.DumpablePages} pages, identical to makedumpfile's re-filtering");
    }
}

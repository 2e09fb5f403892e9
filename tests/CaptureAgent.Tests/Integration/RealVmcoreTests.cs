using System.Text.RegularExpressions;
using CaptureAgent.Compression;
using CaptureAgent.Dump;
using CaptureAgent.Filtering;
using CaptureAgent.Tests.Engine.Dump;
using CaptureAgent.Vmcore;
using Xunit;
using Xunit.Abstractions;
using CaptureAgent.Formats;

namespace CaptureAgent.Tests.Integration;

/// <summary>
/// Real vmcores of Debian 6.1 and 6.12 kernels against the oracles: makedumpfile (page selection,
/// header, dmesg, reading our zlib files), libkdumpfile (page content), crash and drgn (opening the dump).
/// </summary>
[Trait("Category", "Fixture")]
[Trait("Category", "Binary")]
public class RealVmcoreTests(ITestOutputHelper log)
{
    // Debian's makedumpfile 1.7.2 predates 6.12: it misclassifies 6.12 slab and hugetlb pages, so
    // levels with bit 8 are compared only against an upstream build (MAKEDUMPFILE_UPSTREAM).
    public static TheoryData<string, int> Selections()
    {
        var d = new TheoryData<string, int>();
        foreach (int l in new[] { 0, 1, 2, 4, 8, 16, 31 }) d.Add("6.1-1024", l);
        foreach (int l in new[] { 1, 31 }) d.Add("6.1-2048", l);
        foreach (int l in new[] { 1, 31 }) d.Add("6.1-1024-la57", l);
        foreach (int l in new[] { 0, 1, 2, 4, 16 }) d.Add("6.12-1024", l);
        return d;
    }

    [Theory]
    [MemberData(nameof(Selections))]
    public void PageSelectionAndHeaderEqualMakedumpfile(string fixture, int level) =>
        CompareWithMakedumpfile(fixture, level, Fixtures.Makedumpfile);

    /// <summary>
    /// 6.12 at levels with bit 8, where Debian's makedumpfile 1.7.2 is wrong: every page on which we
    /// differ from it is classified again by drgn from the kernel's DWARF (struct page, PG_* and
    /// PGTY_* from debug info, not VMCOREINFO), and our choice must be the one the user-data rule
    /// gives. With MAKEDUMPFILE_UPSTREAM set, the bitmaps must also equal an upstream build's.
    /// </summary>
    [Theory]
    [InlineData(8)]
    [InlineData(31)]
    public void PageSelectionOn612FollowsTheKernelsOwnTypesWhereDebiansMakedumpfileIsWrong(int level)
    {
        const string fx = "6.12-1024";
        using var dir = new TempDir();
        var vmcore = Fixtures.Vmcore(fx);
        SyntheticDumpTests.Dump(vmcore, dir.File("ours"), new DumpOptions { Level = (DumpLevel)level });
        Assert.Equal(0, Fixtures.Exec(Fixtures.Makedumpfile, ["-d", level.ToString(), vmcore, dir.File("debian")]).ExitCode);
        var ours = KdumpFileFacts.Read(dir.File("ours")).Bitmap2;
        var debian = KdumpFileFacts.Read(dir.File("debian")).Bitmap2;
        var differing = new List<long>();
        for (int i = 0; i < ours.Length; i++)
            for (int b = 0; b < 8; b++)
                if (((ours[i] ^ debian[i]) >> b & 1) != 0) differing.Add(i * 8L + b);
        log.WriteLine($"{differing.Count} pages differ from makedumpfile 1.7.2 at -d {level}");
        Assert.NotEmpty(differing);   // 1.7.2 takes 6.12 slab pages for anonymous ones
        File.WriteAllText(dir.File("pfns"), string.Join(' ', differing));
        var r = Fixtures.Exec("/usr/bin/drgn", ["-c", vmcore, "-s", Fixtures.Vmlinux(fx), Fixtures.OracleScript("drgn_user_pages.py"), dir.File("pfns")]);
        Assert.True(r.ExitCode == 0, r.Stderr);
        int checkedPages = 0;
        foreach (var line in r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var parts = line.Split(' ');
            long pfn = long.Parse(parts[0]);
            bool userPage = parts[1] == "1";
            bool kept = (ours[pfn / 8] >> (int)(pfn % 8) & 1) != 0;
            Assert.True(kept != userPage, $"pfn {pfn:x}: drgn says user={userPage}, we kept={kept}");
            checkedPages++;
        }
        Assert.Equal(differing.Count, checkedPages);

        if (Fixtures.UpstreamMakedumpfile is { } upstream) CompareWithMakedumpfile(fx, level, upstream);
    }

    private void CompareWithMakedumpfile(string fixture, int level, string makedumpfile)
    {
        using var dir = new TempDir();
        var vmcore = Fixtures.Vmcore(fixture);
        var r = SyntheticDumpTests.Dump(vmcore, dir.File("ours"), new DumpOptions { Level = (DumpLevel)level, Codec = PageCodec.Zstd });
        Assert.Empty(r.Problems);
        var mdf = Fixtures.Exec(makedumpfile, ["-d", level.ToString(), vmcore, dir.File("theirs")]);
        Assert.True(mdf.ExitCode == 0, mdf.Stderr);

        var ours = KdumpFileFacts.Read(dir.File("ours"));
        var theirs = KdumpFileFacts.Read(dir.File("theirs"));
        Assert.Equal(theirs.MaxMapnr, ours.MaxMapnr);
        Assert.Equal(theirs.BlockSize, ours.BlockSize);
        Assert.Equal(theirs.SubHeaderBlocks, ours.SubHeaderBlocks);
        Assert.Equal(theirs.BitmapBlocks, ours.BitmapBlocks);
        Assert.Equal(theirs.NrCpus, ours.NrCpus);
        Assert.Equal(theirs.PhysBase, ours.PhysBase);
        Assert.Equal(theirs.Utsname, ours.Utsname);
        Assert.Equal((theirs.OffsetNote, theirs.SizeNote, theirs.OffsetVmcoreinfo, theirs.SizeVmcoreinfo),
                     (ours.OffsetNote, ours.SizeNote, ours.OffsetVmcoreinfo, ours.SizeVmcoreinfo));
        Assert.Equal(0, KdumpFileFacts.CountDifferentBits(theirs.Bitmap1, ours.Bitmap1));
        Assert.Equal(0, KdumpFileFacts.CountDifferentBits(theirs.Bitmap2, ours.Bitmap2));
        log.WriteLine($"{fixture} -d {level}: {r.DumpablePages} pages selected, identical bitmaps");
    }

    [Theory]
    [InlineData("6.1-1024", 31)]
    [InlineData("6.1-1024", 1)]
    [InlineData("6.12-1024", 31)]
    public void LibkdumpfileReadsTheSamePageContentAsFromMakedumpfilesFile(string fixture, int level)
    {
        using var dir = new TempDir();
        var vmcore = Fixtures.Vmcore(fixture);
        SyntheticDumpTests.Dump(vmcore, dir.File("ours"), new DumpOptions { Level = (DumpLevel)level });
        // Content is compared only through page sets both tools agree on; 6.12 -d 31 needs a 6.12-aware makedumpfile.
        string mdf = fixture.StartsWith("6.12") ? Fixtures.UpstreamMakedumpfile ?? "" : Fixtures.Makedumpfile;
        string ours = Fixtures.Sh($"/usr/bin/python3 {Fixtures.OracleScript("kdumpfile_digest.py")} {dir.File("ours")}");
        Assert.Contains("release " + Fixtures.Release(fixture), ours);
        if (mdf.Length == 0)
        {
            // No 6.12-aware makedumpfile: check the content of every page we stored against the vmcore directly.
            AssertEveryStoredPageEqualsVmcore(vmcore, dir.File("ours"));
            return;
        }
        Assert.Equal(0, Fixtures.Exec(mdf, ["-d", level.ToString(), vmcore, dir.File("theirs")]).ExitCode);
        string theirs = Fixtures.Sh($"/usr/bin/python3 {Fixtures.OracleScript("kdumpfile_digest.py")} {dir.File("theirs")}");
        log.WriteLine(ours);
        Assert.Equal(Digest(theirs), Digest(ours));
    }

    private static string Digest(string oracleOutput) => Regex.Match(oracleOutput, "digest ([0-9a-f]{64})").Groups[1].Value;

    [Theory]
    [InlineData("6.1-1024", PageCodec.Zlib)]
    [InlineData("6.12-1024", PageCodec.Zstd)]
    public void EveryStoredPageEqualsTheVmcore(string fixture, PageCodec codec)
    {
        using var dir = new TempDir();
        var vmcore = Fixtures.Vmcore(fixture);
        SyntheticDumpTests.Dump(vmcore, dir.File("ours"), new DumpOptions { Level = DumpLevel.Zero, Codec = codec });
        AssertEveryStoredPageEqualsVmcore(vmcore, dir.File("ours"));
    }

    internal static void AssertEveryStoredPageEqualsVmcore(string vmcore, string dump)
    {
        using var elf = new ElfVmcore(vmcore);
        using var kd = new KdumpFile(dump);
        var a = new byte[4096];
        var b = new byte[4096];
        ulong checkedPages = 0;
        for (ulong pfn = 0; pfn < kd.MaxPfn; pfn++)
        {
            if (!kd.IsDumpable(pfn)) continue;
            Assert.True(kd.TryReadPage(pfn, a), $"pfn {pfn:x} unreadable in the dump");
            Assert.True(elf.TryRead(pfn * 4096, b), $"pfn {pfn:x} unreadable in the vmcore");
            Assert.True(a.AsSpan().SequenceEqual(b), $"pfn {pfn:x} differs");
            checkedPages++;
        }
        Assert.Equal(kd.DumpablePages, checkedPages);
        Assert.True(checkedPages > 10_000);
    }

    [Theory]
    [InlineData("6.1-1024")]
    [InlineData("6.12-1024")]
    public void DmesgEqualsMakedumpfileFromVmcoreAndFromOurDump(string fixture)
    {
        using var dir = new TempDir();
        var vmcore = Fixtures.Vmcore(fixture);
        Assert.Equal(0, CaptureAgent.Cli.DmesgCommand.Run([vmcore, dir.File("ours.txt")]));
        SyntheticDumpTests.Dump(vmcore, dir.File("dump"), new DumpOptions { Level = DumpLevel.All });
        Assert.Equal(0, CaptureAgent.Cli.DmesgCommand.Run([dir.File("dump"), dir.File("fromdump.txt")]));
        var ours = File.ReadAllText(dir.File("ours.txt"));
        Assert.Equal(ours, File.ReadAllText(dir.File("fromdump.txt")));
        Assert.Contains("CAPTURE-FIXTURE-MARKER " + Fixtures.Marker(fixture).Split(' ')[^1], ours);
        Assert.Contains("Kernel panic - not syncing: sysrq triggered crash", ours);

        // Debian's makedumpfile 1.7.2 prints no caller ids ("[  T123] "): strip ours to compare byte for byte.
        Assert.Equal(0, Fixtures.Exec(Fixtures.Makedumpfile, ["--dump-dmesg", vmcore, dir.File("mdf.txt")]).ExitCode);
        var stripped = Regex.Replace(ours, @"^(\[[ 0-9]+\.[0-9]{6}\] )\[ *[TC][0-9]+\] ", "$1", RegexOptions.Multiline);
        var mdfText = File.ReadAllText(dir.File("mdf.txt"));
        if (mdfText.Contains("] [      T0] ")) Assert.Equal(mdfText, ours);   // a makedumpfile that prints caller ids
        else Assert.Equal(mdfText, stripped.Replace("\n" + new string(' ', 26), "\n" + new string(' ', 15)));
        if (Fixtures.UpstreamMakedumpfile is { } up)
        {
            Assert.Equal(0, Fixtures.Exec(up, ["--dump-dmesg", vmcore, dir.File("up.txt")]).ExitCode);
            Assert.Equal(File.ReadAllText(dir.File("up.txt")), ours);
        }
    }

    [Fact]
    public void MakedumpfileReadsOurZlibDump()
    {
        using var dir = new TempDir();
        var vmcore = Fixtures.Vmcore("6.1-1024");
        SyntheticDumpTests.Dump(vmcore, dir.File("ours.zlib"), new DumpOptions { Level = DumpLevel.Zero, Codec = PageCodec.Zlib });
        // makedumpfile re-filters a kdump-compressed input: it must decompress every page we wrote.
        var r = Fixtures.Exec(Fixtures.Makedumpfile, ["-d", "31", dir.File("ours.zlib"), dir.File("refiltered")]);
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal(0, Fixtures.Exec(Fixtures.Makedumpfile, ["-d", "31", vmcore, dir.File("direct")]).ExitCode);
        var a = KdumpFileFacts.Read(dir.File("refiltered"));
        var b = KdumpFileFacts.Read(dir.File("direct"));
        Assert.Equal(0, KdumpFileFacts.CountDifferentBits(a.Bitmap2, b.Bitmap2));
        Assert.Equal(0, Fixtures.Exec(Fixtures.Makedumpfile, ["--dump-dmesg", dir.File("ours.zlib"), dir.File("dmesg.txt")]).ExitCode);
        Assert.Contains("sysrq triggered crash", File.ReadAllText(dir.File("dmesg.txt")));
        Assert.Equal(Digest(Fixtures.Sh($"/usr/bin/python3 {Fixtures.OracleScript("kdumpfile_digest.py")} {dir.File("refiltered")}")),
                     Digest(Fixtures.Sh($"/usr/bin/python3 {Fixtures.OracleScript("kdumpfile_digest.py")} {dir.File("direct")}")));
    }

    [Fact]
    public void ElfOutputHasMakedumpfilesLoadsAndCrashOpensIt()
    {
        using var dir = new TempDir();
        var fx = "6.1-1024";
        var vmcore = Fixtures.Vmcore(fx);
        SyntheticDumpTests.Dump(vmcore, dir.File("ours.elf"), new DumpOptions { Level = DumpLevel.All, Format = DumpFormat.Elf, Codec = PageCodec.None });
        Assert.Equal(0, Fixtures.Exec(Fixtures.Makedumpfile, ["-E", "-d", "31", vmcore, dir.File("theirs.elf")]).ExitCode);
        using (var ours = new ElfVmcore(dir.File("ours.elf")))
        using (var theirs = new ElfVmcore(dir.File("theirs.elf")))
        {
            Assert.Equal(theirs.Segments.Select(s => (s.PhysStart, s.VirtStart, s.FileSize, s.MemSize)),
                         ours.Segments.Select(s => (s.PhysStart, s.VirtStart, s.FileSize, s.MemSize)));
            Assert.Equal(theirs.NoteBlob, ours.NoteBlob);
        }
        var r = Fixtures.Exec("/usr/bin/crash", ["-s", Fixtures.Vmlinux(fx), dir.File("ours.elf")], stdin: "sys\nbt\nquit\n");
        Assert.Contains("PANIC: \"Kernel panic - not syncing: sysrq triggered crash\"", r.Stdout);
        Assert.Contains("sysrq_handle_crash", r.Stdout);
    }

    [Fact]
    public void FlattenedStreamOnStdoutIsWhatMakedumpfileRearrangesIntoOurFile()
    {
        using var dir = new TempDir();
        var vmcore = Fixtures.Vmcore("6.1-1024");
        Fixtures.Sh($"{Fixtures.Binary} dump -q -F -d 31 {vmcore} | {Fixtures.Makedumpfile} -R {dir.File("rearranged")}");
        Assert.Equal(0, Fixtures.Exec(Fixtures.Binary, ["dump", "-q", "-d", "31", vmcore, dir.File("direct")]).ExitCode);
        Assert.True(File.ReadAllBytes(dir.File("direct")).AsSpan().SequenceEqual(File.ReadAllBytes(dir.File("rearranged"))));
    }

    [Fact]
    public void CrashOpensOurZstdDumpOf61()
    {
        using var dir = new TempDir();
        var fx = "6.1-1024";
        SyntheticDumpTests.Dump(Fixtures.Vmcore(fx), dir.File("dump"), new DumpOptions { Level = DumpLevel.All });
        var r = Fixtures.Exec("/usr/bin/crash", ["-s", Fixtures.Vmlinux(fx), dir.File("dump")],
            stdin: "sys\nbt\nlog | grep CAPTURE-FIXTURE-MARKER\nlist task_struct.tasks -s task_struct.comm -h init_task\nquit\n");
        log.WriteLine(r.Stdout);
        Assert.Contains("PANIC: \"Kernel panic - not syncing: sysrq triggered crash\"", r.Stdout);
        Assert.Contains("sysrq_handle_crash", r.Stdout);
        Assert.Contains("CAPTURE-FIXTURE-MARKER " + Fixtures.Marker(fx).Split(' ')[^1], r.Stdout);
        Assert.Contains("comm = \"fixturemarker", r.Stdout);   // a task of the fixture workload
    }

    [Theory]
    [InlineData("6.1-1024", true)]
    [InlineData("6.12-1024", false)]   // drgn 0.0.22 cannot unwind 6.12's ORC; release and log still read
    public void DrgnOpensOurDump(string fx, bool unwind)
    {
        using var dir = new TempDir();
        SyntheticDumpTests.Dump(Fixtures.Vmcore(fx), dir.File("dump"), new DumpOptions { Level = DumpLevel.All });
        var r = Fixtures.Exec("/usr/bin/drgn", ["-c", dir.File("dump"), "-s", Fixtures.Vmlinux(fx), Fixtures.OracleScript("drgn_check.py")]);
        log.WriteLine(r.Stdout + r.Stderr);
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("release " + Fixtures.Release(fx), r.Stdout);
        Assert.Contains("marker CAPTURE-FIXTURE-MARKER " + Fixtures.Marker(fx).Split(' ')[^1], r.Stdout);
        if (unwind) Assert.Contains("sysrq_handle_crash", r.Stdout);
    }
}

/// <summary>QEMU's dump-guest-memory ELF (BIOS and device ranges included, no kexec segments) as input.</summary>
[Trait("Category", "Fixture")]
public class QemuElfInputTests
{
    [Fact]
    public void QemuDumpIsFilteredAndItsLogRead()
    {
        var elf = Fixtures.QemuElf("6.1-1024-qemu");
        using var dir = new TempDir();
        var r = SyntheticDumpTests.Dump(elf, dir.File("dump"), new DumpOptions { Level = DumpLevel.All });
        Assert.Empty(r.Problems);
        Assert.True(r.Filter!.Free > 10_000 && r.Filter.Cache > 10_000, $"free {r.Filter.Free}, cache {r.Filter.Cache}");
        Assert.Equal(0, CaptureAgent.Cli.DmesgCommand.Run([dir.File("dump"), dir.File("dmesg.txt")]));
        Assert.Contains("CAPTURE-FIXTURE-MARKER", File.ReadAllText(dir.File("dmesg.txt")));
        using var kd = new KdumpFile(dir.File("dump"));
        Assert.Equal("6.1.0", kd.Header.Field(2)[..5]);
    }
}

using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using CaptureAgent.Tests.Integration;
using Xunit;

namespace CaptureAgent.Tests.Fuzz;

/// <summary>
/// The inputs that once killed, hung or fooled the agent (issue 12, and what the fuzz runs found),
/// kept as fixed cases: each runs the published binary under the fuzz rules (no signal, no hang, no
/// internal name, RSS within 32 MiB) and checks the answer it must give now.
/// </summary>
[Trait("Category", "Fuzz")]
[Trait("Category", "Binary")]
[Collection("fuzz")]
public partial class RegressionTests : IDisposable
{
    private readonly string _dir = Path.Combine(FuzzInputs.Work, "regressions-" + Guid.NewGuid().ToString("N"));
    private readonly MetadataVmcore _meta = FuzzInputs.Synthetic(false);

    public RegressionTests() => Directory.CreateDirectory(_dir);

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    [LibraryImport("libc", EntryPoint = "mkfifo", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int MkFifo(string path, uint mode);

    /// <summary>Runs the binary and holds it to the fuzz rules; returns the result for the case's own checks.</summary>
    private ChildResult Run(byte[] input, params string[] args)
    {
        var r = FuzzRunner.Exec(args, _dir);
        Assert.True(FuzzRunner.Judge(r, input) is null, $"{string.Join(' ', args)}: {FuzzRunner.Judge(r, input)}\n{r.Stderr}");
        return r;
    }

    private string Write(string name, byte[] bytes)
    {
        string p = Path.Combine(_dir, name);
        File.WriteAllBytes(p, bytes);
        return p;
    }

    private byte[] Vmcore(out MetadataVmcore.Layout layout, string? info = null) => _meta.Serialize(out layout, info);

    /// <summary>Sets a field of program header <paramref name="index"/> (1 = the first PT_LOAD).</summary>
    private static void Phdr(byte[] image, MetadataVmcore.Layout layout, int index, int field, ulong value) =>
        BinaryPrimitives.WriteUInt64LittleEndian(image.AsSpan((int)(layout.Of("phdrs").First().Offset + index * 56L + field)), value);

    private const int PAddr = 24, FileSz = 32, MemSz = 40;

    [Theory]
    [InlineData(1UL << 51)]          // SIGSEGV in 0.02 s: a 128 MiB mem_section array
    [InlineData(0x6000000000000UL)]
    [InlineData(1UL << 48)]          // a 17 GB sparse file of bitmaps
    [InlineData(1UL << 52)]
    [InlineData(ulong.MaxValue - 0xfff)]
    public void PhysicalAddressBeyondTheAddressSpaceIsLeftOut(ulong paddr)
    {
        var image = Vmcore(out var layout);
        Phdr(image, layout, 2, PAddr, paddr);
        string input = Write("vmcore", image), output = Path.Combine(_dir, "dump");
        var r = Run(image, "dump", "-d", "31", input, output);
        Assert.True(r.ExitCode == 3, r.Stderr);
        Assert.Contains("left out", r.Stderr);
        Assert.InRange(new FileInfo(output).Length, 1, 64L << 20);
        Assert.Equal(0, Run([], "verify", output).ExitCode);
    }

    [Theory]
    [InlineData(1UL << 47)]          // hung: 2^35 pfns to filter
    [InlineData(1UL << 40)]
    [InlineData(1UL << 52)]
    public void HugeZeroFilledSegmentIsBoundedByTheKernelsAddressWidthAndItsMemMap(ulong memsz)
    {
        var image = Vmcore(out var layout);
        Phdr(image, layout, 1, MemSz, memsz);
        string input = Write("vmcore", image), output = Path.Combine(_dir, "dump");
        var r = Run(image, "dump", "-d", "31", input, output);
        Assert.True(r.ExitCode is 0 or 3, r.Stderr);
        Assert.InRange(new FileInfo(output).Length, 1, 64L << 20);
        Assert.True(r.Seconds < 20, $"{r.Seconds} s");
    }

    /// <summary>
    /// Cases of a fuzz run kept by their seed: a PT_LOAD of the 5-level synthetic vmcore moved far up
    /// (within 52 bits, so no address-width limit applies). 223 preallocated 62 GB of bitmaps for a
    /// 150 KB file and then timed out; 285 was killed by SIGXFSZ at the runs' 8 GiB file limit.
    /// </summary>
    [Theory]
    [InlineData(1205UL, 223)]
    [InlineData(1205UL, 285)]
    public void FarSegmentCasesOfTheFiveLevelKind(ulong seed, int index)
    {
        var kind = new VmcoreKind("vmcore-synthetic-5level", FuzzInputs.Synthetic(true));
        var stats = new FuzzStats { Kind = kind.Name };
        Assert.True(FuzzRunner.RunCase(kind, index, _dir, stats, seed), stats.Failures.FirstOrDefault());
        Assert.InRange(stats.SlowestSeconds, 0, 10);
    }

    /// <summary>
    /// A config case kept by its seed: `config check` accepted stall_timeout, printed it among the
    /// effective settings, and those did not parse again (the key was missing from the key table
    /// that gates the parser).
    /// </summary>
    [Fact]
    public void ConfigCheckOutputWithStallTimeoutParsesAgain()
    {
        var kind = new ConfigKind();
        var stats = new FuzzStats { Kind = kind.Name };
        Assert.True(FuzzRunner.RunCase(kind, 319, _dir, stats, 20261205UL), stats.Failures.FirstOrDefault());
    }

    /// <summary>A dump that cannot reach its end under the file size limit is refused before anything is written, in words.</summary>
    [Fact]
    public void FileSizeLimitIsCheckedBeforeTheBitmapsAreWritten()
    {
        const string Prlimit = "/usr/bin/prlimit";
        // Memory at 256 GiB and no mem_map to say otherwise: 8 MiB bitmaps, so the descriptor table
        // starts past a 4 MiB limit.
        var image = Vmcore(out var layout, string.Join('\n', _meta.VmcoreInfo.Split('\n').Where(l => !l.StartsWith("SYMBOL(mem_section)"))));
        Phdr(image, layout, 2, PAddr, 0x40_0000_0000);
        string input = Write("vmcore", image), output = Path.Combine(_dir, "dump");
        var r = ChildProcess.Run(Prlimit, ["--fsize=4194304", FuzzRunner.Binary, "dump", "-d", "31", input, output], _dir, TimeSpan.FromSeconds(60));
        Assert.True(FuzzRunner.Judge(r, image) is null, $"{FuzzRunner.Judge(r, image)}\n{r.Stderr}");
        Assert.True(r.ExitCode == 1, $"exit {r.ExitCode}: {r.Stderr}");
        Assert.Contains("past the file size limit (ulimit -f)", r.Stderr);
        Assert.Single(r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries), l => l.Contains("error"));
        Assert.InRange(new FileInfo(output).Length, 0, 0);
    }

    [Fact]
    public void WithoutMemSectionTheDumpEndsWithTheFileData()
    {
        var image = Vmcore(out var layout, string.Join('\n', _meta.VmcoreInfo.Split('\n').Where(l => !l.StartsWith("SYMBOL(mem_section)"))));
        Phdr(image, layout, 1, MemSz, 1UL << 40);
        string input = Write("vmcore", image), output = Path.Combine(_dir, "dump");
        var r = Run(image, "dump", "-d", "31", input, output);
        Assert.Equal(3, r.ExitCode);
        Assert.Contains("SYMBOL(mem_section)", r.Stderr);
        Assert.Contains("without data for it in the file", r.Stderr);
        Assert.InRange(new FileInfo(output).Length, 1, 64L << 20);
    }

    [Theory]
    [InlineData("PAGESIZE=0")]
    [InlineData("PAGESIZE=65536")]
    [InlineData("PAGESIZE=x")]
    public void PageSizeOtherThan4096IsRefused(string line)
    {
        var image = Vmcore(out _, _meta.VmcoreInfo.Replace("PAGESIZE=4096", line));
        var r = Run(image, "dump", "-d", "31", Write("vmcore", image), Path.Combine(_dir, "dump"));
        Assert.Equal(1, r.ExitCode);
        Assert.Contains($"VMCOREINFO {line.Split('=')[0]}=", r.Stderr);
    }

    [Fact]
    public void VmcoreInfoOfMegabytesIsIgnoredInWords()
    {
        var info = new StringBuilder(_meta.VmcoreInfo);
        while (info.Length < 10 << 20) info.Append("SYMBOL(filler)=ffffffff81000000\n");
        var image = Vmcore(out _, info.ToString());
        var r = Run(image, "dump", "-d", "31", Write("vmcore", image), Path.Combine(_dir, "dump"));
        Assert.Equal(3, r.ExitCode);
        Assert.Contains("large notes (VMCOREINFO) are left out", r.Stderr);
    }

    [Fact]
    public void NotesOfSixtyMegabytesAreLeftOutExceptTheSmallOnes()
    {
        var image = Vmcore(out var layout);
        // A second PT_NOTE: one 60 MB note (a device dump), after the image.
        var big = new byte[60 << 20];
        BinaryPrimitives.WriteUInt32LittleEndian(big, 8);
        BinaryPrimitives.WriteUInt32LittleEndian(big.AsSpan(4), (uint)(big.Length - 20));
        Encoding.ASCII.GetBytes("VMCOREDD").CopyTo(big, 12);
        var phdrs = layout.Of("phdrs").First();
        long noteAt = image.Length;
        var grown = new byte[image.Length + big.Length];
        image.CopyTo(grown, 0);
        big.CopyTo(grown, noteAt);
        // Turn the last PT_LOAD into the second PT_NOTE (that page is then simply absent).
        long last = phdrs.Offset + phdrs.Length - 56;
        BinaryPrimitives.WriteUInt32LittleEndian(grown.AsSpan((int)last), 4);
        BinaryPrimitives.WriteUInt64LittleEndian(grown.AsSpan((int)last + 8), (ulong)noteAt);
        BinaryPrimitives.WriteUInt64LittleEndian(grown.AsSpan((int)last + 32), (ulong)big.Length);
        var r = Run([], "dump", "-d", "31", Write("vmcore", grown), Path.Combine(_dir, "dump"));
        Assert.Equal(3, r.ExitCode);
        Assert.Contains("large notes (VMCOREDD) are left out", r.Stderr);
    }

    [Fact]
    public void AMillionProgramHeadersAreRefusedInWords()
    {
        var image = Vmcore(out _);
        BinaryPrimitives.WriteUInt16LittleEndian(image.AsSpan(56), 0xffff);   // PN_XNUM: the count in section header 0
        var grown = new byte[image.Length + 64];
        image.CopyTo(grown, 0);
        BinaryPrimitives.WriteUInt64LittleEndian(grown.AsSpan(40), (ulong)image.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(grown.AsSpan(image.Length + 44), 1_000_000);
        var r = Run([], "dump", "-d", "31", Write("vmcore", grown), Path.Combine(_dir, "dump"));
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("program header", r.Stderr);
    }

    [Fact]
    public void MissingFilesAreNamedInWords()
    {
        foreach (var args in new[] { new[] { "verify", "/nonexistent" }, ["dmesg", "/nonexistent", Path.Combine(_dir, "o")], ["dump", "/nonexistent", Path.Combine(_dir, "o")], ["config", "check", "/nonexistent"] })
        {
            var r = Run([], args);
            Assert.Equal(1, r.ExitCode);
            Assert.Contains("/nonexistent: No such file or directory", r.Stderr + r.Stdout);
        }
    }

    [Fact]
    public void AFifoIsRefusedNotWaitedFor()
    {
        string fifo = Path.Combine(_dir, "fifo");
        Assert.Equal(0, MkFifo(fifo, 0x180));
        string dumps = Path.Combine(_dir, "crash", "host-2026-12-05-10:00:00");
        Directory.CreateDirectory(dumps);
        Assert.Equal(0, MkFifo(Path.Combine(dumps, "vmcore"), 0x180));
        Assert.Equal(0, MkFifo(Path.Combine(dumps, "dmesg.txt"), 0x180));
        foreach (var args in new[] { new[] { "verify", fifo }, ["dmesg", fifo, Path.Combine(_dir, "o")], ["dump", fifo, Path.Combine(_dir, "o")], ["config", "check", fifo], ["verify", dumps] })
        {
            var r = Run([], args);
            Assert.Equal(1, r.ExitCode);
            Assert.Contains("named pipe (FIFO)", r.Stderr + r.Stdout);
        }
        var report = Run([], "report", Path.Combine(_dir, "crash"), "--json");
        Assert.Equal(0, report.ExitCode);
        Assert.Contains("named pipe (FIFO)", report.Stdout);
    }

    [Fact]
    public void AConfigLineOfOneHundredKilobytesIsAnErrorInWords()
    {
        string conf = Write("big.conf", Encoding.ASCII.GetBytes("target = LABEL=crashdump\nkernel_cmdline_append = " + new string('a', 108 << 10) + "\n"));
        var r = Run([], "config", "check", conf);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("big.conf:2:", r.Stderr);
    }

    /// <summary>Found by the fuzz runs: 40,000 broken lines (RSS 35 MB, later 24.5 MB), and lists whose effective line did not read back.</summary>
    [Fact]
    public void AConfigOfThousandsOfBrokenLinesStaysSmallAndListsFitOneLine()
    {
        var text = new StringBuilder("target = LABEL=crashdump\n");
        for (int i = 0; i < 40_000; i++) text.Append("blacklist = m").Append(i).Append('\n');
        var r = Run([], "config", "check", Write("broken.conf", Encoding.ASCII.GetBytes(text.ToString())));
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("more errors (not listed)", r.Stderr);
        Assert.True(r.MaxRssKiB < 16 << 10, $"{r.MaxRssKiB} KiB");   // 24.5 MiB when every line became strings, 13 MiB over spans
        Assert.InRange(r.Stderr.Split('\n').Length, 100, 110);
    }

    /// <summary>Found by the fuzz runs: a kdump.conf of thousands of repeated lines took 40 MB of notes.</summary>
    [Fact]
    public void AnImportOfThousandsOfRepeatedLinesIsRefusedInWords()
    {
        var text = new StringBuilder();
        for (int i = 0; i < 10_000; i++) text.Append("path /var/crash\n");   // 160 KB: within the size, not the line count
        Directory.CreateDirectory(Path.Combine(_dir, "root"));
        var r = Run([], "config", "import", "--kdump-conf", Write("kdump.conf", Encoding.ASCII.GetBytes(text.ToString())), "--root", Path.Combine(_dir, "root"));
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("lines, more than the 4096", r.Stderr);
    }

    /// <summary>Found by the fuzz runs: an ELF dump carried the oversized VMCOREINFO it had refused to read, and verify then called it corrupt.</summary>
    [Fact]
    public void AnOversizedVmcoreInfoIsNotCopiedIntoTheDump()
    {
        var info = new StringBuilder(_meta.VmcoreInfo);
        while (info.Length < 500 << 10) info.Append("NUMBER(filler)=1\n");
        var image = Vmcore(out _, info.ToString());
        string input = Write("vmcore", image);
        foreach (var (format, output) in new[] { ("-E", "dump.elf"), ("-c", "dump.kdump") })
        {
            var r = Run(image, "dump", format, "-d", "31", input, Path.Combine(_dir, output));
            Assert.Equal(3, r.ExitCode);
            Assert.Contains("left out", r.Stderr);
            Assert.Equal(0, Run([], "verify", Path.Combine(_dir, output)).ExitCode);
            Assert.True(new FileInfo(Path.Combine(_dir, output)).Length < 400 << 10);
        }
    }

    /// <summary>A kdump file whose header or bitmaps were changed is not "complete, 0 pages OK".</summary>
    [Theory]
    [InlineData("block_size")]
    [InlineData("max_mapnr")]
    [InlineData("max_mapnr_64")]
    [InlineData("bitmaps")]
    [InlineData("bitmap_blocks")]
    public void VerifyCrossChecksTheHeader(string what)
    {
        var kdump = (byte[])FuzzInputs.Dumps("synthetic", _meta).Kdump.Clone();
        int block = BinaryPrimitives.ReadInt32LittleEndian(kdump.AsSpan(428));
        long sub = BinaryPrimitives.ReadInt32LittleEndian(kdump.AsSpan(432)), bitmaps = BinaryPrimitives.ReadUInt32LittleEndian(kdump.AsSpan(436));
        switch (what)
        {
            case "block_size": BinaryPrimitives.WriteInt32LittleEndian(kdump.AsSpan(428), 8192); break;
            case "max_mapnr": BinaryPrimitives.WriteUInt32LittleEndian(kdump.AsSpan(440), BinaryPrimitives.ReadUInt32LittleEndian(kdump.AsSpan(440)) / 2); break;
            case "max_mapnr_64": BinaryPrimitives.WriteUInt64LittleEndian(kdump.AsSpan(block + 96), BinaryPrimitives.ReadUInt64LittleEndian(kdump.AsSpan(block + 96)) / 2); break;
            case "bitmap_blocks": BinaryPrimitives.WriteUInt32LittleEndian(kdump.AsSpan(436), (uint)bitmaps * 2); break;
            default: kdump.AsSpan((int)((1 + sub) * block), (int)(bitmaps * block)).Clear(); break;
        }
        var r = Run([], "verify", Write("vmcore", kdump));
        Assert.True(r.ExitCode == 1, $"{what}: exit {r.ExitCode}: {r.Stdout}");
    }

    [Fact]
    public void VerifyComparesTheManifestsPageCount()
    {
        string d = Path.Combine(_dir, "dump");
        Directory.CreateDirectory(d);
        File.WriteAllBytes(Path.Combine(d, "vmcore"), FuzzInputs.Dumps("synthetic", _meta).Kdump);
        var m = new global::CaptureAgent.Formats.DumpManifest { Complete = true, DumpablePages = 12345 };
        m.Files.Add(global::CaptureAgent.Formats.DumpManifest.Checksum(Path.Combine(d, "vmcore")));
        File.WriteAllText(Path.Combine(d, "manifest.json"), m.ToJson());
        var r = Run([], "verify", d);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("the manifest says 12345 pages", r.Stdout);
    }

    /// <summary>Raw image with the stream's first record moved 1 TiB out (its CRC made right): no terabyte file, no spin.</summary>
    [Fact]
    public void SavecoreRefusesARecordFarPastTheDump()
    {
        var image = (byte[])FuzzInputs.Dumps("synthetic", _meta).RawImage.Clone();
        var header = global::CaptureAgent.Targets.Raw.RawDumpHeader.Parse(image, out _)!;
        var records = DumpBases.Records(image.AsSpan((int)header.StreamOffset, (int)header.StreamLength));
        BinaryPrimitives.WriteInt64BigEndian(image.AsSpan((int)(header.StreamOffset + records[3])), 1L << 40);
        header.StreamCrc = global::CaptureAgent.Common.Crc64.Update(0, image.AsSpan((int)header.StreamOffset, (int)header.StreamLength));
        header.Build().CopyTo(image, 0);
        string saved = Path.Combine(_dir, "saved");
        var r = Run(image, "savecore", "--device", Write("raw.img", image), "--dir", saved, "--allow-file");
        Assert.Equal(3, r.ExitCode);
        Assert.True(r.Seconds < 20);
        var extracted = Directory.GetDirectories(saved).Single();
        Assert.All(Directory.GetFiles(extracted), f => Assert.True(new FileInfo(f).Length < 64L << 20, f));
    }

    [Fact]
    public void RearrangeSaysWhenTheStreamIsDamagedOrCut()
    {
        var flat = FuzzInputs.Dumps("synthetic", _meta).Flattened;
        var records = DumpBases.Records(flat);
        var bent = (byte[])flat.Clone();
        BinaryPrimitives.WriteInt64BigEndian(bent.AsSpan((int)records[2]), 1L << 40);
        var r = FuzzRunner.Exec(["rearrange", Path.Combine(_dir, "a")], _dir, Write("bent.flat", bent));
        Assert.Null(FuzzRunner.Judge(r, bent));
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("damaged", r.Stderr);
        r = FuzzRunner.Exec(["rearrange", Path.Combine(_dir, "b")], _dir, Write("cut.flat", flat[..(int)records[^3]]));
        Assert.Null(FuzzRunner.Judge(r, flat));
        Assert.True(r.ExitCode is 1 or 3, r.Stderr);
        Assert.Contains("cut short", r.Stderr);
        r = FuzzRunner.Exec(["rearrange", Path.Combine(_dir, "c")], _dir, Write("whole.flat", flat));
        Assert.True(r.ExitCode == 0, r.Stderr);
    }

    [Fact]
    public void LoopingLogBufIsCutAndSaidSo()
    {
        var image = Vmcore(out var layout);
        var ok = Run(image, "dmesg", Write("vmcore", image), Path.Combine(_dir, "ok.txt"));
        Assert.Equal(0, ok.ExitCode);
        int records = File.ReadAllLines(Path.Combine(_dir, "ok.txt")).Length;
        // A log_next_idx the walk never meets: after the last record comes an empty one (a wrap
        // marker), the walk starts again at 0 and would go round for ever.
        long next = FileOffset(image, layout, FuzzInputs.LogNextIdxPa);
        BinaryPrimitives.WriteUInt32LittleEndian(image.AsSpan((int)next), 4000);
        var r = Run(image, "dmesg", Write("loop.vmcore", image), Path.Combine(_dir, "loop.txt"));
        Assert.Equal(3, r.ExitCode);
        Assert.Contains("loop", r.Stderr);
        Assert.InRange(File.ReadAllLines(Path.Combine(_dir, "loop.txt")).Length, 1, 2 * records);
    }

    /// <summary>Where physical address <paramref name="pa"/> is in the image, from its program headers.</summary>
    public static long FileOffset(byte[] image, MetadataVmcore.Layout layout, ulong pa)
    {
        var phdrs = layout.Of("phdrs").First();
        for (long p = phdrs.Offset + 56; p < phdrs.Offset + phdrs.Length; p += 56)
        {
            var h = image.AsSpan((int)p, 56);
            ulong off = BinaryPrimitives.ReadUInt64LittleEndian(h[8..]), start = BinaryPrimitives.ReadUInt64LittleEndian(h[24..]), size = BinaryPrimitives.ReadUInt64LittleEndian(h[32..]);
            if (pa >= start && pa - start < size) return (long)(off + (pa - start));
        }
        throw new InvalidOperationException($"physical address 0x{pa:x} is not in the image");
    }
}

/// <summary>Regression cases that need a real fixture: the lockless printk ring, makedumpfile's own dumps.</summary>
[Trait("Category", "Fuzz")]
[Trait("Category", "Binary")]
[Trait("Category", "Fixture")]
[Collection("fuzz")]
public class FixtureRegressionTests : IDisposable
{
    private const string Fx = "6.1-1024";
    private readonly string _dir = Path.Combine(FuzzInputs.Work, "fixture-regressions-" + Guid.NewGuid().ToString("N"));

    public FixtureRegressionTests() => Directory.CreateDirectory(_dir);

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    /// <summary>tail_id one past head_id: the ring claims more records than it has descriptors. The log is read, and called damaged.</summary>
    [Fact]
    public void InconsistentPrintkRingIsDegradedNotComplete()
    {
        var image = FuzzInputs.Fixture(Fx).Serialize(out var layout);
        string path = Path.Combine(_dir, "vmcore");
        File.WriteAllBytes(path, image);
        ulong tailVa;
        ulong tailPa;
        using (var elf = new global::CaptureAgent.Vmcore.ElfVmcore(path))
        {
            var info = elf.Info!;
            var tables = global::CaptureAgent.Translation.X86_64PageTables.FromVmcoreInfo(elf, info, elf.Segments);
            var kmem = new global::CaptureAgent.Translation.KernelMemory(elf, tables);
            ulong prb = kmem.ReadU64(info.RequireSymbol("prb"), "prb");
            tailVa = prb + (ulong)info.RequireNumber("OFFSET", "printk_ringbuffer.desc_ring") + (ulong)info.RequireNumber("OFFSET", "prb_desc_ring.tail_id")
                     + (ulong)(info.Offset("atomic_long_t.counter") ?? 0);
            Assert.True(tables.TryTranslate(tailVa, out tailPa, out _));
        }
        long at = RegressionTests.FileOffset(image, layout, tailPa);
        ulong headId = BinaryPrimitives.ReadUInt64LittleEndian(image.AsSpan((int)at + 8));   // head_id follows tail_id? not assumed: read both
        ulong tail = BinaryPrimitives.ReadUInt64LittleEndian(image.AsSpan((int)at));
        BinaryPrimitives.WriteUInt64LittleEndian(image.AsSpan((int)at), tail - (1UL << 20));   // a tail a million records behind
        File.WriteAllBytes(path, image);
        var r = FuzzRunner.Exec(["dmesg", path, Path.Combine(_dir, "log.txt")], _dir);
        Assert.Null(FuzzRunner.Judge(r, image));
        Assert.True(r.ExitCode == 3, $"exit {r.ExitCode}: {r.Stderr} (head word {headId:x})");
        Assert.Contains("printk ring", r.Stderr);
    }

    /// <summary>
    /// makedumpfile -l writes lzo pages: once called "corrupt" (lzo was not built in), then named as
    /// not decodable; now verify checks every page and dmesg reads the same log as from the vmcore.
    /// </summary>
    [Fact]
    public void LzoDumpIsVerifiedAndItsLogRead()
    {
        if (!File.Exists(Fixtures.Makedumpfile)) throw new InvalidOperationException($"{Fixtures.Makedumpfile} is missing: scripts/test installs makedumpfile");
        string vmcore = Path.Combine(_dir, "vmcore"), lzo = Path.Combine(_dir, "dump.lzo");
        File.WriteAllBytes(vmcore, FuzzInputs.Fixture(Fx).Serialize(out _));
        Fixtures.Sh($"{Fixtures.Makedumpfile} -l -d 31 {vmcore} {lzo} > /dev/null");
        var v = FuzzRunner.Exec(["verify", lzo], _dir);
        Assert.Null(FuzzRunner.Judge(v, []));
        Assert.True(v.ExitCode == 0, $"exit {v.ExitCode}: {v.Stdout}{v.Stderr}");
        Assert.Contains("complete", v.Stdout);
        string fromDump = Path.Combine(_dir, "log-dump.txt"), fromVmcore = Path.Combine(_dir, "log-vmcore.txt");
        var d = FuzzRunner.Exec(["dmesg", lzo, fromDump], _dir);
        Assert.True(d.ExitCode == 0, $"exit {d.ExitCode}: {d.Stderr}");
        Assert.Equal(0, FuzzRunner.Exec(["dmesg", vmcore, fromVmcore], _dir).ExitCode);
        string log = File.ReadAllText(fromDump);
        Assert.NotEmpty(log);
        Assert.Equal(File.ReadAllText(fromVmcore), log);
    }
}

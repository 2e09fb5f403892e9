using System.Diagnostics;
using System.Text.RegularExpressions;
using CaptureAgent.Capture;
using CaptureAgent.Cli;
using CaptureAgent.Dmesg;
using CaptureAgent.Dump;
using CaptureAgent.Filtering;
using CaptureAgent.Output;
using CaptureAgent.Tests.Integration;
using CaptureAgent.Translation;
using CaptureAgent.Vmcore;
using Xunit;
using CaptureAgent.Common;
using CaptureAgent.Formats;

namespace CaptureAgent.Tests.CaptureKernel.Capture;

/// <summary>
/// Full disks, old dumps, killed writers and damaged files, on real filesystems (tmpfs mounted by
/// the test; root is required) with a real vmcore: the dump must end readable and say what it is.
/// </summary>
[Trait("Category", "Root")]
[Trait("Category", "Fixture")]
[Trait("Category", "Binary")]
public class SpaceAndIntegrityTests
{
    private const string Fixture = "6.1-1024";

    /// <summary>A tmpfs, or an ext4 image on a loop device, of the given size; unmounted on dispose.</summary>
    private sealed class SmallFilesystem : IDisposable
    {
        public TempDir Dir { get; } = new();
        private readonly TempDir? _image;
        public string Root => Dir.Path;

        public SmallFilesystem(string size, string kind = "tmpfs")
        {
            TestCategory.Require(TestCategory.Root);
            if (kind == "tmpfs")
            {
                Fixtures.Sh($"mount -t tmpfs -o size={size},mode=0700 tmpfs {Root}");
                return;
            }
            _image = new TempDir();
            string img = _image.File("fs.img");
            Fixtures.Sh($"truncate -s {size} {img} && /usr/sbin/mkfs.ext4 -q -F -m 0 {img} && mount -o loop {img} {Root}");
        }

        /// <summary>Fills the filesystem with a preallocated file until only about this much is free.</summary>
        public void LeaveFree(long bytes)
        {
            long fill = Native.Libc.AvailableBytes(Root) - bytes;
            if (fill > 0) Fixtures.Sh($"fallocate -l {fill} {Root}/filler");
        }

        public void Dispose()
        {
            Fixtures.Exec("/bin/umount", [Root]);
            Dir.Dispose();
            _image?.Dispose();
        }
    }

    [Fact]
    public void FullDiskLeavesAReadableIncompleteDumpAndKeepsTheLog()
    {
        using var fs = new SmallFilesystem("6m");   // the -d 31 dump is about 21 MB
        var r = CaptureJob.Run(Fixtures.Vmcore(Fixture), fs.Root, new CaptureSettings { PathTemplate = "/crash", MinFreeBytes = 0 }, _ => { });
        Assert.False(r.Complete);
        Assert.EndsWith("vmcore-incomplete", r.VmcorePath);
        Assert.False(File.Exists(Path.Combine(r.Directory, "vmcore")));
        Assert.Contains("sysrq triggered crash", File.ReadAllText(Path.Combine(r.Directory, "dmesg.txt")));
        Assert.Contains(r.Problems, p => p.Contains("the target is full"));
        // The data that reached the disk before ENOSPC is described, all but a partial last page.
        long unreferenced = new FileInfo(r.VmcorePath!).Length - DataEnd(r.VmcorePath!);
        Assert.InRange(unreferenced, 0, 4095);

        using (var kd = new KdumpFile(r.VmcorePath!))
        {
            Assert.True(kd.Incomplete);
            var scan = kd.Scan();
            Assert.Equal(0UL, scan.Corrupt);
            Assert.True(scan.Ok > 1000, $"only {scan.Ok} pages readable");
            Assert.NotNull(scan.StoppedAt);
            // What was saved is right: every readable page equals the vmcore.
            using var elf = new ElfVmcore(Fixtures.Vmcore(Fixture));
            var a = new byte[4096];
            var b = new byte[4096];
            for (ulong pfn = 0, n = 0; pfn < kd.MaxPfn && n < 2000; pfn++)
                if (kd.IsDumpable(pfn) && kd.TryReadPage(pfn, a))
                {
                    Assert.True(elf.TryRead(pfn * 4096, b) && a.AsSpan().SequenceEqual(b), $"pfn {pfn:x}");
                    n++;
                }
        }
        // libkdumpfile, a reader that is not ours, opens the cut file and reads the saved pages
        // (kernel virtual addresses may need page tables that were not saved: crash then needs
        // --zero_excluded, and refuses when the kernel's own image was cut off).
        using (var kd = new KdumpFile(r.VmcorePath!))
        {
            var page = new byte[4096];
            ulong first = 0;
            while (!(kd.IsDumpable(first) && kd.TryReadPage(first, page) && page.AsSpan().IndexOfAnyExcept((byte)0) >= 0)) first++;
            string hex = Fixtures.Sh($"/usr/bin/python3 {Fixtures.OracleScript("kdumpfile_digest.py")} {r.VmcorePath} --phys-page {first * 4096}").Trim();
            Assert.Equal(Convert.ToHexStringLower(page), hex);
        }

        var manifest = DumpManifest.Parse(File.ReadAllText(Path.Combine(r.Directory, DumpManifest.FileName)));
        Assert.False(manifest.Complete);
        Assert.Contains("full", manifest.IncompleteReason);
        Assert.Equal(ExitCodes.Degraded, VerifyCommand.Run([r.Directory]));
        var verify = Fixtures.Exec(Fixtures.Binary, ["verify", r.Directory]);
        Assert.Equal(ExitCodes.Degraded, verify.ExitCode);
        Assert.Matches(@"incomplete: pages stored up to pfn 0x[0-9a-f]+ \([0-9]+ of [0-9]+\), the target is full", verify.Stdout);
    }

    /// <summary>Where the last page described by a descriptor (or by the first <paramref name="descriptors"/>) ends, read without the product's reader.</summary>
    private static long DataEnd(string dump, ulong? descriptors = null)
    {
        var f = KdumpFileFacts.Read(dump);
        long table = (1L + f.SubHeaderBlocks + f.BitmapBlocks) * f.BlockSize, end = 0;
        using var s = File.OpenRead(dump);
        var d = new byte[24];
        for (ulong i = 0; i < (descriptors ?? f.Dumpable); i++)
        {
            s.Position = table + (long)i * 24;
            s.ReadExactly(d);
            long offset = System.Buffers.Binary.BinaryPrimitives.ReadInt64LittleEndian(d);
            uint size = System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(d.AsSpan(8));
            end = Math.Max(end, offset + size);
        }
        return end;
    }

    /// <summary>The highest page frame the crashed kernel's log is read from.</summary>
    private static ulong HighestLogPfn(string vmcore)
    {
        using var src = new DumpSource(vmcore);
        var recorder = new ReadRecorder(src.Vmcore);
        new PrintkLog(new KernelMemory(recorder, src.Kernel!.Tables), src.Info!).WriteTo(Stream.Null);
        return recorder.HighestPfn;
    }

    /// <summary>Physical memory that remembers the highest page read through it.</summary>
    private sealed class ReadRecorder(IPhysicalMemory inner) : IPhysicalMemory
    {
        public ulong HighestPfn { get; private set; }
        public int PageSize => inner.PageSize;
        public ulong MaxPfn => inner.MaxPfn;
        public bool IsPresent(ulong pfn) => inner.IsPresent(pfn);
        public bool TryRead(ulong paddr, Span<byte> buffer)
        {
            if (buffer.Length > 0) HighestPfn = Math.Max(HighestPfn, (paddr + (ulong)buffer.Length - 1) / (ulong)inner.PageSize);
            return inner.TryRead(paddr, buffer);
        }
    }

    /// <summary>
    /// How many bytes of the file hold the data of every dumpable page up to <paramref name="pfn"/>
    /// (the largest end among their descriptors: zero pages share one block near the start).
    /// </summary>
    private static long BytesThroughPage(string dump, ulong pfn)
    {
        ulong pages = 0;
        using (var kd = new KdumpFile(dump))
            for (ulong p = 0; p <= pfn && p < kd.MaxPfn; p++)
                if (kd.IsDumpable(p)) pages++;
        return DataEnd(dump, pages);
    }

    [Theory]
    [InlineData("tmpfs")]
    [InlineData("ext4")]
    public void DumpCutByAFullDiskIsReadByCrashAndDrgnUpToWhereItStopped(string kind)
    {
        const string fx = Fixture;
        using var dir = new TempDir();
        Engine.Dump.SyntheticDumpTests.Dump(Fixtures.Vmcore(fx), dir.File("whole"), new DumpOptions { Level = DumpLevel.All });
        // The cut is placed where this test asserts what survives it: after the printk ring's pages
        // (crash reads the log from them), halfway into what follows. Where the kernel put its ring
        // depends on the kernel and the guest, so it is measured, not assumed.
        long whole = new FileInfo(dir.File("whole")).Length;
        ulong logPfn = HighestLogPfn(Fixtures.Vmcore(fx));
        long keep = BytesThroughPage(dir.File("whole"), logPfn);
        // The ring is usually allocated top-down near the end of memory: what follows it is often only
        // a MiB or two at -d 31 (1.67 MB in one fixture). 256 KiB leaves the halfway cut 128 KiB of
        // slack either side, far more than the filesystem's block rounding.
        Assert.True(whole - keep > (256 << 10), $"the log's pages end {whole - keep} bytes before the end of the dump: no cut keeps them");
        using var fs = new SmallFilesystem("64m", kind);
        fs.LeaveFree(keep + (whole - keep) / 2);
        string cut = Path.Combine(fs.Root, "dump");
        DumpResult result;
        using (var src = new DumpSource(Fixtures.Vmcore(fx)))
        using (var sink = FileSink.Create(cut))
            result = new KdumpCompressedWriter(src, sink, new DumpOptions { Level = DumpLevel.All }).Write();
        Assert.True(result.Incomplete);
        Assert.StartsWith("the target is full", result.IncompleteReason);
        Assert.InRange(new FileInfo(cut).Length - DataEnd(cut), 0, 4095);

        ulong stopped;
        using (var kd = new KdumpFile(cut))
            stopped = kd.Scan().StoppedAt ?? throw new InvalidOperationException("nothing missing in a cut dump");
        // crash says the file is incomplete, reads the log from the saved pages, and calls a page
        // after the cut "incomplete" (whether a whole session works depends on where it stopped:
        // crash's start-up reads per-cpu data near the top of memory).
        var r = Fixtures.Exec("/usr/bin/crash", ["-s", "--minimal", Fixtures.Vmlinux(fx), cut],
            stdin: $"log\nrd -p 0x{stopped * 4096:x} 2\nquit\n");
        Assert.Contains("This dumpfile is incomplete", r.Stdout + r.Stderr);
        Assert.True(r.Stdout.Contains("sysrq triggered crash"),
            $"crash read no log from a dump cut at pfn {stopped:x} (log up to pfn {logPfn:x}, {keep} of {whole} bytes kept): {r.Stdout}{r.Stderr}");
        Assert.Contains($"page incomplete: physical address: {stopped * 4096:x}", r.Stdout + r.Stderr);
        var drgn = Fixtures.Exec("/usr/bin/drgn", ["-c", cut, "-s", Fixtures.Vmlinux(fx), Fixtures.OracleScript("drgn_check.py")]);
        Assert.Contains("marker CAPTURE-FIXTURE-MARKER " + Fixtures.Marker(fx).Split(' ')[^1], drgn.Stdout);

        Assert.Equal(ExitCodes.Degraded, VerifyCommand.Run([cut]));
    }

    [Fact]
    public void CompleteCaptureOpensInCrashMakedumpfileAndLibkdumpfile()
    {
        const string fx = Fixture;
        using var dir = new TempDir();
        var r = CaptureJob.Run(Fixtures.Vmcore(fx), dir.Path, new CaptureSettings
        {
            PathTemplate = "/crash/{kver}",
            MinFreeBytes = 0,
            Dump = new DumpOptions { Level = DumpLevel.All, Codec = Compression.PageCodec.Zlib },   // Debian's makedumpfile has no zstd
        }, _ => { });
        Assert.True(r.Complete, string.Join("; ", r.Problems));
        Assert.Equal("vmcore", Path.GetFileName(r.VmcorePath));
        using (var kd = new KdumpFile(r.VmcorePath!))
        {
            Assert.False(kd.Incomplete);
            Assert.Equal(31, kd.Header.DumpLevel);
            // The estimate made before writing is close to what was written.
            Assert.InRange((double)r.EstimatedBytes / r.VmcoreBytes, 0.8, 1.25);
            Assert.Matches($"pages {kd.DumpablePages}\n", Fixtures.Sh($"/usr/bin/python3 {Fixtures.OracleScript("kdumpfile_digest.py")} {r.VmcorePath}"));
        }
        var c = Fixtures.Exec("/usr/bin/crash", ["-s", Fixtures.Vmlinux(fx), r.VmcorePath!], stdin: "sys\nbt\nquit\n");
        Assert.DoesNotContain("incomplete", c.Stdout + c.Stderr);
        Assert.Contains("sysrq_handle_crash", c.Stdout);
        Assert.Equal(0, Fixtures.Exec(Fixtures.Makedumpfile, ["--dump-dmesg", r.VmcorePath!, dir.File("mdmesg.txt")]).ExitCode);
        Assert.Contains("sysrq triggered crash", File.ReadAllText(dir.File("mdmesg.txt")));
        var manifest = DumpManifest.Parse(File.ReadAllText(Path.Combine(r.Directory, DumpManifest.FileName)));
        Assert.True(manifest.Complete);
        Assert.Equal(["dmesg.txt", "vmcore"], manifest.Files.Select(f => f.Name).Order());
        Assert.Equal(DumpManifest.Checksum(r.VmcorePath!), manifest.Files.Single(f => f.Name == "vmcore"));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(r.Directory, DumpManifest.FileName)));
        Assert.False(File.Exists(Path.Combine(r.Directory, DumpManifest.FileName + ".tmp")));
    }

    [Fact]
    public void DumpThatWouldNotFitIsTakenAtTheFallbackLevelFromTheStart()
    {
        using var fs = new SmallFilesystem("40m");   // -d 1 is about 235 MB, -d 31 about 21 MB
        var r = CaptureJob.Run(Fixtures.Vmcore(Fixture), fs.Root, new CaptureSettings
        {
            PathTemplate = "/crash",
            MinFreeBytes = 1 << 20,
            Dump = new DumpOptions { Level = DumpLevel.Zero },
            FallbackLevel = DumpLevel.All,
        }, _ => { });
        Assert.True(r.Complete, string.Join("; ", r.Problems));
        Assert.Equal(DumpLevel.All, r.LevelUsed);
        Assert.Contains(r.Problems, p => p.Contains("dump level 31 used instead"));
        var manifest = DumpManifest.Parse(File.ReadAllText(Path.Combine(r.Directory, DumpManifest.FileName)));
        Assert.Equal((31, 1), (manifest.DumpLevel, manifest.RequestedDumpLevel));
        using var kd = new KdumpFile(r.VmcorePath!);
        Assert.Equal(31, kd.Header.DumpLevel);
        Assert.Equal(kd.DumpablePages, kd.Scan().Ok);
        Assert.Equal(ExitCodes.Ok, VerifyCommand.Run([r.Directory]));
    }

    [Fact]
    public void RunningOutOfRoomMidDumpRaisesTheLevelForTheRestAndTheFileStaysConsistent()
    {
        using var dir = new TempDir();
        int calls = 0;
        DumpResult result;
        using (var src = new DumpSource(Fixtures.Vmcore(Fixture)))
        using (var sink = FileSink.Create(dir.File("dump")))
            result = new KdumpCompressedWriter(src, sink, new DumpOptions
            {
                Level = DumpLevel.Zero,
                // Plenty of room at the start, then the target "fills up" at the first check.
                FreeSpace = () => ++calls == 1 ? long.MaxValue : 40L << 20,
                FallbackLevel = DumpLevel.All,
            }).Write();
        Assert.False(result.Incomplete);
        Assert.Equal(DumpLevel.All, result.LevelRaisedTo);
        Assert.True(calls >= 2);
        Assert.Contains(result.Problems, p => p.Contains("running out of room"));

        // The bitmap is the level-1 set up to the switch and the level-31 set after it.
        using var kd = new KdumpFile(dir.File("dump"));
        Assert.False(kd.Incomplete);
        var scan = kd.Scan();
        Assert.Equal((kd.DumpablePages, 0UL, 0UL), (scan.Ok, scan.Missing, scan.Corrupt));
        var full1 = Facts(DumpLevel.Zero, dir, "l1");
        var full31 = Facts(DumpLevel.All, dir, "l31");
        ulong switchPfn = ulong.Parse(Regex.Match(string.Join(" ", result.Problems), "from pfn 0x([0-9a-f]+)").Groups[1].Value, System.Globalization.NumberStyles.HexNumber);
        var ours = KdumpFileFacts.Read(dir.File("dump"));
        for (ulong pfn = 0; pfn < kd.MaxPfn; pfn++)
        {
            bool expected = pfn < switchPfn ? KdumpFileFacts.Bit(full1.Bitmap2, pfn) : KdumpFileFacts.Bit(full31.Bitmap2, pfn);
            Assert.True(expected == KdumpFileFacts.Bit(ours.Bitmap2, pfn), $"pfn 0x{pfn:x} (switch at 0x{switchPfn:x})");
        }
        Assert.True(kd.DumpablePages < full1.Dumpable && kd.DumpablePages > full31.Dumpable);
        // Every stored page is the vmcore's, read by libkdumpfile as well.
        RealVmcoreTests.AssertEveryStoredPageEqualsVmcore(Fixtures.Vmcore(Fixture), dir.File("dump"));
        Assert.Matches($"pages {kd.DumpablePages}\n", Fixtures.Sh($"/usr/bin/python3 {Fixtures.OracleScript("kdumpfile_digest.py")} {dir.File("dump")}"));
        // The descriptor table kept its level-1 size: the unused entries after the last page are zero,
        // and crash reads the file as a complete dump all the same.
        long table = (1L + ours.SubHeaderBlocks + ours.BitmapBlocks) * ours.BlockSize;
        using (var f = File.OpenRead(dir.File("dump")))
        {
            var spare = new byte[24 * 64];
            f.Position = table + (long)kd.DumpablePages * 24;
            f.ReadExactly(spare);
            Assert.True(spare.All(b => b == 0));
        }
        var c = Fixtures.Exec("/usr/bin/crash", ["-s", Fixtures.Vmlinux(Fixture), dir.File("dump")], stdin: "sys\nbt\nquit\n");
        Assert.DoesNotContain("incomplete", c.Stdout + c.Stderr);
        Assert.Contains("sysrq_handle_crash", c.Stdout);
    }

    private static KdumpFileFacts Facts(DumpLevel level, TempDir dir, string name)
    {
        Engine.Dump.SyntheticDumpTests.Dump(Fixtures.Vmcore(Fixture), dir.File(name), new DumpOptions { Level = level });
        return KdumpFileFacts.Read(dir.File(name));
    }

    [Fact]
    public void KilledWriterLeavesAFileThatSaysItIsIncomplete()
    {
        using var dir = new TempDir();
        string dump = dir.File("dump");
        var psi = new ProcessStartInfo(Fixtures.Binary) { UseShellExecute = false, RedirectStandardError = true };
        foreach (var a in new[] { "dump", "-d", "0", "--threads", "1", "-c", Fixtures.Vmcore(Fixture), dump }) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var clock = Stopwatch.StartNew();
        while (!p.HasExited && (!File.Exists(dump) || new FileInfo(dump).Length < (24 << 20)) && clock.Elapsed < TimeSpan.FromMinutes(2)) Thread.Sleep(20);
        Assert.False(p.HasExited, "the dump finished before it could be killed");
        p.Kill();
        p.WaitForExit();
        using var kd = new KdumpFile(dump);
        Assert.True(kd.Incomplete);
        var scan = kd.Scan();
        Assert.Equal(0UL, scan.Corrupt);
        Assert.True(scan.Ok > 1000 && scan.Missing > 0, $"{scan.Ok} read, {scan.Missing} missing");
        Assert.Equal(ExitCodes.Degraded, VerifyCommand.Run([dump]));
        var c = Fixtures.Exec("/usr/bin/crash", ["-s", Fixtures.Vmlinux(Fixture), dump], stdin: "quit\n");
        Assert.Contains("This dumpfile is incomplete", c.Stdout + c.Stderr);
        // libkdumpfile reads the pages that were saved.
        var page = new byte[4096];
        ulong first = 0;
        while (!(kd.IsDumpable(first) && kd.TryReadPage(first, page) && page.AsSpan().IndexOfAnyExcept((byte)0) >= 0)) first++;
        Assert.Equal(Convert.ToHexStringLower(page),
            Fixtures.Sh($"/usr/bin/python3 {Fixtures.OracleScript("kdumpfile_digest.py")} {dump} --phys-page {first * 4096}").Trim());
    }

    [Fact]
    public void VerifyChecksAFlattenedStreamAndRejectsADamagedHeader()
    {
        using var dir = new TempDir();
        string flat = dir.File("vmcore.flat");
        Fixtures.Sh($"{Fixtures.Binary} dump -q -F -d 31 {Fixtures.Vmcore(Fixture)} > {flat}");
        Assert.Equal(ExitCodes.Ok, VerifyCommand.Run([flat]));
        var bytes = File.ReadAllBytes(flat);
        File.WriteAllBytes(flat, bytes.AsSpan(0, bytes.Length - 16).ToArray());   // no end marker: cut short
        Assert.Equal(ExitCodes.Degraded, VerifyCommand.Run([flat]));
        var bad = (byte[])bytes.Clone();
        bad[4096 + 8] = 0x80;                                                     // first record: negative size
        File.WriteAllBytes(flat, bad);
        Assert.Equal(ExitCodes.Failed, VerifyCommand.Run([flat]));

        // A kdump header claiming bitmaps far beyond the file: one line, exit 1, nothing huge allocated.
        string dump = dir.File("dump");
        Engine.Dump.SyntheticDumpTests.Dump(Fixtures.Vmcore(Fixture), dump, new DumpOptions { Level = DumpLevel.All });
        using (var f = new FileStream(dump, FileMode.Open, FileAccess.Write))
        {
            f.Position = 436;
            f.Write(BitConverter.GetBytes(0x7fff_0000u));
        }
        var r = Fixtures.Exec(Fixtures.Binary, ["verify", dump]);
        Assert.Equal(ExitCodes.Failed, r.ExitCode);
        Assert.Contains("past the end of the file", r.Stdout);
    }

    [Fact]
    public void VerifyTellsADamagedDumpFromAGoodOne()
    {
        using var dir = new TempDir();
        var r = CaptureJob.Run(Fixtures.Vmcore(Fixture), dir.Path, new CaptureSettings { PathTemplate = "/d", MinFreeBytes = 0 }, _ => { });
        Assert.True(r.Complete);
        Assert.Equal(ExitCodes.Ok, VerifyCommand.Run([r.Directory]));
        Assert.Equal(ExitCodes.Ok, VerifyCommand.Run([r.VmcorePath!]));

        // One flipped byte in the page data: the manifest's CRC catches it; without the manifest,
        // the page's zstd checksum does.
        var bytes = File.ReadAllBytes(r.VmcorePath!);
        bytes[bytes.Length - 100] ^= 0x40;
        string copy = dir.File("damaged");
        File.WriteAllBytes(copy, bytes);
        File.Copy(copy, r.VmcorePath!, overwrite: true);
        Assert.Equal(ExitCodes.Failed, VerifyCommand.Run([r.Directory]));
        Assert.Equal(ExitCodes.Failed, VerifyCommand.Run([copy]));

        // Truncated: descriptors point past the end.
        File.WriteAllBytes(copy, bytes.AsSpan(0, bytes.Length / 2).ToArray());
        Assert.Equal(ExitCodes.Failed, VerifyCommand.Run([copy]));
    }

    [Fact]
    public void RetentionRemovesTheOldestDumpsOnlyAndNeverFollowsLinks()
    {
        using var dir = new TempDir();
        string parent = Directory.CreateDirectory(dir.File("crash")).FullName;
        void MakeDump(string name, int day, int bytes)
        {
            string d = Directory.CreateDirectory(Path.Combine(parent, name)).FullName;
            File.WriteAllBytes(Path.Combine(d, "vmcore"), new byte[bytes]);
            new DumpManifest { Complete = true, Host = "h", CrashTime = new DateTimeOffset(2026, 1, day, 0, 0, 0, TimeSpan.Zero) }.WriteTo(d);
        }
        MakeDump("c-newest", 20, 1000);
        MakeDump("a-oldest", 1, 3000);
        MakeDump("b-middle", 10, 2000);
        Directory.CreateDirectory(Path.Combine(parent, "not-a-dump"));
        File.WriteAllText(Path.Combine(parent, "not-a-dump", "notes.txt"), "keep me");
        string outside = Directory.CreateDirectory(dir.File("outside")).FullName;
        File.WriteAllBytes(Path.Combine(outside, "vmcore"), new byte[10]);
        File.CreateSymbolicLink(Path.Combine(parent, "0-link"), outside);
        File.CreateSymbolicLink(Path.Combine(parent, "a-oldest", "escape"), outside);   // removed as a link, not followed

        Assert.Equal(["a-oldest", "b-middle", "c-newest"], Retention.List(parent).Select(d => Path.GetFileName(d.Path)));
        // Two dumps kept counting the new one: the two oldest go.
        var removed = Retention.Apply(parent, keepDumps: 2, keepBytes: 0, incomingBytes: 500);
        Assert.Equal(["a-oldest", "b-middle"], removed.Select(Path.GetFileName));
        Assert.True(Directory.Exists(Path.Combine(parent, "c-newest")));
        Assert.True(File.Exists(Path.Combine(parent, "not-a-dump", "notes.txt")));
        Assert.True(File.Exists(Path.Combine(outside, "vmcore")));

        // By size: 1000 kept + 9500 incoming > 10000: the last old one goes too.
        MakeDump("d-new", 21, 100);
        removed = Retention.Apply(parent, keepDumps: 0, keepBytes: 10_000, incomingBytes: 9_500);
        Assert.Equal(["c-newest"], removed.Select(Path.GetFileName));
        Assert.Empty(Retention.Apply(parent, keepDumps: 0, keepBytes: 10_000, incomingBytes: 100));
    }

    [Fact]
    public void ManifestRoundTripsAndRejectsPathsInFileNames()
    {
        var m = new DumpManifest
        {
            Complete = false, IncompleteReason = "the target is full", Host = "web-01", KernelRelease = "6.1.0-21-amd64",
            CrashTime = new DateTimeOffset(2026, 11, 23, 6, 40, 5, TimeSpan.Zero), DumpLevel = 31, RequestedDumpLevel = 1,
            Compression = "zstd", DumpablePages = 12345, Files = [new("vmcore-incomplete", 42, "0123456789abcdef")], Problems = ["x"],
        };
        var back = DumpManifest.Parse(m.ToJson());
        Assert.Equal((false, "the target is full", "web-01", 31, 1, 12345UL), (back.Complete, back.IncompleteReason, back.Host, back.DumpLevel, back.RequestedDumpLevel, back.DumpablePages));
        Assert.Equal(m.CrashTime, back.CrashTime);
        Assert.Equal(m.Files, back.Files);
        Assert.Throws<InvalidDataException>(() => DumpManifest.Parse(m.ToJson().Replace("vmcore-incomplete", "../etc/passwd")));
        Assert.Throws<InvalidDataException>(() => DumpManifest.Parse("{\"complete\": true"));
    }
}

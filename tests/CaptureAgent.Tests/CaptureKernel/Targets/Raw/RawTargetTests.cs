using System.Diagnostics;
using System.Text.RegularExpressions;
using CaptureAgent.Capture;
using CaptureAgent.Cli;
using CaptureAgent.Dmesg;
using CaptureAgent.Dump;
using CaptureAgent.Output;
using CaptureAgent.Targets.Raw;
using CaptureAgent.Tests.Integration;
using CaptureAgent.Vmcore;
using Xunit;
using Xunit.Abstractions;
using CaptureAgent.Common;
using CaptureAgent.Formats;
using CaptureAgent.Host;

namespace CaptureAgent.Tests.CaptureKernel.Targets.Raw;

/// <summary>
/// The raw device target and savecore on a real vmcore, on a real loop block device (root) and on
/// sparse image files: what savecore extracts must be byte for byte what a direct dump of the same
/// vmcore gives, a cut or damaged device must give a readable vmcore-incomplete and keep what it
/// cannot vouch for, and nothing that is not ours is ever written.
/// </summary>
[Trait("Category", "Root")]
[Trait("Category", "Fixture")]
public class RawTargetTests(ITestOutputHelper log)
{
    private const string Fixture = "6.1-1024";
    private const string BootId = "4e1f0c5a-9d6b-4c1e-8b43-7e2f3a1d5c00";
    private static readonly UnixFileMode Dir0700 = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
    private static readonly UnixFileMode File0600 = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    private sealed class Loop : IDisposable
    {
        public string Device { get; }
        private Loop(string device) => Device = device;

        /// <summary>A loop device on the image, or null when this machine does not allow one.</summary>
        /// <summary>A loop device over the image; a machine that cannot make one fails the test with the reason.</summary>
        public static Loop Attach(string image)
        {
            TestCategory.Require(TestCategory.Root);
            var r = Fixtures.Exec("/usr/sbin/losetup", ["--show", "-f", image]);
            if (r.ExitCode == 0 && r.Stdout.StartsWith("/dev/loop", StringComparison.Ordinal)) return new Loop(r.Stdout.Trim());
            throw new InvalidOperationException($"this test needs a loop device (root and the loop driver): losetup said {r.Stderr.Trim()}");
        }

        public void Dispose() => Fixtures.Exec("/usr/sbin/losetup", ["-d", Device]);
    }

    private static string Image(TempDir dir, string name, string size)
    {
        string path = dir.File(name);
        Fixtures.Sh($"truncate -s {size} {path}");
        return path;
    }

    private RawWriteResult Write(string device, bool allowFile = false, DumpOptions? options = null, long checkpoint = RawStreamSink.CheckpointBytes)
    {
        using var src = new DumpSource(Fixtures.Vmcore(Fixture));
        var clock = Stopwatch.StartNew();
        var r = RawDeviceWriter.Save(device, src, options ?? new DumpOptions(), CaptureJob.Facts(src, BootId), log.WriteLine, allowFile, checkpoint);
        log.WriteLine($"write: {r.Status} in {clock.Elapsed.TotalSeconds:0.0} s, {r.DumpBytes} bytes of stream, {r.DmesgBytes} of log; {r.Error}");
        return r;
    }

    private static RawDumpHeader ReadHeader(string device)
    {
        using var h = File.OpenHandle(device);
        var block = new byte[RawDumpHeader.Size];
        RandomAccess.Read(h, block, 0);
        return RawDumpHeader.Parse(block, out string? problem) ?? throw new InvalidOperationException(problem ?? "no header");
    }

    private static string Template(TempDir dir, string name) => Path.Combine(dir.Path, name) + "/" + PathTemplate.DefaultLeaf;

    private static byte[] DirectDump(DumpOptions options)
    {
        using var dir = new TempDir();
        using (var src = new DumpSource(Fixtures.Vmcore(Fixture)))
        using (var sink = FileSink.Create(dir.File("direct")))
            Assert.False(new KdumpCompressedWriter(src, sink, options).Write().Incomplete);
        return File.ReadAllBytes(dir.File("direct"));
    }

    private static byte[] KernelLog()
    {
        using var src = new DumpSource(Fixtures.Vmcore(Fixture));
        var text = new MemoryStream();
        new PrintkLog(src.Kernel!, src.Info!).WriteTo(text);
        return text.ToArray();
    }

    [Fact]
    public void OnALoopDeviceSavecoreExtractsExactlyTheDirectDumpAndOnlyOnce()
    {
        using var dir = new TempDir();
        using var loop = Loop.Attach(Image(dir, "raw.img", "128M"));
        // zlib pages: Debian's makedumpfile, an oracle below, has no zstd.
        var zlib = new DumpOptions { Codec = Compression.PageCodec.Zlib };
        var w = Write(loop.Device, options: zlib);
        Assert.Equal(RawWriteStatus.Complete, w.Status);
        Assert.Empty(w.Problems);
        var header = ReadHeader(loop.Device);
        Assert.Equal((RawDumpState.Complete, 128L << 20, RawDumpHeader.Size), (header.State, header.DeviceSize, (int)header.DmesgOffset));
        Assert.Equal(0, header.StreamOffset % (1 << 20));
        Assert.True(header.StreamEnded && header.DmesgComplete);

        // The boot-time path: the config names the device and where dumps go.
        string conf = dir.File("capture-agent.conf");
        File.WriteAllText(conf, $"target = raw:{loop.Device}\npath = {dir.Path}/crash/{{host}}-{{date}}\n");
        Assert.Equal(ExitCodes.Ok, SavecoreCommand.Run(["--config", conf]));
        string saved = Assert.Single(Directory.GetDirectories(dir.File("crash")));
        log.WriteLine($"extracted to {saved}");
        Assert.Matches(@"/unknown-host-\d{4}-\d\d-\d\d-\d\d:\d\d:\d\d$|/[A-Za-z0-9._-]+-\d{4}-\d\d-\d\d-\d\d:\d\d:\d\d$", saved);
        Assert.Equal(Dir0700, File.GetUnixFileMode(saved));
        foreach (var f in new[] { "vmcore", "dmesg.txt", "manifest.json" })
            Assert.Equal(File0600, File.GetUnixFileMode(Path.Combine(saved, f)));

        Assert.True(DirectDump(new DumpOptions { Codec = Compression.PageCodec.Zlib }).AsSpan().SequenceEqual(File.ReadAllBytes(Path.Combine(saved, "vmcore"))), "vmcore differs from a direct dump");
        Assert.Equal(KernelLog(), File.ReadAllBytes(Path.Combine(saved, "dmesg.txt")));
        Assert.Equal(ExitCodes.Ok, VerifyCommand.Run([saved]));

        // The header now says extracted: the next boot finds nothing, and the device is still ours.
        var after = ReadHeader(loop.Device);
        Assert.Equal(RawDumpState.Extracted, after.State);
        Assert.Equal(saved, after.ExtractedTo);
        var again = RawDeviceReader.Extract(loop.Device, Template(dir, "crash"));
        Assert.Equal(SavecoreStatus.NoDump, again.Status);
        Assert.Contains($"no dump on {loop.Device}", again.Summary);
        Assert.Single(Directory.GetDirectories(dir.File("crash")));

        // The oracles read what was extracted.
        string vmcore = Path.Combine(saved, "vmcore");
        var mdf = Fixtures.Exec(Fixtures.Makedumpfile, ["--dump-dmesg", vmcore, dir.File("mdf-dmesg.txt")]);
        Assert.True(mdf.ExitCode == 0, mdf.Stdout + mdf.Stderr);
        // makedumpfile finds the same log in the extracted dump as in the vmcore itself.
        Assert.Equal(0, Fixtures.Exec(Fixtures.Makedumpfile, ["--dump-dmesg", Fixtures.Vmcore(Fixture), dir.File("mdf-vmcore.txt")]).ExitCode);
        Assert.Equal(File.ReadAllBytes(dir.File("mdf-vmcore.txt")), File.ReadAllBytes(dir.File("mdf-dmesg.txt")));
        string digest = Fixtures.Sh($"/usr/bin/python3 {Fixtures.OracleScript("kdumpfile_digest.py")} {vmcore}");
        Assert.Contains("release " + Fixtures.Release(Fixture), digest);
        Assert.Matches("digest [0-9a-f]{64}", digest);
    }

    [Fact]
    public void ADeviceTooSmallForTheDumpGivesAReadableVmcoreIncompleteAndExit3()
    {
        using var dir = new TempDir();
        string image = Image(dir, "small.img", "8M");   // the dump is about 21 MB
        var w = Write(image, allowFile: true);
        Assert.Equal(RawWriteStatus.Incomplete, w.Status);
        Assert.Contains("full", w.Error);
        Assert.True(w.DumpBytes > 6L << 20 && w.DumpBytes <= (8L << 20) - (1L << 20), $"{w.DumpBytes} bytes");
        var header = ReadHeader(image);
        Assert.Equal(RawDumpState.Incomplete, header.State);
        Assert.True(header.StreamEnded, "the cut stream still ends with its end marker");

        Assert.Equal(ExitCodes.Degraded, SavecoreCommand.Run(["--device", image, "--allow-file", "--dir", dir.File("crash")]));
        string saved = Assert.Single(Directory.GetDirectories(dir.File("crash")));
        Assert.False(File.Exists(Path.Combine(saved, "vmcore")));
        string cut = Path.Combine(saved, "vmcore-incomplete");
        using (var kd = new KdumpFile(cut))
        {
            Assert.True(kd.Incomplete);
            var scan = kd.Scan();
            log.WriteLine($"vmcore-incomplete: {scan.Ok} pages readable, {scan.Missing} missing, {scan.Corrupt} corrupt");
            Assert.Equal(0UL, scan.Corrupt);
            Assert.True(scan.Ok > 1000 && scan.Missing > 1000, $"{scan.Ok} ok, {scan.Missing} missing");
        }
        Assert.Contains("sysrq triggered crash", File.ReadAllText(Path.Combine(saved, "dmesg.txt")));
        Assert.Equal(ExitCodes.Degraded, VerifyCommand.Run([saved]));
        // All there was is out: the header is cleared, a second run finds nothing.
        Assert.Equal(RawDumpState.Extracted, ReadHeader(image).State);
        Assert.Equal(ExitCodes.Ok, SavecoreCommand.Run(["--device", image, "--allow-file", "--dir", dir.File("crash")]));
        Assert.Single(Directory.GetDirectories(dir.File("crash")));
    }

    /// <summary>The device's room, like a filesystem's free space, makes the writer use the fallback level from the start.</summary>
    [Fact]
    public void ADeviceTooSmallForTheLevelAskedForGetsTheFallbackLevelWhole()
    {
        using var dir = new TempDir();
        string image = Image(dir, "raw.img", "48M");
        var w = Write(image, allowFile: true, new DumpOptions { Level = Filtering.DumpLevel.Zero, FallbackLevel = Filtering.DumpLevel.All });
        foreach (var p in w.Problems) log.WriteLine("problem: " + p);
        Assert.Equal(RawWriteStatus.Complete, w.Status);
        Assert.Equal(Filtering.DumpLevel.All, w.Dump!.LevelRaisedTo);
        Assert.Contains(w.Problems, p => p.Contains("dump level 31 used instead", StringComparison.Ordinal));
        Assert.Equal(31, ReadHeader(image).DumpLevel);
        // Whole, but not what was asked for: said so (exit 3), under the name vmcore.
        var r = RawDeviceReader.Extract(image, Template(dir, "crash"), allowRegularFile: true);
        Assert.Equal(SavecoreStatus.Degraded, r.Status);
        Assert.Contains(r.Problems, p => p.StartsWith("the capture reported: the dump at level 1 would take", StringComparison.Ordinal));
        Assert.EndsWith("/vmcore", r.VmcorePath);
        Assert.True(r.HeaderCleared);
        using var kd = new KdumpFile(r.VmcorePath!);
        Assert.Equal(31, kd.Header.DumpLevel);
        Assert.False(kd.Incomplete);
    }

    /// <summary>The capture dies midway (power cut, hang): the checkpointed prefix is extracted and verified.</summary>
    [Fact]
    public void ACaptureThatDiesMidwayLeavesItsLastCheckpointReadable()
    {
        using var dir = new TempDir();
        string image = Image(dir, "raw.img", "64M");
        var options = new DumpOptions
        {
            Progress = (done, total) => { if (done > total * 3 / 4 && done < total) throw new SimulatedCrash(); },
        };
        Assert.Throws<SimulatedCrash>(() => Write(image, allowFile: true, options, checkpoint: 4 << 20));
        var header = ReadHeader(image);
        Assert.Equal(RawDumpState.Writing, header.State);
        Assert.True(header.StreamLength >= 4 << 20, $"checkpointed {header.StreamLength}");
        Assert.False(header.StreamEnded);

        var r = RawDeviceReader.Extract(image, Template(dir, "crash"), allowRegularFile: true, report: log.WriteLine);
        foreach (var p in r.Problems) log.WriteLine("problem: " + p);
        Assert.Equal(SavecoreStatus.Incomplete, r.Status);
        Assert.EndsWith("vmcore-incomplete", r.VmcorePath);
        Assert.Contains(r.Problems, p => p.Contains("did not finish writing", StringComparison.Ordinal));
        Assert.DoesNotContain(r.Problems, p => p.Contains("CRC-64", StringComparison.Ordinal));
        using (var kd = new KdumpFile(r.VmcorePath!))
        {
            Assert.True(kd.Incomplete);
            var scan = kd.Scan();
            Assert.Equal(0UL, scan.Corrupt);
            Assert.True(scan.Ok > 1000, $"{scan.Ok} pages");
        }
        Assert.True(r.HeaderCleared);
    }

    private sealed class SimulatedCrash : Exception;

    [Fact]
    public void ADamagedStreamIsReportedAndTheDeviceKeepsItsHeaderUntilDiscarded()
    {
        using var dir = new TempDir();
        string image = Image(dir, "raw.img", "64M");
        Assert.Equal(RawWriteStatus.Complete, Write(image, allowFile: true).Status);
        long at = ReadHeader(image).StreamOffset + 300_000;   // inside the page data
        using (var f = new FileStream(image, FileMode.Open, FileAccess.ReadWrite))
        {
            f.Position = at;
            int b = f.ReadByte();
            f.Position = at;
            f.WriteByte((byte)(b ^ 0x10));
        }
        var r = RawDeviceReader.Extract(image, Template(dir, "crash"), allowRegularFile: true);
        Assert.Equal(SavecoreStatus.Incomplete, r.Status);
        Assert.Contains(r.Problems, p => p.Contains("does not match its CRC-64", StringComparison.Ordinal));
        Assert.True(File.Exists(Path.Combine(r.Directory!, "vmcore-incomplete")));
        Assert.True(File.Exists(Path.Combine(r.Directory!, "dmesg.txt")));
        Assert.False(r.HeaderCleared);
        Assert.Equal(RawDumpState.Complete, ReadHeader(image).State);

        // Still there for another look, never over the first extraction.
        var second = RawDeviceReader.Extract(image, Template(dir, "crash"), allowRegularFile: true);
        Assert.Equal(SavecoreStatus.Incomplete, second.Status);
        Assert.Equal(r.Directory + "-1", second.Directory);
        Assert.True(File.Exists(Path.Combine(r.Directory!, "vmcore-incomplete")));
        Assert.Equal(ExitCodes.Ok, SavecoreCommand.Run(["--device", image, "--allow-file", "--discard"]));
        Assert.Equal(SavecoreStatus.NoDump, RawDeviceReader.Extract(image, Template(dir, "crash"), allowRegularFile: true).Status);
    }

    [Fact]
    public void ADamagedHeaderIsReportedAndNothingIsTouched()
    {
        using var dir = new TempDir();
        string image = Image(dir, "raw.img", "4M");
        using (var src = new DumpSource(Fixtures.Vmcore(Fixture)))
            RawDeviceWriter.Save(image, src, new DumpOptions(), CaptureJob.Facts(src, BootId), log.WriteLine, allowRegularFile: true);
        using (var f = new FileStream(image, FileMode.Open, FileAccess.ReadWrite)) { f.Position = 130; f.WriteByte(0x7f); }
        byte[] before = File.ReadAllBytes(image);
        var r = RawDeviceReader.Extract(image, Template(dir, "crash"), allowRegularFile: true);
        Assert.Equal(SavecoreStatus.Failed, r.Status);
        Assert.Contains("damaged (CRC-64 mismatch)", r.Summary);
        Assert.False(Directory.Exists(dir.File("crash")));
        Assert.True(before.AsSpan().SequenceEqual(File.ReadAllBytes(image)));
    }

    [Fact]
    public void AFilesystemOrPartitionTableIsNeverOverwrittenNorTakenForADump()
    {
        using var dir = new TempDir();
        string image = Image(dir, "fs.img", "64M");
        Fixtures.Sh($"/usr/sbin/mkfs.ext4 -q -F -L precious {image}");
        byte[] before = File.ReadAllBytes(image);
        var w = Write(image, allowFile: true);
        Assert.Equal(RawWriteStatus.Failed, w.Status);
        Assert.Contains("ext4 LABEL=precious", w.Error);
        Assert.Contains("refusing to overwrite", w.Error);
        var r = RawDeviceReader.Extract(image, Template(dir, "crash"), allowRegularFile: true);
        Assert.Equal(SavecoreStatus.Failed, r.Status);
        Assert.Contains("holds ext4", r.Summary);
        Assert.Equal(ExitCodes.Failed, SavecoreCommand.Run(["--device", image, "--allow-file", "--dir", dir.File("crash")]));
        Assert.True(before.AsSpan().SequenceEqual(File.ReadAllBytes(image)));
        Assert.False(Directory.Exists(dir.File("crash")));

        // A whole disk named instead of its partition.
        string disk = Image(dir, "disk.img", "32M");
        Fixtures.Sh($"printf 'label: gpt\\nstart=2048, size=8192, name=crashraw\\n' | /usr/sbin/sfdisk -q {disk}");
        var onDisk = Write(disk, allowFile: true);
        Assert.Equal(RawWriteStatus.Failed, onDisk.Status);
        Assert.Contains("partition table", onDisk.Error);

        // A regular file is not a raw device unless a test says so; tiny devices are refused in one line.
        Assert.Contains("is not a block device", Write(image).Error);
        Assert.Contains("needs at least 2 MiB", Write(Image(dir, "tiny.img", "1M"), allowFile: true).Error);
    }

    [Fact]
    public void ADeviceInUseIsNeitherWrittenNorRead()
    {
        using var dir = new TempDir();
        using var loop = Loop.Attach(Image(dir, "raw.img", "32M"));
        // Another holder with an exclusive claim, as a mount or md/dm would have.
        using var holder = Process.Start(new ProcessStartInfo("/usr/bin/python3",
            ["-c", $"import os,sys,time; fd=os.open('{loop.Device}', os.O_RDONLY|os.O_EXCL); print('held', flush=True); time.sleep(30)"])
            { RedirectStandardOutput = true, UseShellExecute = false })!;
        try
        {
            Assert.Equal("held", holder.StandardOutput.ReadLine());
            var w = Write(loop.Device);
            Assert.Equal(RawWriteStatus.Failed, w.Status);
            Assert.Contains("is in use", w.Error);
            var r = RawDeviceReader.Extract(loop.Device, Template(dir, "crash"));
            Assert.Equal(SavecoreStatus.Failed, r.Status);
            Assert.Contains("is in use", r.Summary);
        }
        finally
        {
            holder.Kill();
            holder.WaitForExit();
        }
        Assert.Equal(SavecoreStatus.NoDump, RawDeviceReader.Extract(loop.Device, Template(dir, "crash")).Status);
    }

    [Fact]
    public void TheHeaderRoundTripsAndRefusesWhatItCannotTrust()
    {
        var h = new RawDumpHeader
        {
            State = RawDumpState.Incomplete, DeviceSize = 1L << 30, DmesgLength = 12345, DmesgCrc = 0x1122334455667788,
            StreamOffset = 1 << 20, StreamLength = 99 << 20, StreamCrc = 42, CrashTime = DateTimeOffset.FromUnixTimeSeconds(1_800_000_000),
            Host = "web-01", KernelRelease = "6.1.0-21-amd64", BootId = BootId, Reason = "the raw device is full", Flags = RawDumpHeader.FlagStreamEnded, DumpLevel = 31,
        };
        var block = h.Build();
        var back = RawDumpHeader.Parse(block, out string? problem);
        Assert.Null(problem);
        Assert.Equal((h.State, h.DeviceSize, h.DmesgLength, h.DmesgCrc, h.StreamOffset, h.StreamLength, h.StreamCrc, h.CrashTime, h.Host, h.KernelRelease, h.BootId, h.Reason, h.Flags, h.DumpLevel),
            (back!.State, back.DeviceSize, back.DmesgLength, back.DmesgCrc, back.StreamOffset, back.StreamLength, back.StreamCrc, back.CrashTime, back.Host, back.KernelRelease, back.BootId, back.Reason, back.Flags, back.DumpLevel));
        Assert.Equal("web-01-2027-01-15-08:00:00", RawDeviceReader.Place("/var/crash", back.Facts).Leaf);
        Assert.Equal(("/srv/dumps", "web-01", "2027-01-15-08:00:00"), RawDeviceReader.Place("/srv/dumps/{host}/{date}", back.Facts));

        // Not ours: no problem, no header. Ours but damaged or with an impossible layout: a problem.
        Assert.Null(RawDumpHeader.Parse(new byte[4096], out problem));
        Assert.Null(problem);
        block[200] ^= 1;
        Assert.Null(RawDumpHeader.Parse(block, out problem));
        Assert.Contains("CRC-64 mismatch", problem);
        h.StreamOffset = 4096;   // overlapping the log
        Assert.Null(RawDumpHeader.Parse(h.Build(), out problem));
        Assert.Contains("impossible layout", problem);
        // Long names are cut on a character boundary.
        h.StreamOffset = 1 << 20;
        h.Host = new string('é', 100);
        Assert.Equal(new string('é', 63), RawDumpHeader.Parse(h.Build(), out _)!.Host);
    }
}

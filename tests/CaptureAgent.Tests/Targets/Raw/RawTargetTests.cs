using CaptureAgent.Capture;
using CaptureAgent.Dmesg;
using CaptureAgent.Dump;
using CaptureAgent.Output;
using CaptureAgent.Targets.Raw;
using CaptureAgent.Tests.Integration;
using CaptureAgent.Vmcore;
using Xunit;

namespace CaptureAgent.Tests.Targets.Raw;

/// <summary>
/// Raw device target and savecore, on a real loop block device (root) and on image files: what
/// savecore extracts must be byte for byte what a direct dump of the same vmcore gives.
/// </summary>
public class RawTargetTests
{
    private const string Fixture = "6.1-1024";

    private sealed class Loop : IDisposable
    {
        public string Device { get; }
        public Loop(string image) => Device = Fixtures.Sh($"losetup --show -f {image}").Trim();
        public void Dispose() => Fixtures.Exec("/sbin/losetup", ["-d", Device]);
    }

    private static RawWriteResult Write(string device, bool allowFile = false)
    {
        using var src = new DumpSource(Fixtures.Vmcore(Fixture));
        return RawDeviceWriter.Save(device, src, new DumpOptions(), CaptureJob.Facts(src, "4e1f0c5a-9d6b-4c1e-8b43-7e2f3a1d5c00"), null, allowFile);
    }

    [Fact]
    public void SavecoreExtractsExactlyTheDirectDumpAndClearsTheHeader()
    {
        using var dir = new TempDir();
        string image = dir.File("raw.img");
        Fixtures.Sh($"truncate -s 128M {image}");
        using var loop = new Loop(image);
        var w = Write(loop.Device);
        Assert.True(w.Complete, w.Message);

        string saved = Directory.CreateDirectory(dir.File("saved")).FullName;
        var r = RawDeviceReader.Extract(loop.Device, saved, keepHeader: false);
        Assert.Equal(SavecoreOutcome.Complete, r.Outcome);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(r.Directory!));
        Assert.StartsWith("unknown-host-", Path.GetFileName(r.Directory));

        // The reference: the same vmcore dumped straight into a file, and its log.
        Unit.SyntheticDumpTests.Dump(Fixtures.Vmcore(Fixture), dir.File("direct"), new DumpOptions());
        Assert.True(File.ReadAllBytes(dir.File("direct")).AsSpan().SequenceEqual(File.ReadAllBytes(Path.Combine(r.Directory!, "vmcore"))));
        using (var src = new DumpSource(Fixtures.Vmcore(Fixture)))
        {
            var log = new MemoryStream();
            new PrintkLog(src.Kernel!, src.Info!).WriteTo(log);
            Assert.Equal(log.ToArray(), File.ReadAllBytes(Path.Combine(r.Directory!, "dmesg.txt")));
        }
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(r.Directory!, "vmcore")));
        Assert.Equal(Cli.ExitCodes.Ok, Cli.VerifyCommand.Run([r.Directory!]));

        // The header is gone: a second boot finds nothing, and the device is still not a filesystem.
        Assert.Equal(SavecoreOutcome.NoDump, RawDeviceReader.Extract(loop.Device, saved, keepHeader: false).Outcome);
        Assert.Single(Directory.GetDirectories(saved));
    }

    [Fact]
    public void DeviceTooSmallGivesAReadableIncompleteDumpAndKeepsTheHeader()
    {
        using var dir = new TempDir();
        string image = dir.File("small.img");
        Fixtures.Sh($"truncate -s 8M {image}");   // the dump is about 21 MB
        var w = Write(image, allowFile: true);
        Assert.False(w.Complete);
        Assert.Contains("full", w.Message);
        string saved = Directory.CreateDirectory(dir.File("saved")).FullName;
        var r = RawDeviceReader.Extract(image, saved, keepHeader: false);
        Assert.Equal(SavecoreOutcome.Incomplete, r.Outcome);
        string cut = Path.Combine(r.Directory!, "vmcore-incomplete");
        using (var kd = new KdumpFile(cut))
        {
            Assert.True(kd.Incomplete);
            var scan = kd.Scan();
            Assert.Equal(0UL, scan.Corrupt);
            Assert.True(scan.Ok > 1000, $"{scan.Ok} pages");
        }
        Assert.Contains("sysrq triggered crash", File.ReadAllText(Path.Combine(r.Directory!, "dmesg.txt")));
        Assert.Equal(Cli.ExitCodes.Degraded, Cli.VerifyCommand.Run([r.Directory!]));
        // Not cleared: a cut dump stays on the device for another look.
        Assert.Equal(SavecoreOutcome.Incomplete, RawDeviceReader.Extract(image, saved, keepHeader: false).Outcome);
    }

    [Fact]
    public void ADamagedStreamIsReportedAndNothingIsCleared()
    {
        using var dir = new TempDir();
        string image = dir.File("raw.img");
        Fixtures.Sh($"truncate -s 64M {image}");
        Assert.True(Write(image, allowFile: true).Complete);
        using (var f = new FileStream(image, FileMode.Open, FileAccess.ReadWrite))
        {
            f.Position = (2 << 20) + 300_000;   // inside the flattened stream's page data
            int b = f.ReadByte();
            f.Position--;
            f.WriteByte((byte)(b ^ 0x10));
        }
        string saved = Directory.CreateDirectory(dir.File("saved")).FullName;
        var r = RawDeviceReader.Extract(image, saved, keepHeader: false);
        Assert.Equal(SavecoreOutcome.Incomplete, r.Outcome);
        Assert.Contains("CRC-64", r.Message);
        Assert.True(File.Exists(Path.Combine(r.Directory!, "vmcore-incomplete")));
        Assert.NotEqual(SavecoreOutcome.NoDump, RawDeviceReader.Extract(image, saved, keepHeader: false).Outcome);
    }

    [Fact]
    public void AFilesystemIsNeverOverwrittenNorTakenForADump()
    {
        using var dir = new TempDir();
        string image = dir.File("fs.img");
        Fixtures.Sh($"truncate -s 64M {image} && mkfs.ext4 -q -F -L precious {image}");
        byte[] before = File.ReadAllBytes(image);
        var e = Assert.Throws<IOException>(() => Write(image, allowFile: true));
        Assert.Contains("refusing to overwrite", e.Message);
        Assert.Contains("ext4", e.Message);
        Assert.Equal(SavecoreOutcome.Refused, RawDeviceReader.Extract(image, Directory.CreateDirectory(dir.File("s")).FullName, false).Outcome);
        Assert.True(before.AsSpan().SequenceEqual(File.ReadAllBytes(image)));
        // And a regular file is not a raw device unless a test says so.
        Assert.Contains("not a block device", Assert.Throws<IOException>(() => Write(dir.File("fs.img"))).Message);
    }
}

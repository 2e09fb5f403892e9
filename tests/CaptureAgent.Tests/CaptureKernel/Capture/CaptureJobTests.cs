using CaptureAgent.Capture;
using CaptureAgent.Dump;
using CaptureAgent.Tests.Synthetic;
using CaptureAgent.Vmcore;
using Xunit;
using CaptureAgent.Formats;

namespace CaptureAgent.Tests.CaptureKernel.Capture;

[Trait("Category", "Fixture")]
public class CaptureJobTests
{
    [Fact]
    public void SavesIntoAPrivateHostDateDirectoryWithTheDumpRenamedOnlyWhenComplete()
    {
        var k = new SyntheticKernel();
        using var dir = new TempDir();
        k.WriteElf(dir.File("vmcore"));
        var target = Directory.CreateDirectory(dir.File("target")).FullName;
        var r = CaptureJob.Run(dir.File("vmcore"), target, new CaptureSettings { PathTemplate = "/var/crash", MinFreeBytes = 0 });
        Assert.Equal(Path.Combine(target, "var", "crash", "synthhost-2026-11-23-03:35:14"), r.Directory);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(r.Directory));
        Assert.Equal(["manifest.json", "vmcore"], Directory.GetFiles(r.Directory).Select(Path.GetFileName).Order());   // the synthetic kernel has no log
        Assert.Contains(r.Problems, p => p.StartsWith("kernel log not saved"));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(r.VmcorePath!));
        using var kd = new KdumpFile(r.VmcorePath!);
        Assert.Equal(SyntheticKernel.UtsRelease, kd.Info!.OsRelease);

        // A second crash in the same second never overwrites the first.
        var second = CaptureJob.Run(dir.File("vmcore"), target, new CaptureSettings { PathTemplate = "/var/crash", MinFreeBytes = 0 });
        Assert.Equal(r.Directory + "-1", second.Directory);
    }

    [Fact]
    public void RefusesASymlinkPlantedInTheDumpPath()
    {
        var k = new SyntheticKernel();
        using var dir = new TempDir();
        k.WriteElf(dir.File("vmcore"));
        var target = Directory.CreateDirectory(dir.File("target")).FullName;
        Directory.CreateDirectory(Path.Combine(target, "var"));
        Directory.CreateDirectory(dir.File("elsewhere"));
        File.CreateSymbolicLink(Path.Combine(target, "var", "crash"), dir.File("elsewhere"));
        var e = Assert.Throws<IOException>(() => CaptureJob.Run(dir.File("vmcore"), target, new CaptureSettings { PathTemplate = "/var/crash", MinFreeBytes = 0 }));
        Assert.Contains("symbolic link", e.Message);
        Assert.Empty(Directory.GetFileSystemEntries(dir.File("elsewhere")));
    }

    [Fact]
    public void RealVmcoreGetsItsLogFirstAndTheCrashedHostsName()
    {
        using var dir = new TempDir();
        var r = CaptureJob.Run(Integration.Fixtures.Vmcore("6.1-1024"), dir.Path, new CaptureSettings { PathTemplate = "/var/crash", MinFreeBytes = 0 });
        Assert.Empty(r.Problems);
        Assert.StartsWith(Path.Combine(dir.Path, "var", "crash", "unknown-host-"), r.Directory);   // the fixture's nodename is "(none)"
        Assert.Contains("sysrq triggered crash", File.ReadAllText(r.DmesgPath!));
        Assert.True(File.GetLastWriteTimeUtc(r.DmesgPath!) <= File.GetLastWriteTimeUtc(r.VmcorePath!));
        Assert.False(File.Exists(Path.Combine(r.Directory, "vmcore-incomplete")));
    }
}

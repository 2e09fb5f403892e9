using CaptureAgent.Initramfs;
using CaptureAgent.Tests.Integration;
using Xunit;

namespace CaptureAgent.Tests.Host.Initramfs;

/// <summary>The newc writer field by field, and read back by GNU cpio.</summary>
public class CpioNewcWriterTests
{
    private static byte[] Sample(int length)
    {
        var data = new byte[length];
        new Random(length).NextBytes(data);
        return data;
    }

    /// <summary>A tree with every entry type, name lengths that hit each padding case, and data sizes that do too.</summary>
    private static byte[] WriteSampleTree(Stream output)
    {
        var big = Sample(3_000_001);
        using var w = new CpioNewcWriter(output, leaveOpen: true);
        w.WriteDirectory("dev", 0x1ed);
        w.WriteCharDevice("dev/console", 0x180, 5, 1);
        w.WriteCharDevice("dev/kmsg", 0x1a4, 1, 11);
        w.WriteDirectory("etc", 0x1c0);
        w.WriteFile("etc/a", 0x1a4, Sample(1));
        w.WriteFile("etc/ab", 0x1a4, Sample(2));
        w.WriteFile("etc/abc", 0x1a4, Sample(3));
        w.WriteFile("etc/abcd", 0x180, Sample(4));
        w.WriteFile("etc/empty", 0x180, ReadOnlySpan<byte>.Empty);
        w.WriteFile("/init", 0x1ed, new MemoryStream(big));   // a leading slash is dropped: the kernel wants relative names
        w.WriteSymlink("sbin", "bin");
        w.WriteSymlink("etc/mtab", "/proc/self/mounts");
        return big;
    }

    [Fact]
    public void EveryHeaderFieldIsWhatTheFormatAndTheKernelExpect()
    {
        using var ms = new MemoryStream();
        var big = WriteSampleTree(ms);
        var archive = ms.ToArray();
        var (entries, trailerEnd) = NewcArchive.Read(archive);

        Assert.Equal(["dev", "dev/console", "dev/kmsg", "etc", "etc/a", "etc/ab", "etc/abc", "etc/abcd", "etc/empty", "init", "sbin", "etc/mtab"],
            entries.Select(e => e.Name));
        Assert.Equal(Enumerable.Range(1, entries.Count).Select(i => (uint)i), entries.Select(e => e.Inode));   // unique, increasing
        Assert.All(entries, e =>
        {
            Assert.Equal(0u, e.Uid);
            Assert.Equal(0u, e.Gid);
            Assert.Equal(0u, e.Mtime);
            Assert.Equal(0u, e.DevMajor);
            Assert.Equal(0u, e.DevMinor);
            Assert.Equal(0u, e.Check);
        });
        var byName = entries.ToDictionary(e => e.Name);
        Assert.Equal((0x4000u, 0x1edu, 2u), (byName["dev"].Type, byName["dev"].Permissions, byName["dev"].Nlink));
        Assert.Equal((0x2000u, 0x180u, 5u, 1u), (byName["dev/console"].Type, byName["dev/console"].Permissions, byName["dev/console"].RdevMajor, byName["dev/console"].RdevMinor));
        Assert.Equal((1u, 11u), (byName["dev/kmsg"].RdevMajor, byName["dev/kmsg"].RdevMinor));
        Assert.Empty(byName["dev/console"].Data);
        Assert.Equal((0x8000u, 0x1edu), (byName["init"].Type, byName["init"].Permissions));
        Assert.Equal(big, byName["init"].Data);
        Assert.Equal(Sample(3), byName["etc/abc"].Data);
        Assert.Empty(byName["etc/empty"].Data);
        Assert.Equal((0xA000u, "bin"), (byName["sbin"].Type, System.Text.Encoding.ASCII.GetString(byName["sbin"].Data)));
        Assert.Equal("/proc/self/mounts", System.Text.Encoding.ASCII.GetString(byName["etc/mtab"].Data));

        // After the trailer only zero padding, to a 512-byte boundary.
        Assert.Equal(0, archive.Length % 512);
        Assert.True(archive.Length - trailerEnd < 512);
        Assert.All(archive[trailerEnd..], b => Assert.Equal(0, b));
    }

    [Fact]
    public void OutputIsDeterministic()
    {
        using var a = new MemoryStream();
        using var b = new MemoryStream();
        WriteSampleTree(a);
        WriteSampleTree(b);
        Assert.Equal(a.ToArray(), b.ToArray());
    }

    [Fact]
    public void GnuCpioListsAndExtractsTheSameTree()
    {
        using var dir = new TempDir();
        byte[] big;
        using (var f = File.Create(dir.File("a.cpio"))) big = WriteSampleTree(f);

        var list = Fixtures.Sh($"cpio -t -v --quiet --numeric-uid-gid < {dir.File("a.cpio")}");
        Assert.Matches(@"(?m)^drwxr-xr-x +2 0 +0 +0 .* dev$", list);
        Assert.Matches(@"(?m)^crw------- +1 0 +0 +5, +1 .* dev/console$", list);
        Assert.Matches(@"(?m)^crw-r--r-- +1 0 +0 +1, +11 .* dev/kmsg$", list);
        Assert.Matches(@"(?m)^drwx------ +2 0 +0 .* etc$", list);
        Assert.Matches(@"(?m)^-rwxr-xr-x +1 0 +0 +3000001 .*1970 init$", list);
        Assert.Matches(@"(?m)^-rw------- +1 0 +0 +0 .* etc/empty$", list);
        Assert.Matches(@"(?m)^lrwxrwxrwx +1 0 +0 +3 .* sbin -> bin$", list);
        Assert.Matches(@"(?m)^lrwxrwxrwx .* etc/mtab -> /proc/self/mounts$", list);

        // Extract all but the device nodes (mknod needs root) and compare what landed on disk.
        string x = dir.File("x");
        Directory.CreateDirectory(x);
        Fixtures.Sh($"cd {x} && cpio -i -d -m --quiet --no-absolute-filenames -f 'dev/*' < {dir.File("a.cpio")}");
        var stat = Fixtures.Sh($"cd {x} && find . -mindepth 1 | sort | xargs stat -c '%n %a %F %s'");
        Assert.Contains("./init 755 regular file 3000001", stat);
        Assert.Contains("./etc/abcd 600 regular file 4", stat);
        Assert.Contains("./etc/empty 600 regular empty file 0", stat);
        Assert.Contains("./sbin 777 symbolic link 3", stat);
        Assert.Equal(big, File.ReadAllBytes(Path.Combine(x, "init")));
        Assert.Equal(Sample(2), File.ReadAllBytes(Path.Combine(x, "etc", "ab")));
        Assert.Equal("bin", new FileInfo(Path.Combine(x, "sbin")).LinkTarget);
    }

    /// <summary>A stream that only reads forward, as a decompressor does.</summary>
    private sealed class ForwardOnly(byte[] data) : MemoryStream(data)
    {
        public override bool CanSeek => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
    }

    [Fact]
    public void AGivenMtimeGoesOnEveryEntryAndUnseekableStreamsNeedTheirLength()
    {
        using var ms = new MemoryStream();
        var data = Sample(200_000);
        using (var w = new CpioNewcWriter(ms, leaveOpen: true, mtime: 1_700_000_000))
        {
            w.WriteDirectory("lib");
            w.WriteFile("lib/m.ko", 0x1a4, new ForwardOnly(data), data.Length);
        }
        using (var broken = new CpioNewcWriter(new MemoryStream()))
            Assert.Contains("shrank", Assert.Throws<IOException>(() => broken.WriteFile("lib/short", 0x1a4, new ForwardOnly(data), data.Length + 1)).Message);
        var entries = NewcArchive.Read(ms.ToArray()[..(int)ms.Length]).Entries;
        Assert.All(entries.Take(2), e => Assert.Equal(1_700_000_000u, e.Mtime));
        Assert.Equal(data, entries[1].Data);
    }

    [Fact]
    public void DisposeWritesTheTrailerOnceAndFurtherEntriesAreRefused()
    {
        using var ms = new MemoryStream();
        var w = new CpioNewcWriter(ms, leaveOpen: true);
        w.WriteDirectory("tmp");
        w.Dispose();
        long length = ms.Length;
        w.Dispose();
        Assert.Equal(length, ms.Length);
        Assert.Single(NewcArchive.Read(ms.ToArray()).Entries);
        Assert.Throws<InvalidOperationException>(() => w.WriteDirectory("run"));
    }
}

using Xunit;
using Xunit.Abstractions;

namespace CaptureAgent.Tests.Integration;

/// <summary>
/// Peak RSS of the published NativeAOT binary, measured by /usr/bin/time: it must stay under 32 MiB
/// and must not grow with the size of the crashed machine (the pfn range is filtered in windows).
/// </summary>
[Trait("Category", "Fixture")]
[Trait("Category", "Binary")]
public class MemoryTests(ITestOutputHelper log)
{
    private long PeakRssKiB(string vmcore, params string[] options)
    {
        using var dir = new TempDir();
        var args = new List<string> { "-f", "%M", "-o", dir.File("rss"), Fixtures.Binary, "dump", "-q" };
        args.AddRange(options);
        args.Add(vmcore);
        args.Add(dir.File("dump"));
        var r = Fixtures.Exec("/usr/bin/time", args);
        Assert.True(r.ExitCode == 0, r.Stderr);
        long kib = long.Parse(File.ReadAllText(dir.File("rss")).Trim().Split('\n')[^1]);
        log.WriteLine($"{Path.GetFileName(Path.GetDirectoryName(vmcore))} {string.Join(' ', options)}: peak RSS {kib} KiB, output {new FileInfo(dir.File("dump")).Length} bytes");
        return kib;
    }

    [Theory]
    [InlineData("-d", "31")]
    [InlineData("-d", "0")]
    [InlineData("-d", "31", "--threads", "1")]
    [InlineData("-d", "1", "-c")]
    [InlineData("-d", "31", "-E")]
    public void PeakRssIsSmallAndDoesNotGrowWithTheGuest(params string[] options)
    {
        long small = PeakRssKiB(Fixtures.Vmcore("6.1-1024"), options);
        long large = PeakRssKiB(Fixtures.Vmcore("6.1-2048"), options);
        Assert.True(small < 32 * 1024, $"peak RSS {small} KiB for a 1 GiB guest");
        Assert.True(large < 32 * 1024, $"peak RSS {large} KiB for a 2 GiB guest");
        // 2x the memory (and 2.3x the vmcore) may cost a few bitmap and section-table bytes, nothing proportional.
        Assert.True(large <= small + 1024, $"peak RSS grew from {small} KiB to {large} KiB with the guest size");
    }
}

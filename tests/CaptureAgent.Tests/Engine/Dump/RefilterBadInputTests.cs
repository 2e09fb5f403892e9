using CaptureAgent.Cli;
using CaptureAgent.Dump;
using CaptureAgent.Filtering;
using CaptureAgent.Tests.Synthetic;
using CaptureAgent.Vmcore;
using Xunit;
using CaptureAgent.Common;
using CaptureAgent.Formats;

namespace CaptureAgent.Tests.Engine.Dump;

/// <summary>
/// A damaged kdump-compressed dump given to `dump` to filter again: what the fuzz kind that
/// re-filters found (a 2nd bitmap selecting pages the 1st says do not exist gave a dump verify
/// called corrupt; bitmaps selecting nothing gave an empty one).
/// </summary>
[Collection("console")]
public class RefilterBadInputTests
{
    /// <summary>A dump at level 0 of the synthetic kernel, and where its bitmaps are.</summary>
    private static (string Dump, long Bitmap1, long Bitmap2) MakeDump(TempDir dir)
    {
        var k = new SyntheticKernel();
        k.WriteElf(dir.File("vmcore"));
        SyntheticDumpTests.Dump(dir.File("vmcore"), dir.File("dump"), new DumpOptions { Level = 0 });
        using var kd = new KdumpFile(dir.File("dump"));
        return (dir.File("dump"), kd.Bitmap1Offset, kd.Bitmap2Offset);
    }

    [Fact]
    public void StoredBitsWhereNoPageExistsAreNotCarriedOver()
    {
        using var dir = new TempDir();
        var (dump, _, bitmap2) = MakeDump(dir);
        // The synthetic kernel has a hole at pfns 6144-6399: claim them stored.
        var bytes = File.ReadAllBytes(dump);
        bytes.AsSpan((int)bitmap2 + 6144 / 8, 256 / 8).Fill(0xff);
        File.WriteAllBytes(dump, bytes);

        int exit = Program.Main(["dump", "-q", "-d", "0", dump, dir.File("again")]);
        Assert.True(exit is ExitCodes.Ok or ExitCodes.Degraded, $"exit {exit}");
        using (var again = new KdumpFile(dir.File("again")))
            for (ulong pfn = 6144; pfn < 6400; pfn++)
            {
                Assert.False(again.IsPresent(pfn), $"pfn {pfn} present");
                Assert.False(again.IsDumpable(pfn), $"pfn {pfn} stored");
            }
        Assert.NotEqual(ExitCodes.Failed, Program.Main(["verify", dir.File("again")]));
    }

    [Fact]
    public void BitmapsThatSelectNothingAreRefusedBeforeWriting()
    {
        using var dir = new TempDir();
        var (dump, bitmap1, bitmap2) = MakeDump(dir);
        var bytes = File.ReadAllBytes(dump);
        bytes.AsSpan((int)bitmap1, (int)(bitmap2 - bitmap1) * 2).Clear();
        File.WriteAllBytes(dump, bytes);

        var error = new StringWriter();
        var saved = Console.Error;
        Console.SetError(error);
        try
        {
            Assert.Equal(ExitCodes.Failed, Program.Main(["dump", "-d", "31", dump, dir.File("again")]));
        }
        finally
        {
            Console.SetError(saved);
        }
        Assert.Contains("no page of its", error.ToString());
        Assert.Equal(0, new FileInfo(dir.File("again")).Length);
    }
}

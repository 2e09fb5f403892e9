using CaptureAgent.Formats;
using Xunit;

namespace CaptureAgent.Tests.Engine.Formats;

/// <summary>The signature table every dump-opening command goes by.</summary>
public class DumpProbeTests
{
    [Theory]
    [InlineData("KDUMP   \u0001\u0000", DumpKind.KdumpCompressed)]
    [InlineData("makedumpfile\u0000\u0000\u0000\u0000", DumpKind.Flattened)]
    [InlineData("\u007fELF\u0002\u0001\u0001", DumpKind.Elf)]
    [InlineData("KDUMP  ", DumpKind.Unknown)]        // one byte short of the signature
    [InlineData("\u007fEL", DumpKind.Unknown)]
    [InlineData("DISKDUMP", DumpKind.Unknown)]       // the old diskdump format is not read
    [InlineData("", DumpKind.Unknown)]
    public void NamesTheFormatByItsFirstBytes(string head, DumpKind expected)
    {
        Assert.Equal(expected, DumpProbe.Kind(System.Text.Encoding.Latin1.GetBytes(head)));
    }

    [Fact]
    public void EverySignatureFitsTheHeadThatIsRead()
    {
        var head = new byte[DumpProbe.HeadLength];
        "makedumpfile"u8.CopyTo(head);
        Assert.Equal(DumpKind.Flattened, DumpProbe.Kind(head));
        KdumpHeader.Signature.CopyTo(head);
        Assert.Equal(DumpKind.KdumpCompressed, DumpProbe.Kind(head));
    }
}

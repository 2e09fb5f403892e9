using System.Buffers.Binary;
using CaptureAgent.Formats;
using Xunit;

namespace CaptureAgent.Tests.Engine.Formats;

/// <summary>The one flattened reader: how a stream ends, and what of it is applied.</summary>
public class FlattenedReaderTests
{
    private static byte[] Stream(params (long Offset, byte[] Data)[] records)
    {
        var s = new MemoryStream();
        var header = new byte[FlattenedReader.HeaderSize];
        FlattenedReader.Signature.CopyTo(header);
        BinaryPrimitives.WriteInt64BigEndian(header.AsSpan(16), FlattenedReader.FlatHeaderType);
        s.Write(header);
        Span<byte> rec = stackalloc byte[16];
        foreach (var (offset, data) in records)
        {
            BinaryPrimitives.WriteInt64BigEndian(rec, offset);
            BinaryPrimitives.WriteInt64BigEndian(rec[8..], data.Length);
            s.Write(rec);
            s.Write(data);
        }
        return s.ToArray();
    }

    private static readonly byte[] EndMarker = Enumerable.Repeat((byte)0xff, 16).ToArray();

    private static (FlattenedOutcome Outcome, List<(long, int)> Applied) Read(byte[] stream, bool lengthKnown)
    {
        var applied = new List<(long, int)>();
        var reader = new FlattenedReader(new MemoryStream(stream), lengthKnown ? stream.Length : null);
        return (reader.CopyTo((o, d) => applied.Add((o, d.Length))), applied);
    }

    [Fact]
    public void AppliesEveryRecordUpToTheEndMarker()
    {
        var s = Stream((0, new byte[100]), (8192, new byte[3 << 20])).Concat(EndMarker).ToArray();
        var (outcome, applied) = Read(s, lengthKnown: true);
        Assert.True(outcome.Ended);
        Assert.Null(outcome.Describe());
        Assert.Equal(2, outcome.Records);
        Assert.Equal(s.Length - 16, outcome.StreamOffset);
        // A record larger than the 1 MiB buffer arrives in pieces at their own offsets.
        Assert.Equal([(0L, 100), (8192L, 1 << 20), (8192L + (1 << 20), 1 << 20), (8192L + (2 << 20), 1 << 20)], applied);
    }

    [Fact]
    public void SaysWhereAStreamWasCut()
    {
        var whole = Stream((0, new byte[100]), (4096, new byte[4096]));
        var between = Read(whole, lengthKnown: true).Outcome;
        Assert.Equal(FlattenedEnd.CutBetweenRecords, between.End);
        Assert.Contains("cut short", between.Describe());

        // Cut inside the second record: with the length known nothing of it is applied, from a pipe what came is.
        var inside = whole[..^100];
        var (known, appliedKnown) = Read(inside, lengthKnown: true);
        Assert.Equal(FlattenedEnd.CutInsideRecord, known.End);
        Assert.Equal(1, known.Records);
        Assert.Single(appliedKnown);
        var (pipe, _) = Read(inside, lengthKnown: false);
        Assert.Equal(FlattenedEnd.CutInsideRecord, pipe.End);
        Assert.Contains("record 2", pipe.Describe());
    }

    [Fact]
    public void RefusesARecordThatWouldMakeAHugeFileOrOverwritePages()
    {
        var far = Stream((0, new byte[100]), (1L << 40, new byte[10])).Concat(EndMarker).ToArray();
        var (outcome, applied) = Read(far, lengthKnown: true);
        Assert.Equal(FlattenedEnd.Damaged, outcome.End);
        Assert.Equal(FlattenedReader.HeaderSize + 16 + 100, outcome.StreamOffset);
        Assert.Contains("damaged record 2", outcome.Describe());
        Assert.Single(applied);

        var again = Stream((0, new byte[100]), (0, [1, 2, 3])).Concat(EndMarker).ToArray();
        Assert.Equal(FlattenedEnd.Damaged, Read(again, lengthKnown: false).Outcome.End);
    }

    [Fact]
    public void RefusesWhatIsNotAFlattenedStream()
    {
        var bad = Stream();
        bad[16 + 7] = 2;   // header type 2
        Assert.False(FlattenedReader.IsHeader(bad));
        Assert.Throws<InvalidDataException>(() => new FlattenedReader(new MemoryStream(bad)));
        Assert.Throws<InvalidDataException>(() => new FlattenedReader(new MemoryStream(new byte[100])));
    }
}

using System.Buffers.Binary;

namespace CaptureAgent.Formats;

/// <summary>
/// Judges the records of a flattened stream (makedumpfile -F) before they are applied, so a damaged
/// stream cannot make a file of terabytes nor overwrite page data it already delivered:
/// <list type="bullet">
/// <item>once the kdump header (the record at offset 0) is known, no record may end past the
/// largest file that header allows: headers, bitmaps, a descriptor and a page for every pfn;</item>
/// <item>whatever the header, the file may not outgrow the stream by more than a kdump file's own
/// sparseness: its descriptor table (24 bytes a page) is placed by the 1st bitmap (1 bit a page),
/// which a writer sends before the data, so a file reaches at most 4096 times the bytes received;</item>
/// <item>in the descriptors and page data (past the bitmaps of a kdump file, everywhere in an ELF
/// file), no byte is written twice, except descriptors cleared to zero (a writer takes back the
/// descriptors of data a failing target may have lost). Headers and bitmaps may be rewritten:
/// writers finish them last.</item>
/// </list>
/// </summary>
public sealed class FlattenedRecords
{
    private const long Slack = 64L << 20;
    private const long Amplification = 4096;
    private const int MaxIntervals = 4096;

    private long _received;
    private long _limit = long.MaxValue;
    private long _rewritable = -1;        // bytes below this may be rewritten; -1: no header seen yet
    private readonly List<(long Start, long End)> _written = new();

    /// <summary>Records accepted so far.</summary>
    public long Records { get; private set; }

    /// <summary>
    /// Null when the record may be applied (it is then counted), else why not. The record's data
    /// is passed so the header can be learnt from it and a zeroing rewrite recognised; a record
    /// longer than the buffer the caller reads through is judged by its first part.
    /// </summary>
    public string? Accept(long offset, long size, ReadOnlySpan<byte> head)
    {
        if (offset < 0 || size <= 0 || offset > long.MaxValue - size) return $"impossible record (offset {offset}, size {size})";
        long end = offset + size;
        _received += size;
        if (end > _limit) return $"a record reaches byte {end}, past the largest file its kdump header allows ({_limit} bytes)";
        if (end > Slack + Amplification * _received)
            return $"a record at offset {offset} would make a file of {end} bytes from {_received} bytes of stream";
        if (offset == 0 && _rewritable < 0) Learn(head);
        if (end > Math.Max(_rewritable, 0) && MarkWritten(Math.Max(offset, Math.Max(_rewritable, 0)), end, head, size) is { } why)
            return $"a record at offset {offset} ({size} bytes) {why}";
        Records++;
        return null;
    }

    /// <summary>The kdump header at offset 0: from it, where the rewritable part ends and how large the file can be.</summary>
    private void Learn(ReadOnlySpan<byte> head)
    {
        if (head.Length < KdumpHeader.HeaderSize || !head[..8].SequenceEqual(KdumpHeader.Signature)) { _rewritable = 0; return; }
        long blockSize = BinaryPrimitives.ReadInt32LittleEndian(head[428..]);
        long subBlocks = BinaryPrimitives.ReadInt32LittleEndian(head[432..]);
        long bitmapBlocks = BinaryPrimitives.ReadUInt32LittleEndian(head[436..]);
        if (blockSize is < 4096 or > 262144 || subBlocks is < 1 or > 1 << 16) { _rewritable = 0; return; }
        long metaEnd = (1 + subBlocks + bitmapBlocks) * blockSize;
        // max_mapnr is at most what the bitmaps cover (the 64-bit one is in the sub header, not yet seen).
        long pages = bitmapBlocks * blockSize / 2 * 8;
        _rewritable = metaEnd;
        _limit = pages > (long.MaxValue - metaEnd) / (24 + blockSize + 1) ? long.MaxValue : metaEnd + pages * (24 + blockSize) + blockSize;
    }

    /// <summary>Adds [start, end) to what was written; null, or why the record is refused.</summary>
    private string? MarkWritten(long start, long end, ReadOnlySpan<byte> head, long size)
    {
        int i = _written.FindIndex(w => w.End >= start);
        if (i >= 0 && _written[i].Start < end && _written[i].End > start)
        {
            bool zeros = head.Length >= size && head[..(int)size].IndexOfAnyExcept((byte)0) < 0;
            if (!zeros) return "overwrites data an earlier record already wrote";
        }
        // Merge [start, end) into the sorted list of disjoint intervals.
        if (i < 0) i = _written.Count;
        long s = start, e = end;
        int j = i;
        while (j < _written.Count && _written[j].Start <= e)
        {
            s = Math.Min(s, _written[j].Start);
            e = Math.Max(e, _written[j].End);
            j++;
        }
        _written.RemoveRange(i, j - i);
        _written.Insert(i, (s, e));
        return _written.Count <= MaxIntervals ? null : $"leaves the file in more than {MaxIntervals} scattered pieces";
    }
}

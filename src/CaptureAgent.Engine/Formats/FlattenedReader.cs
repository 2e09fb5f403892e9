using System.Buffers.Binary;

namespace CaptureAgent.Formats;

/// <summary>Where a record of a flattened stream goes: the file offset it names and its data (a piece of it at a time).</summary>
public delegate void FlattenedRecordWriter(long offset, ReadOnlySpan<byte> data);

/// <summary>How a flattened stream ended.</summary>
public enum FlattenedEnd
{
    /// <summary>With its end marker (-1, -1): whole.</summary>
    Marker,
    /// <summary>Between two records, without the end marker.</summary>
    CutBetweenRecords,
    /// <summary>Inside a record: its header promised more data than came.</summary>
    CutInsideRecord,
    /// <summary>A record no writer makes (<see cref="FlattenedRecords"/> says why); nothing of it was applied.</summary>
    Damaged,
}

/// <summary>What reading a flattened stream came to: how it ended, after how many whole records, where.</summary>
/// <param name="StreamOffset">The stream byte where the record that stopped the reading starts.</param>
public readonly record struct FlattenedOutcome(FlattenedEnd End, long Records, long StreamOffset, string? Detail = null)
{
    public bool Ended => End == FlattenedEnd.Marker;
    public bool Cut => End is FlattenedEnd.CutBetweenRecords or FlattenedEnd.CutInsideRecord;

    /// <summary>Null when the stream ended with its marker, else one line saying why it stopped (<paramref name="stream"/> names it).</summary>
    public string? Describe(string stream = "the stream") => End switch
    {
        FlattenedEnd.Marker => null,
        FlattenedEnd.CutBetweenRecords => $"{stream} ends after {Records} records, without its end marker (cut short)",
        FlattenedEnd.CutInsideRecord => $"{stream} ends inside its record {Records + 1} (cut short)",
        _ => $"{stream} has a damaged record {Records + 1} at byte {StreamOffset}: {Detail}",
    };
}

/// <summary>
/// The one reader of makedumpfile's flattened format (-F): a 4096-byte header ("makedumpfile",
/// type 1), then records of (big-endian offset, big-endian size, data) naming where their data
/// lies in the file the stream describes, ended by (-1, -1). Read front to back through one
/// 1 MiB buffer, whatever the record sizes; every record is judged by <see cref="FlattenedRecords"/>
/// before any of it is applied, so a hostile stream can neither make a file of terabytes nor
/// overwrite page data it already delivered. `rearrange`, savecore's raw device and `verify` read
/// through it; the writing side is Output.FlattenedSink.
/// </summary>
public sealed class FlattenedReader
{
    public const int HeaderSize = 4096;
    private const int BufferBytes = 1 << 20;

    /// <summary>makedumpfile_header.signature (12 of its 16 bytes; the rest are zeros).</summary>
    public static ReadOnlySpan<byte> Signature => "makedumpfile"u8;

    /// <summary>makedumpfile_header.type: TYPE_FLAT_HEADER.</summary>
    public const long FlatHeaderType = 1;

    private readonly Stream _input;
    private readonly long? _length;
    private readonly FlattenedRecords _judge = new();
    private byte[]? _buffer;

    /// <summary>Bytes of the stream consumed so far, its header included.</summary>
    public long Position { get; private set; }

    /// <summary>Records applied so far.</summary>
    public long Records => _judge.Records;

    /// <summary>Reads and checks the stream's header.</summary>
    /// <param name="length">Bytes the stream holds when known (a file, a device region): a record longer than what is
    /// left is then not applied at all. Null for a pipe: a record cut inside keeps the part that came.</param>
    /// <exception cref="InvalidDataException">The stream does not start with a flattened header.</exception>
    public FlattenedReader(Stream input, long? length = null)
    {
        _input = input;
        _length = length;
        var header = new byte[HeaderSize];
        if (!TryRead(header) || !IsHeader(header)) throw new InvalidDataException("not a makedumpfile flattened stream");
    }

    /// <summary>Whether <paramref name="header"/> (the first 4096 bytes, or at least 24) is a flattened stream's header.</summary>
    public static bool IsHeader(ReadOnlySpan<byte> header) =>
        header.Length >= 24 && header.StartsWith(Signature) && BinaryPrimitives.ReadInt64BigEndian(header[16..]) == FlatHeaderType;

    /// <summary>
    /// Applies the records in stream order (a later record for the same offset lands on top, as
    /// with `makedumpfile -R`) until the end marker or the first record that is cut or damaged.
    /// </summary>
    public FlattenedOutcome CopyTo(FlattenedRecordWriter write)
    {
        _buffer ??= new byte[BufferBytes];
        Span<byte> rec = stackalloc byte[16];
        while (true)
        {
            long at = Position;
            if (!TryRead(rec)) return new(FlattenedEnd.CutBetweenRecords, Records, at);
            long offset = BinaryPrimitives.ReadInt64BigEndian(rec);
            long size = BinaryPrimitives.ReadInt64BigEndian(rec[8..]);
            if (offset == -1 && size == -1) return new(FlattenedEnd.Marker, Records, at);
            if (_length is long length && size > 0 && size > length - Position) return new(FlattenedEnd.CutInsideRecord, Records, at);
            var first = _buffer.AsSpan(0, (int)Math.Clamp(size, 0, BufferBytes));
            if (!TryRead(first)) return new(FlattenedEnd.CutInsideRecord, Records, at);
            long before = Records;
            if (_judge.Accept(offset, size, first) is { } bad) return new(FlattenedEnd.Damaged, Records, at, bad);
            write(offset, first);
            for (long done = first.Length; done < size;)
            {
                var piece = _buffer.AsSpan(0, (int)Math.Min(size - done, BufferBytes));
                if (!TryRead(piece)) return new(FlattenedEnd.CutInsideRecord, before, at);
                write(offset + done, piece);
                done += piece.Length;
            }
        }
    }

    /// <summary>
    /// The first <paramref name="bytes"/> of the file the stream describes, as its first
    /// <paramref name="maxRecords"/> records give them: every writer emits the headers, notes and
    /// bitmaps first, so `report` gets what it reads without going through the pages. Data of records
    /// beyond the front is skipped, not read.
    /// </summary>
    /// <exception cref="InvalidDataException">A record with a negative offset or size, or longer than the stream.</exception>
    public byte[] ReadFront(int bytes, int maxRecords)
    {
        var front = new byte[bytes];
        int filled = 0;
        Span<byte> rec = stackalloc byte[16];
        for (int i = 0; i < maxRecords && TryRead(rec); i++)
        {
            long offset = BinaryPrimitives.ReadInt64BigEndian(rec);
            long size = BinaryPrimitives.ReadInt64BigEndian(rec[8..]);
            if (offset == -1 && size == -1) break;
            if (offset < 0 || size <= 0 || (_length is long length && size > length - Position))
                throw new InvalidDataException($"damaged flattened record {i + 1} at byte {Position - 16}");
            long rest = size;
            if (offset < bytes)
            {
                int n = (int)Math.Min(size, bytes - offset);
                if (!TryRead(front.AsSpan((int)offset, n))) break;
                filled = Math.Max(filled, (int)offset + n);
                rest -= n;
            }
            if (!Skip(rest)) break;
        }
        return front.AsSpan(0, filled).ToArray();
    }

    /// <summary>Passes over <paramref name="count"/> bytes: a seek where the stream can, else reads them.</summary>
    private bool Skip(long count)
    {
        if (count == 0) return true;
        if (_input.CanSeek)
        {
            long left = _input.Length - _input.Position;
            long step = Math.Min(count, Math.Max(left, 0));
            _input.Seek(step, SeekOrigin.Current);
            Position += step;
            return step == count;
        }
        _buffer ??= new byte[BufferBytes];
        for (long done = 0; done < count;)
        {
            var piece = _buffer.AsSpan(0, (int)Math.Min(count - done, BufferBytes));
            if (!TryRead(piece)) return false;
            done += piece.Length;
        }
        return true;
    }

    /// <summary>False when the stream ends first (what came of it is consumed).</summary>
    private bool TryRead(Span<byte> into)
    {
        int got = _input.ReadAtLeast(into, into.Length, throwOnEndOfStream: false);
        Position += got;
        return got == into.Length;
    }
}

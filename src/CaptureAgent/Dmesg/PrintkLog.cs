using System.Buffers.Binary;
using System.Text;
using CaptureAgent.Translation;
using CaptureAgent.Vmcore;

namespace CaptureAgent.Dmesg;

/// <summary>
/// The crashed kernel's log, read from its printk buffer through VMCOREINFO: the lockless ring
/// buffer (5.10+) or the variable-length record log_buf (3.5–5.9). Lines are formatted exactly as
/// `makedumpfile --dump-dmesg` writes them, so the two outputs can be compared byte for byte.
/// </summary>
public sealed class PrintkLog
{
    private const int MaxRingBytes = 64 << 20;
    private const ulong DescFlagsMask = 3UL << 62;
    private readonly KernelMemory _kmem;
    private readonly VmcoreInfo _info;

    public PrintkLog(KernelMemory kmem, VmcoreInfo info)
    {
        _kmem = kmem;
        _info = info;
    }

    /// <summary>Writes every record to <paramref name="output"/>; returns the number of records.</summary>
    public int WriteTo(Stream output)
    {
        if (_info.Symbol("prb") is not null) return WriteLockless(output);
        if (_info.Symbol("log_buf") is not null) return WriteVariableLength(output);
        throw new VmcoreException("VMCOREINFO has neither SYMBOL(prb) nor SYMBOL(log_buf): cannot find the kernel log");
    }

    private int Off(string name) => (int)_info.RequireNumber("OFFSET", name);
    private int Size(string name) => (int)_info.RequireNumber("SIZE", name);

    private int WriteLockless(Stream output)
    {
        ulong prbAddr = _kmem.ReadU64(_info.RequireSymbol("prb"), "prb");
        var rb = _kmem.ReadBytes(prbAddr, Size("printk_ringbuffer"), "printk_ringbuffer");
        int descRing = Off("printk_ringbuffer.desc_ring");
        int textRing = Off("printk_ringbuffer.text_data_ring");
        int counter = (int)(_info.Offset("atomic_long_t.counter") ?? 0);

        uint countBits = BinaryPrimitives.ReadUInt32LittleEndian(rb.AsSpan(descRing + Off("prb_desc_ring.count_bits")));
        uint sizeBits = BinaryPrimitives.ReadUInt32LittleEndian(rb.AsSpan(textRing + Off("prb_data_ring.size_bits")));
        int descSize = Size("prb_desc"), infoSize = Size("printk_info");
        if (countBits > 24 || sizeBits > 26 || (1L << (int)countBits) * Math.Max(descSize, infoSize) > MaxRingBytes)
            throw new VmcoreException($"printk ring buffer sizes are implausible (count_bits {countBits}, size_bits {sizeBits})");
        ulong count = 1UL << (int)countBits;
        ulong textSize = 1UL << (int)sizeBits;

        var descs = _kmem.ReadBytes(U64(rb, descRing + Off("prb_desc_ring.descs")), (int)count * descSize, "printk descriptors");
        var infos = _kmem.ReadBytes(U64(rb, descRing + Off("prb_desc_ring.infos")), (int)count * infoSize, "printk infos");
        var text = _kmem.ReadBytes(U64(rb, textRing + Off("prb_data_ring.data")), (int)textSize, "printk text ring");
        ulong tailId = U64(rb, descRing + Off("prb_desc_ring.tail_id") + counter);
        ulong headId = U64(rb, descRing + Off("prb_desc_ring.head_id") + counter);

        int stateVar = Off("prb_desc.state_var") + counter;
        int blkLpos = Off("prb_desc.text_blk_lpos");
        int lposBegin = Off("prb_data_blk_lpos.begin"), lposNext = Off("prb_data_blk_lpos.next");
        int tsOff = Off("printk_info.ts_nsec"), lenOff = Off("printk_info.text_len");
        int? callerOff = _info.Offset("printk_info.caller_id") is long c ? (int)c : null;

        var line = new StringBuilder(1024);
        int records = 0;
        ulong guard = 0;
        for (ulong id = tailId; ; id = (id + 1) & ~DescFlagsMask)
        {
            var d = descs.AsSpan((int)(id % count) * descSize, descSize);
            ulong sv = U64(d, stateVar);
            ulong state = (sv >> 62) & 3;
            if ((sv & ~DescFlagsMask) == id && state is 1 or 2)
            {
                ulong begin = U64(d, blkLpos + lposBegin) % textSize;
                ulong next = U64(d, blkLpos + lposNext) % textSize;
                if (begin != next)
                {
                    var inf = infos.AsSpan((int)(id % count) * infoSize, infoSize);
                    ulong textLen = BinaryPrimitives.ReadUInt16LittleEndian(inf[lenOff..]);
                    if (begin > next) begin = 0;   // a wrapped block is stored from the ring's start
                    begin += 8;                    // skip the block's id word
                    if (next - begin < textLen) textLen = next - begin;   // unsigned, as the kernel reader does
                    if (begin + textLen <= textSize)
                    {
                        uint? caller = callerOff is int co ? BinaryPrimitives.ReadUInt32LittleEndian(inf[co..]) : null;
                        FormatRecord(line, U64(inf, tsOff), caller, text.AsSpan((int)begin, (int)textLen));
                        Emit(output, line);
                        records++;
                    }
                }
            }
            if (id == headId || ++guard > count) break;
        }
        return records;
    }

    private int WriteVariableLength(Stream output)
    {
        ulong logBuf = _kmem.ReadU64(_info.RequireSymbol("log_buf"), "log_buf");
        uint len = _kmem.ReadU32(_info.RequireSymbol("log_buf_len"), "log_buf_len");
        if (_info.Symbol("log_first_idx") is not ulong firstSym || _info.Symbol("log_next_idx") is not ulong nextSym)
            throw new VmcoreException("VMCOREINFO lacks log_first_idx/log_next_idx: kernels before 3.5 are not supported");
        if (len == 0 || len > MaxRingBytes) throw new VmcoreException($"log_buf_len {len} is implausible");
        uint first = _kmem.ReadU32(firstSym, "log_first_idx");
        uint nextIdx = _kmem.ReadU32(nextSym, "log_next_idx");
        var buf = _kmem.ReadBytes(logBuf, (int)len, "log_buf");
        int hdr = Size("printk_log");
        int lenOff = Off("printk_log.len"), textLenOff = Off("printk_log.text_len"), tsOff = Off("printk_log.ts_nsec");
        int? callerOff = _info.Offset("printk_log.caller_id") is long c ? (int)c : null;

        var line = new StringBuilder(1024);
        int records = 0;
        uint pos = first;
        for (int guard = 0; pos != nextIdx && guard < len; guard++)
        {
            if (pos + hdr > len) break;
            ushort recLen = BinaryPrimitives.ReadUInt16LittleEndian(buf.AsSpan((int)pos + lenOff));
            uint at = recLen == 0 ? 0 : pos;   // a zero-length record marks the wrap to the start
            if (at + hdr > len) break;
            ushort textLen = BinaryPrimitives.ReadUInt16LittleEndian(buf.AsSpan((int)at + textLenOff));
            if (at + hdr + textLen > len) break;
            uint? caller = callerOff is int co ? BinaryPrimitives.ReadUInt32LittleEndian(buf.AsSpan((int)at + co)) : null;
            FormatRecord(line, U64(buf, (int)at + tsOff), caller, buf.AsSpan((int)at + hdr, textLen));
            Emit(output, line);
            records++;
            ushort step = BinaryPrimitives.ReadUInt16LittleEndian(buf.AsSpan((int)at + lenOff));
            if (step == 0) break;
            pos = at + step;
        }
        return records;
    }

    /// <summary>
    /// "[%5llu.%06lu] " + optional "[%8s] " caller + text; a newline inside the text is followed by
    /// an indent as wide as the prefix; other non-printing bytes become \xNN. makedumpfile passes a
    /// signed char to %02x, so bytes of 0x80 and up print sign-extended (\xffffffe2); we match that.
    /// </summary>
    public static void FormatRecord(StringBuilder sb, ulong tsNsec, uint? callerId, ReadOnlySpan<byte> text)
    {
        sb.Clear();
        sb.Append('[').Append((tsNsec / 1_000_000_000).ToString().PadLeft(5)).Append('.')
          .Append((tsNsec % 1_000_000_000 / 1000).ToString("D6")).Append("] ");
        if (callerId is uint cid)
        {
            string id = ((cid & 0x80000000) != 0 ? "C" : "T") + (cid & 0x7fffffff).ToString();
            sb.Append('[').Append(id.PadLeft(8)).Append("] ");
        }
        int indent = sb.Length;
        foreach (byte b in text)
        {
            if (b == (byte)'\n') sb.Append('\n').Append(' ', indent);
            else if ((b >= 0x20 && b < 0x7f) || b is (byte)'\t' or (byte)'\v' or (byte)'\f' or (byte)'\r') sb.Append((char)b);
            else sb.Append("\\x").Append(((int)(sbyte)b).ToString("x2"));
        }
        sb.Append('\n');
    }

    private static void Emit(Stream output, StringBuilder line)
    {
        Span<byte> small = stackalloc byte[2048];
        int n = Encoding.Latin1.GetByteCount(line.ToString());
        if (n <= small.Length)
        {
            Encoding.Latin1.GetBytes(line.ToString(), small);
            output.Write(small[..n]);
        }
        else output.Write(Encoding.Latin1.GetBytes(line.ToString()));
    }

    private static ulong U64(ReadOnlySpan<byte> b, int offset) => BinaryPrimitives.ReadUInt64LittleEndian(b[offset..]);
}

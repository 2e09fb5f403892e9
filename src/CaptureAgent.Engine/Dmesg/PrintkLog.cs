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
    private const ulong DescFlagsMask = 3UL << 62;
    private const int MaxStructBytes = 4096;
    private readonly KernelMemory _kmem;
    private readonly VmcoreInfo _info;

    public PrintkLog(KernelMemory kmem, VmcoreInfo info)
    {
        _kmem = kmem;
        _info = info;
    }

    /// <summary>
    /// Set by <see cref="WriteTo"/> when the log is damaged (records left out, a loop cut, nothing
    /// readable): what was written is all that could be trusted, and the caller says so.
    /// </summary>
    public string? Problem { get; private set; }

    /// <summary>Writes every record to <paramref name="output"/>; returns the number of records.</summary>
    public int WriteTo(Stream output)
    {
        Problem = null;
        int records;
        if (_info.Symbol("prb") is not null) records = WriteLockless(output);
        else if (_info.Symbol("log_buf") is not null) records = WriteVariableLength(output);
        else throw new VmcoreException("VMCOREINFO has neither SYMBOL(prb) nor SYMBOL(log_buf): cannot find the kernel log");
        if (records == 0) Problem ??= "the printk buffer holds no readable record";
        return records;
    }

    private int Off(string name, int structSize, int width)
    {
        long v = _info.RequireNumber("OFFSET", name);
        if (v < 0 || v + width > structSize) throw new VmcoreException($"VMCOREINFO OFFSET({name})={v} lies outside its structure ({structSize} bytes)");
        return (int)v;
    }

    private int Size(string name)
    {
        long v = _info.RequireNumber("SIZE", name);
        if (v is <= 0 or > MaxStructBytes) throw new VmcoreException($"VMCOREINFO SIZE({name})={v} is implausible");
        return (int)v;
    }

    /// <summary>
    /// The lockless ring (5.10+), walked from tail_id to head_id as the kernel's reader does, one
    /// descriptor, info and text block read at a time: the ring can be larger than the heap.
    /// </summary>
    private int WriteLockless(Stream output)
    {
        ulong prbAddr = _kmem.ReadU64(_info.RequireSymbol("prb"), "prb");
        var rb = _kmem.ReadBytes(prbAddr, Size("printk_ringbuffer"), "printk_ringbuffer");
        int counter = (int)Math.Clamp(_info.Offset("atomic_long_t.counter") ?? 0, 0, 8);
        int descRing = Off("printk_ringbuffer.desc_ring", rb.Length, 8);
        int textRing = Off("printk_ringbuffer.text_data_ring", rb.Length, 8);
        uint countBits = BinaryPrimitives.ReadUInt32LittleEndian(rb.AsSpan(descRing + Off("prb_desc_ring.count_bits", rb.Length - descRing, 4)));
        uint sizeBits = BinaryPrimitives.ReadUInt32LittleEndian(rb.AsSpan(textRing + Off("prb_data_ring.size_bits", rb.Length - textRing, 4)));
        // CONFIG_LOG_BUF_SHIFT is at most 25, log_buf_len= at most 2 GiB; a descriptor per 32 bytes of text.
        if (countBits > 26 || sizeBits > 31 || countBits == 0 || sizeBits < 8)
            throw new VmcoreException($"printk ring buffer sizes are implausible (count_bits {countBits}, size_bits {sizeBits})");
        ulong count = 1UL << (int)countBits;
        ulong textSize = 1UL << (int)sizeBits;
        int descSize = Size("prb_desc"), infoSize = Size("printk_info");
        ulong descs = U64(rb, descRing + Off("prb_desc_ring.descs", rb.Length - descRing, 8));
        ulong infos = U64(rb, descRing + Off("prb_desc_ring.infos", rb.Length - descRing, 8));
        ulong textData = U64(rb, textRing + Off("prb_data_ring.data", rb.Length - textRing, 8));
        ulong tailId = U64(rb, descRing + Off("prb_desc_ring.tail_id", rb.Length - descRing - counter, 8) + counter);
        ulong headId = U64(rb, descRing + Off("prb_desc_ring.head_id", rb.Length - descRing - counter, 8) + counter);

        int stateVar = Off("prb_desc.state_var", descSize - counter, 8) + counter;
        int blkLpos = Off("prb_desc.text_blk_lpos", descSize, 16);
        int lposBegin = Off("prb_data_blk_lpos.begin", descSize - blkLpos, 8), lposNext = Off("prb_data_blk_lpos.next", descSize - blkLpos, 8);
        int tsOff = Off("printk_info.ts_nsec", infoSize, 8), lenOff = Off("printk_info.text_len", infoSize, 2);
        int? callerOff = _info.Offset("printk_info.caller_id") is long c && c >= 0 && c + 4 <= infoSize ? (int)c : null;

        // The ring holds at most `count` descriptors between tail and head.
        ulong span = (headId - tailId) & ~DescFlagsMask;
        if (span >= count)
        {
            Problem = $"the printk ring is inconsistent: its head and tail ids are {span} apart, more than its {count} descriptors; the {count} records from the tail are read";
            span = count - 1;
        }

        var desc = new byte[descSize];
        var info = new byte[infoSize];
        var text = new byte[ushort.MaxValue];
        var line = new StringBuilder(1024);
        int records = 0;
        ulong lost = 0;
        for (ulong n = 0, id = tailId; n <= span; n++, id = (id + 1) & ~DescFlagsMask)
        {
            if (!_kmem.TryRead(descs + id % count * (ulong)descSize, desc)) { lost++; continue; }
            ulong sv = U64(desc, stateVar);
            ulong state = (sv >> 62) & 3;
            // A descriptor with another id is damage; one still reserved by a CPU that was printing,
            // or recycled at the tail (the ring's first descriptor starts so), holds no record.
            if ((sv & ~DescFlagsMask) != id) { lost++; continue; }
            if (state is not (1 or 2)) continue;
            ulong begin = U64(desc, blkLpos + lposBegin) % textSize;
            ulong next = U64(desc, blkLpos + lposNext) % textSize;
            if (begin == next) continue;   // a record without text (dropped by the kernel)
            if (!_kmem.TryRead(infos + id % count * (ulong)infoSize, info)) { lost++; continue; }
            ulong textLen = BinaryPrimitives.ReadUInt16LittleEndian(info.AsSpan(lenOff));
            if (begin > next) begin = 0;   // a wrapped block is stored from the ring's start
            begin += 8;                    // skip the block's id word
            if (next - begin < textLen) textLen = next - begin;   // unsigned, as the kernel reader does
            if (begin + textLen > textSize || !_kmem.TryRead(textData + begin, text.AsSpan(0, (int)textLen))) { lost++; continue; }
            uint? caller = callerOff is int co ? BinaryPrimitives.ReadUInt32LittleEndian(info.AsSpan(co)) : null;
            FormatRecord(line, U64(info, tsOff), caller, text.AsSpan(0, (int)textLen));
            Emit(output, line);
            records++;
        }
        if (lost > 0)
            Problem ??= $"the printk ring is damaged: {lost} of its {span + 1} records between tail and head are unreadable or inconsistent and left out";
        return records;
    }

    /// <summary>
    /// The variable-length record buffer (3.5-5.9): records from log_first_idx to log_next_idx, a
    /// zero length marking the wrap to the start. Positions only grow between wraps and the buffer
    /// wraps at most once: a walk that would pass a place twice is a loop, and is cut.
    /// </summary>
    private int WriteVariableLength(Stream output)
    {
        ulong logBuf = _kmem.ReadU64(_info.RequireSymbol("log_buf"), "log_buf");
        uint len = _kmem.ReadU32(_info.RequireSymbol("log_buf_len"), "log_buf_len");
        if (_info.Symbol("log_first_idx") is not ulong firstSym || _info.Symbol("log_next_idx") is not ulong nextSym)
            throw new VmcoreException("VMCOREINFO lacks log_first_idx/log_next_idx: kernels before 3.5 are not supported");
        if (len == 0 || len > 1U << 31) throw new VmcoreException($"log_buf_len {len} is implausible");
        uint first = _kmem.ReadU32(firstSym, "log_first_idx");
        uint nextIdx = _kmem.ReadU32(nextSym, "log_next_idx");
        if (first >= len || nextIdx > len) throw new VmcoreException($"log_first_idx {first} or log_next_idx {nextIdx} lies outside log_buf ({len} bytes)");
        int hdr = Size("printk_log");
        int lenOff = Off("printk_log.len", hdr, 2), textLenOff = Off("printk_log.text_len", hdr, 2), tsOff = Off("printk_log.ts_nsec", hdr, 8);
        int? callerOff = _info.Offset("printk_log.caller_id") is long c && c >= 0 && c + 4 <= hdr ? (int)c : null;

        var head = new byte[hdr];
        var text = new byte[ushort.MaxValue];
        var line = new StringBuilder(1024);
        int records = 0;
        bool wrapped = false;
        uint pos = first;
        while (pos != nextIdx)
        {
            if (pos + (ulong)hdr > len || !_kmem.TryRead(logBuf + pos, head)) { Problem = $"the log_buf record at {pos} is cut or unreadable; the log ends there"; break; }
            uint at = pos;
            if (BinaryPrimitives.ReadUInt16LittleEndian(head.AsSpan(lenOff)) == 0)
            {
                // The wrap marker. A second one means the records lead round in a circle.
                if (wrapped) { Problem = $"the log_buf records loop (at {pos}); the log is cut there"; break; }
                wrapped = true;
                at = 0;
                if (nextIdx == 0) break;
                if (!_kmem.TryRead(logBuf, head)) { Problem = "the log_buf start is unreadable; the log ends there"; break; }
            }
            ushort step = BinaryPrimitives.ReadUInt16LittleEndian(head.AsSpan(lenOff));
            ushort textLen = BinaryPrimitives.ReadUInt16LittleEndian(head.AsSpan(textLenOff));
            if (step < hdr || at + (ulong)step > len || hdr + textLen > step || !_kmem.TryRead(logBuf + at + (ulong)hdr, text.AsSpan(0, textLen)))
            {
                Problem = $"the log_buf record at {at} is damaged (length {step}, text {textLen}); the log ends there";
                break;
            }
            uint? caller = callerOff is int co ? BinaryPrimitives.ReadUInt32LittleEndian(head.AsSpan(co)) : null;
            FormatRecord(line, U64(head, tsOff), caller, text.AsSpan(0, textLen));
            Emit(output, line);
            records++;
            uint after = at + step;
            // On the stretch that ends at log_next_idx, no record may run past it.
            if ((wrapped || nextIdx >= first) && at < nextIdx && after > nextIdx)
            {
                Problem = $"the log_buf record at {at} runs past log_next_idx {nextIdx}; the log is cut there";
                break;
            }
            pos = after;
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

using System.Buffers.Binary;
using System.Text;
using CaptureAgent.Dmesg;
using CaptureAgent.Dump;
using CaptureAgent.Tests.Synthetic;
using CaptureAgent.Vmcore;
using Xunit;

namespace CaptureAgent.Tests.Engine.Dmesg;

public class DmesgTests
{
    [Fact]
    public void FormatsLikeMakedumpfile()
    {
        var sb = new StringBuilder();
        PrintkLog.FormatRecord(sb, 21_458_216_999UL, 0x80000001, [(byte)'t', (byte)'w', (byte)'o', (byte)'\n', (byte)'l', (byte)'\t', 0x01, 0xe2, 0x7f]);
        // makedumpfile passes a signed char to %02x: bytes from 0x80 print sign-extended.
        Assert.Equal("[   21.458216] [      C1] two\n                          l\t\\x01\\xffffffe2\\x7f\n", sb.ToString());
        PrintkLog.FormatRecord(sb, 5, null, "x"u8);
        Assert.Equal("[    0.000000] x\n", sb.ToString());
        PrintkLog.FormatRecord(sb, 123_456_789_000_000UL, 42, "y"u8);
        Assert.Equal("[123456.789000] [     T42] y\n", sb.ToString());
    }

    /// <summary>The 3.5–5.9 variable-length log_buf, with a wrap marker, laid into synthetic kernel memory.</summary>
    [Fact]
    public void ReadsTheVariableLengthLogBufferAcrossItsWrap()
    {
        var k = new SyntheticKernel();
        const ulong LogBufPa = 0x200000, VarsPa = 0x1ff000;
        const int Len = 4096, Hdr = 16;   // struct printk_log: ts_nsec u64, len u16, text_len u16, dict_len u16, ...
        var mem = k.Mem;
        mem.AsSpan((int)LogBufPa, Len).Clear();
        int Put(int at, ulong ts, string text)
        {
            int recLen = (Hdr + text.Length + 7) & ~7;
            var rec = mem.AsSpan((int)LogBufPa + at);
            BinaryPrimitives.WriteUInt64LittleEndian(rec, ts);
            BinaryPrimitives.WriteUInt16LittleEndian(rec[8..], (ushort)recLen);
            BinaryPrimitives.WriteUInt16LittleEndian(rec[10..], (ushort)text.Length);
            Encoding.ASCII.GetBytes(text).CopyTo(rec[Hdr..]);
            return at + recLen;
        }
        // Oldest records near the end of the buffer, then a zero-length record (the wrap marker,
        // already zero), then the newest records from the start.
        const int First = 4000;
        int end = Put(Put(First, 1_000_000_000, "first"), 2_000_000_000, "second");
        Assert.Equal(4048, end);
        int next = Put(Put(0, 3_000_000_000, "third"), 4_000_000_000, "fourth\nmore");
        var vars = k.Mem.AsSpan((int)VarsPa, 64);
        BinaryPrimitives.WriteUInt64LittleEndian(vars, k.DirectVa(LogBufPa));   // log_buf (a pointer)
        BinaryPrimitives.WriteUInt32LittleEndian(vars[8..], Len);              // log_buf_len
        BinaryPrimitives.WriteUInt32LittleEndian(vars[12..], First);           // log_first_idx
        BinaryPrimitives.WriteUInt32LittleEndian(vars[16..], (uint)next);      // log_next_idx
        using var dir = new TempDir();
        string Sym(ulong off) => (k.DirectVa(VarsPa) + off).ToString("x");
        k.WriteElf(dir.File("vmcore"), line => line.StartsWith("CRASHTIME")
            ? line + $"\nSYMBOL(log_buf)={Sym(0)}\nSYMBOL(log_buf_len)={Sym(8)}\nSYMBOL(log_first_idx)={Sym(12)}\nSYMBOL(log_next_idx)={Sym(16)}\n" +
              "SIZE(printk_log)=16\nOFFSET(printk_log.ts_nsec)=0\nOFFSET(printk_log.len)=8\nOFFSET(printk_log.text_len)=10"
            : line);
        using var src = new DumpSource(dir.File("vmcore"));
        var output = new MemoryStream();
        int n = new PrintkLog(src.Kernel!, src.Info!).WriteTo(output);
        Assert.Equal(4, n);
        Assert.Equal("[    1.000000] first\n[    2.000000] second\n[    3.000000] third\n[    4.000000] fourth\n               more\n",
            Encoding.ASCII.GetString(output.ToArray()));
    }

    [Fact]
    public void AVmcoreWithoutALogSaysSo()
    {
        var k = new SyntheticKernel();
        using var dir = new TempDir();
        k.WriteElf(dir.File("vmcore"));
        using var src = new DumpSource(dir.File("vmcore"));
        var e = Assert.Throws<VmcoreException>(() => new PrintkLog(src.Kernel!, src.Info!).WriteTo(new MemoryStream()));
        Assert.Contains("SYMBOL(prb)", e.Message);
    }
}

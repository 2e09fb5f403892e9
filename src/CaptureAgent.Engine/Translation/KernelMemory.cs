using System.Buffers.Binary;
using CaptureAgent.Vmcore;

namespace CaptureAgent.Translation;

/// <summary>Reads the crashed kernel's virtual address space through its page tables.</summary>
public sealed class KernelMemory(IPhysicalMemory physical, X86_64PageTables tables)
{
    public IPhysicalMemory Physical { get; } = physical;
    public X86_64PageTables Tables { get; } = tables;

    public bool TryRead(ulong va, Span<byte> buffer)
    {
        while (!buffer.IsEmpty)
        {
            if (!Tables.TryTranslate(va, out var pa, out var mapped)) return false;
            int n = (int)Math.Min((ulong)buffer.Length, mapped);
            if (!Physical.TryRead(pa, buffer[..n])) return false;
            buffer = buffer[n..];
            va += (ulong)n;
        }
        return true;
    }

    public bool TryReadU64(ulong va, out ulong value)
    {
        Span<byte> b = stackalloc byte[8];
        bool ok = TryRead(va, b);
        value = ok ? BinaryPrimitives.ReadUInt64LittleEndian(b) : 0;
        return ok;
    }

    public bool TryReadU32(ulong va, out uint value)
    {
        Span<byte> b = stackalloc byte[4];
        bool ok = TryRead(va, b);
        value = ok ? BinaryPrimitives.ReadUInt32LittleEndian(b) : 0;
        return ok;
    }

    public ulong ReadU64(ulong va, string what) =>
        TryReadU64(va, out var v) ? v : throw new VmcoreException($"cannot read {what} at {va:x}");

    public uint ReadU32(ulong va, string what) =>
        TryReadU32(va, out var v) ? v : throw new VmcoreException($"cannot read {what} at {va:x}");

    public byte[] ReadBytes(ulong va, int length, string what)
    {
        var b = new byte[length];
        if (!TryRead(va, b)) throw new VmcoreException($"cannot read {what} ({length} bytes at {va:x})");
        return b;
    }
}

using System.Buffers.Binary;
using System.Text;

namespace CaptureAgent.Initramfs;

/// <summary>
/// Finds one section of an ELF file (32 or 64 bit, either byte order) by name, from the section
/// header table. Works on forward-only streams such as a decompressing one: an earlier offset is
/// reached by opening the content again, so a compressed module costs at most three decompression
/// passes (header and section table, section names, the section) and no more memory than what is read.
/// </summary>
internal sealed class ElfSections(Func<Stream> open) : IDisposable
{
    private const uint ShtNobits = 8;
    private const int MaxSectionTable = 4 << 20;
    private Stream? _stream;
    private long _pos;
    private byte[]? _skip;

    private readonly record struct Section(uint NameOffset, uint Type, long Offset, long Size);

    /// <summary>The named section's bytes, or null if the file has no such section.</summary>
    public byte[]? Read(string name, int maxSize)
    {
        Span<byte> ident = stackalloc byte[64];
        ReadAt(0, ident[..52]);
        if (!ident.StartsWith("\x7f"u8) || !ident[1..4].SequenceEqual("ELF"u8)) throw new InvalidDataException("not an ELF file");
        bool is64 = ident[4] switch { 1 => false, 2 => true, _ => throw new InvalidDataException($"unknown ELF class {ident[4]}") };
        bool big = ident[5] switch { 1 => false, 2 => true, _ => throw new InvalidDataException($"unknown ELF byte order {ident[5]}") };
        if (is64) ReadAt(52, ident[52..64]);
        var h = ident;
        ushort U16(ReadOnlySpan<byte> b) => big ? BinaryPrimitives.ReadUInt16BigEndian(b) : BinaryPrimitives.ReadUInt16LittleEndian(b);
        uint U32(ReadOnlySpan<byte> b) => big ? BinaryPrimitives.ReadUInt32BigEndian(b) : BinaryPrimitives.ReadUInt32LittleEndian(b);
        ulong U64(ReadOnlySpan<byte> b) => big ? BinaryPrimitives.ReadUInt64BigEndian(b) : BinaryPrimitives.ReadUInt64LittleEndian(b);

        long shoff = is64 ? (long)U64(h[40..]) : U32(h[32..]);
        int shentsize = U16(h[(is64 ? 58 : 46)..]);
        long shnum = U16(h[(is64 ? 60 : 48)..]);
        uint shstrndx = U16(h[(is64 ? 62 : 50)..]);
        int minEntry = is64 ? 64 : 40;
        if (shoff <= 0) throw new InvalidDataException("no ELF section header table");
        if (shentsize < minEntry) throw new InvalidDataException($"ELF section header size {shentsize} is too small");

        Section Entry(ReadOnlySpan<byte> e) => is64
            ? new Section(U32(e), U32(e[4..]), (long)U64(e[24..]), (long)U64(e[32..]))
            : new Section(U32(e), U32(e[4..]), U32(e[16..]), U32(e[20..]));

        // Section 0 carries the real count and name-table index when they do not fit the header.
        var first = new byte[shentsize];
        ReadAt(shoff, first);
        if (shnum == 0) shnum = Entry(first).Size;
        if (shstrndx == 0xFFFF) shstrndx = U32(first.AsSpan(is64 ? 40 : 24));
        if (shnum * shentsize > MaxSectionTable) throw new InvalidDataException($"ELF section table of {shnum} entries is implausibly large");
        if (shstrndx >= shnum) throw new InvalidDataException("ELF section name table index out of range");

        var table = new byte[shnum * shentsize];
        first.CopyTo(table, 0);
        ReadAt(shoff + shentsize, table.AsSpan(shentsize));
        var sections = new Section[shnum];
        for (int i = 0; i < shnum; i++) sections[i] = Entry(table.AsSpan(i * shentsize, shentsize));

        byte[] names = Content(sections[shstrndx], 1 << 20, "section name table");
        var wanted = Encoding.ASCII.GetBytes(name);
        foreach (var s in sections)
        {
            if (s.NameOffset >= names.Length) continue;
            var n = names.AsSpan((int)s.NameOffset);
            int end = n.IndexOf((byte)0);
            if (end >= 0 && n[..end].SequenceEqual(wanted))
                return Content(s, maxSize, name);
        }
        return null;
    }

    private byte[] Content(Section s, int maxSize, string what)
    {
        if (s.Type == ShtNobits) return [];
        if (s.Size < 0 || s.Size > maxSize) throw new InvalidDataException($"ELF {what} of {s.Size} bytes is implausibly large");
        var data = new byte[s.Size];
        ReadAt(s.Offset, data);
        return data;
    }

    /// <summary>Reads exactly destination.Length bytes at an offset of the content, reopening it to go back.</summary>
    private void ReadAt(long offset, Span<byte> destination)
    {
        if (offset < 0) throw new InvalidDataException("negative ELF offset");
        if (_stream is null || (offset < _pos && !_stream.CanSeek))
        {
            _stream?.Dispose();
            _stream = open();
            _pos = 0;
        }
        if (_stream.CanSeek)
        {
            _stream.Position = offset;
            _pos = offset;
        }
        while (_pos < offset)
        {
            _skip ??= new byte[1 << 16];
            int n = _stream.Read(_skip, 0, (int)Math.Min(_skip.Length, offset - _pos));
            if (n <= 0) throw new InvalidDataException($"ELF offset {offset} lies beyond the end of the file");
            _pos += n;
        }
        while (destination.Length > 0)
        {
            int n = _stream.Read(destination);
            if (n <= 0) throw new InvalidDataException($"ELF data at {offset} runs past the end of the file");
            destination = destination[n..];
            _pos += n;
        }
    }

    public void Dispose() => _stream?.Dispose();
}

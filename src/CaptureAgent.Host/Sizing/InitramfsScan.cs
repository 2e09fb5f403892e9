using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using CaptureAgent.Compression.Xz;
using CaptureAgent.Common;

namespace CaptureAgent.Sizing;

/// <summary>A kernel module found in an initramfs: its size in the image and once decompressed.</summary>
public sealed record InitramfsModule(string Path, long StoredBytes, long ElfBytes);

/// <summary>What an initramfs costs the capture kernel, read from the image itself.</summary>
public sealed record InitramfsFacts(
    long CompressedBytes,
    long UnpackedBytes,
    long DecompressorBytes,
    string Compression,
    int Entries,
    long InitBytes,
    IReadOnlyList<InitramfsModule> Modules,
    string? AgentConfig,
    IReadOnlyList<string> Notes);

/// <summary>
/// Reads an initramfs the way the kernel unpacks it (uncompressed newc archives, optionally
/// followed by a zstd, gzip or xz compressed one), streaming: nothing dump- or image-sized is held.
/// Unpacked size is what rootfs (tmpfs/ramfs) keeps: file data in whole pages plus an inode and
/// dentry per entry.
/// </summary>
public static class InitramfsScan
{
    private const int PageSize = 4096;
    /// <summary>struct inode + dentry of a tmpfs entry, rounded up (about 600 + 200 bytes on 6.x).</summary>
    private const int PerEntryBytes = 1024;
    private const int MaxConfigBytes = 64 << 10;
    public const string ConfigPath = "etc/capture-agent.conf";

    public static InitramfsFacts Scan(string path)
    {
        using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        var state = new ScanState();
        string compression = "none";
        long decompressor = 0;
        var head = new byte[16];
        while (true)
        {
            SkipZeros(file);
            long start = file.Position;
            int got = ReadAtMost(file, head);
            if (got == 0) break;
            file.Position = start;
            var h = head.AsSpan(0, got);
            if (h.StartsWith("07070"u8))
            {
                ReadArchives(file, state, stopAtTrailer: true);
                continue;
            }
            // A compressed archive runs to the end of the image (what every builder writes).
            Stream? inner = null;
            if (h.StartsWith(ZstdMagic))
            {
                compression = "zstd";
                decompressor = ZstdWindow(h) is long w ? w + ZstdWorkspaceSlack : 8 * SizeText.MiB;
                inner = new ZstdSharp.DecompressionStream(file, leaveOpen: true);
            }
            else if (h.Length >= 2 && h[0] == 0x1f && h[1] == 0x8b)
            {
                compression = "gzip";
                decompressor = 64 << 10;   // 32 KiB window + inflate state
                inner = new GZipStream(file, CompressionMode.Decompress, leaveOpen: true);
            }
            else if (XzDecoderStream.HasMagic(h))
            {
                compression = "xz";
                // The kernel's unxz allocates the LZMA2 dictionary; 8 MiB covers xz -6 and below.
                decompressor = 8 * SizeText.MiB;
                inner = new XzDecoderStream(file, leaveOpen: true);
            }
            if (inner is null)
            {
                state.Notes.Add($"{path}: unknown data at offset {start} (not newc, zstd, gzip or xz); assuming it unpacks to 4x its size");
                state.Unpacked += (file.Length - start) * 4;
                compression = "unknown";
                decompressor = 8 * SizeText.MiB;
                break;
            }
            using (inner) ReadArchives(inner, state, stopAtTrailer: false);
            break;
        }
        return new InitramfsFacts(file.Length, state.Unpacked, decompressor, compression, state.Entries, state.InitBytes,
                                  state.Modules, state.Config, state.Notes);
    }

    private static ReadOnlySpan<byte> ZstdMagic => [0x28, 0xb5, 0x2f, 0xfd];

    /// <summary>zstd's DStream workspace beyond the window (block buffer, entropy tables).</summary>
    private const long ZstdWorkspaceSlack = 256 << 10;

    /// <summary>The window a streaming zstd decoder must allocate, from the first frame header.</summary>
    public static long? ZstdWindow(ReadOnlySpan<byte> head)
    {
        if (head.Length < 6 || !head.StartsWith(ZstdMagic)) return null;
        byte fhd = head[4];
        bool singleSegment = (fhd & 0x20) != 0;
        if (singleSegment)
        {
            // No window descriptor: the window is the content size, whose field follows the dictionary id.
            int dictBytes = (fhd & 3) switch { 0 => 0, 1 => 1, 2 => 2, _ => 4 };
            int fcsBytes = (fhd >> 6) switch { 0 => 1, 1 => 2, 2 => 4, _ => 8 };
            int at = 5 + dictBytes;
            if (head.Length < at + fcsBytes) return null;
            return fcsBytes switch
            {
                1 => head[at],
                2 => BinaryPrimitives.ReadUInt16LittleEndian(head[at..]) + 256,
                4 => BinaryPrimitives.ReadUInt32LittleEndian(head[at..]),
                _ => (long)BinaryPrimitives.ReadUInt64LittleEndian(head[at..]),
            };
        }
        byte wd = head[5];
        int windowLog = 10 + (wd >> 3);
        long windowBase = 1L << windowLog;
        return windowBase + windowBase / 8 * (wd & 7);
    }

    private sealed class ScanState
    {
        public long Unpacked;
        public int Entries;
        public long InitBytes;
        public string? Config;
        public List<InitramfsModule> Modules { get; } = new();
        public List<string> Notes { get; } = new();
    }

    /// <summary>newc archives one after another (zero padding between them), until the stream ends.</summary>
    private static void ReadArchives(Stream s, ScanState state, bool stopAtTrailer)
    {
        var header = new byte[110];
        long pos = 0;
        while (true)
        {
            // Between archives the kernel skips NUL bytes.
            int got = ReadAtMost(s, header.AsSpan(0, 1));
            if (got == 0) return;
            pos++;
            if (header[0] == 0) continue;
            ReadExactly(s, header.AsSpan(1), "cpio header");
            pos += 109;
            if (!header.AsSpan(0, 6).SequenceEqual("070701"u8) && !header.AsSpan(0, 6).SequenceEqual("070702"u8))
                throw new InvalidDataException($"bad cpio magic at archive offset {pos - 110}");
            uint mode = Hex(header, 1);
            long size = Hex(header, 6);
            int nameSize = (int)Hex(header, 11);
            if (nameSize <= 0 || nameSize > 4096) throw new InvalidDataException($"bad cpio name size {nameSize}");
            var nameBytes = new byte[nameSize];
            ReadExactly(s, nameBytes, "cpio name");
            pos += nameSize;
            pos += Skip(s, Pad4(pos));
            string name = Encoding.UTF8.GetString(nameBytes, 0, nameSize - 1).TrimStart('.', '/');
            if (name == "TRAILER!!!")
            {
                if (stopAtTrailer) return;
                continue;
            }
            state.Entries++;
            state.Unpacked += PerEntryBytes;
            bool regular = (mode & 0xf000) == 0x8000;
            if (regular)
            {
                state.Unpacked += SizeText.RoundUp(size, PageSize);
                if (name == "init") state.InitBytes = size;
                if (name == ConfigPath && size <= MaxConfigBytes)
                {
                    var text = new byte[size];
                    ReadExactly(s, text, "config");
                    state.Config = Encoding.UTF8.GetString(text);
                    pos += size;
                    size = 0;
                }
                else if (IsModule(name))
                {
                    using var body = new BoundedStream(s, size);
                    long elf = ModuleElfBytes(name, body, state.Notes);
                    body.Drain();
                    state.Modules.Add(new InitramfsModule(name, size, elf));
                    pos += size;
                    size = 0;
                }
            }
            if (size > 0) { Skip(s, size); pos += size; }
            pos += Skip(s, Pad4(pos));
        }
    }

    private static bool IsModule(string name) =>
        name.StartsWith("lib/modules/", StringComparison.Ordinal) || name.StartsWith("usr/lib/modules/", StringComparison.Ordinal)
            ? name.EndsWith(".ko", StringComparison.Ordinal) || name.EndsWith(".ko.xz", StringComparison.Ordinal)
              || name.EndsWith(".ko.zst", StringComparison.Ordinal) || name.EndsWith(".ko.gz", StringComparison.Ordinal)
            : false;

    /// <summary>Decompressed size of a module (finit_module reads the whole ELF into memory).</summary>
    private static long ModuleElfBytes(string name, Stream body, List<string> notes)
    {
        if (name.EndsWith(".ko", StringComparison.Ordinal)) return ((BoundedStream)body).Remaining;
        try
        {
            using Stream d = name.EndsWith(".xz", StringComparison.Ordinal) ? new XzDecoderStream(body, leaveOpen: true)
                : name.EndsWith(".zst", StringComparison.Ordinal) ? new ZstdSharp.DecompressionStream(body, leaveOpen: true)
                : new GZipStream(body, CompressionMode.Decompress, leaveOpen: true);
            return Count(d);
        }
        catch (Exception e) when (e is InvalidDataException or IOException or ZstdSharp.ZstdException)
        {
            notes.Add($"{name}: cannot decompress ({e.Message}); counting 4x its stored size");
            return ((BoundedStream)body).Length * 4;
        }
    }

    private static long Count(Stream s)
    {
        var buf = new byte[64 << 10];
        long total = 0;
        int n;
        while ((n = s.Read(buf)) > 0) total += n;
        return total;
    }

    private static uint Hex(byte[] header, int field)
    {
        uint v = 0;
        for (int i = 6 + field * 8; i < 14 + field * 8; i++)
        {
            int c = header[i];
            int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
            if (d < 0) throw new InvalidDataException("bad hex digit in a cpio header");
            v = (v << 4) | (uint)d;
        }
        return v;
    }

    private static long Pad4(long pos) => (4 - (pos & 3)) & 3;

    private static void SkipZeros(FileStream f)
    {
        int b;
        while ((b = f.ReadByte()) == 0) { }
        if (b >= 0) f.Position--;
    }

    private static long Skip(Stream s, long count)
    {
        if (count <= 0) return 0;
        if (s.CanSeek) { s.Seek(count, SeekOrigin.Current); return count; }
        var buf = new byte[(int)Math.Min(count, 64 << 10)];
        long left = count;
        while (left > 0)
        {
            int n = s.Read(buf, 0, (int)Math.Min(left, buf.Length));
            if (n <= 0) throw new EndOfStreamException("the initramfs ends inside a cpio entry");
            left -= n;
        }
        return count;
    }

    private static int ReadAtMost(Stream s, Span<byte> buffer)
    {
        int total = 0;
        while (total < buffer.Length)
        {
            int n = s.Read(buffer[total..]);
            if (n <= 0) break;
            total += n;
        }
        return total;
    }

    private static void ReadExactly(Stream s, Span<byte> buffer, string what)
    {
        if (ReadAtMost(s, buffer) < buffer.Length) throw new EndOfStreamException($"the initramfs ends inside a {what}");
    }

    /// <summary>A window of the next <c>length</c> bytes of a stream.</summary>
    private sealed class BoundedStream(Stream inner, long length) : Stream
    {
        private readonly long _length = length;
        public long Remaining { get; private set; } = length;
        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));
        public override int Read(Span<byte> buffer)
        {
            if (Remaining == 0) return 0;
            int n = inner.Read(buffer[..(int)Math.Min(buffer.Length, Remaining)]);
            if (n <= 0) throw new EndOfStreamException("the initramfs ends inside a file");
            Remaining -= n;
            return n;
        }
        public void Drain() => Skip(this, Remaining);
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => _length;
        public override long Position { get => _length - Remaining; set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        protected override void Dispose(bool disposing) { }
    }
}

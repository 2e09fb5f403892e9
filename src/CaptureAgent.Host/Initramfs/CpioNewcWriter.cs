using System.Text;

namespace CaptureAgent.Initramfs;

/// <summary>
/// Writes the "newc" cpio format the kernel unpacks as an initramfs: a 110-byte ASCII header per
/// entry (magic 070701, thirteen 8-digit hex fields), the NUL-terminated name and the data, each
/// padded to 4 bytes; a TRAILER!!! entry ends the archive. Deterministic (one mtime for every
/// entry, 0 unless given; uid 0; increasing inodes) and streaming: file contents are copied in chunks, never held whole.
/// Device nodes are plain headers, so /dev/console needs no root privileges to create.
/// </summary>
public sealed class CpioNewcWriter : IDisposable
{
    private const uint S_IFDIR = 0x4000, S_IFREG = 0x8000, S_IFLNK = 0xA000, S_IFCHR = 0x2000;
    private readonly Stream _out;
    private readonly bool _leaveOpen;
    private readonly uint _mtime;
    private byte[]? _copyBuffer;
    private uint _inode = 1;
    private long _position;
    private bool _finished;

    public long BytesWritten => _position;

    /// <param name="mtime">Modification time of every entry, seconds since the epoch (0: reproducible images).</param>
    public CpioNewcWriter(Stream output, bool leaveOpen = false, uint mtime = 0)
    {
        _out = output;
        _leaveOpen = leaveOpen;
        _mtime = mtime;
    }

    public void WriteDirectory(string path, uint mode = 0x1ed /* 0755 */) => Entry(path, S_IFDIR | mode, 2, 0, 0, 0, ReadOnlySpan<byte>.Empty);

    public void WriteFile(string path, uint mode, ReadOnlySpan<byte> data) => Entry(path, S_IFREG | mode, 1, data.Length, 0, 0, data);

    /// <summary>A file from a seekable stream: what is left from its position.</summary>
    public void WriteFile(string path, uint mode, Stream data) => WriteFile(path, mode, data, data.Length - data.Position);

    /// <summary>A file of known length from any stream (a decompressor, a pipe): newc states the size before the data.</summary>
    public void WriteFile(string path, uint mode, Stream data, long length)
    {
        Header(path, S_IFREG | mode, 1, length, 0, 0);
        var buf = _copyBuffer ??= new byte[1 << 16];
        long left = length;
        while (left > 0)
        {
            int n = data.Read(buf, 0, (int)Math.Min(buf.Length, left));
            if (n <= 0) throw new IOException($"{path} shrank while being archived");
            Put(buf.AsSpan(0, n));
            left -= n;
        }
        Pad();
    }

    public void WriteSymlink(string path, string target)
    {
        var t = Encoding.UTF8.GetBytes(target);
        Entry(path, S_IFLNK | 0x1ff, 1, t.Length, 0, 0, t);
    }

    public void WriteCharDevice(string path, uint mode, uint major, uint minor) => Entry(path, S_IFCHR | mode, 1, 0, major, minor, ReadOnlySpan<byte>.Empty);

    private void Entry(string path, uint mode, uint nlink, long size, uint rmajor, uint rminor, ReadOnlySpan<byte> data)
    {
        Header(path, mode, nlink, size, rmajor, rminor);
        Put(data);
        Pad();
    }

    private void Header(string path, uint mode, uint nlink, long size, uint rmajor, uint rminor)
    {
        if (_finished) throw new InvalidOperationException("archive already finished");
        if (size > uint.MaxValue) throw new IOException($"{path} is too large for a newc cpio entry");
        var name = Encoding.UTF8.GetBytes(path.TrimStart('/') + "\0");
        if (name.Length == 1) throw new ArgumentException("empty entry name", nameof(path));
        var h = new StringBuilder("070701", 110);
        uint mtime = _inode == 0 ? 0 : _mtime;   // the trailer carries 0, as GNU cpio writes it
        foreach (uint v in new[] { _inode++, mode, 0u, 0u, nlink, mtime, (uint)size, 0u, 0u, rmajor, rminor, (uint)name.Length, 0u })
            h.Append(v.ToString("x8"));
        Put(Encoding.ASCII.GetBytes(h.ToString()));
        Put(name);
        Pad();
    }

    private void Put(ReadOnlySpan<byte> b)
    {
        _out.Write(b);
        _position += b.Length;
    }

    private void Pad()
    {
        int pad = (int)((4 - _position % 4) % 4);
        if (pad > 0) Put(stackalloc byte[pad]);
    }

    /// <summary>Writes the trailer. The kernel ignores what follows it (zero padding to 512 is customary).</summary>
    public void Finish()
    {
        if (_finished) return;
        _inode = 0;
        Header("TRAILER!!!", 0, 1, 0, 0, 0);
        _finished = true;
        int pad = (int)((512 - _position % 512) % 512);
        if (pad > 0) Put(new byte[pad]);
        _out.Flush();
    }

    public void Dispose()
    {
        Finish();
        if (!_leaveOpen) _out.Dispose();
    }
}

using System.Text;
using CaptureAgent.Native;
using Microsoft.Win32.SafeHandles;

namespace CaptureAgent.Common;

/// <summary>
/// Opening what the user named as input. The open never blocks (O_NONBLOCK: a FIFO would wait
/// forever for a writer), and the type is checked on the open descriptor (fstat, no race with a
/// rename): a regular file where a file is expected, a block device only where one is meant.
/// </summary>
public static class InputFile
{
    /// <summary>Opens a regular file for reading, or throws an IOException that says what the path is instead.</summary>
    public static SafeFileHandle OpenRegular(string path) => Open(path, allowBlockDevice: false);

    /// <summary>A regular file or a block device (raw dump areas, images of them).</summary>
    public static SafeFileHandle OpenFileOrDevice(string path) => Open(path, allowBlockDevice: true);

    private static SafeFileHandle Open(string path, bool allowBlockDevice)
    {
        var handle = Libc.OpenFile(path, Libc.O_RDONLY | Libc.O_NONBLOCK, 0);
        try
        {
            var (type, _) = Libc.Fstat(handle);
            if (type == Libc.S_IFREG || (allowBlockDevice && type == Libc.S_IFBLK)) return handle;
            throw new IOException($"{path} is {Libc.FileTypeName(type)}, not {(allowBlockDevice ? "a file or a block device" : "a regular file")}");
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>A regular file as a read-only stream.</summary>
    public static FileStream OpenStream(string path, int bufferSize = 1 << 16) =>
        new(OpenRegular(path), FileAccess.Read, bufferSize);

    /// <summary>
    /// The whole of a small file (a config, a manifest), refused when larger than
    /// <paramref name="maxBytes"/>: such files are small, and the agent's heap is not.
    /// </summary>
    public static byte[] ReadBytes(string path, int maxBytes)
    {
        using var handle = OpenRegular(path);
        long length = RandomAccess.GetLength(handle);
        if (length > maxBytes) throw new IOException($"{path} is {length} bytes, more than the {maxBytes >> 10} KiB such a file may have");
        var bytes = new byte[(int)length];
        int got = 0;
        while (got < bytes.Length)
        {
            int n = RandomAccess.Read(handle, bytes.AsSpan(got), got);
            if (n <= 0) break;
            got += n;
        }
        return got == bytes.Length ? bytes : bytes[..got];
    }

    /// <summary><see cref="ReadBytes"/> as UTF-8 text.</summary>
    public static string ReadText(string path, int maxBytes) => new UTF8Encoding(false).GetString(ReadBytes(path, maxBytes));
}

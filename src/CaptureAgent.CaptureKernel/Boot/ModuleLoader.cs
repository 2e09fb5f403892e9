using CaptureAgent.Native;
using CaptureAgent.Compression;

namespace CaptureAgent.Boot;

/// <summary>The two module system calls (a seam: tests watch what would reach the kernel).</summary>
public interface IModuleCalls
{
    /// <summary>Opens <paramref name="path"/> and calls finit_module(2); 0 or the errno (ENOENT when the file is missing).</summary>
    int FinitModule(string path, int flags);

    /// <summary>init_module(2) of an image in memory; 0 or the errno.</summary>
    int InitModule(ReadOnlySpan<byte> image);
}

/// <summary>The real kernel.</summary>
public sealed class KernelModuleCalls : IModuleCalls
{
    public int FinitModule(string path, int flags)
    {
        int fd = Libc.OpenRaw(path, Libc.O_RDONLY | Libc.O_CLOEXEC);
        if (fd < 0) return System.Runtime.InteropServices.Marshal.GetLastPInvokeError();
        using var h = new Microsoft.Win32.SafeHandles.SafeFileHandle(fd, ownsHandle: true);
        return Libc.FinitModule(h, flags);
    }

    public unsafe int InitModule(ReadOnlySpan<byte> image)
    {
        fixed (byte* p = image) return Libc.InitModule(p, image.Length);
    }
}

/// <summary>
/// Loads the capture initramfs's modules in the listed order, on any kernel. A compressed module
/// goes to the kernel as it is (finit_module with MODULE_INIT_COMPRESSED_FILE) only where the
/// kernel can take it: the build config said so, or, without a config, the kernel is 5.17 or
/// later and has not refused one of that format yet. Kernels before 5.17 answer that flag with
/// EINVAL and later ones without CONFIG_MODULE_DECOMPRESS (or built for another format) with
/// EOPNOTSUPP or EINVAL: the module is then decompressed here, streamed into one buffer outside
/// the GC heap (whose untouched pages cost nothing), and loaded with init_module. A module that is
/// missing, too large, damaged or refused is named on one console line with the errno, and the
/// rest still load.
/// </summary>
public sealed class ModuleLoader(IModuleCalls calls, string release, Action<string> warn, Action<string>? info = null) : IDisposable
{
    public const int MODULE_INIT_COMPRESSED_FILE = 4;
    private const int EFBIG = 27, ENOEXEC = Libc.ENOEXEC;

    private readonly (int Major, int Minor)? _version = ParseVersion(release);
    private readonly HashSet<ModuleCodec> _kernelRefused = new();
    private nint _buffer;

    /// <summary>Largest decompressed module loaded from memory (<see cref="ModuleCompression.MaxModuleBytes"/>).</summary>
    public int MaxModuleBytes { get; init; } = ModuleCompression.MaxModuleBytes;

    /// <summary>Modules loaded with init_module after decompressing them here (for the log and tests).</summary>
    public int DecompressedHere { get; private set; }

    /// <summary>"5.10.0-28-amd64" -> (5, 10); null when the release does not start with a version.</summary>
    public static (int Major, int Minor)? ParseVersion(string release)
    {
        var parts = release.Split('.', 3);
        if (parts.Length < 2 || !int.TryParse(parts[0], out int major)) return null;
        int digits = 0;
        while (digits < parts[1].Length && char.IsAsciiDigit(parts[1][digits])) digits++;
        return digits > 0 && int.TryParse(parts[1][..digits], out int minor) ? (major, minor) : null;
    }

    /// <summary>Loads every module of <paramref name="list"/> (paths relative to <paramref name="directory"/>); returns how many loaded.</summary>
    public int LoadAll(string directory, ModuleList list)
    {
        int loaded = 0;
        foreach (var rel in list.Paths)
        {
            int errno = Load(Path.Combine(directory, rel), rel, list.KernelDecompresses);
            if (errno == 0) loaded++;
        }
        return loaded;
    }

    /// <summary>Loads one module; 0, EEXIST (already there, which is fine) or the errno it failed with (reported).</summary>
    public int Load(string path, string rel, IReadOnlySet<ModuleCodec>? kernelDecompresses)
    {
        var codec = ModuleCompression.CodecOf(rel);
        if (codec == ModuleCodec.None) return Report(rel, calls.FinitModule(path, 0));
        if (KernelFirst(codec, kernelDecompresses))
        {
            int errno = calls.FinitModule(path, MODULE_INIT_COMPRESSED_FILE);
            if (errno is not (Libc.EINVAL or Libc.EOPNOTSUPP)) return Report(rel, errno);
            // This kernel cannot take the format (or the build config was wrong about it):
            // decompress here, for this module and the rest of that format.
            if (_kernelRefused.Add(codec))
                info?.Invoke($"capture-agent: the kernel does not decompress {Name(codec)} modules ({Libc.ErrnoName(errno)}): decompressing them here");
        }
        return LoadDecompressed(path, rel, codec);
    }

    private int Report(string rel, int errno)
    {
        if (errno is not 0 and not Libc.EEXIST)
            warn(errno == Libc.ENOENT ? $"module {rel}: not in the initramfs: {Libc.ErrnoName(errno)}" : $"module {rel} not loaded: {Libc.ErrnoName(errno)}");
        return errno;
    }

    private bool KernelFirst(ModuleCodec codec, IReadOnlySet<ModuleCodec>? kernelDecompresses) =>
        !_kernelRefused.Contains(codec)
        && (kernelDecompresses?.Contains(codec) ?? _version is { } v && (v.Major > 5 || v.Major == 5 && v.Minor >= 17));

    /// <summary>Decompresses into the buffer and calls init_module; 0 or the errno (reported).</summary>
    private int LoadDecompressed(string path, string rel, ModuleCodec codec)
    {
        int length;
        try
        {
            using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
            using var content = ModuleCompression.Decompressing(file, codec);
            length = ModuleCompression.ReadAll(content, Buffer());
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return Report(rel, Libc.ENOENT);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException || ModuleCompression.IsDataError(e))
        {
            warn($"module {rel} not loaded: cannot decompress it: {e.Message.TrimEnd('.')}: {Libc.ErrnoName(ENOEXEC)}");
            return ENOEXEC;
        }
        catch (OutOfMemoryException)
        {
            warn($"module {rel} not loaded: no memory to decompress it: {Libc.ErrnoName(Libc.ENOMEM)}");
            return Libc.ENOMEM;
        }
        if (length < 0)
        {
            warn($"module {rel} not loaded: larger than {MaxModuleBytes} bytes decompressed: {Libc.ErrnoName(EFBIG)}");
            return EFBIG;
        }
        DecompressedHere++;
        return Report(rel, calls.InitModule(Buffer()[..length]));
    }

    private unsafe Span<byte> Buffer()
    {
        if (_buffer == 0)
        {
            _buffer = Libc.MapAnonymous(MaxModuleBytes);
            if (_buffer == 0) throw new OutOfMemoryException();
        }
        return new Span<byte>((void*)_buffer, MaxModuleBytes);
    }

    private static string Name(ModuleCodec c) => c.ToString().ToLowerInvariant();

    public void Dispose()
    {
        Libc.Unmap(_buffer, MaxModuleBytes);
        _buffer = 0;
    }
}

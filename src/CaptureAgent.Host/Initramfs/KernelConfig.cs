using CaptureAgent.Compression;

namespace CaptureAgent.Initramfs;

/// <summary>
/// A kernel's build configuration (the .config Kbuild used: CONFIG_X=y/m/value lines, "# CONFIG_X
/// is not set" comments), as distributions install it: /boot/config-KVER (Debian, Ubuntu, RHEL,
/// SUSE) or lib/modules/KVER/config (Fedora, Arch). What the capture initramfs builder asks it:
/// can the kernel decompress a module itself (finit_module with MODULE_INIT_COMPRESSED_FILE)?
/// </summary>
public sealed class KernelConfig
{
    private const long MaxBytes = 4 << 20;   // a full allmodconfig is about 350 KB
    private readonly Dictionary<string, string> _values = new(StringComparer.Ordinal);

    /// <summary>The file it was read from.</summary>
    public string Source { get; }

    private KernelConfig(string source) => Source = source;

    /// <summary>Where a release's config may be under a root, in the order they are tried.</summary>
    public static IEnumerable<string> Candidates(string root, string release, string? moduleDirectory)
    {
        yield return Path.Combine(root, "boot", "config-" + release);
        if (moduleDirectory is not null) yield return Path.Combine(moduleDirectory, "config");
    }

    /// <summary>The first config found for the release, or null when the system keeps none.</summary>
    public static KernelConfig? Find(string root, string release, string? moduleDirectory)
    {
        foreach (var path in Candidates(root, release, moduleDirectory))
            if (File.Exists(path)) return Read(path);
        return null;
    }

    public static KernelConfig Read(string path)
    {
        if (new FileInfo(path).Length > MaxBytes) throw new IOException($"{path} is larger than {MaxBytes >> 20} MiB: not a kernel config");
        return Parse(File.ReadLines(path), path);
    }

    public static KernelConfig Parse(IEnumerable<string> lines, string source)
    {
        var c = new KernelConfig(source);
        foreach (var raw in lines)
        {
            string line = raw.Trim();
            if (!line.StartsWith("CONFIG_", StringComparison.Ordinal)) continue;
            int eq = line.IndexOf('=');
            if (eq <= 7) continue;
            c._values[line[..eq]] = line[(eq + 1)..].Trim('"');
        }
        return c;
    }

    /// <summary>The option's value ("y", "m", a number or string), or null when it is not set.</summary>
    public string? Value(string option) => _values.GetValueOrDefault(option);

    /// <summary>
    /// Whether finit_module(MODULE_INIT_COMPRESSED_FILE) works for this codec: the kernel is 5.17
    /// or later with CONFIG_MODULE_DECOMPRESS (the option does not exist before), and the in-kernel
    /// decompressor is built for the codec the modules were compressed with
    /// (CONFIG_MODULE_COMPRESS_GZIP/XZ/ZSTD: it handles that one only; zstd from 6.2 on).
    /// </summary>
    public bool KernelDecompresses(ModuleCodec codec) =>
        codec == ModuleCodec.None
        || Value("CONFIG_MODULE_DECOMPRESS") == "y" && Value("CONFIG_MODULE_COMPRESS_" + ModuleCompression.ConfigName(codec)) == "y";
}

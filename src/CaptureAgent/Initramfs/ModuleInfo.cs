using System.IO.Compression;
using System.Text;
using CaptureAgent.Compression.Xz;

namespace CaptureAgent.Initramfs;

/// <summary>
/// What a kernel module says about itself in its ELF <c>.modinfo</c> section (NUL-separated
/// key=value strings): its name, the modules it needs (<c>depends=</c>, what depmod turns into
/// modules.dep) and the optional ones modprobe loads around it (<c>softdep=pre: … post: …</c>).
/// Reads .ko, .ko.gz, .ko.zst and .ko.xz; a compressed module is decompressed as a stream (never
/// held whole) and only the ELF header, section headers, section names and .modinfo are kept.
/// </summary>
public sealed record ModuleInfo(
    string? Name,
    IReadOnlyList<string> Depends,
    IReadOnlyList<string> SoftdepPre,
    IReadOnlyList<string> SoftdepPost,
    string? Vermagic)
{
    /// <summary>Opens a module file's ELF content, decompressing by the file name's ending.</summary>
    public static Stream OpenContent(string path)
    {
        var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        if (path.EndsWith(".ko", StringComparison.Ordinal)) return file;
        if (path.EndsWith(".ko.xz", StringComparison.Ordinal)) return new XzDecoderStream(file);
        if (path.EndsWith(".ko.gz", StringComparison.Ordinal)) return new GZipStream(file, CompressionMode.Decompress);
        if (path.EndsWith(".ko.zst", StringComparison.Ordinal)) return new ZstdSharp.DecompressionStream(file, leaveOpen: false);
        file.Dispose();
        throw new IOException($"{path}: not a kernel module file name (.ko, .ko.xz, .ko.gz or .ko.zst)");
    }

    /// <summary>Reads a module's .modinfo. Damaged or foreign files fail with an IOException naming the file.</summary>
    public static ModuleInfo Read(string path)
    {
        try
        {
            using var elf = new ElfSections(() => OpenContent(path));
            var modinfo = elf.Read(".modinfo", maxSize: 1 << 20);
            if (modinfo is null) throw new InvalidDataException("no .modinfo section: not a kernel module");
            return Parse(modinfo);
        }
        catch (InvalidDataException e)
        {
            throw new IOException($"{path}: {e.Message}", e);
        }
        catch (ZstdSharp.ZstdException e)
        {
            throw new IOException($"{path}: zstd: {e.Message}", e);
        }
    }

    /// <summary>Parses the content of a .modinfo section.</summary>
    public static ModuleInfo Parse(ReadOnlySpan<byte> modinfo)
    {
        string? name = null, vermagic = null;
        var depends = new List<string>();
        var pre = new List<string>();
        var post = new List<string>();
        foreach (var range in modinfo.Split((byte)0))
        {
            var entry = modinfo[range];
            int eq = entry.IndexOf((byte)'=');
            if (eq <= 0) continue;   // alignment padding between entries
            string key = Encoding.ASCII.GetString(entry[..eq]);
            string value = Encoding.UTF8.GetString(entry[(eq + 1)..]);
            switch (key)
            {
                case "name": name = value; break;
                case "vermagic": vermagic = value; break;
                case "depends":
                    foreach (var d in value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
                        AddOnce(depends, d);
                    break;
                case "softdep": ParseSoftdep(value, pre, post); break;
            }
        }
        return new ModuleInfo(name, depends, pre, post, vermagic);
    }

    /// <summary>"pre: a b post: c" (as in modprobe.d's softdep); a module may carry several.</summary>
    internal static void ParseSoftdep(string value, List<string> pre, List<string> post)
    {
        List<string>? into = null;
        foreach (var token in value.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            string t = token;
            if (t.StartsWith("pre:", StringComparison.Ordinal)) { into = pre; t = t[4..]; }
            else if (t.StartsWith("post:", StringComparison.Ordinal)) { into = post; t = t[5..]; }
            if (t.Length > 0 && into is not null) AddOnce(into, t);
        }
    }

    private static void AddOnce(List<string> list, string name)
    {
        name = KernelModules.Normalize(name);
        if (!list.Contains(name)) list.Add(name);
    }
}

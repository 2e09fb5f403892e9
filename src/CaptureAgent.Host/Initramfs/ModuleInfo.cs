using System.Text;
using CaptureAgent.Compression;

namespace CaptureAgent.Initramfs;

/// <summary>
/// What a kernel module says about itself in its ELF <c>.modinfo</c> section (NUL-separated
/// key=value strings): its name, the modules it needs (<c>depends=</c>, what depmod turns into
/// modules.dep), the optional ones modprobe loads around it (<c>softdep=pre: … post: …</c>) and the
/// other names it answers to (<c>alias=</c>: crypto-crc32c, fs-ext4, device ids; what depmod
/// writes into modules.alias).
/// Reads .ko, .ko.gz, .ko.zst and .ko.xz. A compressed module is decompressed once into memory
/// when it is no larger than <see cref="MaxBufferedBytes"/>; a larger one is read as a stream
/// (never held whole), keeping only the ELF header, section headers, section names and .modinfo.
/// </summary>
public sealed record ModuleInfo(
    string? Name,
    IReadOnlyList<string> Depends,
    IReadOnlyList<string> SoftdepPre,
    IReadOnlyList<string> SoftdepPost,
    string? Vermagic,
    IReadOnlyList<string> Aliases)
{
    /// <summary>A decompressed module up to this size is read from memory: one decompression instead of three.</summary>
    public const int MaxBufferedBytes = 16 << 20;

    /// <summary>Opens a module file's ELF content, decompressing by the file name's ending.</summary>
    public static Stream OpenContent(string path) => ModuleCompression.OpenContent(path);

    /// <summary>Reads a module's .modinfo. Damaged or foreign files fail with an IOException naming the file.</summary>
    public static ModuleInfo Read(string path)
    {
        try
        {
            using var elf = new ElfSections(Opener(path));
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

    /// <summary>
    /// How ElfSections gets at the content: the file itself when plain; decompressed into memory
    /// when it fits <see cref="MaxBufferedBytes"/> (ElfSections then seeks instead of decompressing
    /// again for each earlier offset); otherwise a fresh decompressing stream per pass.
    /// </summary>
    private static Func<Stream> Opener(string path)
    {
        if (ModuleCompression.CodecOf(path) == ModuleCodec.None) return () => OpenContent(path);
        byte[]? buffer;
        int length;
        // Modules compress 3-5x: start at 4x the file, grow to the cap.
        int first = (int)Math.Min(MaxBufferedBytes, Math.Max(64 << 10, new FileInfo(path).Length * 4));
        using (var content = OpenContent(path)) (buffer, length) = ModuleCompression.ReadAtMost(content, first, MaxBufferedBytes);
        if (buffer is null) return () => OpenContent(path);
        return () => new MemoryStream(buffer, 0, length, writable: false);
    }

    /// <summary>Parses the content of a .modinfo section.</summary>
    public static ModuleInfo Parse(ReadOnlySpan<byte> modinfo)
    {
        string? name = null, vermagic = null;
        var depends = new List<string>();
        var pre = new List<string>();
        var post = new List<string>();
        var aliases = new List<string>();
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
                case "alias": if (value.Length > 0 && !aliases.Contains(value)) aliases.Add(value); break;
            }
        }
        return new ModuleInfo(name, depends, pre, post, vermagic, aliases);
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

using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using CaptureAgent.Initramfs;
using CaptureAgent.Tests.Integration;

namespace CaptureAgent.Tests.Fuzz;

/// <summary>
/// Capture initramfs images (newc cpio, uncompressed or zstd, gzip, xz) with their cpio headers and
/// data damaged: `estimate` reads them the way the kernel unpacks them. The kernel image is a real
/// fixture kernel's.
/// </summary>
public sealed class InitramfsKind : IFuzzKind
{
    private readonly string _kernel;
    private readonly (string Compression, byte[] Image)[] _bases;

    public string Name => "initramfs";

    public InitramfsKind(string kernelImage, byte[] module, string workDir)
    {
        _kernel = kernelImage;
        var cpio = Cpio(module);
        string plain = Path.Combine(workDir, "base.cpio");
        File.WriteAllBytes(plain, cpio);
        Fixtures.Sh($"xz -c --check=crc32 -T1 '{plain}' > '{plain}.xz'");
        _bases =
        [
            ("none", cpio), ("zstd", ZstdSharpCompress(cpio)), ("gzip", Gzip(cpio)), ("xz", File.ReadAllBytes(plain + ".xz")),
        ];
    }

    private static byte[] Cpio(byte[] module)
    {
        var output = new MemoryStream();
        using (var w = new CpioNewcWriter(output, leaveOpen: true))
        {
            w.WriteDirectory("etc");
            w.WriteFile("etc/capture-agent.conf", 0x180, "target = LABEL=crashdump\npath = /var/crash\n"u8);
            w.WriteFile("init", 0x1ed, new byte[200_000]);
            w.WriteDirectory("lib");
            w.WriteDirectory("lib/modules");
            w.WriteDirectory("lib/modules/6.1.0-fuzz");
            w.WriteFile("lib/modules/6.1.0-fuzz/fuzz.ko", 0x1a4, module);
            w.WriteFile("lib/modules/6.1.0-fuzz/capture-agent.modules", 0x1a4, "fuzz.ko\n"u8);
            w.WriteSymlink("sbin", "/");
            w.WriteCharDevice("dev/console", 0x180, 5, 1);
            w.Finish();
        }
        return output.ToArray();
    }

    private static byte[] ZstdSharpCompress(byte[] data)
    {
        using var c = new ZstdSharp.Compressor(3);
        return c.Wrap(data).ToArray();
    }

    private static byte[] Gzip(byte[] data)
    {
        var output = new MemoryStream();
        using (var z = new GZipStream(output, CompressionLevel.Fastest, leaveOpen: true)) z.Write(data);
        return output.ToArray();
    }

    public FuzzCase Make(Mutator m, string dir)
    {
        var (compression, baseImage) = m.Pick(_bases);
        var image = (byte[])baseImage.Clone();
        var notes = new List<string> { compression };
        for (int i = 0, n = 1 + m.Below(2); i < n; i++)
        {
            if (compression == "none" && m.Chance(60)) notes.Add(CpioField(m, image));
            else if (m.Chance(10))
            {
                int cut = (int)m.Below(image.Length);
                image = image[..cut];
                notes.Add($"cut at {cut}");
            }
            else notes.Add(m.Somewhere(image, 0, image.Length, "image"));
        }
        if (m.Chance(10))
        {
            // A second archive appended, as early microcode or a second builder would.
            image = [.. image, .. m.Pick(_bases).Image];
            notes.Add("another archive appended");
        }
        string input = Path.Combine(dir, "initramfs.img");
        File.WriteAllBytes(input, image);
        return new FuzzCase(string.Join("; ", notes),
            [new(["estimate", "--kernel", _kernel, "--initrd", input, "--memory-size", "1G", "--json"])], image);
    }

    /// <summary>
    /// One 8-digit hex field of a newc header (c_mode, c_filesize, c_namesize...) set to another number.
    /// Headers are found only as far as earlier mutations of this case left them readable.
    /// </summary>
    private static string CpioField(Mutator m, byte[] image)
    {
        var headers = new List<int>();
        for (int at = 0; at + 110 <= image.Length && image.AsSpan(at, 6).SequenceEqual("070701"u8);)
        {
            headers.Add(at);
            if (HexField(image, at, 12) is not { } nameSize || HexField(image, at, 7) is not { } fileSize) break;
            long next = Align4(Align4(at + 110 + (long)nameSize) + fileSize);
            if (next > image.Length) break;
            at = (int)next;
        }
        if (headers.Count == 0) return m.Somewhere(image, 0, image.Length, "image (no cpio header left)");
        int h = m.Pick(headers);
        int field = 1 + m.Below(13);   // c_ino .. c_check (c_magic stays)
        ulong value = m.Value(HexField(image, h, field) ?? 0);
        string hex = m.Chance(10) ? "zzzzzzzz" : (value & 0xffffffff).ToString("X8");
        Encoding.ASCII.GetBytes(hex).CopyTo(image, h + 6 + (field - 1) * 8);
        return $"cpio header at {h}, field {field} = {hex}";
    }

    /// <summary>Field 1..13 of the newc header at <paramref name="header"/>, or null when an earlier mutation made it unreadable.</summary>
    private static uint? HexField(byte[] image, int header, int field) =>
        uint.TryParse(image.AsSpan(header + 6 + (field - 1) * 8, 8), System.Globalization.NumberStyles.HexNumber, null, out uint v) ? v : null;

    private static long Align4(long v) => (v + 3) & ~3L;
}

/// <summary>
/// Kernel modules (a real .ko of the fixture kernel) with ELF and section headers and .modinfo
/// damaged: `initramfs build` reads their dependencies (depends=) when the tree has no modules.dep.
/// </summary>
public sealed class ModuleKind(byte[] module, string agent) : IFuzzKind
{
    public string Name => "modules";

    public FuzzCase Make(Mutator m, string dir)
    {
        var ko = (byte[])module.Clone();
        var notes = new List<string>();
        ulong shoff = BinaryPrimitives.ReadUInt64LittleEndian(module.AsSpan(40));
        int shnum = BinaryPrimitives.ReadUInt16LittleEndian(module.AsSpan(60));
        int roll = m.Below(100);
        if (roll < 25)
        {
            var (f, o, w) = m.Pick(new[] { ("e_shoff", 40, 8), ("e_shentsize", 58, 2), ("e_shnum", 60, 2), ("e_shstrndx", 62, 2), ("e_ident", 4, 1) });
            m.Field(ko, o, w);
            notes.Add($"ELF header {f}");
        }
        else if (roll < 65)
        {
            int s = m.Below(shnum);
            var (f, o, w) = m.Pick(new[] { ("sh_name", 0, 4), ("sh_type", 4, 4), ("sh_offset", 24, 8), ("sh_size", 32, 8), ("sh_size", 32, 8) });
            m.Field(ko, (int)shoff + s * 64 + o, w);
            notes.Add($"section {s} {f}");
        }
        else if (roll < 90) notes.Add(Modinfo(m, ko));
        else notes.Add(m.Somewhere(ko, 0, ko.Length, "module"));
        string root = Path.Combine(dir, "root"), modules = Path.Combine(root, "lib", "modules", "6.1.0-fuzz");
        Directory.CreateDirectory(Path.Combine(modules, "kernel"));
        File.WriteAllBytes(Path.Combine(modules, "kernel", "fuzzmod.ko"), ko);
        File.WriteAllText(Path.Combine(modules, "modules.builtin"), "");
        string output = Path.Combine(dir, "initramfs.img");
        return new FuzzCase(string.Join("; ", notes),
            [new(["initramfs", "build", "-o", output, "--kernel-version", "6.1.0-fuzz", "--modules-root", root, "--agent", agent, "--module", "fuzzmod", "--compress", "none"])], ko);
    }

    /// <summary>
    /// The .modinfo strings bent: depends= given a self-referencing, missing, empty or long list, written
    /// over the strings after it (the module depends on nothing, so its own depends= is empty), sometimes
    /// without its terminating NUL.
    /// </summary>
    private static string Modinfo(Mutator m, byte[] ko)
    {
        int at = ko.AsSpan().IndexOf("depends="u8);
        if (at < 0) return "no depends= to bend";
        string value = m.Pick(new[] { "fuzzmod", "fuzzmod,fuzzmod", "a,b,c,d,e,f,g,h,i,j", ",,,,", "../../x", new string('d', 40), "" });
        var bytes = Encoding.ASCII.GetBytes("depends=" + value + (m.Chance(20) ? "" : "\0"));
        bytes.AsSpan(0, Math.Min(bytes.Length, ko.Length - at)).CopyTo(ko.AsSpan(at));
        return $"depends= '{value}'{(bytes[^1] == 0 ? "" : " without its NUL")}";
    }
}

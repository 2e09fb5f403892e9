using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using CaptureAgent.Initramfs;
using CaptureAgent.Tests.Integration;
using CaptureAgent.Compression;

namespace CaptureAgent.Tests.Host.Initramfs;

/// <summary>
/// Kernel modules made up for tests: relocatable ELF files whose .modinfo says what the test needs
/// (name=, depends=, softdep=, alias=), stored plain or compressed the way Kbuild does it, in a
/// module tree under lib/modules or usr/lib/modules, with modules.builtin(.modinfo) and a config.
/// </summary>
public static class SyntheticModules
{
    public static byte[] Modinfo(params string[] entries) => Encoding.ASCII.GetBytes(string.Concat(entries.Select(e => e + "\0")));

    /// <summary>A minimal relocatable ELF: a junk section of <paramref name="textBytes"/> random bytes, .modinfo, the name table, then the section headers.</summary>
    public static byte[] Elf(bool is64, bool bigEndian, byte[] modinfo, int textBytes = 5000, int seed = 1)
    {
        var names = Encoding.ASCII.GetBytes("\0.text\0.modinfo\0.shstrtab\0");
        var text = new byte[textBytes];
        new Random(seed).NextBytes(text);
        int ehsize = is64 ? 64 : 52, shentsize = is64 ? 64 : 40;
        long textAt = ehsize, modinfoAt = textAt + text.Length, namesAt = modinfoAt + modinfo.Length;
        long shoff = (namesAt + names.Length + 7) & ~7;
        var f = new byte[shoff + 4 * shentsize];
        void U16(long at, int v) { if (bigEndian) BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan((int)at), (ushort)v); else BinaryPrimitives.WriteUInt16LittleEndian(f.AsSpan((int)at), (ushort)v); }
        void U32(long at, long v) { if (bigEndian) BinaryPrimitives.WriteUInt32BigEndian(f.AsSpan((int)at), (uint)v); else BinaryPrimitives.WriteUInt32LittleEndian(f.AsSpan((int)at), (uint)v); }
        void U64(long at, long v) { if (bigEndian) BinaryPrimitives.WriteUInt64BigEndian(f.AsSpan((int)at), (ulong)v); else BinaryPrimitives.WriteUInt64LittleEndian(f.AsSpan((int)at), (ulong)v); }
        void Word(long at, long v) { if (is64) U64(at, v); else U32(at, v); }
        "\x7f"u8.CopyTo(f);
        "ELF"u8.CopyTo(f.AsSpan(1));
        f[4] = (byte)(is64 ? 2 : 1);
        f[5] = (byte)(bigEndian ? 2 : 1);
        f[6] = 1;
        U16(16, 1);   // ET_REL
        Word(is64 ? 40 : 32, shoff);
        U16(is64 ? 52 : 40, ehsize);
        U16(is64 ? 58 : 46, shentsize);
        U16(is64 ? 60 : 48, 4);
        U16(is64 ? 62 : 50, 3);
        text.CopyTo(f, textAt);
        modinfo.CopyTo(f, modinfoAt);
        names.CopyTo(f, namesAt);
        void Header(int index, int name, int type, long offset, long size)
        {
            long at = shoff + index * shentsize;
            U32(at, name);
            U32(at + 4, type);
            Word(at + (is64 ? 24 : 16), offset);
            Word(at + (is64 ? 32 : 20), size);
        }
        Header(1, 1, 1, textAt, text.Length);
        Header(2, 7, 1, modinfoAt, modinfo.Length);
        Header(3, 16, 3, namesAt, names.Length);
        return f;
    }

    /// <summary>A module's ELF content for x86_64 (64-bit little endian).</summary>
    public static byte[] Module(string name, params string[] modinfo) =>
        Elf(true, false, Modinfo([.. modinfo, "name=" + name, "vermagic=5.10.0 SMP mod_unload modversions "]), seed: name.Sum(c => c));

    /// <summary>Compressed as Kbuild does: xz --check=crc32 --lzma2=dict=1MiB, gzip -9, zstd (level 19 here: the format is what matters).</summary>
    public static byte[] Compress(byte[] elf, ModuleCodec codec)
    {
        switch (codec)
        {
            case ModuleCodec.Gzip:
            {
                var ms = new MemoryStream();
                using (var gz = new GZipStream(ms, CompressionLevel.SmallestSize, leaveOpen: true)) gz.Write(elf);
                return ms.ToArray();
            }
            case ModuleCodec.Zstd:
                using (var z = new ZstdSharp.Compressor(19)) return z.Wrap(elf).ToArray();
            case ModuleCodec.Xz:
            {
                using var dir = new TempDir();
                File.WriteAllBytes(dir.File("m.ko"), elf);
                Fixtures.Sh($"xz --check=crc32 --lzma2=dict=1MiB '{dir.File("m.ko")}'");
                return File.ReadAllBytes(dir.File("m.ko.xz"));
            }
            default: return elf;
        }
    }

    public static string Extension(ModuleCodec codec) => codec switch
    {
        ModuleCodec.Gzip => ".ko.gz",
        ModuleCodec.Xz => ".ko.xz",
        ModuleCodec.Zstd => ".ko.zst",
        _ => ".ko",
    };
}

/// <summary>A module tree being written: root/lib/modules/RELEASE, or root/usr/lib/modules/RELEASE for merged /usr.</summary>
public sealed class SyntheticTree
{
    public string Root { get; }
    public string Release { get; }
    public string Dir { get; }
    public ModuleCodec Codec { get; }
    private readonly List<string> _builtinModinfo = new();
    private readonly List<string> _builtin = new();

    public SyntheticTree(string root, string release, ModuleCodec codec = ModuleCodec.None, bool usrMerged = false)
    {
        Root = root;
        Release = release;
        Codec = codec;
        Dir = usrMerged ? Path.Combine(root, "usr", "lib", "modules", release) : Path.Combine(root, "lib", "modules", release);
        Directory.CreateDirectory(Dir);
    }

    /// <summary>Writes kernel/DIR/NAME.ko[.ext] with the given .modinfo entries; returns its path relative to the tree.</summary>
    public string Add(string dir, string fileName, params string[] modinfo)
    {
        string rel = $"kernel/{dir}/{fileName}{SyntheticModules.Extension(Codec)}";
        string path = Path.Combine(Dir, rel);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        string name = KernelModules.Normalize(fileName);
        File.WriteAllBytes(path, SyntheticModules.Compress(SyntheticModules.Module(name, modinfo), Codec));
        return rel;
    }

    /// <summary>A module built into the kernel: its line in modules.builtin and its .modinfo in modules.builtin.modinfo.</summary>
    public void AddBuiltin(string dir, string name, params string[] modinfo)
    {
        _builtin.Add($"kernel/{dir}/{name}.ko");
        _builtinModinfo.Add($"{name}.file={dir}/{name}");
        foreach (var e in modinfo) _builtinModinfo.Add($"{name}.{e}");
        File.WriteAllText(Path.Combine(Dir, "modules.builtin"), string.Concat(_builtin.Select(b => b + "\n")));
        File.WriteAllBytes(Path.Combine(Dir, "modules.builtin.modinfo"), SyntheticModules.Modinfo([.. _builtinModinfo]));
    }

    /// <summary>root/boot/config-RELEASE with these lines.</summary>
    public string Config(params string[] lines)
    {
        string path = Path.Combine(Root, "boot", "config-" + Release);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, "#\n# Automatically generated file; DO NOT EDIT.\n#\n" + string.Concat(lines.Select(l => l + "\n")));
        return path;
    }

    /// <summary>The ext4 stack of a generic Debian kernel (ext4 a module, its crc32c soft dependency answered by aliases).</summary>
    public void AddGenericExt4()
    {
        Add("lib", "crc16", "license=GPL");
        Add("fs", "mbcache", "license=GPL");
        Add("fs/jbd2", "jbd2", "license=GPL");
        Add("fs/ext4", "ext4", "alias=fs-ext4", "alias=ext3", "alias=fs-ext3", "alias=ext2", "alias=fs-ext2",
            "softdep=pre: crc32c", "depends=mbcache,crc16,jbd2");
        Add("crypto", "crc32c_generic", "alias=crypto-crc32c-generic", "alias=crc32c-generic", "alias=crypto-crc32c", "alias=crc32c");
        Add("arch/x86/crypto", "crc32c-intel", "alias=crypto-crc32c-intel", "alias=crc32c-intel", "alias=crypto-crc32c", "alias=crc32c",
            "alias=cpu:type:x86,ven*fam*mod*:feature:*0094*");
        Add("drivers/block", "virtio_blk", "alias=virtio:d00000002v*", "depends=");
    }
}

using System.Buffers.Binary;
using System.Text;

namespace CaptureAgent.Initramfs;

/// <summary>
/// One file an executable needs at run time. <see cref="Source"/> is the path the dynamic loader
/// would open on this machine (symlinks are followed when it is read); <see cref="Destination"/> is
/// where it goes in the image, normally the same path.
/// </summary>
public sealed record ElfDependency(string Source, string Destination, string Why);

/// <summary>
/// The run-time closure of a dynamically linked ELF executable, found the way ld.so finds it:
/// PT_INTERP (the dynamic loader), then each DT_NEEDED, searched in DT_RPATH (of the object and the
/// objects that loaded it, when the object has no DT_RUNPATH), DT_RUNPATH, the directories of
/// /etc/ld.so.conf (what ld.so.cache holds) and the system directories, recursively. A name
/// already loaded (as a file name or a DT_SONAME, the loader's included) is not searched again,
/// so the list matches what `ldd` prints. Only headers are read: program headers, the dynamic
/// segment and its string table.
/// </summary>
public sealed class ElfDependencies
{
    /// <summary>ld.so's built-in search path on Debian amd64 (`ld.so --help`), then the classic /lib64.</summary>
    public static readonly string[] SystemDirectories = ["/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib", "/usr/lib", "/lib64"];

    private const int MaxObjects = 512;
    private const int MaxProgramHeaders = 4096;
    private const long MaxDynamicBytes = 1 << 20;
    private const long MaxStringTable = 4 << 20;

    public string LdSoConf { get; init; } = "/etc/ld.so.conf";
    public IReadOnlyList<string> DefaultDirectories { get; init; } = SystemDirectories;

    /// <summary>Things worth telling the user (a library placed away from its host path, and why).</summary>
    public List<string> Notes { get; } = new();

    /// <summary>What ld.so reads from an object's headers.</summary>
    public sealed record ElfInfo(bool Is64, bool BigEndian, ushort Machine, ushort Type, string? Interpreter,
        List<string> Needed, string? Soname, string? Rpath, string? Runpath);

    private sealed record Loaded(string Path, ElfInfo Info, Loaded? Parent);

    /// <summary>The interpreter first, then the libraries in the order ld.so would load them (breadth first).</summary>
    public List<ElfDependency> Resolve(string executable)
    {
        var exe = Read(executable);
        var result = new List<ElfDependency>();
        var known = new HashSet<string>(StringComparer.Ordinal);   // needed names and sonames already satisfied
        var placed = new HashSet<string>(StringComparer.Ordinal);
        if (exe.Interpreter is { } interp)
        {
            if (!File.Exists(interp)) throw new IOException($"{executable}: its dynamic loader {interp} does not exist");
            var li = Read(interp);
            result.Add(new ElfDependency(interp, interp, "dynamic loader (PT_INTERP)"));
            placed.Add(interp);
            known.Add(Path.GetFileName(interp));
            if (li.Soname is { } s) known.Add(s);
        }
        else if (exe.Needed.Count > 0)
            throw new InvalidDataException($"{executable} needs shared libraries but names no dynamic loader (PT_INTERP)");

        var conf = LdSoConfDirectories(LdSoConf);
        var queue = new Queue<Loaded>();
        queue.Enqueue(new Loaded(executable, exe, null));
        while (queue.Count > 0)
        {
            var obj = queue.Dequeue();
            foreach (var name in obj.Info.Needed)
            {
                if (known.Contains(name)) continue;
                var (path, how) = Find(name, obj, exe, conf)
                    ?? throw new IOException($"{obj.Path} needs {name}, which is not found in its RPATH/RUNPATH, {LdSoConf} or the system directories");
                known.Add(name);
                var info = Read(path);
                if (info.Soname is { } so) known.Add(so);
                string dest = how == SearchKind.Conf && !DefaultDirectories.Contains(Path.GetDirectoryName(path))
                    ? Path.Combine(DefaultDirectories[0], name)   // no ld.so.cache in the image: a system directory is searched
                    : path;
                if (dest != path) Notes.Add($"{name} was found through {LdSoConf} in {Path.GetDirectoryName(path)}; the image has it in {DefaultDirectories[0]}, which ld.so searches without a cache");
                if (placed.Add(dest)) result.Add(new ElfDependency(path, dest, $"DT_NEEDED of {obj.Path}"));
                if (result.Count > MaxObjects) throw new InvalidDataException($"{executable} pulls in more than {MaxObjects} libraries");
                queue.Enqueue(new Loaded(path, info, obj));
            }
        }
        return result;
    }

    private enum SearchKind { Path, Rpath, Runpath, Conf, System }

    private (string Path, SearchKind How)? Find(string name, Loaded requester, ElfInfo exe, List<string> conf)
    {
        if (name.Contains('/'))
            return Usable(name, exe) ? (name, SearchKind.Path) : null;
        // DT_RPATH counts only when the requesting object has no DT_RUNPATH; then the loaders' RPATHs follow.
        if (requester.Info.Runpath is null)
            for (var o = requester; o is not null; o = o.Parent)
                if (o.Info.Rpath is { } rp && Search(name, Expand(rp, o.Path), exe) is { } hit) return (hit, SearchKind.Rpath);
        if (requester.Info.Runpath is { } run && Search(name, Expand(run, requester.Path), exe) is { } r) return (r, SearchKind.Runpath);
        if (Search(name, conf, exe) is { } c) return (c, DefaultDirectories.Contains(Path.GetDirectoryName(c)) ? SearchKind.System : SearchKind.Conf);
        if (Search(name, DefaultDirectories, exe) is { } d) return (d, SearchKind.System);
        return null;
    }

    private static string? Search(string name, IEnumerable<string> dirs, ElfInfo exe)
    {
        foreach (var d in dirs)
        {
            if (d.Length == 0) continue;
            string p = Path.Combine(d, name);
            if (Usable(p, exe)) return p;
        }
        return null;
    }

    /// <summary>ld.so skips a file of another class or machine and keeps searching.</summary>
    private static bool Usable(string path, ElfInfo exe)
    {
        if (!File.Exists(path)) return false;
        try
        {
            var i = Read(path);
            return i.Is64 == exe.Is64 && i.BigEndian == exe.BigEndian && i.Machine == exe.Machine;
        }
        catch (InvalidDataException) { return false; }
    }

    /// <summary>$ORIGIN (the object's directory), $LIB and $PLATFORM as Debian's amd64 ld.so expands them.</summary>
    private static List<string> Expand(string list, string objectPath)
    {
        string origin = Path.GetDirectoryName(Path.GetFullPath(objectPath)) ?? "/";
        var dirs = new List<string>();
        foreach (var raw in list.Split(':'))
        {
            string d = raw.Replace("${ORIGIN}", origin).Replace("$ORIGIN", origin)
                .Replace("${LIB}", "lib/x86_64-linux-gnu").Replace("$LIB", "lib/x86_64-linux-gnu")
                .Replace("${PLATFORM}", "x86_64").Replace("$PLATFORM", "x86_64");
            if (d.Length == 0) d = ".";   // an empty entry means the current directory
            dirs.Add(d);
        }
        return dirs;
    }

    /// <summary>The directories of ld.so.conf in order, following `include` globs (relative to the file's directory).</summary>
    public static List<string> LdSoConfDirectories(string confPath)
    {
        var dirs = new List<string>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        void ReadConf(string file, int depth)
        {
            if (depth > 8 || !seen.Add(file) || !File.Exists(file)) return;
            foreach (var line0 in File.ReadLines(file))
            {
                string line = line0.Split('#')[0].Trim();
                if (line.Length == 0) continue;
                if (line.StartsWith("include", StringComparison.Ordinal) && line.Length > 7 && char.IsWhiteSpace(line[7]))
                {
                    foreach (var pattern in line[8..].Split((char[])[' ', '\t'], StringSplitOptions.RemoveEmptyEntries))
                    {
                        string abs = pattern.StartsWith('/') ? pattern : Path.Combine(Path.GetDirectoryName(file) ?? "/", pattern);
                        foreach (var f in Glob(abs)) ReadConf(f, depth + 1);
                    }
                    continue;
                }
                if (line.StartsWith("hwcap", StringComparison.Ordinal)) continue;
                foreach (var d in line.Split((char[])[' ', '\t', ',', ':'], StringSplitOptions.RemoveEmptyEntries))
                    if (d.StartsWith('/') && !dirs.Contains(d.TrimEnd('/'))) dirs.Add(d.Length > 1 ? d.TrimEnd('/') : d);
            }
        }
        ReadConf(confPath, 0);
        return dirs;
    }

    /// <summary>A glob in the last component only (ld.so.conf.d/*.conf), sorted as glob(3) sorts.</summary>
    private static IEnumerable<string> Glob(string pattern)
    {
        string dir = Path.GetDirectoryName(pattern) ?? "/";
        string leaf = Path.GetFileName(pattern);
        if (!leaf.Contains('*') && !leaf.Contains('?')) return File.Exists(pattern) ? [pattern] : [];
        if (!Directory.Exists(dir)) return [];
        return Directory.GetFiles(dir, leaf).Order(StringComparer.Ordinal);
    }

    /// <summary>
    /// Whether <paramref name="path"/> is a dynamically linked ELF program (it cannot start as /init
    /// without its loader and libraries); false for a static one and for anything not ELF (a script).
    /// </summary>
    public static bool IsDynamic(string path)
    {
        Span<byte> head = stackalloc byte[4];
        using (var f = File.OpenRead(path))
            if (f.Read(head) != 4 || !head.SequenceEqual("\u007fELF"u8)) return false;
        return Read(path).Interpreter is not null;
    }

    /// <summary>The interpreter, needed names, soname and search paths of one ELF file (either class and byte order).</summary>
    public static ElfInfo Read(string path)
    {
        using var f = File.OpenHandle(path);
        long length = RandomAccess.GetLength(f);
        Span<byte> h = stackalloc byte[64];
        if (length < 52 || RandomAccess.Read(f, h, 0) < 52 || !h.StartsWith("\x7f"u8) || !h[1..4].SequenceEqual("ELF"u8))
            throw new InvalidDataException($"{path} is not an ELF file");
        bool is64 = h[4] switch { 1 => false, 2 => true, _ => throw new InvalidDataException($"{path}: unknown ELF class {h[4]}") };
        bool big = h[5] switch { 1 => false, 2 => true, _ => throw new InvalidDataException($"{path}: unknown ELF byte order {h[5]}") };
        if (is64 && length < 64) throw new InvalidDataException($"{path}: ELF header cut short");
        ushort U16(ReadOnlySpan<byte> b) => big ? BinaryPrimitives.ReadUInt16BigEndian(b) : BinaryPrimitives.ReadUInt16LittleEndian(b);
        uint U32(ReadOnlySpan<byte> b) => big ? BinaryPrimitives.ReadUInt32BigEndian(b) : BinaryPrimitives.ReadUInt32LittleEndian(b);
        ulong U64(ReadOnlySpan<byte> b) => big ? BinaryPrimitives.ReadUInt64BigEndian(b) : BinaryPrimitives.ReadUInt64LittleEndian(b);
        ulong Word(ReadOnlySpan<byte> b) => is64 ? U64(b) : U32(b);

        ushort type = U16(h[16..]);
        ushort machine = U16(h[18..]);
        long phoff = (long)Word(h[(is64 ? 32 : 28)..]);
        int phentsize = U16(h[(is64 ? 54 : 42)..]);
        int phnum = U16(h[(is64 ? 56 : 44)..]);
        int minEntry = is64 ? 56 : 32;
        var needed = new List<string>();
        if (phnum == 0) return new ElfInfo(is64, big, machine, type, null, needed, null, null, null);
        if (phentsize < minEntry || phnum > MaxProgramHeaders) throw new InvalidDataException($"{path}: implausible ELF program header table ({phnum} × {phentsize})");

        var table = ReadExact(f, phoff, (long)phnum * phentsize, length, path, "program header table");
        var loads = new List<(ulong Vaddr, ulong Memsz, ulong Offset, ulong Filesz)>();
        string? interp = null;
        (long Offset, long Size)? dynamic = null;
        for (int i = 0; i < phnum; i++)
        {
            var e = table.AsSpan(i * phentsize, phentsize);
            uint ptype = U32(e);
            ulong off = is64 ? U64(e[8..]) : U32(e[4..]);
            ulong vaddr = is64 ? U64(e[16..]) : U32(e[8..]);
            ulong filesz = is64 ? U64(e[32..]) : U32(e[16..]);
            ulong memsz = is64 ? U64(e[40..]) : U32(e[20..]);
            switch (ptype)
            {
                case 1: loads.Add((vaddr, memsz, off, filesz)); break;   // PT_LOAD
                case 2: dynamic = ((long)off, (long)filesz); break;       // PT_DYNAMIC
                case 3:                                                   // PT_INTERP
                    if (filesz == 0 || filesz > 4096) throw new InvalidDataException($"{path}: implausible PT_INTERP of {filesz} bytes");
                    interp = CString(ReadExact(f, (long)off, (long)filesz, length, path, "PT_INTERP"), 0);
                    break;
            }
        }
        if (dynamic is not { } dyn) return new ElfInfo(is64, big, machine, type, interp, needed, null, null, null);
        if (dyn.Size <= 0 || dyn.Size > MaxDynamicBytes) throw new InvalidDataException($"{path}: implausible dynamic segment of {dyn.Size} bytes");
        var d = ReadExact(f, dyn.Offset, dyn.Size, length, path, "dynamic segment");
        int entry = is64 ? 16 : 8;
        var neededOffsets = new List<ulong>();
        ulong? strtab = null, strsz = null, soname = null, rpath = null, runpath = null;
        for (int i = 0; i + entry <= d.Length; i += entry)
        {
            long tag = is64 ? (long)U64(d.AsSpan(i)) : (int)U32(d.AsSpan(i));
            ulong val = Word(d.AsSpan(i + entry / 2));
            if (tag == 0) break;   // DT_NULL
            switch (tag)
            {
                case 1: neededOffsets.Add(val); break;   // DT_NEEDED
                case 5: strtab = val; break;             // DT_STRTAB (an address)
                case 10: strsz = val; break;             // DT_STRSZ
                case 14: soname = val; break;            // DT_SONAME
                case 15: rpath = val; break;             // DT_RPATH
                case 29: runpath = val; break;           // DT_RUNPATH
            }
        }
        if (strtab is not { } addr || strsz is not { } size)
        {
            if (neededOffsets.Count > 0) throw new InvalidDataException($"{path}: DT_NEEDED without DT_STRTAB/DT_STRSZ");
            return new ElfInfo(is64, big, machine, type, interp, needed, null, null, null);
        }
        if (size == 0 || size > MaxStringTable) throw new InvalidDataException($"{path}: implausible dynamic string table of {size} bytes");
        // DT_STRTAB is a virtual address: the PT_LOAD that holds it gives the file offset.
        long? strOff = null;
        foreach (var l in loads)
            if (addr >= l.Vaddr && addr - l.Vaddr + size <= l.Filesz) { strOff = (long)(l.Offset + (addr - l.Vaddr)); break; }
        if (strOff is not { } so0) throw new InvalidDataException($"{path}: the dynamic string table is outside every loaded segment");
        var strings = ReadExact(f, so0, (long)size, length, path, "dynamic string table");
        string Str(ulong o) => o < (ulong)strings.Length ? CString(strings, (int)o) : throw new InvalidDataException($"{path}: dynamic string offset {o} out of range");
        foreach (var o in neededOffsets)
        {
            string n = Str(o);
            if (n.Length > 0 && !needed.Contains(n)) needed.Add(n);
        }
        return new ElfInfo(is64, big, machine, type, interp, needed,
            soname is { } s ? Str(s) : null, rpath is { } r ? Str(r) : null, runpath is { } ru ? Str(ru) : null);
    }

    private static byte[] ReadExact(Microsoft.Win32.SafeHandles.SafeFileHandle f, long offset, long size, long length, string path, string what)
    {
        if (offset < 0 || size < 0 || offset > length || size > length - offset)
            throw new InvalidDataException($"{path}: ELF {what} lies beyond the end of the file");
        var buf = new byte[size];
        int done = 0;
        while (done < buf.Length)
        {
            int n = RandomAccess.Read(f, buf.AsSpan(done), offset + done);
            if (n <= 0) throw new InvalidDataException($"{path}: ELF {what} cut short");
            done += n;
        }
        return buf;
    }

    private static string CString(byte[] b, int start)
    {
        int end = Array.IndexOf(b, (byte)0, start);
        return Encoding.UTF8.GetString(b, start, (end < 0 ? b.Length : end) - start);
    }
}

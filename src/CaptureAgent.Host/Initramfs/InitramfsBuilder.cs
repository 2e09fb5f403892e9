using System.IO.Compression;
using CaptureAgent.Boot;
using CaptureAgent.Compression;

namespace CaptureAgent.Initramfs;

public enum ImageCompression { Zstd, Gzip, None }

/// <summary>What goes into a capture initramfs.</summary>
public sealed class InitramfsSpec
{
    public required string AgentPath { get; init; }
    public string? ConfigPath { get; init; }
    public string ModulesRoot { get; init; } = "/";
    public required string KernelRelease { get; init; }
    public List<string> Modules { get; init; } = new();
    public List<string> Blacklist { get; init; } = new();
    public ImageCompression Compression { get; init; } = ImageCompression.Zstd;
    /// <summary>Modification time of every entry (seconds since the epoch); 0 makes the image reproducible.</summary>
    public uint Mtime { get; init; }

    /// <summary>
    /// Host programs to carry (e.g. /usr/bin/ssh), each at its own path with its dynamic loader and
    /// libraries (<see cref="ElfDependencies"/>). Any executable also brings /etc/passwd and /etc/group
    /// with a root entry, /root (0700) and /dev/null, which programs such as ssh refuse to run without.
    /// </summary>
    public List<string> Executables { get; init; } = new();

    /// <summary>More files, copied from the host (symlinks followed) to a path of the image with a mode.</summary>
    public List<InitramfsFile> ExtraFiles { get; init; } = new();
}

/// <summary>A host file placed in the image: Destination is absolute in the image, Mode its permission bits.</summary>
public sealed record InitramfsFile(string Source, string Destination, int Mode)
{
    /// <summary>SRC:DEST[:MODE] with an octal mode (default 0600: keys and configs are private).</summary>
    public static InitramfsFile Parse(string text)
    {
        var parts = text.Split(':');
        if (parts.Length is < 2 or > 3 || parts[0].Length == 0 || !parts[1].StartsWith('/'))
            throw new ArgumentException($"--file takes SRC:/DEST[:MODE], not '{text}'");
        int mode = 0x180;
        if (parts.Length == 3)
        {
            try { mode = Convert.ToInt32(parts[2], 8); }
            catch (FormatException) { throw new ArgumentException($"--file mode must be octal (0600), not '{parts[2]}'"); }
            if (mode is < 0 or > 0xfff) throw new ArgumentException($"--file mode must be octal (0600), not '{parts[2]}'");
        }
        return new InitramfsFile(parts[0], parts[1], mode);
    }
}

public sealed record InitramfsReport(long CompressedBytes, long ArchiveBytes, List<ModuleFile> Modules, List<string> Notes);

/// <summary>
/// Builds the capture initramfs in-process: the agent as /init, its config, the modules the dump
/// target needs (kept compressed; the capture kernel decompresses them in finit_module) with a
/// load-order list, the mount points, and /dev/console so PID 1 has a console from the start.
/// </summary>
public static class InitramfsBuilder
{
    public const string ModuleListName = ModuleList.FileName;

    /// <summary>
    /// zstd level 19 with a 1 MiB window. The capture kernel unpacks the image inside the
    /// reservation, and its decompressor (lib/decompress_unzstd.c, streaming mode) allocates a
    /// workspace of the frame's window plus about 400 KiB, next to the compressed image and the
    /// rootfs being filled: that moment is the capture kernel's first memory peak. Measured with the
    /// Debian 6.1 cloud kernel, a 4 GiB guest and the static agent: the same image with an 8 MiB
    /// window (level 19's own) ran out of memory while unpacking at crashkernel=84M; with 1 MiB it
    /// is captured at 80M (1 and 4 GiB guests; 76M fails while unpacking). On the agent alone
    /// (6.9 MB), windows of 8, 2, 1 and 0.25 MiB give 2.728, 2.730, 2.740 and 2.775 MB, so below
    /// 1 MiB the image grows faster than the workspace shrinks. Levels above 19 gain nothing here.
    /// </summary>
    public const int ZstdLevel = 19;
    public const int ZstdWindowLog = 20;

    public static InitramfsReport Build(InitramfsSpec spec, Stream output)
    {
        var notes = new List<string>();
        var modules = new List<ModuleFile>();
        KernelModules? tree = null;
        if (spec.Modules.Count > 0)
        {
            tree = new KernelModules(spec.ModulesRoot, spec.KernelRelease);
            modules = tree.Resolve(spec.Modules, spec.Blacklist, notes);
        }

        var counting = new CountingStream(output);
        Stream compressed = spec.Compression switch
        {
            ImageCompression.Zstd => ZstdImage(counting),
            ImageCompression.Gzip => new GZipStream(counting, CompressionLevel.SmallestSize, leaveOpen: true),
            _ => counting,
        };
        long archiveBytes;
        using (var cpio = new CpioNewcWriter(compressed, leaveOpen: true, spec.Mtime))
        {
            var made = new HashSet<string>(StringComparer.Ordinal);
            var files = new HashSet<string>(StringComparer.Ordinal);
            void Dir(string d)
            {
                if (d.Length == 0 || made.Contains(d)) return;
                Dir(Path.GetDirectoryName(d) ?? "");
                // root's home holds the ssh key: private, as OpenSSH insists.
                cpio.WriteDirectory(d, d == "root" || d.StartsWith("root/", StringComparison.Ordinal) ? 0x1c0u : 0x1edu);
                made.Add(d);
            }
            void Put(string dest, uint mode, string source)
            {
                dest = dest.TrimStart('/');
                if (dest.Length == 0 || dest.Split('/').Any(p => p is "" or "." or ".."))
                    throw new IOException($"'{dest}' is not a usable path in the image");
                if (!files.Add(dest)) throw new IOException($"/{dest} would be written twice into the image");
                Dir(Path.GetDirectoryName(dest) ?? "");
                using var f = File.OpenRead(source);   // follows symlinks: the image holds regular files
                cpio.WriteFile(dest, mode, f);
            }
            foreach (var d in new[] { "dev", "proc", "sys", "mnt", "tmp", "run", "etc", "lib", "lib/modules" }) Dir(d);
            cpio.WriteCharDevice("dev/console", 0x180, 5, 1);
            Put("init", 0x1ed, spec.AgentPath);
            if (spec.ConfigPath is not null) Put("etc/capture-agent.conf", 0x180, spec.ConfigPath);
            if (spec.Executables.Count > 0) WriteExecutables(spec, cpio, Dir, Put, files, notes);
            foreach (var x in spec.ExtraFiles) Put(x.Destination, (uint)x.Mode & 0xfff, x.Source);
            if (tree is not null)
            {
                string modDir = $"lib/modules/{spec.KernelRelease}";
                Dir(modDir);
                foreach (var m in modules)
                {
                    string dest = $"{modDir}/{m.RelativePath}";
                    Dir(Path.GetDirectoryName(dest)!);
                    using var f = File.OpenRead(Path.Combine(tree.Directory, m.RelativePath));
                    cpio.WriteFile(dest, 0x1a4, f);
                }
                var list = new ModuleList(modules.Select(m => m.RelativePath).ToList(), KernelDecompression(spec, tree, modules, notes));
                cpio.WriteFile($"{modDir}/{ModuleListName}", 0x1a4, System.Text.Encoding.ASCII.GetBytes(list.Format()));
            }
            cpio.Finish();
            archiveBytes = cpio.BytesWritten;
        }
        if (!ReferenceEquals(compressed, counting)) compressed.Dispose();
        return new InitramfsReport(counting.Count, archiveBytes, modules, notes);
    }

    /// <summary>
    /// Which of the image's compressed module formats the capture kernel decompresses itself, from
    /// its build config (null when there is none to read: the agent then finds out at run time).
    /// The agent decompresses the others in memory and loads them with init_module, so modules
    /// stay compressed in the image either way (less rootfs memory for the whole capture).
    /// </summary>
    private static IReadOnlySet<ModuleCodec>? KernelDecompression(InitramfsSpec spec, KernelModules tree, List<ModuleFile> modules, List<string> notes)
    {
        var codecs = modules.Select(m => m.Codec).Where(c => c != ModuleCodec.None).ToHashSet();
        KernelConfig? config;
        try { config = KernelConfig.Find(spec.ModulesRoot, spec.KernelRelease, tree.Directory); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            notes.Add($"the kernel config of {spec.KernelRelease} cannot be read ({e.Message})");
            config = null;
        }
        if (config is null)
        {
            if (codecs.Count > 0)
                notes.Add($"no kernel config for {spec.KernelRelease} ({string.Join(", ", KernelConfig.Candidates(spec.ModulesRoot, spec.KernelRelease, tree.Directory))}): " +
                          "the capture kernel is asked to decompress the modules itself when it is 5.17 or later, and the agent decompresses them if it refuses");
            return null;
        }
        var kernel = codecs.Where(config.KernelDecompresses).ToHashSet();
        foreach (var c in codecs.Order())
            notes.Add(kernel.Contains(c)
                ? $"{c.ToString().ToLowerInvariant()} modules: the kernel decompresses them itself ({config.Source}: CONFIG_MODULE_DECOMPRESS, CONFIG_MODULE_COMPRESS_{ModuleCompression.ConfigName(c)})"
                : $"{c.ToString().ToLowerInvariant()} modules: the kernel cannot decompress them ({config.Source}); the agent decompresses them in memory and loads them with init_module");
        return kernel;
    }

    /// <summary>
    /// The executables with their loader and libraries at the host's paths, plus what a program run
    /// as root expects of a system: a passwd/group entry for uid 0 (ssh exits without one), a home
    /// directory, and /dev/null (ssh opens it at start; devtmpfs mounted over /dev at run time
    /// provides it too, the node here covers a failed mount and chroot tests).
    /// </summary>
    private static void WriteExecutables(InitramfsSpec spec, CpioNewcWriter cpio, Action<string> dir, Action<string, uint, string> put,
                                         HashSet<string> files, List<string> notes)
    {
        var written = new HashSet<string>(StringComparer.Ordinal);
        foreach (var exe in spec.Executables)
        {
            if (!exe.StartsWith('/')) throw new IOException($"executable '{exe}' must be an absolute path");
            var resolver = new ElfDependencies();
            var deps = resolver.Resolve(exe);
            notes.AddRange(resolver.Notes);
            long bytes = new FileInfo(exe).Length;
            if (written.Add(exe)) put(exe, 0x1ed, exe);
            foreach (var d in deps)
            {
                if (!written.Add(d.Destination)) continue;
                put(d.Destination, 0x1ed, d.Source);
                bytes += new FileInfo(d.Source).Length;
            }
            notes.Add($"{exe}: with {string.Join(' ', deps.Select(d => d.Destination))} ({bytes} bytes uncompressed)");
        }
        cpio.WriteCharDevice("dev/null", 0x1b6, 1, 3);
        dir("root");
        var extra = spec.ExtraFiles.Select(x => x.Destination.TrimStart('/')).ToHashSet(StringComparer.Ordinal);
        if (!extra.Contains("etc/passwd") && files.Add("etc/passwd"))
            cpio.WriteFile("etc/passwd", 0x1a4, "root:x:0:0:root:/root:/bin/sh\n"u8);
        if (!extra.Contains("etc/group") && files.Add("etc/group"))
            cpio.WriteFile("etc/group", 0x1a4, "root:x:0:\n"u8);
    }

    private static ZstdSharp.CompressionStream ZstdImage(Stream output)
    {
        var z = new ZstdSharp.CompressionStream(output, ZstdLevel, leaveOpen: true);
        z.SetParameter(ZstdSharp.Unsafe.ZSTD_cParameter.ZSTD_c_windowLog, ZstdWindowLog);
        z.SetParameter(ZstdSharp.Unsafe.ZSTD_cParameter.ZSTD_c_checksumFlag, 1);
        return z;
    }

    /// <summary>Counts what reaches the output without owning it.</summary>
    private sealed class CountingStream(Stream inner) : Stream
    {
        public long Count { get; private set; }
        public override void Write(byte[] buffer, int offset, int count) { inner.Write(buffer, offset, count); Count += count; }
        public override void Write(ReadOnlySpan<byte> buffer) { inner.Write(buffer); Count += buffer.Length; }
        public override void Flush() => inner.Flush();
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => Count; set => throw new NotSupportedException(); }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        protected override void Dispose(bool disposing) { }
    }
}

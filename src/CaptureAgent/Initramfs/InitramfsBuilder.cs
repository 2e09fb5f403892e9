using System.IO.Compression;

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
}

public sealed record InitramfsReport(long CompressedBytes, long ArchiveBytes, List<ModuleFile> Modules, List<string> Notes);

/// <summary>
/// Builds the capture initramfs in-process: the agent as /init, its config, the modules the dump
/// target needs (kept compressed; the capture kernel decompresses them in finit_module) with a
/// load-order list, the mount points, and /dev/console so PID 1 has a console from the start.
/// </summary>
public static class InitramfsBuilder
{
    public const string ModuleListName = "capture-agent.modules";

    /// <summary>
    /// zstd level 19 with an 8 MiB window: the kernel's initramfs decompressor (lib/decompress_unzstd.c)
    /// allocates the frame's window, so it is pinned rather than left to the level's defaults.
    /// </summary>
    public const int ZstdLevel = 19;
    public const int ZstdWindowLog = 23;

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
            foreach (var d in new[] { "dev", "proc", "sys", "mnt", "tmp", "run", "etc", "lib", "lib/modules" }) cpio.WriteDirectory(d);
            cpio.WriteCharDevice("dev/console", 0x180, 5, 1);
            using (var agent = File.OpenRead(spec.AgentPath)) cpio.WriteFile("init", 0x1ed, agent);
            if (spec.ConfigPath is not null)
                using (var conf = File.OpenRead(spec.ConfigPath)) cpio.WriteFile("etc/capture-agent.conf", 0x180, conf);
            if (tree is not null)
            {
                string modDir = $"lib/modules/{spec.KernelRelease}";
                var made = new HashSet<string> { "lib", "lib/modules" };
                void Dir(string d)
                {
                    if (d.Length == 0 || made.Contains(d)) return;
                    Dir(Path.GetDirectoryName(d) ?? "");
                    cpio.WriteDirectory(d);
                    made.Add(d);
                }
                Dir(modDir);
                foreach (var m in modules)
                {
                    string dest = $"{modDir}/{m.RelativePath}";
                    Dir(Path.GetDirectoryName(dest)!);
                    using var f = File.OpenRead(Path.Combine(spec.ModulesRoot, "lib", "modules", spec.KernelRelease, m.RelativePath));
                    cpio.WriteFile(dest, 0x1a4, f);
                }
                cpio.WriteFile($"{modDir}/{ModuleListName}", 0x1a4, System.Text.Encoding.ASCII.GetBytes(string.Concat(modules.Select(m => m.RelativePath + "\n"))));
            }
            cpio.Finish();
            archiveBytes = cpio.BytesWritten;
        }
        if (!ReferenceEquals(compressed, counting)) compressed.Dispose();
        return new InitramfsReport(counting.Count, archiveBytes, modules, notes);
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

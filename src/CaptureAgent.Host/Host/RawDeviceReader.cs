using CaptureAgent.Capture;
using CaptureAgent.Compression;
using CaptureAgent.Native;
using CaptureAgent.Output;
using CaptureAgent.Vmcore;
using Microsoft.Win32.SafeHandles;
using CaptureAgent.Common;
using CaptureAgent.Formats;
using CaptureAgent.Targets;
using CaptureAgent.Targets.Raw;

namespace CaptureAgent.Host;

public enum SavecoreStatus
{
    /// <summary>Nothing waiting on the device (never written, or already extracted).</summary>
    NoDump,
    /// <summary>A complete dump was extracted and the device's header cleared (unless kept).</summary>
    Extracted,
    /// <summary>The dump was extracted whole (vmcore), but with problems: no or a partial log, a raised level, pages the capture could not read.</summary>
    Degraded,
    /// <summary>Extracted, but cut short or damaged: vmcore-incomplete (or only the log).</summary>
    Incomplete,
    /// <summary>Nothing extracted: the device is unusable, in use, not ours, or the files could not be written.</summary>
    Failed,
}

/// <summary>What savecore did with one device; <see cref="Summary"/> is the line to print.</summary>
public sealed record SavecoreResult(string Device, SavecoreStatus Status, string Summary)
{
    public string? Directory { get; init; }
    public string? DmesgPath { get; init; }
    public string? VmcorePath { get; init; }
    public long VmcoreBytes { get; init; }
    /// <summary>The device's header now says "extracted" (a second savecore finds nothing).</summary>
    public bool HeaderCleared { get; init; }
    public RawDumpHeader? Header { get; init; }
    public IReadOnlyList<string> Problems { get; init; } = [];
}

/// <summary>
/// `savecore`: turns what a capture left on a raw device into a dump directory (dmesg.txt, vmcore,
/// manifest.json), checking the CRC-64s on the way, and only once those files are fsynced marks the
/// device's header as extracted so the crash is not extracted twice. The flattened stream is
/// rearranged record by record through one 1 MiB buffer; records for an offset already written
/// (the dump header's final rewrite) simply land on top, as `makedumpfile -R` does. A stream cut
/// short keeps every whole record in vmcore-incomplete. A damaged device (CRC-64 mismatch) keeps
/// its header, so nothing is lost to the look.
/// </summary>
public static class RawDeviceReader
{
    private const int Chunk = 1 << 20;

    /// <param name="pathTemplate">Where the dump goes, as the config's <c>path</c> (see <see cref="PathTemplate"/>); the
    /// fixed part before the first placeholder is trusted (and created 0700 if missing), the rest never follows a symlink.</param>
    public static SavecoreResult Extract(string devicePath, string pathTemplate, bool keepHeader = false,
        bool allowRegularFile = false, Action<string>? report = null)
    {
        report ??= _ => { };
        SafeFileHandle device;
        try
        {
            device = RawDevice.Open(devicePath, writable: !keepHeader, allowRegularFile);
        }
        catch (RawDeviceException e)
        {
            return new SavecoreResult(devicePath, SavecoreStatus.Failed, ErrorText.Of(e));
        }
        using (device)
        {
            long size;
            RawInspection found;
            try
            {
                size = RawDevice.Size(device);
                found = RawDevice.Inspect(device, size);
            }
            catch (IOException e)
            {
                return new SavecoreResult(devicePath, SavecoreStatus.Failed, $"{devicePath}: {ErrorText.Of(e)}");
            }
            switch (found.Content)
            {
                case RawContent.Empty:
                    return new SavecoreResult(devicePath, SavecoreStatus.NoDump, $"no dump on {devicePath}");
                case RawContent.Extracted:
                    return new SavecoreResult(devicePath, SavecoreStatus.NoDump, $"no dump on {devicePath} (the last one, {found.Header!.Describe()}, " +
                        $"was already extracted{(found.Header.ExtractedTo is { } to ? " to " + to : "")})") { Header = found.Header };
                case RawContent.DamagedHeader:
                    return new SavecoreResult(devicePath, SavecoreStatus.Failed, $"{devicePath}: {found.Description}: not touched");
                case RawContent.Foreign:
                    return new SavecoreResult(devicePath, SavecoreStatus.Failed,
                        $"{devicePath} holds {found.Description}, not a raw dump area: not touched (a crash would overwrite it: check the raw: target)");
            }
            try
            {
                return ExtractDump(devicePath, device, size, found.Header!, pathTemplate, keepHeader, report);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Files could not be written: the dump stays on the device, its header untouched.
                return new SavecoreResult(devicePath, SavecoreStatus.Failed, $"{devicePath}: extracting failed, the dump stays on the device: {ErrorText.Of(e)}") { Header = found.Header };
            }
        }
    }

    /// <summary>A /dev path as it is; PARTUUID=, PARTLABEL= (and their /dev/disk/by-* links) found through sysfs.</summary>
    public static string? Resolve(string text, out string? problem)
    {
        problem = null;
        if (!TargetSpec.TryParse(text, out var spec, out string? error))
        {
            // Not a device name the capture kernel would understand; still a path we may read (an image).
            if (text.StartsWith('/')) return text;
            problem = error;
            return null;
        }
        if (spec.Kind == TargetKind.Path) return spec.Value;
        var match = new TargetLocator().Find(spec, out var seen);
        if (match is null) problem = $"no block device with {spec}";
        return match?.Node;
    }

    /// <summary>Marks a dump as extracted without extracting it (`savecore --discard`): for a damaged one already looked at.</summary>
    public static SavecoreResult Discard(string devicePath, bool allowRegularFile = false)
    {
        try
        {
            using var device = RawDevice.Open(devicePath, writable: true, allowRegularFile);
            var found = RawDevice.Inspect(device, RawDevice.Size(device));
            if (found.Content is not (RawContent.Dump or RawContent.DamagedHeader))
                return new SavecoreResult(devicePath, SavecoreStatus.NoDump, $"no dump on {devicePath} to discard ({found.Description})");
            var header = found.Header ?? new RawDumpHeader();
            header.State = RawDumpState.Extracted;
            header.ExtractedAt = DateTimeOffset.UtcNow;
            header.ExtractedTo = "(discarded)";
            RandomAccess.Write(device, header.Build(), 0);
            RandomAccess.FlushToDisk(device);
            return new SavecoreResult(devicePath, SavecoreStatus.NoDump, $"{devicePath}: dump discarded") { HeaderCleared = true, Header = header };
        }
        catch (IOException e)
        {
            return new SavecoreResult(devicePath, SavecoreStatus.Failed, ErrorText.Of(e));
        }
    }

    private static SavecoreResult ExtractDump(string devicePath, SafeFileHandle device, long size, RawDumpHeader header,
        string pathTemplate, bool keepHeader, Action<string> report)
    {
        var problems = new List<string>();
        bool damaged = false;   // the device does not hold what the capture recorded: keep its header
        long dmesgLength = header.DmesgLength, streamLength = header.StreamLength;
        if (header.DmesgOffset + dmesgLength > size || header.StreamOffset + streamLength > size)
        {
            problems.Add($"the device is {size} bytes now but was {header.DeviceSize} when the dump was written: what lay past its end is lost");
            dmesgLength = Math.Clamp(size - header.DmesgOffset, 0, dmesgLength);
            streamLength = Math.Clamp(size - header.StreamOffset, 0, streamLength);
            damaged = true;
        }
        if (header.State == RawDumpState.Writing)
            problems.Add($"the capture did not finish writing the device (it stopped after {streamLength} bytes of dump were checkpointed)");
        else if (header.State == RawDumpState.Incomplete && header.Reason is { } why)
            problems.Add($"the capture could not save everything: {why}");
        else if (header.State == RawDumpState.Complete && header.Reason is { } noted)
            problems.Add($"the capture reported: {noted}");

        // Where: the fixed part of the template is the admin's; what comes from the crash is not trusted.
        var facts = header.Facts;
        var (root, parentRel, leaf) = Place(pathTemplate, facts);
        if (!Directory.Exists(root)) Directory.CreateDirectory(root, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        long need = dmesgLength + streamLength + (1L << 20);
        long free = Libc.AvailableBytes(root);
        if (free < need)
            return new SavecoreResult(devicePath, SavecoreStatus.Failed,
                $"{devicePath}: the dump needs about {need >> 20} MiB but {root} has {free >> 20} MiB free: nothing extracted, the dump stays on the device") { Header = header };
        string dir = CaptureJob.CreateDumpDirectory(root, parentRel, leaf);
        report($"capture-agent: {devicePath}: a dump ({header.Describe()}), extracting to {dir}");

        string? dmesgPath = null;
        if (dmesgLength > 0)
        {
            dmesgPath = Path.Combine(dir, "dmesg.txt");
            ulong crc = CopyRegion(device, header.DmesgOffset, dmesgLength, dmesgPath);
            if (dmesgLength == header.DmesgLength && crc != header.DmesgCrc)
            {
                problems.Add("dmesg.txt does not match its CRC-64: the kernel log on the device is damaged");
                damaged = true;
            }
            if (!header.DmesgComplete) problems.Add("the kernel log was only partly saved by the capture");
        }
        else problems.Add("the capture saved no kernel log");

        string? vmcorePath = null;
        long vmcoreBytes = 0;
        bool dumpWhole = false;
        if (streamLength > 0)
        {
            string incomplete = Path.Combine(dir, "vmcore-incomplete");
            var (ended, crc, cut) = Rearrange(device, header.StreamOffset, streamLength, incomplete);
            vmcorePath = incomplete;
            if (cut is not null) problems.Add(cut);
            bool crcOk = streamLength == header.StreamLength && crc == header.StreamCrc;
            if (!crcOk && streamLength == header.StreamLength)
            {
                problems.Add("the dump on the device does not match its CRC-64: it is damaged, kept as vmcore-incomplete");
                damaged = true;
            }
            var (kdumpOk, kdumpIncomplete) = CheckKdump(incomplete, problems);
            dumpWhole = header.State == RawDumpState.Complete && ended && crcOk && kdumpOk && !kdumpIncomplete;
            if (dumpWhole)
            {
                vmcorePath = Path.Combine(dir, "vmcore");
                File.Move(incomplete, vmcorePath);
            }
            vmcoreBytes = new FileInfo(vmcorePath).Length;
        }
        else problems.Add("there is no dump on the device, only what the header says");
        Libc.FsyncDirectory(dir);

        bool complete = dumpWhole && dmesgPath is not null && problems.Count == 0;
        var manifest = new DumpManifest
        {
            Complete = dumpWhole,
            IncompleteReason = dumpWhole ? null : problems.FirstOrDefault() ?? "incomplete",
            Host = facts.Host,
            KernelRelease = facts.KernelRelease,
            CrashTime = facts.CrashTime,
            DumpLevel = header.DumpLevel,
            Format = "kdump-compressed",
            Problems = problems,
        };
        if (vmcorePath is not null) DescribeKdump(vmcorePath, manifest);
        foreach (var f in new[] { dmesgPath, vmcorePath })
            if (f is not null) manifest.Files.Add(DumpManifest.Checksum(f));
        manifest.WriteTo(dir);   // fsyncs the file and the directory

        // Only now, with everything durable, may the device forget the dump.
        bool cleared = false;
        if (!keepHeader && !damaged)
        {
            header.State = RawDumpState.Extracted;
            header.ExtractedAt = DateTimeOffset.UtcNow;
            header.ExtractedTo = dir;
            RandomAccess.Write(device, header.Build(), 0);
            RandomAccess.FlushToDisk(device);
            cleared = true;
        }
        else if (damaged)
            problems.Add($"the dump stays on {devicePath} (header kept); `capture-agent savecore --device {devicePath} --discard` forgets it");

        string what = complete ? "dump saved" : dumpWhole ? "dump saved, with problems" : vmcorePath is null ? "only the kernel log saved" : "INCOMPLETE dump saved";
        return new SavecoreResult(devicePath, complete ? SavecoreStatus.Extracted : dumpWhole ? SavecoreStatus.Degraded : SavecoreStatus.Incomplete,
            $"{devicePath}: {what} in {dir}{(problems.Count > 0 ? ": " + problems[0] : "")}")
        {
            Directory = dir,
            DmesgPath = dmesgPath,
            VmcorePath = vmcorePath,
            VmcoreBytes = vmcoreBytes,
            HeaderCleared = cleared,
            Header = header,
            Problems = problems,
        };
    }

    /// <summary>
    /// Splits a path template at the directory holding its first placeholder: "/var/crash/{host}-{date}"
    /// gives root /var/crash (the admin's, may be a symlink), no parent below it, leaf "web1-2026-...".
    /// </summary>
    internal static (string Root, string ParentRel, string Leaf) Place(string pathTemplate, CrashFacts facts)
    {
        string template = PathTemplate.Normalize(pathTemplate);
        int slash = template.LastIndexOf('/', template.IndexOf('{'));
        var rootParts = template[..Math.Max(slash, 0)].Split('/', StringSplitOptions.RemoveEmptyEntries);
        var parts = PathTemplate.Expand(template, facts).Split('/');
        var below = parts[rootParts.Length..];
        return ("/" + string.Join('/', rootParts), string.Join('/', below[..^1]), below[^1]);
    }

    /// <summary>Creates a new file 0600 (never an existing one, never through a symlink).</summary>
    private static SafeFileHandle CreateNew(string path) =>
        Libc.OpenFile(path, Libc.O_RDWR | Libc.O_CREAT | Libc.O_EXCL | Libc.O_NOFOLLOW, 0x180);

    private static ulong CopyRegion(SafeFileHandle device, long offset, long length, string path)
    {
        using var output = new FileSink(CreateNew(path));
        var reader = new RegionStream(device, offset, length);
        var buf = new byte[Math.Min(Chunk, length)];
        for (long done = 0; done < length;)
        {
            int n = (int)Math.Min(buf.Length, length - done);
            reader.ReadExactly(buf.AsSpan(0, n));
            output.Write(done, buf.AsSpan(0, n));
            done += n;
        }
        output.Complete();
        return reader.Crc;
    }

    /// <summary>
    /// Applies the stream's records into a new file through the one flattened reader (later
    /// records for the same offset win), stopping at the end marker or at the first record that
    /// is not whole or makes no sense. Reads the rest of the region so the CRC-64 covers all of it.
    /// Returns (end marker seen, CRC, why it stopped early).
    /// </summary>
    internal static (bool Ended, ulong Crc, string? Cut) Rearrange(SafeFileHandle device, long offset, long length, string path)
    {
        var region = new RegionStream(device, offset, length);
        string? cut = null;
        bool ended = false;
        using (var output = new FileSink(CreateNew(path)))
        {
            FlattenedReader? reader = null;
            try
            {
                reader = new FlattenedReader(region, length);
            }
            catch (InvalidDataException)
            {
                cut = "the dump on the device does not start with a makedumpfile flattened header";
            }
            if (reader?.CopyTo(output.Write) is { } outcome)
            {
                ended = outcome.Ended;
                if (!ended) cut = $"{outcome.Describe("the dump stream")}; the {outcome.Records} whole records before it are kept";
            }
            output.Complete();
        }
        region.Drain();
        return (ended, region.Crc, cut);
    }

    /// <summary>
    /// Opens the result with our reader. A cut dump's descriptor table may end before the file
    /// says it does; it is extended with zeros (= "page not saved") so readers see missing pages,
    /// not read errors, exactly as a cut dump on a filesystem looks. Returns (readable, header says incomplete).
    /// </summary>
    private static (bool Ok, bool Incomplete) CheckKdump(string path, List<string> problems)
    {
        try
        {
            long descriptorsEnd;
            bool incomplete;
            using (var kd = new KdumpFile(path))
            {
                incomplete = kd.Incomplete;
                var main = new byte[KdumpHeader.HeaderSize];
                var sub = new byte[KdumpHeader.SubHeaderSize];
                using (var f = File.OpenHandle(path))
                {
                    RandomAccess.Read(f, main, 0);
                    RandomAccess.Read(f, sub, kd.PageSize);
                }
                KdumpHeader.Parse(main, sub, out int subBlocks, out uint bitmapBlocks, out _, out _);
                descriptorsEnd = (1L + subBlocks + bitmapBlocks) * kd.PageSize + (long)kd.DumpablePages * 24;
            }
            if (new FileInfo(path).Length < descriptorsEnd)
            {
                using var f = File.OpenHandle(path, FileMode.Open, FileAccess.ReadWrite);
                RandomAccess.SetLength(f, descriptorsEnd);
                RandomAccess.FlushToDisk(f);
            }
            if (incomplete) problems.Add("the dump's own header says it is incomplete (the capture stopped before its end)");
            using (var kd = new KdumpFile(path))
            {
                var structure = kd.CheckStructure();
                if (structure.Count > 0)
                {
                    problems.Add($"the extracted dump is damaged: {structure[0]}");
                    return (false, true);
                }
            }
            return (true, incomplete);
        }
        catch (Exception e) when (e is VmcoreException or InvalidDataException or IOException)
        {
            problems.Add($"the extracted dump is not readable: {ErrorText.Of(e)}");
            return (false, true);
        }
    }

    private static void DescribeKdump(string path, DumpManifest manifest)
    {
        try
        {
            using var kd = new KdumpFile(path);
            manifest.DumpLevel = kd.Header.DumpLevel;
            manifest.DumpablePages = kd.DumpablePages;
            manifest.Compression = ((PageCodec)(kd.Header.Status & ~KdumpHeader.StatusIncomplete)).ToString().ToLowerInvariant();
        }
        catch (Exception e) when (e is VmcoreException or IOException) { }
    }

    /// <summary>
    /// [start, start+length) of a device as a stream read front to back through a 1 MiB buffer,
    /// with the CRC-64 of what was consumed; it ends where the region does.
    /// </summary>
    private sealed class RegionStream(SafeFileHandle device, long start, long length) : Stream
    {
        private readonly byte[] _buf = new byte[(int)Math.Clamp(length, 1, Chunk)];
        private int _at, _end;
        private long _filled, _position;

        public ulong Crc { get; private set; }
        private long Remaining => length - _position;

        public override int Read(Span<byte> dst)
        {
            if (Remaining == 0 || dst.IsEmpty) return 0;
            if (_at == _end) Fill();
            int n = (int)Math.Min(Math.Min(dst.Length, _end - _at), Remaining);
            var piece = _buf.AsSpan(_at, n);
            piece.CopyTo(dst);
            Consume(piece);
            return n;
        }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        /// <summary>Consumes the rest of the region, for its CRC-64.</summary>
        public void Drain()
        {
            while (Remaining > 0)
            {
                if (_at == _end) Fill();
                Consume(_buf.AsSpan(_at, (int)Math.Min(Remaining, _end - _at)));
            }
        }

        private void Consume(ReadOnlySpan<byte> piece)
        {
            Crc = Crc64.Update(Crc, piece);
            _at += piece.Length;
            _position += piece.Length;
        }

        private void Fill()
        {
            int want = (int)Math.Min(_buf.Length, length - _filled);
            int n = RandomAccess.Read(device, _buf.AsSpan(0, want), start + _filled);
            if (n <= 0) throw new IOException($"the device ended at byte {start + _filled} while reading the dump");
            _filled += n;
            _at = 0;
            _end = n;
        }

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => length;
        public override long Position { get => _position; set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}

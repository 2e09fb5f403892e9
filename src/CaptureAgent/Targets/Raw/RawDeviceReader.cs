using CaptureAgent.Capture;
using CaptureAgent.Native;
using CaptureAgent.Output;
using Microsoft.Win32.SafeHandles;

namespace CaptureAgent.Targets.Raw;

public enum SavecoreOutcome { NoDump, Complete, Incomplete, Refused }

public sealed record SavecoreResult(SavecoreOutcome Outcome, string Message, string? Directory);

/// <summary>
/// `savecore`: turns what the capture kernel left on a raw device into a dump directory (dmesg.txt,
/// vmcore, manifest.json), checking the CRC-64s, and only then clears the device's header so the
/// same crash is not extracted twice. A cut or damaged stream becomes a vmcore-incomplete holding
/// every whole record, and the header stays, so nothing is lost to a second look.
/// </summary>
public static class RawDeviceReader
{
    public static SavecoreResult Extract(string device, string parentDirectory, bool keepHeader, Action<string>? report = null)
    {
        using var handle = File.OpenHandle(device, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite);
        var block = new byte[RawDumpHeader.Size];
        int n = RandomAccess.Read(handle, block, 0);
        RawDumpHeader? header = n == block.Length ? RawDumpHeader.TryParse(block) : null;
        if (header is null)
        {
            var found = SuperblockProbe.ProbePath(device);
            return found.IsKnown
                ? new SavecoreResult(SavecoreOutcome.Refused, $"{device} holds {found.Describe()}, not a raw dump: left alone", null)
                : new SavecoreResult(SavecoreOutcome.NoDump, $"no dump on {device}", null);
        }
        long size = Libc.DeviceSize(handle);
        if (header.DumpOffset + header.DumpLength > size || RawDumpHeader.DmesgOffset + header.DmesgLength > size)
            return new SavecoreResult(SavecoreOutcome.Refused, $"{device}: the header describes {header.DumpOffset + header.DumpLength} bytes but the device has {size}: left alone", null);

        var facts = header.Facts;
        string leaf = PathTemplate.Expand("/" + PathTemplate.DefaultLeaf, facts);
        string dir = CaptureJob.CreateDumpDirectory(parentDirectory, "", leaf);
        report?.Invoke($"capture-agent: {device}: a dump of {facts.KernelRelease} from {facts.CrashTime.UtcDateTime:u}, extracting to {dir}");
        var problems = new List<string>();

        string dmesgPath = Path.Combine(dir, "dmesg.txt");
        ulong dmesgCrc = Copy(handle, RawDumpHeader.DmesgOffset, header.DmesgLength, dmesgPath);
        if (header.DmesgLength == 0) { File.Delete(dmesgPath); problems.Add("the capture saved no kernel log"); }
        else if (header.State == RawDumpState.Complete && dmesgCrc != header.DmesgCrc64) problems.Add("dmesg.txt does not match its CRC-64: it is damaged");

        // Rearranging reads the stream once; its CRC-64 is taken on the way.
        string incomplete = Path.Combine(dir, "vmcore-incomplete");
        var stream = new DeviceReadStream(handle, header.DumpOffset, header.DumpLength);
        string? cut = null;
        using (var sink = FileSink.Create(incomplete))
        {
            try
            {
                FlattenedSink.Rearrange(stream, sink);
            }
            catch (Exception e) when (e is EndOfStreamException or InvalidDataException or IOException)
            {
                cut = e is EndOfStreamException ? "the flattened stream ends before its end marker" : e.Message;
                sink.Complete();
            }
        }
        stream.Drain();
        bool crcOk = stream.Crc64 == header.DumpCrc64;
        bool complete = header.State == RawDumpState.Complete && cut is null && crcOk
                        && !problems.Any(p => p.Contains("damaged"));
        if (header.State != RawDumpState.Complete) problems.Add("the capture did not finish writing the device (cut short or out of room)");
        else if (!crcOk) problems.Add("the dump on the device does not match its CRC-64: it is damaged");
        if (cut is not null) problems.Add(cut);
        string saved = incomplete;
        if (complete)
        {
            saved = Path.Combine(dir, "vmcore");
            File.Move(incomplete, saved);
        }
        Libc.FsyncDirectory(dir);

        var manifest = new DumpManifest
        {
            Complete = complete,
            IncompleteReason = complete ? null : problems.FirstOrDefault(),
            Host = facts.Host,
            KernelRelease = facts.KernelRelease,
            CrashTime = facts.CrashTime,
            Format = "kdump-compressed",
            Problems = problems,
        };
        using (var kd = new Vmcore.KdumpFile(saved))
        {
            manifest.DumpLevel = kd.Header.DumpLevel;
            manifest.DumpablePages = kd.DumpablePages;
            manifest.Compression = ((Compression.PageCodec)(kd.Header.Status & ~Output.KdumpHeader.StatusIncomplete)).ToString().ToLowerInvariant();
        }
        foreach (var f in new[] { dmesgPath, saved })
            if (File.Exists(f)) manifest.Files.Add(DumpManifest.Checksum(f));
        manifest.WriteTo(dir);
        foreach (var p in problems) report?.Invoke("capture-agent: " + p);

        // Cleared only when everything is safely out; a damaged or cut dump keeps its header for another try.
        if (complete && !keepHeader)
        {
            RandomAccess.Write(handle, new byte[RawDumpHeader.Size], 0);
            RandomAccess.FlushToDisk(handle);
            report?.Invoke($"capture-agent: {device}: header cleared");
        }
        return new SavecoreResult(complete ? SavecoreOutcome.Complete : SavecoreOutcome.Incomplete,
            complete ? $"{device}: dump saved in {dir}" : $"{device}: incomplete dump saved in {dir}: {problems.FirstOrDefault()}", dir);
    }

    private static ulong Copy(SafeFileHandle h, long offset, long length, string path)
    {
        using var f = FileSink.OpenStream(path);
        var buf = new byte[1 << 20];
        ulong crc = 0;
        for (long done = 0; done < length;)
        {
            int n = RandomAccess.Read(h, buf.AsSpan(0, (int)Math.Min(buf.Length, length - done)), offset + done);
            if (n <= 0) break;
            f.Write(buf, 0, n);
            crc = Compression.Xz.Crc64.Update(crc, buf.AsSpan(0, n));
            done += n;
        }
        f.Flush(flushToDisk: true);
        return crc;
    }

    /// <summary>A window of the device read front to back, with the CRC-64 of what was read.</summary>
    private sealed class DeviceReadStream(SafeFileHandle handle, long start, long length) : Stream
    {
        private long _pos;
        public ulong Crc64 { get; private set; }

        public override int Read(Span<byte> buffer)
        {
            int n = (int)Math.Min(buffer.Length, length - _pos);
            if (n <= 0) return 0;
            n = RandomAccess.Read(handle, buffer[..n], start + _pos);
            Crc64 = Compression.Xz.Crc64.Update(Crc64, buffer[..n]);
            _pos += n;
            return n;
        }

        /// <summary>Reads what the rearranging left unread, so the CRC covers the whole recorded stream.</summary>
        public void Drain()
        {
            var buf = new byte[1 << 20];
            while (Read(buf) > 0) { }
        }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => length;
        public override long Position { get => _pos; set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}

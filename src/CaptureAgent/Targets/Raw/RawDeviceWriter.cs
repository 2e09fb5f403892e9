using CaptureAgent.Capture;
using CaptureAgent.Compression.Xz;
using CaptureAgent.Dmesg;
using CaptureAgent.Dump;
using CaptureAgent.Native;
using CaptureAgent.Output;
using Microsoft.Win32.SafeHandles;

namespace CaptureAgent.Targets.Raw;

public sealed record RawWriteResult(bool Complete, long BytesWritten, string Message, List<string> Problems);

/// <summary>
/// Saves a crash onto a raw block device (no filesystem): header, kernel log, then the dump as a
/// flattened stream, written front to back and never past the device's end. `capture-agent
/// savecore` turns it into a dump directory on the next boot.
/// </summary>
public static class RawDeviceWriter
{
    private const long DumpAlignment = 1 << 20;

    public static RawWriteResult Save(string device, DumpSource source, DumpOptions options, CrashFacts facts,
        Action<string>? report = null, bool allowRegularFile = false)
    {
        if (!allowRegularFile && !Libc.IsBlockDevice(device)) throw new IOException($"{device} is not a block device");
        // Overwriting a filesystem by mistake would destroy it: a raw target must be blank or ours.
        var found = SuperblockProbe.ProbePath(device);
        if (found.IsKnown)
            throw new IOException($"{device} holds {found.Describe()}, not a raw dump area: refusing to overwrite it (wipefs -a {device} makes it one)");

        using var handle = File.OpenHandle(device, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite);
        long size = Libc.DeviceSize(handle);
        var header = new RawDumpHeader { Facts = facts, DeviceSize = size };
        if (size < RawDumpHeader.Size + DumpAlignment * 2)
            throw new IOException($"{device} is only {size >> 10} KiB: too small for a raw dump");
        Write(handle, 0, header.ToBytes());
        RandomAccess.FlushToDisk(handle);

        var problems = new List<string>();
        long dmesgLimit = Math.Min(64L << 20, size / 4);
        using (var log = new BoundedStream(handle, RawDumpHeader.DmesgOffset, dmesgLimit))
        {
            try
            {
                if (source.Kernel is null || source.Info is null) throw new Vmcore.VmcoreException("no usable VMCOREINFO or page tables");
                using (var b = new BufferedStream(log, 64 * 1024)) new PrintkLog(source.Kernel, source.Info).WriteTo(b);
                report?.Invoke($"capture-agent: kernel log written to {device}");
            }
            catch (Exception e) when (e is Vmcore.VmcoreException or IOException)
            {
                problems.Add($"kernel log not saved: {e.Message}");
            }
            header.DmesgLength = log.Written;
            header.DmesgCrc64 = log.Crc64;
        }
        header.DumpOffset = (RawDumpHeader.DmesgOffset + header.DmesgLength + DumpAlignment - 1) / DumpAlignment * DumpAlignment;
        Write(handle, 0, header.ToBytes());

        DumpResult? result = null;
        string? failure = null;
        using (var dump = new BoundedStream(handle, header.DumpOffset, size - header.DumpOffset))
        {
            try
            {
                using var buffered = new BufferedStream(dump, 1 << 20);
                using (var sink = new FlattenedSink(buffered, leaveOpen: true))
                    result = new KdumpCompressedWriter(source, sink, options).Write();
                buffered.Flush();
            }
            catch (IOException e)
            {
                // The end of the device in the middle of headers or the end marker: what is there stays.
                failure = e.Message;
            }
            header.DumpLength = dump.Written;
            header.DumpCrc64 = dump.Crc64;
        }
        if (result is not null) problems.AddRange(result.Problems);
        bool complete = failure is null && result is { Incomplete: false };
        string message = complete ? "saved" : failure ?? result?.IncompleteReason ?? "incomplete";
        RandomAccess.FlushToDisk(handle);
        header.State = complete ? RawDumpState.Complete : RawDumpState.Writing;
        Write(handle, 0, header.ToBytes());
        RandomAccess.FlushToDisk(handle);
        report?.Invoke($"capture-agent: {device}: {(complete ? "dump written" : "dump cut short")}: {header.DumpLength} bytes of flattened stream, " +
                       $"{header.DmesgLength} bytes of kernel log; `capture-agent savecore` extracts it on the next boot");
        return new RawWriteResult(complete, header.DumpLength, message, problems);
    }

    private static void Write(SafeFileHandle h, long offset, byte[] data) => RandomAccess.Write(h, data, offset);

    /// <summary>
    /// Sequential writes from an offset of the device, never past a limit (ENOSPC there, as a full
    /// filesystem would say), with the CRC-64 of what went through.
    /// </summary>
    private sealed class BoundedStream(SafeFileHandle handle, long start, long limit) : Stream
    {
        public long Written { get; private set; }
        public ulong Crc64 { get; private set; }

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            int fits = (int)Math.Min(buffer.Length, limit - Written);
            if (fits > 0)
            {
                RandomAccess.Write(handle, buffer[..fits], start + Written);
                Crc64 = Compression.Xz.Crc64.Update(Crc64, buffer[..fits]);
                Written += fits;
            }
            if (fits < buffer.Length) throw new IOException("the raw device is full (No space left on device)", Libc.ENOSPC);
        }

        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));
        public override void Flush() { }
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => Written;
        public override long Position { get => Written; set => throw new NotSupportedException(); }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
    }
}

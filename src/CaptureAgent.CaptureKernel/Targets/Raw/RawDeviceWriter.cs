using CaptureAgent.Dmesg;
using CaptureAgent.Dump;
using CaptureAgent.Output;
using CaptureAgent.Vmcore;
using Microsoft.Win32.SafeHandles;
using CaptureAgent.Common;
using CaptureAgent.Formats;

namespace CaptureAgent.Targets.Raw;

public enum RawWriteStatus
{
    /// <summary>The whole dump is on the device.</summary>
    Complete,
    /// <summary>A dump is on the device but cut short (device full, write error); savecore extracts what is there.</summary>
    Incomplete,
    /// <summary>No dump was written (device missing, in use, foreign, too small); <see cref="RawWriteResult.Error"/> says why.</summary>
    Failed,
}

/// <summary>What a capture onto a raw device left.</summary>
/// <param name="DmesgBytes">Bytes of kernel log on the device.</param>
/// <param name="DumpBytes">Bytes of flattened stream on the device.</param>
public sealed record RawWriteResult(string Device, RawWriteStatus Status, long DeviceBytes, long DmesgBytes, long DumpBytes, IReadOnlyList<string> Problems)
{
    public bool Complete => Status == RawWriteStatus.Complete;
    /// <summary>One line: why nothing (Failed) or not everything (Incomplete) was written.</summary>
    public string? Error { get; init; }
    /// <summary>The dump writer's own result, when it ran.</summary>
    public DumpResult? Dump { get; init; }
    /// <summary>Bytes of log and dump on the device: more than 0 means savecore has something to extract.</summary>
    public long BytesWritten => DmesgBytes + DumpBytes;
    /// <summary>One line for the capture's summary.</summary>
    public string Message => Error ?? "saved";
}

/// <summary>
/// Saves a crash onto a dedicated partition or disk without a filesystem, for `capture-agent
/// savecore` to extract on the next boot. Order: the header saying "writing" (fsync), the kernel
/// log at 4096 (fsync), the dump as a flattened stream from the next 1 MiB boundary, checkpointed
/// in the header every 32 MiB, then the header with the final state and CRC-64s (fsync). The
/// device is never written past its end: a dump that does not fit ends where the device does,
/// with whole records and an end marker. A device that holds a filesystem, swap, a RAID/LVM/LUKS
/// member or a partition table, or that is in use, is refused untouched: a device name that moved
/// to another disk in the capture kernel must not cost a filesystem.
/// </summary>
public static class RawDeviceWriter
{
    /// <summary>Header, a little log, the stream's own header: anything smaller holds no dump.</summary>
    public const long MinDeviceBytes = 2L << 20;
    private const long StreamAlignment = 1L << 20;

    public static RawWriteResult Save(string devicePath, DumpSource source, DumpOptions options, CrashFacts facts,
        Action<string>? report = null, bool allowRegularFile = false) =>
        Save(devicePath, source, options, facts, report, allowRegularFile, RawStreamSink.CheckpointBytes);

    /// <param name="checkpointBytes">Stream bytes between header checkpoints (tests make it small).</param>
    internal static RawWriteResult Save(string devicePath, DumpSource source, DumpOptions options, CrashFacts facts,
        Action<string>? report, bool allowRegularFile, long checkpointBytes)
    {
        report ??= Log.Info;
        var problems = new List<string>();
        RawWriteResult Failed(string why, long size = 0, long dmesg = 0)
        {
            report($"capture-agent: {why}");
            return new RawWriteResult(devicePath, RawWriteStatus.Failed, size, dmesg, 0, problems) { Error = why };
        }

        SafeFileHandle device;
        long size;
        RawInspection before;
        try
        {
            device = RawDevice.Open(devicePath, writable: true, allowRegularFile);
        }
        catch (RawDeviceException e)
        {
            return Failed(e.Message);
        }
        using (device)
        {
            try
            {
                size = RawDevice.Size(device);
                if (size < MinDeviceBytes)
                    return Failed($"{devicePath} is {size >> 10} KiB: a raw dump device needs at least {MinDeviceBytes >> 20} MiB", size);
                before = RawDevice.Inspect(device, size);
            }
            catch (IOException e)
            {
                return Failed($"{devicePath}: {e.Message}");
            }
            if (before.Content == RawContent.Foreign)
                return Failed($"{devicePath} holds {before.Description}, not a raw dump area: refusing to overwrite it " +
                              $"(if it really is the dump partition, `wipefs -a {devicePath}` makes it one)", size);
            if (before.Content == RawContent.Dump)
                report($"capture-agent: {devicePath} still holds a dump savecore has not extracted ({before.Header!.Describe()}); the new crash replaces it");

            var header = new RawDumpHeader
            {
                State = RawDumpState.Writing,
                DeviceSize = size,
                CrashTime = facts.CrashTime,
                WrittenAt = DateTimeOffset.UtcNow,
                Host = facts.Host,
                KernelRelease = facts.KernelRelease,
                BootId = facts.BootId,
                DumpLevel = (int)options.Level,
            };
            void WriteHeader()
            {
                RandomAccess.Write(device, header.Build(), 0);
                RandomAccess.FlushToDisk(device);
            }
            try
            {
                WriteHeader();
            }
            catch (IOException e)
            {
                return Failed($"writing the header to {devicePath} failed: {e.Message}", size);
            }

            // The kernel log first: small, and often all that is needed.
            var log = new RawRegionWriter(device, header.DmesgOffset, size, 64 << 10);
            bool logFull = false;
            try
            {
                if (source.Kernel is null || source.Info is null) throw new VmcoreException("no usable VMCOREINFO or page tables");
                var printk = new PrintkLog(source.Kernel, source.Info);
                printk.WriteTo(log);
                log.Sync();
                if (printk.Problem is not null) problems.Add($"kernel log damaged: {printk.Problem}");
                else header.Flags |= RawDumpHeader.FlagDmesgComplete;
            }
            catch (Exception e) when (e is VmcoreException or IOException)
            {
                logFull = e is IOException io && Native.Libc.IsOutOfSpace(io);
                problems.Add($"kernel log {(log.Written > 0 ? "only partly " : "not ")}saved: {e.Message}");
                try { log.Sync(); } catch (IOException) { }
            }
            header.DmesgLength = log.Written;
            header.DmesgCrc = log.Crc;
            header.StreamOffset = (header.DmesgOffset + header.DmesgLength + StreamAlignment - 1) / StreamAlignment * StreamAlignment;
            if (logFull || header.StreamOffset + FlattenedSink.HeaderSize + 32 > size)
            {
                header.State = RawDumpState.Incomplete;
                header.Reason = $"the device ({size >> 10} KiB) has no room for a dump after the kernel log ({header.DmesgLength} bytes)";
                try { WriteHeader(); } catch (IOException) { }
                return Failed($"{devicePath}: {header.Reason}", size, header.DmesgLength);
            }
            try
            {
                WriteHeader();
            }
            catch (IOException e)
            {
                return Failed($"writing the header to {devicePath} failed: {e.Message}", size, header.DmesgLength);
            }

            var stream = new RawRegionWriter(device, header.StreamOffset, size);
            void Checkpoint()
            {
                stream.Sync();
                header.StreamLength = stream.Written;
                header.StreamCrc = stream.Crc;
                WriteHeader();
            }
            DumpResult? result = null;
            string? failure = null;
            RawStreamSink? sink = null;
            try
            {
                sink = new RawStreamSink(stream, Checkpoint, checkpointBytes);
                var own = sink;
                var withSpace = new DumpOptions
                {
                    Level = options.Level,
                    Codec = options.Codec,
                    AutoCodec = options.AutoCodec,
                    Format = DumpFormat.KdumpCompressed,
                    WindowPfns = options.WindowPfns,
                    ZstdLevel = options.ZstdLevel,
                    Threads = options.Threads,
                    Progress = options.Progress,
                    Heartbeat = options.Heartbeat,
                    FallbackLevel = options.FallbackLevel,
                    FreeSpace = () => own.FreeSpace,   // the device's room decides a raised dump level, as a filesystem's would
                };
                report($"capture-agent: writing the dump to {devicePath} ({size >> 20} MiB, from offset {header.StreamOffset >> 20} MiB)");
                result = DumpWriters.Create(source, sink, withSpace).Write();
                problems.AddRange(result.Problems);
            }
            catch (Exception e) when (e is IOException or VmcoreException)
            {
                // Full before the first page (bitmaps too big for the device) or a write error: what is there stays.
                failure = e.Message;
                problems.Add($"the dump stopped: {e.Message}");
            }
            try
            {
                sink?.Complete();
                if (sink is { Ended: true }) header.Flags |= RawDumpHeader.FlagStreamEnded;
                stream.Sync();
            }
            catch (IOException e)
            {
                failure ??= e.Message;
                problems.Add($"ending the dump stream failed: {e.Message}");
            }

            bool complete = failure is null && result is { Incomplete: false } && header.StreamEnded;
            header.StreamLength = stream.Written;
            header.StreamCrc = stream.Crc;
            header.State = complete ? RawDumpState.Complete : RawDumpState.Incomplete;
            // A whole dump may still be degraded (unreadable pages, a raised level): savecore reports what the capture saw.
            header.Reason = complete ? (problems.Count > 0 ? string.Join("; ", problems) : null) : failure ?? result?.IncompleteReason ?? "the dump stream did not end";
            if (result?.LevelRaisedTo is { } raised) header.DumpLevel = (int)raised;
            try
            {
                WriteHeader();
            }
            catch (IOException e)
            {
                // The last checkpoint stays: savecore trusts the stream up to it.
                problems.Add($"the final header could not be written ({e.Message}); savecore will extract up to the last checkpoint");
                complete = false;
            }
            report(complete
                ? $"capture-agent: dump written to {devicePath}: {header.StreamLength} bytes, and {header.DmesgLength} bytes of kernel log; `capture-agent savecore` extracts it on the next boot"
                : $"capture-agent: dump on {devicePath} is INCOMPLETE ({header.Reason}): {header.StreamLength} bytes kept, and {header.DmesgLength} bytes of kernel log");
            return new RawWriteResult(devicePath, complete ? RawWriteStatus.Complete : RawWriteStatus.Incomplete, size, header.DmesgLength, header.StreamLength, problems)
            {
                Error = complete ? null : header.Reason,
                Dump = result,
            };
        }
    }
}

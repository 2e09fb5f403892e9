using Microsoft.Win32.SafeHandles;

namespace CaptureAgent.Targets.Lvm;

/// <summary>
/// Reads an LV without activating it: each read goes through the LV's segment map to the stripe
/// and sector of the PV device that holds it. Lets the superblock probe say which LV carries a
/// UUID= or LABEL= before anything is created in device-mapper.
/// </summary>
internal sealed class LogicalVolumeSource(LogicalVolumeLayout layout, Func<SysfsBlockDevice, BlockSource> open) : BlockSource
{
    private const int Sector = 512;

    public override long Length => layout.Sectors * Sector;

    protected override int ReadAt(long offset, Span<byte> destination)
    {
        if (offset < 0 || offset >= Length) return 0;
        long sector = offset / Sector;
        int within = (int)(offset % Sector);
        var segment = layout.SegmentAt(sector);
        if (segment is null) return 0;
        var (stripe, pvSector, run) = segment.Locate(sector);
        // One read stays on one stripe chunk: the next chunk is on another device.
        int count = (int)Math.Min(destination.Length, run * Sector - within);
        return open(stripe.Pv.Device).ReadExact(pvSector * Sector + within, destination[..count]) ? count : 0;
    }
}

/// <summary>Block devices opened read-only for one scan, each once, closed together.</summary>
internal sealed class DeviceReaders : IDisposable
{
    private readonly Dictionary<string, (SafeFileHandle Handle, BlockSource Source)> _open = new(StringComparer.Ordinal);

    public BlockSource Open(SysfsBlockDevice device)
    {
        if (_open.TryGetValue(device.Node, out var known)) return known.Source;
        var handle = File.OpenHandle(device.Node, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        var source = BlockSource.FromHandle(handle, device.SizeBytes > 0 ? device.SizeBytes : -1);
        _open[device.Node] = (handle, source);
        return source;
    }

    public void Dispose()
    {
        foreach (var (handle, _) in _open.Values) handle.Dispose();
        _open.Clear();
    }
}

using System.Globalization;

namespace CaptureAgent.Targets.Lvm;

/// <summary>A block device carrying a PV: what a dm table names and what reads go to.</summary>
public sealed record PvDevice(string PvId, SysfsBlockDevice Device);

/// <summary>Where one stripe of a segment starts on its device, in sectors.</summary>
public sealed record StripePlace(PvDevice Pv, long StartSector);

/// <summary>A stretch of the LV ([Start, Start + Length) sectors) on one or more stripes; ChunkSectors 0 for one stripe.</summary>
public sealed record MappedSegment(long Start, long Length, long ChunkSectors, IReadOnlyList<StripePlace> Stripes)
{
    /// <summary>The dm target: "linear" or "striped".</summary>
    public string TargetType => Stripes.Count == 1 ? "linear" : "striped";

    /// <summary>The target's parameters as dm-linear and dm-stripe take (and print) them.</summary>
    public string Parameters => Stripes.Count == 1
        ? Place(Stripes[0])
        : string.Join(' ', new[] { Stripes.Count.ToString(CultureInfo.InvariantCulture), ChunkSectors.ToString(CultureInfo.InvariantCulture) }
            .Concat(Stripes.Select(Place)));

    private static string Place(StripePlace s) => $"{s.Pv.Device.DeviceNumber} {s.StartSector.ToString(CultureInfo.InvariantCulture)}";

    /// <summary>Where LV sector <paramref name="sector"/> (inside this segment) lies, and how many sectors follow it on that stripe.</summary>
    public (StripePlace Stripe, long Sector, long Run) Locate(long sector)
    {
        long offset = sector - Start;
        if (Stripes.Count == 1) return (Stripes[0], Stripes[0].StartSector + offset, Length - offset);
        long chunk = offset / ChunkSectors, within = offset % ChunkSectors;
        var stripe = Stripes[(int)(chunk % Stripes.Count)];
        return (stripe, stripe.StartSector + chunk / Stripes.Count * ChunkSectors + within, ChunkSectors - within);
    }
}

/// <summary>
/// An LV mapped onto the devices that carry its PVs: for each segment the stripes' devices and
/// first sectors (pe_start + first extent × extent size). This is the dm table LVM would load
/// for a linear or striped LV, and the map reads through when probing the LV unactivated.
/// </summary>
public sealed class LogicalVolumeLayout
{
    public required string VgName { get; init; }
    public required LvRecord Lv { get; init; }
    public required IReadOnlyList<MappedSegment> Segments { get; init; }
    public long Sectors => Segments.Count == 0 ? 0 : Segments[^1].Start + Segments[^1].Length;
    public string DisplayName => $"{VgName}/{Lv.Name}";

    /// <summary>
    /// Maps <paramref name="lv"/>; throws <see cref="InvalidDataException"/> when a segment is not
    /// striped, the segments leave gaps, or a PV is not here (<paramref name="devices"/> by PV key).
    /// </summary>
    public static LogicalVolumeLayout Map(VolumeGroupMetadata vg, LvRecord lv, IReadOnlyDictionary<string, PvDevice> devices)
    {
        string name = $"{vg.Name}/{lv.Name}";
        if (lv.Segments.Count == 0) throw new InvalidDataException($"{name} has no segments");
        var mapped = new List<MappedSegment>(lv.Segments.Count);
        long nextExtent = 0;
        foreach (var seg in lv.Segments)
        {
            if (!LvmLimits.IsStriped(seg.Type)) throw new InvalidDataException($"{name} has a {seg.Type} segment");
            if (seg.StartExtent != nextExtent) throw new InvalidDataException($"{name}: segment at extent {seg.StartExtent} where {nextExtent} was expected");
            nextExtent = checked(seg.StartExtent + seg.ExtentCount);
            if (nextExtent > LvmLimits.MaxSectors / vg.ExtentSize) throw new InvalidDataException($"{name} claims {nextExtent} extents, more than any device holds");
            var stripes = new List<StripePlace>(seg.Areas.Count);
            long perStripe = seg.ExtentCount / seg.Areas.Count * vg.ExtentSize;
            foreach (var area in seg.Areas)
            {
                var pv = vg.Pvs[area.Pv];
                if (!devices.TryGetValue(area.Pv, out var device))
                    throw new InvalidDataException($"{name} needs PV {PhysicalVolumeLabel.FormatId(pv.Id)}{(pv.DeviceHint is null ? "" : $" (was {pv.DeviceHint})")}, which is not here");
                long start = pv.PeStart + area.FirstExtent * vg.ExtentSize;
                if (device.Device.Sectors >= 0 && start + perStripe > device.Device.Sectors)
                    throw new InvalidDataException($"{name} reaches sector {start + perStripe} of {device.Device.Name}, which has {device.Device.Sectors}");
                stripes.Add(new StripePlace(device, start));
            }
            long length = seg.ExtentCount * vg.ExtentSize;
            // dm-stripe wants each stripe's length a whole number of chunks.
            if (stripes.Count > 1 && (seg.StripeSize <= 0 || perStripe % seg.StripeSize != 0))
                throw new InvalidDataException($"{name}: stripe size {seg.StripeSize} sectors does not divide its {perStripe} sectors per stripe");
            mapped.Add(new MappedSegment(seg.StartExtent * vg.ExtentSize, length, stripes.Count > 1 ? seg.StripeSize : 0, stripes));
        }
        return new LogicalVolumeLayout { VgName = vg.Name, Lv = lv, Segments = mapped };
    }

    /// <summary>The segment holding LV sector <paramref name="sector"/>, or null past the end.</summary>
    public MappedSegment? SegmentAt(long sector)
    {
        int lo = 0, hi = Segments.Count - 1;
        while (lo <= hi)
        {
            int mid = (lo + hi) / 2;
            var s = Segments[mid];
            if (sector < s.Start) hi = mid - 1;
            else if (sector >= s.Start + s.Length) lo = mid + 1;
            else return s;
        }
        return null;
    }
}

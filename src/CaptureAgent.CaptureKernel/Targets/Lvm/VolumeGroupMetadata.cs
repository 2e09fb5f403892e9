namespace CaptureAgent.Targets.Lvm;

/// <summary>A physical volume as the VG metadata lists it ("pv0" { id, dev_size, pe_start, pe_count }).</summary>
/// <param name="Key">The section name segments refer to it by ("pv0").</param>
/// <param name="Id">The PV uuid, 32 characters without dashes (what the PV label carries).</param>
/// <param name="DevSize">Sectors; PeStart in sectors; PeCount in extents.</param>
public sealed record PvRecord(string Key, string Id, long DevSize, long PeStart, long PeCount, bool Missing, string? DeviceHint);

/// <summary>One area of a segment: a PV (by key) and the first extent used on it.</summary>
public readonly record struct SegmentArea(string Pv, long FirstExtent);

/// <summary>A segment of an LV: extents [StartExtent, StartExtent + ExtentCount) of the LV.</summary>
/// <param name="Type">lvm's segment type ("striped", "thin", "raid1", ...).</param>
/// <param name="StripeSize">Sectors per stripe chunk; 0 for one stripe.</param>
/// <param name="Areas">The stripes ("stripes" array) of a striped segment; empty for other types.</param>
/// <param name="Origin">A snapshot segment's origin LV.</param>
public sealed record SegmentRecord(long StartExtent, long ExtentCount, string Type, long StripeSize, IReadOnlyList<SegmentArea> Areas, string? Origin);

/// <param name="Damage">Why this LV's own entries do not parse (the rest of the VG still does), or null.</param>
public sealed record LvRecord(string Name, string Id, IReadOnlySet<string> Status, IReadOnlyList<SegmentRecord> Segments, string? Damage = null)
{
    public bool Visible => Status.Contains("VISIBLE");
    public bool Writable => Status.Contains("WRITE");
    /// <summary>The segment types other than striped, in order ("thin", "cache"...): why the LV cannot be activated here.</summary>
    public IEnumerable<string> UnsupportedTypes => Segments.Select(s => s.Type).Where(t => !LvmLimits.IsStriped(t)).Distinct();
}

/// <summary>Bounds on what metadata may claim; past them it is damaged, or hostile.</summary>
public static class LvmLimits
{
    public const int MaxPvs = 4096, MaxLvs = 16384, MaxSegmentsPerLv = 8192, MaxStripes = 128;
    /// <summary>Sectors: extents up to 16 GiB; devices up to 2^56 bytes.</summary>
    public const long MaxExtentSize = 1L << 25, MaxSectors = 1L << 47;

    public static bool IsStriped(string type) => type is "striped" or "linear";
}

/// <summary>
/// A volume group as its text metadata describes it (lib/format_text/import_vsn1.c): the one
/// top-level section named after the VG, with id, seqno, extent_size, physical_volumes and
/// logical_volumes. Only what activation needs is kept; every number is checked against the
/// others (extents inside their PV, segments covering the LV without gaps).
/// </summary>
public sealed class VolumeGroupMetadata
{
    public required string Name { get; init; }
    /// <summary>The VG uuid, 32 characters without dashes.</summary>
    public required string Id { get; init; }
    public required long Seqno { get; init; }
    /// <summary>Sectors.</summary>
    public required long ExtentSize { get; init; }
    public required IReadOnlySet<string> Status { get; init; }
    /// <summary>lvmlockd's lock type (sanlock, dlm) of a shared VG; null for a local VG.</summary>
    public string? LockType { get; init; }
    public string? SystemId { get; init; }
    public required IReadOnlyDictionary<string, PvRecord> Pvs { get; init; }
    public required IReadOnlyList<LvRecord> Lvs { get; init; }

    public LvRecord? Lv(string name) => Lvs.FirstOrDefault(l => l.Name == name);

    /// <summary>Snapshot LVs whose origin is <paramref name="lv"/>: writing to it without dm-snapshot would break them.</summary>
    public IEnumerable<string> SnapshotsOf(LvRecord lv) =>
        Lvs.Where(l => l.Segments.Any(s => s.Type == "snapshot" && s.Origin == lv.Name)).Select(l => l.Name);

    /// <summary>Parses metadata text; throws <see cref="InvalidDataException"/> naming what is wrong.</summary>
    public static VolumeGroupMetadata Parse(byte[] text) => FromTree(MetadataText.Parse(text));

    public static VolumeGroupMetadata FromTree(MetadataSection root)
    {
        if (root.Value("contents") is { } contents && contents.Text != "Text Format Volume Group")
            throw new InvalidDataException($"metadata contents is '{contents.Text}', not a volume group");
        if (root.Value("version") is { } version && version.Integer != 1)
            throw new InvalidDataException($"metadata format version {version}, not 1");
        if (root.Sections.Count != 1) throw new InvalidDataException($"metadata holds {root.Sections.Count} top-level sections, not one volume group");
        var vg = root.Sections[0];
        if (!LvmNames.IsValidName(vg.Name)) throw new InvalidDataException($"volume group name '{vg.Name}' is not valid");
        string where = $"VG {vg.Name}";
        long extentSize = Number(vg, "extent_size", where, 1, LvmLimits.MaxExtentSize);
        var pvs = ParsePvs(Required(vg, "physical_volumes", where), where);
        foreach (var pv in pvs.Values)
            if (pv.PeCount > (LvmLimits.MaxSectors - pv.PeStart) / extentSize)
                throw new InvalidDataException($"{where} PV {pv.Key}: {pv.PeCount} extents of {extentSize} sectors are more than any device holds");
        var lvs = vg.Section("logical_volumes") is { } lvSection ? ParseLvs(lvSection, pvs, where) : [];
        return new VolumeGroupMetadata
        {
            Name = vg.Name,
            Id = ParseId(vg, where),
            Seqno = Number(vg, "seqno", where, 0, long.MaxValue),
            ExtentSize = extentSize,
            Status = Flags(vg, "status", where),
            LockType = OptionalString(vg, "lock_type", where),
            SystemId = OptionalString(vg, "system_id", where),
            Pvs = pvs,
            Lvs = lvs,
        };
    }

    private static Dictionary<string, PvRecord> ParsePvs(MetadataSection section, string where)
    {
        if (section.Sections.Count > LvmLimits.MaxPvs) throw new InvalidDataException($"{where} lists {section.Sections.Count} PVs, more than {LvmLimits.MaxPvs}");
        var pvs = new Dictionary<string, PvRecord>(StringComparer.Ordinal);
        foreach (var pv in section.Sections)
        {
            string at = $"{where} PV {pv.Name}";
            var status = Flags(pv, "status", at);
            pvs[pv.Name] = new PvRecord(pv.Name, ParseId(pv, at),
                Number(pv, "dev_size", at, 0, LvmLimits.MaxSectors),
                Number(pv, "pe_start", at, 0, LvmLimits.MaxSectors),
                Number(pv, "pe_count", at, 0, LvmLimits.MaxSectors),
                status.Contains("MISSING") || Flags(pv, "flags", at).Contains("MISSING"),
                OptionalString(pv, "device", at));
        }
        return pvs;
    }

    private static List<LvRecord> ParseLvs(MetadataSection section, Dictionary<string, PvRecord> pvs, string where)
    {
        if (section.Sections.Count > LvmLimits.MaxLvs) throw new InvalidDataException($"{where} lists {section.Sections.Count} LVs, more than {LvmLimits.MaxLvs}");
        var lvs = new List<LvRecord>();
        foreach (var lv in section.Sections)
        {
            if (!LvmNames.IsValidName(lv.Name)) throw new InvalidDataException($"{where}: LV name '{lv.Name}' is not valid");
            // One LV's odd entries (an interrupted pvmove, a type from a newer lvm) leave the others usable.
            try { lvs.Add(ParseLv(lv, pvs, $"{where} LV {lv.Name}")); }
            catch (InvalidDataException e) { lvs.Add(new LvRecord(lv.Name, "", new HashSet<string>(), [], e.Message)); }
        }
        return lvs;
    }

    private static LvRecord ParseLv(MetadataSection lv, Dictionary<string, PvRecord> pvs, string at)
    {
        var segments = lv.Sections.Where(s => s.Name.StartsWith("segment", StringComparison.Ordinal)).ToList();
        if (segments.Count > LvmLimits.MaxSegmentsPerLv) throw new InvalidDataException($"{at} has {segments.Count} segments, more than {LvmLimits.MaxSegmentsPerLv}");
        long declared = Number(lv, "segment_count", at, 0, LvmLimits.MaxSegmentsPerLv);
        if (declared != segments.Count) throw new InvalidDataException($"{at} says segment_count = {declared} but has {segments.Count} segments");
        var parsed = segments.Select(s => ParseSegment(s, pvs, $"{at} {s.Name}")).OrderBy(s => s.StartExtent).ToList();
        return new LvRecord(lv.Name, ParseId(lv, at), Flags(lv, "status", at), parsed);
    }

    private static SegmentRecord ParseSegment(MetadataSection s, Dictionary<string, PvRecord> pvs, string at)
    {
        long start = Number(s, "start_extent", at, 0, LvmLimits.MaxSectors);
        long count = Number(s, "extent_count", at, 1, LvmLimits.MaxSectors);
        string type = RequiredString(s, "type", at);
        if (!LvmLimits.IsStriped(type))
            return new SegmentRecord(start, count, type, 0, [], type == "snapshot" ? OptionalString(s, "origin", at) : null);
        long stripes = Number(s, "stripe_count", at, 1, LvmLimits.MaxStripes);
        long stripeSize = stripes > 1 ? Number(s, "stripe_size", at, 1, LvmLimits.MaxExtentSize) : 0;
        if (stripes > 1 && (stripeSize & (stripeSize - 1)) != 0) throw new InvalidDataException($"{at}: stripe_size {stripeSize} is not a power of two");
        if (count % stripes != 0) throw new InvalidDataException($"{at}: {count} extents do not divide into {stripes} stripes");
        var list = s.Value("stripes") is { Kind: MetadataValueKind.Array } v ? v.Items : throw new InvalidDataException($"{at}: 'stripes' missing");
        if (list.Count != 2 * stripes) throw new InvalidDataException($"{at}: 'stripes' has {list.Count} items for {stripes} stripes");
        var areas = new List<SegmentArea>();
        for (int i = 0; i < list.Count; i += 2)
        {
            if (list[i].Kind != MetadataValueKind.String || list[i + 1].Kind != MetadataValueKind.Integer)
                throw new InvalidDataException($"{at}: 'stripes' item {i / 2} is not a PV name and an extent");
            string pv = list[i].Text;
            long first = list[i + 1].Integer;
            if (!pvs.TryGetValue(pv, out var record)) throw new InvalidDataException($"{at}: stripe on '{pv}', which is not a PV of the VG (an interrupted pvmove?)");
            if (first < 0 || first > record.PeCount || count / stripes > record.PeCount - first)
                throw new InvalidDataException($"{at}: extents {first}+{count / stripes} lie outside PV {pv}'s {record.PeCount}");
            areas.Add(new SegmentArea(pv, first));
        }
        return new SegmentRecord(start, count, type, stripeSize, areas, null);
    }

    private static MetadataSection Required(MetadataSection s, string name, string at) =>
        s.Section(name) ?? throw new InvalidDataException($"{at}: section '{name}' missing");

    private static long Number(MetadataSection s, string key, string at, long min, long max)
    {
        var v = s.Value(key) ?? throw new InvalidDataException($"{at}: '{key}' missing");
        if (v.Kind != MetadataValueKind.Integer) throw new InvalidDataException($"{at}: '{key}' is not an integer");
        if (v.Integer < min || v.Integer > max) throw new InvalidDataException($"{at}: {key} = {v.Integer} is out of range");
        return v.Integer;
    }

    private static string RequiredString(MetadataSection s, string key, string at) =>
        OptionalString(s, key, at) ?? throw new InvalidDataException($"{at}: '{key}' missing");

    private static string? OptionalString(MetadataSection s, string key, string at) => s.Value(key) switch
    {
        null => null,
        { Kind: MetadataValueKind.String } v => v.Text,
        _ => throw new InvalidDataException($"{at}: '{key}' is not a string"),
    };

    /// <summary>A 32-character id, given with or without lvm's dashes.</summary>
    private static string ParseId(MetadataSection s, string at)
    {
        string id = RequiredString(s, "id", at).Replace("-", "");
        if (id.Length != 32 || !id.All(c => char.IsAsciiLetterOrDigit(c) || c is '!' or '#'))
            throw new InvalidDataException($"{at}: id '{s.Value("id")!.Text}' is malformed");
        return id;
    }

    private static HashSet<string> Flags(MetadataSection s, string key, string at)
    {
        var set = new HashSet<string>(StringComparer.Ordinal);
        var v = s.Value(key);
        if (v is null) return set;
        if (v.Kind != MetadataValueKind.Array) throw new InvalidDataException($"{at}: '{key}' is not a list");
        foreach (var item in v.Items)
            set.Add(item.Kind == MetadataValueKind.String ? item.Text : throw new InvalidDataException($"{at}: '{key}' holds a non-string"));
        return set;
    }
}

using System.Text;

namespace CaptureAgent.Targets;

/// <summary>What a volume is used for, in blkid's USAGE terms.</summary>
public enum VolumeUsage
{
    /// <summary>Nothing recognised (or the device could not be read).</summary>
    None,
    /// <summary>A filesystem that can be mounted: ext2/3/4, xfs, btrfs, vfat.</summary>
    Filesystem,
    /// <summary>Swap, hibernation images, an external ext journal.</summary>
    Other,
    /// <summary>A member of a RAID or volume group: md, LVM2.</summary>
    Raid,
    /// <summary>An encrypted container: LUKS.</summary>
    Crypto,
}

/// <summary>
/// What a device's first blocks say it holds, in blkid's vocabulary: <see cref="Type"/> is blkid's
/// TYPE (ext4, xfs, btrfs, vfat, swap, jbd, crypto_LUKS...), <see cref="Uuid"/> and
/// <see cref="Label"/> its UUID and LABEL, spelled as blkid prints them. Never null: a device that
/// holds nothing recognisable is <see cref="Unknown"/>, one that could not be read says why in
/// <see cref="Problem"/>.
/// </summary>
public sealed record VolumeIdentity(string Type, string? Uuid = null, string? Label = null)
{
    public const string UnknownType = "unknown";

    public static VolumeIdentity Unknown { get; } = new(UnknownType);

    public static VolumeIdentity Unreadable(string problem) => new(UnknownType) { Problem = problem };

    /// <summary>A signature whose structure failed its checksum: not trusted, but worth naming.</summary>
    public static VolumeIdentity Rejected(string what) => new(UnknownType) { Damaged = what };

    public VolumeUsage Usage { get; init; }

    /// <summary>blkid's VERSION where it is cheap to know (FAT12/FAT16/FAT32, swap 0/1, LUKS 1/2).</summary>
    public string? Version { get; init; }

    /// <summary>blkid's UUID_SUB: the btrfs device's own UUID (the filesystem's is <see cref="Uuid"/>).</summary>
    public string? SubUuid { get; init; }

    /// <summary>Why the device could not be read at all (missing node, permission, I/O error).</summary>
    public string? Problem { get; init; }

    /// <summary>
    /// A superblock that was there but failed its checksum ("ext4 superblock checksum mismatch"):
    /// the kernel would refuse to mount it, so it does not count as found. Newer blkid (2.39+)
    /// rejects these too; 2.38 still reports them.
    /// </summary>
    public string? Damaged { get; init; }

    /// <summary>Other signatures found besides the first: blkid -p would call the device ambivalent.</summary>
    public IReadOnlyList<string> AlsoFound { get; init; } = [];

    public bool IsKnown => Type != UnknownType;

    public bool IsFilesystem => Usage == VolumeUsage.Filesystem;

    /// <summary>One short phrase for messages: "ext4 LABEL=dump", "unknown", "unreadable: ...".</summary>
    public string Describe(bool withUuid = false)
    {
        if (Problem is not null) return "unreadable: " + Problem;
        if (Damaged is not null) return $"{Type}: {Damaged}";
        var s = new StringBuilder(Type);
        if (Label is not null) s.Append(" LABEL=").Append(Label);
        if (withUuid && Uuid is not null) s.Append(" UUID=").Append(Uuid);
        if (AlsoFound.Count > 0) s.Append(" +").Append(string.Join('+', AlsoFound));
        return s.ToString();
    }

    public override string ToString() => Describe(withUuid: true);
}

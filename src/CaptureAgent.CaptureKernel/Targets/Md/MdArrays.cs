namespace CaptureAgent.Targets.Md;

/// <summary>A block device that carries an md superblock.</summary>
public sealed record MdMember(string Device, int Major, int Minor, MdSuperblock Super);

/// <summary>What a device's md superblocks were found to be (the scan's input).</summary>
/// <param name="Superblocks">Every valid superblock on it (normally one).</param>
/// <param name="InUse">The device already belongs to a running array or another stack (sysfs holders).</param>
public sealed record MdCandidate(string Device, int Major, int Minor, IReadOnlyList<MdSuperblock> Superblocks, bool InUse);

/// <summary>One array to start: the members to add, in role order, and why others were left out.</summary>
public sealed record MdArrayPlan(string Uuid, MdSuperblock Reference, IReadOnlyList<MdMember> Members, IReadOnlyList<string> Notes)
{
    /// <summary>Roles of the array without a fresh member.</summary>
    public int MissingRoles => Reference.RaidDisks - Members.Count(m => m.Super.IsActiveMember);

    public bool Degraded => MissingRoles > 0;

    /// <summary>"md array 8a9c…:… (raid1 'host:dump', 1.2)" for messages.</summary>
    public string Describe() =>
        $"md array {Uuid} ({Reference.LevelName}{(Reference.Name is null ? "" : $" '{Reference.Name}'")}, metadata {Reference.Version})";
}

/// <summary>What one scan of the members decided.</summary>
/// <param name="Startable">Arrays with enough fresh members to run (degraded ones included).</param>
/// <param name="Waiting">Arrays that lack members they need: named with what is missing.</param>
/// <param name="Refused">One line per device or array that cannot be used, and why.</param>
public sealed record MdScanResult(IReadOnlyList<MdArrayPlan> Startable, IReadOnlyList<string> Waiting, IReadOnlyList<string> Refused);

/// <summary>
/// Groups md members by array UUID and decides, as mdadm's Assemble does, which of them make an
/// array: the freshest event count wins (one behind still counts, as in the kernel's
/// super_1_validate), stale members and spares stay out, one member per role. Everything is
/// bounded: a device claimed by two arrays, a member listing its own array, or an array claiming
/// more members than it can have is refused with a one-line reason.
/// </summary>
public static class MdArrays
{
    /// <summary>Devices one array may claim (roles + spares); more is damage or a loop, not a real array.</summary>
    public const int MaxMembersPerArray = 64;
    /// <summary>Arrays assembled in one capture kernel.</summary>
    public const int MaxArrays = 32;

    public static MdScanResult Plan(IEnumerable<MdCandidate> candidates)
    {
        var refused = new List<string>();
        var waiting = new List<string>();
        var byUuid = new Dictionary<string, List<MdMember>>(StringComparer.Ordinal);
        var running = new HashSet<string>(StringComparer.Ordinal);
        foreach (var c in candidates)
        {
            if (c.Superblocks.Count == 0) continue;
            var uuids = c.Superblocks.Select(s => s.ArrayUuid).Distinct(StringComparer.Ordinal).ToList();
            if (uuids.Count > 1)
            {
                refused.Add($"{c.Device} is claimed by two md arrays ({string.Join(" and ", c.Superblocks.Select(s => $"{s.ArrayUuid} in metadata {s.Version}"))}): left alone");
                continue;
            }
            // 1.x and a leftover 0.90 of the same array: the kernel reads the version it is told; take 1.x.
            var sb = c.Superblocks.OrderByDescending(s => s.MajorVersion).First();
            if (c.InUse) { running.Add(sb.ArrayUuid); continue; }
            if (ListsItself(c, sb))
            {
                refused.Add($"{c.Device} is an md device that names itself as a member of its own array {sb.ArrayUuid}: left alone");
                continue;
            }
            if (!byUuid.TryGetValue(sb.ArrayUuid, out var list)) byUuid[sb.ArrayUuid] = list = new List<MdMember>();
            list.Add(new MdMember(c.Device, c.Major, c.Minor, sb));
        }

        var startable = new List<MdArrayPlan>();
        foreach (var (uuid, members) in byUuid.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            if (running.Contains(uuid)) continue;   // assembled already (by the kernel or an earlier pass)
            if (startable.Count >= MaxArrays)
            {
                refused.Add($"more than {MaxArrays} md arrays: md array {uuid} and the rest are not assembled");
                break;
            }
            var decision = Decide(uuid, members);
            if (decision.Plan is not null) startable.Add(decision.Plan);
            else if (decision.Waiting is not null) waiting.Add(decision.Waiting);
            else refused.Add(decision.Refused!);
        }
        return new MdScanResult(startable, waiting, refused);
    }

    /// <summary>An md device that carries a superblock of the very array it is, or a 0.90 table naming its own md minor.</summary>
    private static bool ListsItself(MdCandidate c, MdSuperblock sb) =>
        c.Major == Native.Libc.MdMajor && sb.RecordedDevices.Contains((c.Major, c.Minor));

    private static (MdArrayPlan? Plan, string? Waiting, string? Refused) Decide(string uuid, List<MdMember> members)
    {
        var notes = new List<string>();
        if (members.Count > MaxMembersPerArray)
            return (null, null, $"md array {uuid} is claimed by {members.Count} devices (more than {MaxMembersPerArray}): not assembled");
        ulong newest = members.Max(m => m.Super.Events);
        var reference = members.First(m => m.Super.Events == newest).Super;
        string what = $"md array {uuid} ({reference.LevelName}{(reference.Name is null ? "" : $" '{reference.Name}'")})";
        if (reference.UnsupportedReason() is { } unsupported) return (null, null, $"{what}: {unsupported}");
        if (members.Count > reference.RaidDisks + MaxMembersPerArray / 2)
            return (null, null, $"{what} has {members.Count} members for {reference.RaidDisks} roles: not assembled");

        var fresh = new List<MdMember>();
        foreach (var m in members.OrderBy(m => m.Device, StringComparer.Ordinal))
        {
            if (m.Super.Events + 1 < newest)
                notes.Add($"{m.Device} is stale (events {m.Super.Events}, the array is at {newest}): left out");
            else if (m.Super.Level != reference.Level || m.Super.RaidDisks != reference.RaidDisks || m.Super.MajorVersion != reference.MajorVersion)
                notes.Add($"{m.Device} disagrees with the newest superblock ({m.Super.LevelName}, {m.Super.RaidDisks} disks, {m.Super.Version}): left out");
            else if (m.Super.Role == MdSuperblock.RoleFaulty)
                notes.Add($"{m.Device} is marked faulty: left out");
            else fresh.Add(m);
        }
        // One member per role: the freshest, then the first by name (a cloned disk shows up twice).
        var byRole = new Dictionary<int, MdMember>();
        var chosen = new List<MdMember>();
        foreach (var m in fresh.OrderByDescending(m => m.Super.Events))
        {
            if (!m.Super.IsActiveMember) continue;   // spares and journals: not needed to start
            if (byRole.TryGetValue(m.Super.Role, out var first))
            {
                notes.Add($"{m.Device} and {first.Device} both claim role {m.Super.Role}: {first.Device} is used");
                continue;
            }
            byRole[m.Super.Role] = m;
            chosen.Add(m);
        }
        chosen.Sort((a, b) => a.Super.Role.CompareTo(b.Super.Role));
        int present = chosen.Count, needed = MinimumMembers(reference);
        if (present < needed)
        {
            string roles = string.Join(',', Enumerable.Range(0, reference.RaidDisks).Where(r => !byRole.ContainsKey(r)));
            return (null, $"{what} has {present} of {reference.RaidDisks} members (needs {needed}; missing role {roles})", null);
        }
        return (new MdArrayPlan(uuid, reference, chosen, notes), null, null);
    }

    /// <summary>The fewest members a level runs with: one copy for raid1, all but the parity count for raid4/5/6, all for striping.</summary>
    public static int MinimumMembers(MdSuperblock sb) => sb.Level switch
    {
        1 => 1,
        4 or 5 => Math.Max(sb.RaidDisks - 1, 1),
        6 => Math.Max(sb.RaidDisks - 2, 1),
        // raid10 keeps near*far copies of each chunk (layout bits 0-7 and 8-15): losing copies-1
        // members may still run; which sets of members survive exactly is the kernel's to judge.
        10 => Math.Max(1, sb.RaidDisks - (Raid10Copies(sb.Layout) - 1)),
        _ => sb.RaidDisks,
    };

    /// <summary>
    /// The name under /dev/md/ for a 1.x array name ("host:dump" → "dump"), or null when it is
    /// empty or not a plain file name.
    /// </summary>
    public static string? ShortName(string? arrayName)
    {
        if (arrayName is null) return null;
        string s = arrayName[(arrayName.IndexOf(':') + 1)..];
        return s.Length is > 0 and <= 32 && s is not ("." or "..") && s.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-' or '.') ? s : null;
    }

    /// <summary>
    /// The md number the array asks for: 0.90's preferred minor, or a 1.x name that is a number
    /// ("host:0" → md0, as mdadm names it).
    /// </summary>
    public static int? PreferredNumber(MdSuperblock sb) =>
        sb.MajorVersion == 0 ? sb.PreferredMinor
        : ShortName(sb.Name) is { } n && int.TryParse(n, System.Globalization.NumberStyles.None, null, out int number) && number <= 255 ? number : null;

    public static int Raid10Copies(int layout) => Math.Max(1, (layout & 0xff) * ((layout >> 8) & 0xff));
}

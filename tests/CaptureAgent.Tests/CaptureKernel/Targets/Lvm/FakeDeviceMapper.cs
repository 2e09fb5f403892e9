using System.Globalization;
using CaptureAgent.Native;
using CaptureAgent.Targets;

namespace CaptureAgent.Tests.CaptureKernel.Targets.Lvm;

/// <summary>
/// device-mapper in a fake sysfs: Create adds dm-N (dm/name, dm/uuid, slaves) whose node holds
/// what the kernel's linear and striped targets would show, assembled here from the table text
/// and the member nodes. A wrong table gives a device whose superblock is not found.
/// </summary>
public sealed class FakeDeviceMapper(FakeSysfs sysfs) : IDeviceMapper
{
    private int _nextMinor;
    public Dictionary<string, (DmDeviceInfo Info, List<DmTarget> Table)> Devices { get; } = new(StringComparer.Ordinal);
    public List<string> Created { get; } = [];

    public DmDeviceInfo? Find(string name) => Devices.TryGetValue(name, out var d) ? d.Info : null;

    public DmDeviceInfo? FindByUuid(string uuid) => Devices.Values.Select(d => d.Info).FirstOrDefault(i => i.Uuid == uuid);

    public IReadOnlyList<DmTarget> Table(string name) => Devices[name].Table;

    /// <summary>A device that was there before (another system's, or the crashed one's under a manual run); not in sysfs.</summary>
    public void Existing(string name, string uuid, params DmTarget[] table) =>
        Devices[name] = (new DmDeviceInfo(name, uuid, 253, 200 + Devices.Count, Libc.DmIoctl.ActivePresentFlag, table.Length), table.ToList());

    public DmDeviceInfo Create(string name, string uuid, IReadOnlyList<DmTarget> table)
    {
        if (Devices.ContainsKey(name)) throw new IOException($"device-mapper: creating {name}: Device or resource busy (errno 16)");
        int minor = _nextMinor++;
        string dm = "dm-" + minor.ToString(CultureInfo.InvariantCulture);
        var members = SysfsBlockDevices.List(sysfs.Sys, sysfs.Dev).ToDictionary(d => d.DeviceNumber);
        var content = new byte[table.Sum(t => t.Length) * 512];
        var used = new HashSet<string>();
        foreach (var t in table) Assemble(t, content, members, used);
        sysfs.AddDisk(null, dm, $"253:{minor}", content.Length / 512);
        sysfs.Attribute(dm, "dm/name", name);
        sysfs.Attribute(dm, "dm/uuid", uuid);
        foreach (var member in used) sysfs.Stack(dm, member);
        sysfs.Node(dm, content);
        var info = new DmDeviceInfo(name, uuid, 253, minor, Libc.DmIoctl.ActivePresentFlag, table.Count);
        Devices[name] = (info, table.ToList());
        Created.Add($"{name} {uuid}: {string.Join(" | ", table)}");
        return info;
    }

    private static void Assemble(DmTarget t, byte[] content, Dictionary<string, SysfsBlockDevice> members, HashSet<string> used)
    {
        var p = t.Parameters.Split(' ');
        if (t.Type == "linear")
        {
            Copy(members[p[0]], long.Parse(p[1], CultureInfo.InvariantCulture), content, t.Start, t.Length, used);
            return;
        }
        if (t.Type != "striped") throw new IOException($"the fake knows no {t.Type} target");
        int stripes = int.Parse(p[0], CultureInfo.InvariantCulture);
        long chunk = long.Parse(p[1], CultureInfo.InvariantCulture);
        for (long k = 0; k * chunk < t.Length; k++)
        {
            int s = (int)(k % stripes);
            long at = long.Parse(p[3 + 2 * s], CultureInfo.InvariantCulture) + k / stripes * chunk;
            Copy(members[p[2 + 2 * s]], at, content, t.Start + k * chunk, chunk, used);
        }
    }

    private static void Copy(SysfsBlockDevice from, long sector, byte[] content, long toSector, long sectors, HashSet<string> used)
    {
        used.Add(from.Name);
        using var f = File.OpenRead(from.Node);
        f.Position = sector * 512;
        f.ReadExactly(content, (int)(toSector * 512), (int)(sectors * 512));
    }
}

using CaptureAgent.Targets.Md;

namespace CaptureAgent.Targets;

/// <summary>
/// Brings up the storage stacks a local target may sit on while the capture kernel waits for its
/// device (there is no udev, mdadm or lvm here): md RAID arrays first, so that stacks built on
/// them (LVM on md, md on md) find their members on a later pass. Called between looks of
/// <see cref="TargetLocator.WaitFor"/>; each pass is bounded in time and does nothing twice.
/// </summary>
public sealed class StorageStacks
{
    private readonly MdAssembly _md;

    public StorageStacks(Action<string> report, TimeSpan deviceTimeout, string sysRoot = "/sys", string devRoot = "/dev", string procRoot = "/proc")
    {
        // A degraded array waits for its missing members at most half the device timeout.
        var grace = TimeSpan.FromTicks(Math.Min(TimeSpan.FromSeconds(10).Ticks, deviceTimeout.Ticks / 2));
        _md = new MdAssembly(new MdKernel(sysRoot, devRoot, procRoot), new MdDevices(sysRoot, devRoot).Scan, report) { DegradedGrace = grace };
    }

    /// <summary>One pass over every kind of stack; true when a new device was made (look again at once).</summary>
    public bool Activate() => _md.Activate();
}

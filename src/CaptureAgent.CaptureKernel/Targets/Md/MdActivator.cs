namespace CaptureAgent.Targets.Md;

/// <summary>
/// md RAID as one of the capture kernel's storage stacks: each turn is one <see cref="MdAssembly"/>
/// pass over the block devices there now. Arrays are assembled whatever the target is (a target
/// named by UUID or label may be inside any of them, or inside an LV on one).
/// </summary>
public sealed class MdActivator : IStorageStackActivator
{
    private readonly MdAssembly _md;
    private readonly List<string> _started = [];

    /// <param name="report">Told, once each, what md waits for and what it refuses, as it happens.</param>
    public MdActivator(string sysRoot, string devRoot, string procRoot, TimeSpan deviceTimeout, Action<string> report)
    {
        // A degraded array waits for its missing members at most half the device timeout.
        var grace = TimeSpan.FromTicks(Math.Min(TimeSpan.FromSeconds(10).Ticks, deviceTimeout.Ticks / 2));
        _md = new MdAssembly(new MdKernel(sysRoot, devRoot, procRoot), new MdDevices(sysRoot, devRoot).Scan, report)
        {
            DegradedGrace = grace,
            OnStarted = _started.Add,
        };
    }

    public string Name => "md";

    public StackStep Activate(TargetSpec target, IReadOnlyList<SysfsBlockDevice> devices)
    {
        _started.Clear();
        _md.Activate();
        return new StackStep { Activated = [.. _started], Waiting = _md.Waiting };
    }
}

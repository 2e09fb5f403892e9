namespace CaptureAgent.Targets;

/// <summary>What one storage stack activator did in one round.</summary>
public sealed record StackStep
{
    /// <summary>Devices brought up this round, one phrase each ("vg0/root as /dev/mapper/vg0-root").</summary>
    public IReadOnlyList<string> Activated { get; init; } = [];

    /// <summary>Why something that could hold the target was not brought up (a missing PV, bad metadata).</summary>
    public IReadOnlyList<string> Problems { get; init; } = [];

    /// <summary>The target itself can never be brought up here (an LVM thin volume): waiting will not help.</summary>
    public string? Refusal { get; init; }

    /// <summary>
    /// Something waits on time rather than on new devices (a degraded md array's grace for its
    /// missing members): run again at the next look even when the block devices did not change.
    /// </summary>
    public bool Waiting { get; init; }

    public static StackStep Nothing { get; } = new();
}

/// <summary>
/// One kind of storage stack the capture kernel assembles itself (there is no udev, mdadm or lvm
/// in it): md RAID, LVM. Given the target and the block devices there now, it brings up only what
/// could hold the target, and never changes what is already there.
/// </summary>
public interface IStorageStackActivator
{
    /// <summary>"md", "lvm": the prefix of its messages.</summary>
    string Name { get; }

    StackStep Activate(TargetSpec target, IReadOnlyList<SysfsBlockDevice> devices);
}

/// <summary>
/// Runs the stack activators in order, round after round while a round brings up something new
/// (LVM on md needs md first; a PV on a freshly assembled array shows up in the next round), at
/// most <see cref="MaxRounds"/> rounds. Nothing runs again for the same target until the set of
/// block devices changes; the chain's next target gets a run of its own (what to bring up, and
/// what is refused, depends on the target).
/// A round runs on a thread of its own under a time limit: a disk that stops answering leaves
/// that thread blocked in the kernel, not the capture.
/// </summary>
public sealed class StorageStacks
{
    public const int MaxRounds = 4;
    private const int RoundStackBytes = 512 * 1024;
    private readonly string _sysRoot, _devRoot;
    private readonly IReadOnlyList<IStorageStackActivator> _activators;
    private string? _lastDevices;
    private string? _target;   // what Problems, Refusal and _lastDevices are about
    private Task<RunResult>? _pending;

    public StorageStacks(string sysRoot, string devRoot, IReadOnlyList<IStorageStackActivator> activators)
    {
        _sysRoot = sysRoot;
        _devRoot = devRoot;
        _activators = activators;
    }

    /// <summary>
    /// The stacks the capture kernel knows, in the order they must run: md first, so LVM on md works.
    /// md says what it waits for and refuses on <paramref name="report"/> as it happens (once each).
    /// </summary>
    public static IReadOnlyList<IStorageStackActivator> Standard(string sysRoot, string devRoot, string procRoot, TimeSpan deviceTimeout, Action<string> report) =>
    [
        new Md.MdActivator(sysRoot, devRoot, procRoot, deviceTimeout, report),
        new Lvm.LvmActivator(sysRoot, devRoot),
    ];

    /// <summary>How long one run (all its rounds) may take before the wait goes on without it.</summary>
    public TimeSpan RunTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Why the last run did not bring up what could hold the target, one line each.</summary>
    public IReadOnlyList<string> Problems { get; private set; } = [];

    /// <summary>The last run found the target can never be brought up (see <see cref="StackStep.Refusal"/>).</summary>
    public string? Refusal { get; private set; }

    /// <summary>Told what each run brought up.</summary>
    public Action<string>? Report { get; init; }

    /// <summary>
    /// Brings up what could hold <paramref name="target"/>; true when a new device appeared. Does
    /// nothing while the block devices are the ones the last run saw, or while an earlier run
    /// has not come back.
    /// </summary>
    public bool Activate(TargetSpec target)
    {
        string wanted = target.ToString();
        if (wanted != _target) { _target = wanted; _lastDevices = null; Problems = []; Refusal = null; }
        if (_pending is not null)
        {
            if (!_pending.IsCompleted) return false;
            var late = _pending.Result;
            _pending = null;
            bool grew = Take(late);
            if (grew || late.Target == _target) return grew;
            // The late run was for an earlier target of the chain: this one gets its own now.
        }
        string devices = DeviceSetKey(SysfsBlockDevices.List(_sysRoot, _devRoot));
        if (devices == _lastDevices) return false;
        var done = new TaskCompletionSource<RunResult>(TaskCreationOptions.RunContinuationsAsynchronously);
        try
        {
            new Thread(() => done.SetResult(RunCaught(target)), RoundStackBytes) { IsBackground = true, Name = "stacks" }.Start();
        }
        catch (Exception e) when (e is OutOfMemoryException or ThreadStartException)
        {
            return Take(RunCaught(target));   // no thread to spare: run unguarded rather than not at all
        }
        if (done.Task.Wait(RunTimeout)) return Take(done.Task.Result);
        _pending = done.Task;
        Problems = [$"bringing up storage stacks has not finished after {RunTimeout.TotalSeconds:0} s (a disk not answering?)"];
        return false;
    }

    private sealed record RunResult(string Target, List<string> Activated, List<string> Problems, string? Refusal, string? DevicesAfter);

    /// <summary>A run whatever happens in it: an exception on the run's own thread would end the process, PID 1 included.</summary>
    private RunResult RunCaught(TargetSpec target)
    {
        try { return Run(target); }
        catch (Exception e)
        {
            return new RunResult(target.ToString(), [], [$"bringing up storage stacks failed: {e.Message}"], null, _lastDevices ?? "");
        }
    }

    private RunResult Run(TargetSpec target)
    {
        var activated = new List<string>();
        var problems = new List<string>();
        string? refusal = null;
        bool waiting = false;
        var devices = SysfsBlockDevices.List(_sysRoot, _devRoot);
        for (int round = 0; round < MaxRounds && refusal is null; round++)
        {
            problems.Clear();
            int before = activated.Count;
            foreach (var activator in _activators)
            {
                var step = Step(activator, target, devices);
                activated.AddRange(step.Activated.Select(a => $"{activator.Name}: {a}"));
                problems.AddRange(step.Problems.Select(p => $"{activator.Name}: {p}"));
                waiting |= step.Waiting;
                if (step.Refusal is not null) { refusal = $"{activator.Name}: {step.Refusal}"; break; }
                if (step.Activated.Count > 0) devices = SysfsBlockDevices.List(_sysRoot, _devRoot);
            }
            if (activated.Count == before) break;
        }
        // Null when an activator waits on time: the next look runs again though nothing changed.
        return new RunResult(target.ToString(), activated, problems.Distinct().ToList(), refusal, waiting ? null : DeviceSetKey(devices));
    }

    /// <summary>One activator's turn; whatever it throws becomes a problem line, never the capture's end.</summary>
    private static StackStep Step(IStorageStackActivator activator, TargetSpec target, IReadOnlyList<SysfsBlockDevice> devices)
    {
        try { return activator.Activate(target, devices); }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            return new StackStep { Problems = [e.Message] };
        }
    }

    /// <summary>A run's outcome; its problems and refusal only when it was about the target looked for now.</summary>
    private bool Take(RunResult result)
    {
        if (result.Target == _target)
        {
            _lastDevices = result.DevicesAfter;
            Problems = result.Problems;
            Refusal = result.Refusal;
        }
        foreach (var a in result.Activated) Report?.Invoke("capture-agent: " + a);
        return result.Activated.Count > 0;
    }

    /// <summary>What "the devices changed" compares: names, numbers and sizes (a disk that grew from 0 when its medium came).</summary>
    private static string DeviceSetKey(IEnumerable<SysfsBlockDevice> devices) =>
        string.Join(' ', devices.Select(d => $"{d.Name}={d.DeviceNumber}/{d.Sectors}"));
}

namespace CaptureAgent.Targets.Md;

/// <summary>
/// md RAID assembly in the capture kernel, one pass per look of the target wait loop: scans the
/// block devices for members, plans the arrays (<see cref="MdArrays"/>) and starts each through
/// the kernel. A complete array starts at once; a degraded one only after
/// <see cref="DegradedGrace"/> since its first member was seen, so a slow second disk still gets in.
/// An array that failed to start is tried again only when its members change. Each array start
/// runs under <see cref="StartTimeout"/>: a member that stops answering costs that, not the capture.
/// </summary>
public sealed class MdAssembly
{
    private readonly IMdKernel _kernel;
    private readonly Func<IReadOnlyList<MdCandidate>> _scan;
    private readonly Action<string> _report;
    private readonly IWaitClock _clock;
    private readonly Dictionary<string, TimeSpan> _firstSeen = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _failedWith = new(StringComparer.Ordinal);
    private readonly HashSet<string> _said = new(StringComparer.Ordinal);
    private Task? _stuck;

    public MdAssembly(IMdKernel kernel, Func<IReadOnlyList<MdCandidate>> scan, Action<string> report, IWaitClock? clock = null)
    {
        _kernel = kernel;
        _scan = scan;
        _report = report;
        _clock = clock ?? new SystemWaitClock();
    }

    public TimeSpan DegradedGrace { get; init; } = TimeSpan.FromSeconds(10);
    public TimeSpan StartTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Told "md127 started: ..." for each array started, instead of the report (the storage stack
    /// orchestrator says it with what the other stacks brought up).
    /// </summary>
    public Action<string>? OnStarted { get; init; }

    /// <summary>The last pass left something for later that new devices will not bring: a degraded array's grace, a start still blocked.</summary>
    public bool Waiting { get; private set; }

    /// <summary>Arrays started so far: kernel name → plan.</summary>
    public Dictionary<string, MdArrayPlan> Started { get; } = new(StringComparer.Ordinal);

    /// <summary>One pass; true when an array was started (its devices appear for the next look).</summary>
    public bool Activate()
    {
        Waiting = false;
        if (_stuck is { IsCompleted: false })
        {
            Waiting = true;
            Say("capture-agent: md: an earlier array start is still blocked in the kernel; no new arrays until it returns");
            return false;
        }
        var result = MdArrays.Plan(_scan());
        foreach (var line in result.Refused) Say("capture-agent: md: " + line);
        foreach (var line in result.Waiting) Say("capture-agent: md: waiting: " + line);
        bool any = false;
        foreach (var plan in result.Startable)
        {
            if (!_firstSeen.ContainsKey(plan.Uuid)) _firstSeen[plan.Uuid] = _clock.Elapsed;
            string members = string.Join(',', plan.Members.Select(m => m.Device));
            if (_failedWith.TryGetValue(plan.Uuid, out var before) && before == members) continue;
            if (plan.Degraded && _clock.Elapsed - _firstSeen[plan.Uuid] < DegradedGrace)
            {
                Waiting = true;
                Say($"capture-agent: md: {plan.Describe()} has {plan.Members.Count} of {plan.Reference.RaidDisks} members; waiting up to {DegradedGrace.TotalSeconds:0} s for the rest before starting it degraded");
                continue;
            }
            if (Refusal(plan) is { } why)
            {
                Say($"capture-agent: md: {plan.Describe()}: {why}");
                _failedWith[plan.Uuid] = members;
                continue;
            }
            foreach (var note in plan.Notes) Say("capture-agent: md: " + note);
            if (Start(plan, members)) any = true;
            if (_stuck is { IsCompleted: false }) break;
        }
        return any;
    }

    private string? Refusal(MdArrayPlan plan)
    {
        if (_kernel.DriverProblem(plan.Reference) is { } driver) return driver;
        if (plan.Degraded && plan.Reference.Level is 4 or 5 or 6 && !plan.Members.All(m => m.Super.Clean) && !_kernel.StartsDirtyDegraded)
            return "degraded and not shut down cleanly: the kernel will not start it without md_mod.start_dirty_degraded=1 " +
                   "(add it with kernel_cmdline_append; parity written before the crash may be stale)";
        return null;
    }

    private bool Start(MdArrayPlan plan, string members)
    {
        string? md = null;
        var work = Task.Factory.StartNew(() =>
        {
            md = _kernel.Allocate(MdArrays.PreferredNumber(plan.Reference));
            _kernel.Start(md, plan);
        }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        try
        {
            if (!work.Wait(StartTimeout))
            {
                _stuck = work;
                _failedWith[plan.Uuid] = members;
                Say($"capture-agent: md: starting {plan.Describe()} did not finish in {StartTimeout.TotalSeconds:0} s (a member not answering?)");
                return false;
            }
        }
        catch (AggregateException e) when (e.InnerException is IOException or UnauthorizedAccessException)
        {
            _failedWith[plan.Uuid] = members;
            Say($"capture-agent: md: {plan.Describe()} could not be started: {e.InnerException!.Message}");
            return false;
        }
        Started[md!] = plan;
        string missing = plan.Degraded ? $", degraded: {plan.MissingRoles} of {plan.Reference.RaidDisks} members missing" : "";
        string started = $"{md} started: {plan.Describe()} from {members}{missing}";
        if (OnStarted is not null) OnStarted(started);
        else _report("capture-agent: md: " + started);
        return true;
    }

    /// <summary>Each distinct line once: the wait loop calls every quarter second.</summary>
    private void Say(string line)
    {
        if (_said.Add(line)) _report(line);
    }
}

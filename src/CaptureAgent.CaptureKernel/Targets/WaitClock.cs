using System.Diagnostics;

namespace CaptureAgent.Targets;

/// <summary>Time as a wait loop sees it; tests pass a fake one so no test ever sleeps.</summary>
public interface IWaitClock
{
    /// <summary>Time since the wait began.</summary>
    TimeSpan Elapsed { get; }

    void Sleep(TimeSpan duration);
}

/// <summary>The real clock: monotonic (CLOCK_MONOTONIC through Stopwatch), started when made.</summary>
public sealed class SystemWaitClock : IWaitClock
{
    private readonly Stopwatch _watch = Stopwatch.StartNew();

    public TimeSpan Elapsed => _watch.Elapsed;

    public void Sleep(TimeSpan duration)
    {
        if (duration > TimeSpan.Zero) Thread.Sleep(duration);
    }
}

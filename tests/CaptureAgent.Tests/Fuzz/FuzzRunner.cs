using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using CaptureAgent.Tests.Integration;

namespace CaptureAgent.Tests.Fuzz;

/// <summary>One run of the binary in a fuzz case, with what must hold of its result beyond the general rules.</summary>
public sealed record FuzzStep(string[] Args, string? Stdin = null, Func<ChildResult, string?>? Check = null);

/// <summary>A mutated input: what was changed (for the report) and the runs that read it.</summary>
public sealed record FuzzCase(string Mutation, IReadOnlyList<FuzzStep> Steps, byte[] Input);

/// <summary>An input kind: a name, and a way to make case number N (deterministic for a seed) in a directory.</summary>
public interface IFuzzKind
{
    string Name { get; }
    FuzzCase Make(Mutator m, string dir);
}

/// <summary>What a fuzz run of one kind measured, and what went wrong.</summary>
public sealed class FuzzStats
{
    public string Kind = "";
    public int Cases, Runs;
    public long MaxRssKiB;
    public string MaxRssRun = "";
    public double SlowestSeconds, SlowestCpuSeconds;
    public string SlowestRun = "", SlowestCpuRun = "";
    public readonly ConcurrentDictionary<int, int> ExitCodes = new();
    public readonly ConcurrentBag<string> Failures = new();
    private readonly object _lock = new();

    public void Record(ChildResult r, string what)
    {
        lock (_lock)
        {
            Runs++;
            if (r.MaxRssKiB > MaxRssKiB) (MaxRssKiB, MaxRssRun) = (r.MaxRssKiB, what);
            if (r.Seconds > SlowestSeconds) (SlowestSeconds, SlowestRun) = (r.Seconds, what);
            if (r.CpuSeconds > SlowestCpuSeconds) (SlowestCpuSeconds, SlowestCpuRun) = (r.CpuSeconds, what);
        }
        ExitCodes.AddOrUpdate(r.Signaled ? -r.Signal : r.ExitCode, 1, (_, n) => n + 1);
    }

    public override string ToString() =>
        $"{Kind}: {Cases} cases, {Runs} runs, {Failures.Count} failures; exit codes " +
        string.Join(" ", ExitCodes.OrderBy(e => e.Key).Select(e => $"{e.Key}:{e.Value}")) +
        $"; max RSS {MaxRssKiB} KiB ({MaxRssRun}); most CPU {SlowestCpuSeconds:0.00} s ({SlowestCpuRun}); " +
        $"slowest wall {SlowestSeconds:0.000} s ({SlowestRun})";
}

/// <summary>
/// Runs the published binary on mutated inputs, two at a time, for a number of cases or seconds,
/// and holds every run to the rules: no signal, no hang, no internal name in what it prints, peak
/// RSS within the agent's 32 MiB, an exit status of 0-3, and the kind's own checks (an output that
/// exit 0 vouches for must pass `verify`). A failing case keeps its directory (FUZZ_KEEP) and says
/// how to replay it.
/// </summary>
public static partial class FuzzRunner
{
    public const long RssLimitKiB = 32 * 1024;

    // Runtime resource keys and exception names that must never reach a user.
    [GeneratedRegex(@"Exception|\bArg_|\bIO_|ArgumentOutOfRange|\b[A-Z][a-z]+[A-Z][A-Za-z]*_[A-Z][A-Za-z]+")]
    private static partial Regex Leak();

    public static string Binary => Fixtures.Binary;

    /// <summary>FUZZ_SEED, else a fixed default: the same cases on every run unless asked otherwise.</summary>
    public static ulong BaseSeed => ulong.TryParse(Environment.GetEnvironmentVariable("FUZZ_SEED"), NumberStyles.None, CultureInfo.InvariantCulture, out var s) ? s : 20261205;

    /// <summary>The budget of one kind: FUZZ_CASES cases at most, FUZZ_SECONDS seconds at most (defaults for CI).</summary>
    public static (int Cases, double Seconds) Budget(int defaultCases, double defaultSeconds)
    {
        int cases = int.TryParse(Environment.GetEnvironmentVariable("FUZZ_CASES"), out int c) && c > 0 ? c : defaultCases;
        double seconds = double.TryParse(Environment.GetEnvironmentVariable("FUZZ_SECONDS"), NumberStyles.Float, CultureInfo.InvariantCulture, out double t) && t > 0 ? t : defaultSeconds;
        return (cases, seconds);
    }

    /// <summary>
    /// FUZZ_JOBS cases at once, else 2. A case spends little CPU (hundredths of a second per run,
    /// measured) and most of its time being scheduled and writing files: on a loaded machine more
    /// jobs raise the count, at the price of nothing but wall time per run.
    /// </summary>
    public static int Jobs => int.TryParse(Environment.GetEnvironmentVariable("FUZZ_JOBS"), out int j) && j is > 0 and <= 32 ? j : 2;

    public static ulong CaseSeed(string kind, int index, ulong? baseSeed = null)
    {
        ulong h = baseSeed ?? BaseSeed;
        foreach (char ch in kind) h = (h ^ ch) * 0x100000001B3UL;
        return h ^ ((ulong)index * 0x9E3779B97F4A7C15UL);
    }

    public static FuzzStats Run(IFuzzKind kind, string workRoot, int maxCases, double maxSeconds, int parallel = 2)
    {
        var stats = new FuzzStats { Kind = kind.Name };
        var clock = Stopwatch.StartNew();
        int next = -1, ran = 0;
        var workers = Enumerable.Range(0, parallel).Select(_ => Task.Run(() =>
        {
            while (true)
            {
                int i = Interlocked.Increment(ref next);
                if (i >= maxCases || clock.Elapsed.TotalSeconds >= maxSeconds) return;
                RunCase(kind, i, workRoot, stats);
                Interlocked.Increment(ref ran);   // cases that ran, not indices handed out
            }
        })).ToArray();
        Task.WaitAll(workers);
        stats.Cases = ran;
        WriteSummary(stats);
        return stats;
    }

    /// <summary>Runs one case (of FUZZ_SEED's run, or of <paramref name="baseSeed"/>'s: a kept finding); true when it passed.</summary>
    public static bool RunCase(IFuzzKind kind, int index, string workRoot, FuzzStats stats, ulong? baseSeed = null)
    {
        ulong seed = CaseSeed(kind.Name, index, baseSeed);
        string dir = Path.Combine(workRoot, $"{kind.Name}-{index}");
        Directory.CreateDirectory(dir);
        var c = kind.Make(new Mutator(seed), dir);
        string? failure = null;
        foreach (var step in c.Steps)
        {
            var r = Exec(step.Args, dir, step.Stdin);
            string what = $"{kind.Name} case {index} (seed {seed}): {string.Join(' ', step.Args.Select(a => Path.GetFileName(a)))}";
            stats.Record(r, what);
            failure = Judge(r, c.Input) ?? step.Check?.Invoke(r);
            if (failure is not null)
            {
                failure = $"{what}: {failure} [mutation: {c.Mutation}] stderr: {Tail(r.Stderr)}";
                break;
            }
        }
        if (failure is null)
        {
            Directory.Delete(dir, recursive: true);
            return true;
        }
        stats.Failures.Add(failure);
        if (Environment.GetEnvironmentVariable("FUZZ_KEEP") is { Length: > 0 } keep)
        {
            Directory.CreateDirectory(keep);
            string kept = Path.Combine(keep, Path.GetFileName(dir));
            if (Directory.Exists(kept)) Directory.Delete(kept, true);
            Directory.Move(dir, kept);
            File.WriteAllText(Path.Combine(kept, "failure.txt"), failure + "\n");
        }
        else Directory.Delete(dir, recursive: true);
        return false;
    }

    /// <summary>The binary with a time limit: a compact input is read in well under a second.</summary>
    public static ChildResult Exec(string[] args, string dir, string? stdin = null) =>
        ChildProcess.Run(Binary, args, dir, TimeSpan.FromSeconds(Timeout), stdin);

    private static double Timeout => double.TryParse(Environment.GetEnvironmentVariable("FUZZ_TIMEOUT"), NumberStyles.Float, CultureInfo.InvariantCulture, out double t) ? t : 30;

    /// <summary>The rules every run is held to; null when it kept them.</summary>
    public static string? Judge(ChildResult r, byte[] input)
    {
        if (r.TimedOut) return $"no result after {r.Seconds:0} s (hang)";
        if (r.Signaled) return $"killed by signal {r.Signal}";
        if (r.ExitCode is not (0 or 1 or 2 or 3)) return $"exit status {r.ExitCode}";
        if (r.MaxRssKiB > RssLimitKiB) return $"peak RSS {r.MaxRssKiB} KiB, more than {RssLimitKiB} KiB";
        string inputText = Encoding.Latin1.GetString(input);
        foreach (Match m in Leak().Matches(r.Stderr + "\n" + r.Stdout))
            if (!inputText.Contains(m.Value, StringComparison.Ordinal)) return $"internal name in the output: '{m.Value}'";
        return null;
    }

    /// <summary>A check for an output file that exit 0 vouches for: `verify` must call it complete (3 allowed after exit 3).</summary>
    public static Func<ChildResult, string?> Verified(string output, string dir) => r =>
    {
        if (r.ExitCode is not (0 or 3) || !File.Exists(output)) return null;
        var v = Exec(["verify", output], dir);
        if (Judge(v, []) is { } bad) return $"verify of the output: {bad}";
        if (r.ExitCode == 0 && v.ExitCode != 0) return $"exit 0, but verify says (exit {v.ExitCode}): {Tail(v.Stdout)}";
        if (r.ExitCode == 3 && v.ExitCode == 1) return $"exit 3, and verify calls the output corrupt: {Tail(v.Stdout)}";
        return null;
    };

    private static string Tail(string s) => s.Length > 400 ? "..." + s[^400..].ReplaceLineEndings(" | ") : s.ReplaceLineEndings(" | ");

    /// <summary>The figures of a run, also kept in FUZZ_REPORT (a directory) for a long run by hand.</summary>
    private static void WriteSummary(FuzzStats stats)
    {
        if (Environment.GetEnvironmentVariable("FUZZ_REPORT") is not { Length: > 0 } dir) return;
        Directory.CreateDirectory(dir);
        var text = new StringBuilder().AppendLine(stats.ToString());
        foreach (var f in stats.Failures) text.AppendLine("FAIL " + f);
        File.WriteAllText(Path.Combine(dir, $"{stats.Kind}.txt"), text.ToString());
    }
}

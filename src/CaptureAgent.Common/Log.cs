using System.Diagnostics;
using CaptureAgent.Native;

namespace CaptureAgent.Common;

/// <summary>
/// What the messages are, as makedumpfile's --message-level bits name them: a run shows the kinds
/// its mask holds (makedumpfile's default 7: progress, common messages, errors).
/// </summary>
[Flags]
public enum LogKinds
{
    None = 0,
    /// <summary>The progress line redrawn on a terminal.</summary>
    Progress = 1,
    /// <summary>What was done: the summary lines (<see cref="Log.Info"/>).</summary>
    Common = 2,
    /// <summary>Errors and warnings.</summary>
    Errors = 4,
    /// <summary>Details for finding a problem (<see cref="Log.Detail"/>).</summary>
    Debug = 8,
    /// <summary>The statistics of a dump: pages excluded by reason, times (<see cref="Log.Report"/>).</summary>
    Report = 16,
    All = 31,
}

/// <summary>
/// Messages go to stderr (stdout may carry a flattened dump), those of the kinds <see cref="Shown"/>
/// holds. Writes never throw: a closed or full stderr must not kill a capture.
/// </summary>
public static class Log
{
    /// <summary>makedumpfile's default message level, 7.</summary>
    public const LogKinds Default = LogKinds.Progress | LogKinds.Common | LogKinds.Errors;

    public static LogKinds Shown { get; set; } = Default;

    /// <summary>
    /// The older scale, kept for the callers that set it: 0 errors (and warnings), 1 the same,
    /// 2 the default, 3 and up everything.
    /// </summary>
    public static int Level
    {
        get => Shown.HasFlag(LogKinds.Debug) ? 3 : Shown.HasFlag(LogKinds.Common) ? 2 : Shown.HasFlag(LogKinds.Errors) ? 1 : 0;
        set => Shown = value switch { <= 1 => LogKinds.Errors, 2 => Default, _ => LogKinds.All };
    }

    public static void Reset() => Shown = Default;

    private static readonly bool StderrIsTerminal = SafeIsATty(2);
    private static int _progressLen;

    public static void Error(string message) => Write(LogKinds.Errors, $"capture-agent: error: {message}");
    public static void Warn(string message) => Write(LogKinds.Errors, $"capture-agent: warning: {message}");
    public static void Info(string message) => Write(LogKinds.Common, message);
    public static void Detail(string message) => Write(LogKinds.Debug, message);
    public static void Report(string message) => Write(LogKinds.Report, message);

    private static void Write(LogKinds kind, string text)
    {
        if ((Shown & kind) == 0) return;
        try
        {
            ClearProgress();
            Console.Error.WriteLine(ErrorText.Scrub(text));
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }

    /// <summary>A progress reporter that redraws one line on a terminal at most 5 times a second.</summary>
    public static Action<ulong, ulong>? Progress(string what)
    {
        if (!StderrIsTerminal || !Shown.HasFlag(LogKinds.Progress)) return null;
        var clock = Stopwatch.StartNew();
        long lastDraw = -1000;
        return (done, total) =>
        {
            long now = clock.ElapsedMilliseconds;
            if (done < total && now - lastDraw < 200) return;
            lastDraw = now;
            double pct = total == 0 ? 100 : 100.0 * done / total;
            double secs = Math.Max(now / 1000.0, 0.001);
            double mbps = done * 4096.0 / secs / 1e6;
            string eta = done == 0 || done >= total ? "" : $" ETA {TimeSpan.FromSeconds((total - done) * secs / done):mm\\:ss}";
            string line = $"{what}: {pct,5:0.0}% ({done}/{total} pages) {mbps:0} MB/s{eta}";
            try
            {
                Console.Error.Write("\r" + line.PadRight(_progressLen));
                _progressLen = line.Length;
                if (done >= total) { Console.Error.WriteLine(); _progressLen = 0; }
            }
            catch (IOException) { }
        };
    }

    private static void ClearProgress()
    {
        if (_progressLen == 0) return;
        Console.Error.Write("\r" + new string(' ', _progressLen) + "\r");
        _progressLen = 0;
    }

    private static bool SafeIsATty(int fd)
    {
        try { return Libc.IsATty(fd) == 1; }
        catch (EntryPointNotFoundException) { return false; }
    }
}

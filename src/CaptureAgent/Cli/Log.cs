using System.Diagnostics;
using CaptureAgent.Native;

namespace CaptureAgent.Cli;

/// <summary>
/// Messages go to stderr (stdout may carry a flattened dump). Level 0 errors only,
/// 1 adds warnings, 2 the summary, 3 and up details. Writes never throw: a closed or full
/// stderr must not kill a capture.
/// </summary>
public static class Log
{
    public static int Level { get; set; } = 2;
    private static readonly bool StderrIsTerminal = SafeIsATty(2);
    private static int _progressLen;

    public static void Error(string message) => Write(0, $"capture-agent: error: {message}");
    public static void Warn(string message) => Write(1, $"capture-agent: warning: {message}");
    public static void Info(string message) => Write(2, message);
    public static void Detail(string message) => Write(3, message);

    private static void Write(int level, string text)
    {
        if (level > Level) return;
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
        if (!StderrIsTerminal || Level < 2) return null;
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

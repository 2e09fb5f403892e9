using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;

namespace CaptureAgent.Tests.Fuzz;

/// <summary>
/// How one run of a program ended: exit status or signal, wall time, CPU time (user + system: on a
/// loaded machine the wall time says more about the neighbours than the program), peak RSS.
/// </summary>
public sealed record ChildResult(int ExitCode, int Signal, bool TimedOut, double Seconds, long MaxRssKiB, string Stdout, string Stderr, double CpuSeconds = 0)
{
    public bool Signaled => Signal != 0;
}

/// <summary>
/// Runs a program under GNU time (/usr/bin/time), which forks it and reports its peak resident
/// memory and how it ended. Not wait4 from here: a child of this large test process counts the
/// parent's memory in its own peak (exec records the memory it replaces), while time is small.
/// The pair is started with posix_spawn in a process group of its own, so a run past its time
/// limit is killed whole (SIGKILL) and reported as timed out. Standard input comes from a file or
/// /dev/null, standard output and error go to files read back afterwards.
/// </summary>
public static partial class ChildProcess
{
    private const int O_RDONLY = 0, O_WRONLY = 1, O_CREAT = 0x40, O_TRUNC = 0x200, SIGKILL = 9;

    [LibraryImport("libc", EntryPoint = "posix_spawn_file_actions_init")]
    private static partial int FileActionsInit(nint actions);

    [LibraryImport("libc", EntryPoint = "posix_spawn_file_actions_destroy")]
    private static partial int FileActionsDestroy(nint actions);

    [LibraryImport("libc", EntryPoint = "posix_spawn_file_actions_addopen", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int FileActionsAddOpen(nint actions, int fd, string path, int flags, uint mode);

    [LibraryImport("libc", EntryPoint = "posix_spawn", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int PosixSpawn(out int pid, string path, nint actions, nint attributes, nint[] argv, nint[] envp);

    [LibraryImport("libc", EntryPoint = "posix_spawnattr_init")]
    private static partial int AttrInit(nint attributes);

    [LibraryImport("libc", EntryPoint = "posix_spawnattr_destroy")]
    private static partial int AttrDestroy(nint attributes);

    [LibraryImport("libc", EntryPoint = "posix_spawnattr_setflags")]
    private static partial int AttrSetFlags(nint attributes, short flags);

    [LibraryImport("libc", EntryPoint = "posix_spawnattr_setpgroup")]
    private static partial int AttrSetPgroup(nint attributes, int pgroup);

    private const string Time = "/usr/bin/time", Prlimit = "/usr/bin/prlimit";

    /// <summary>8 GiB: above any sparse dump a compact fuzz input makes, far below a disk.</summary>
    private const long FileSizeLimit = 8L << 30;
    private const short POSIX_SPAWN_SETPGROUP = 2;

    [LibraryImport("libc", EntryPoint = "wait4", SetLastError = true)]
    private static partial int Wait4(int pid, out int status, int options, nint rusage);


    [LibraryImport("libc", EntryPoint = "kill")]
    private static partial int Kill(int pid, int signal);

    public static ChildResult Run(string file, IReadOnlyList<string> args, string workDir, TimeSpan timeout, string? stdinFile = null,
        IReadOnlyDictionary<string, string>? environment = null)
    {
        if (!File.Exists(Time)) throw new InvalidOperationException($"{Time} is missing (GNU time measures peak RSS): apt-get install time");
        if (!File.Exists(Prlimit)) throw new InvalidOperationException($"{Prlimit} is missing (it bounds what a run may write): apt-get install util-linux");
        string outFile = Path.Combine(workDir, "stdout.txt"), errFile = Path.Combine(workDir, "stderr.txt"), timeFile = Path.Combine(workDir, "time.txt");
        var strings = new List<nint>();
        nint actions = Marshal.AllocHGlobal(256), attributes = Marshal.AllocHGlobal(512);
        try
        {
            // A file limit (RLIMIT_FSIZE): a run that writes without end is stopped by SIGXFSZ, a signal
            // the fuzz rules fail on, before it fills the disk the whole machine shares.
            string[] command = [Prlimit, $"--fsize={FileSizeLimit}", Time, "-f", "%M %x %U %S", "-o", timeFile, file, .. args];
            nint[] argv = [.. command.Select(a => Keep(strings, a)), 0];
            var env = Environment.GetEnvironmentVariables().Cast<System.Collections.DictionaryEntry>()
                .ToDictionary(e => (string)e.Key, e => (string?)e.Value ?? "");
            foreach (var (k, v) in environment ?? new Dictionary<string, string>()) env[k] = v;
            nint[] envp = [.. env.Select(e => Keep(strings, $"{e.Key}={e.Value}")), 0];
            FileActionsInit(actions);
            FileActionsAddOpen(actions, 0, stdinFile ?? "/dev/null", O_RDONLY, 0);
            FileActionsAddOpen(actions, 1, outFile, O_WRONLY | O_CREAT | O_TRUNC, 0x180);
            FileActionsAddOpen(actions, 2, errFile, O_WRONLY | O_CREAT | O_TRUNC, 0x180);
            AttrInit(attributes);
            AttrSetFlags(attributes, POSIX_SPAWN_SETPGROUP);
            AttrSetPgroup(attributes, 0);
            var clock = System.Diagnostics.Stopwatch.StartNew();
            int err = PosixSpawn(out int pid, Prlimit, actions, attributes, argv, envp);
            if (err != 0) throw new InvalidOperationException($"posix_spawn {Prlimit}: {Marshal.GetPInvokeErrorMessage(err)}");
            var waiter = Task.Run(() =>
            {
                int r;
                do r = Wait4(pid, out _, 0, 0);
                while (r < 0 && Marshal.GetLastPInvokeError() == 4 /* EINTR */);
                return r;
            });
            bool timedOut = !waiter.Wait(timeout);
            if (timedOut)
            {
                Kill(-pid, SIGKILL);   // time and the program: their own process group
                waiter.Wait();
            }
            double seconds = clock.Elapsed.TotalSeconds;
            var (exitCode, signal, maxRss, cpu) = ReadTime(timeFile, timedOut);
            return new ChildResult(exitCode, signal, timedOut, seconds, maxRss, ReadLimited(outFile), ReadLimited(errFile), cpu);
        }
        finally
        {
            FileActionsDestroy(actions);
            AttrDestroy(attributes);
            Marshal.FreeHGlobal(actions);
            Marshal.FreeHGlobal(attributes);
            foreach (var s in strings) Marshal.FreeHGlobal(s);
        }
    }

    /// <summary>GNU time's report: "Command terminated by signal N" when so, then "MAXRSS_KIB EXIT_STATUS USER_S SYSTEM_S".</summary>
    private static (int ExitCode, int Signal, long MaxRssKiB, double CpuSeconds) ReadTime(string path, bool timedOut)
    {
        var lines = File.Exists(path) ? File.ReadAllLines(path) : [];
        int signal = 0;
        foreach (var l in lines)
            if (l.StartsWith("Command terminated by signal ", StringComparison.Ordinal)) int.TryParse(l[29..], out signal);
        var last = lines.LastOrDefault(l => l.Length > 0 && char.IsAsciiDigit(l[0]))?.Split(' ');
        if (last is null || last.Length < 4)
            return timedOut ? (-1, SIGKILL, 0, 0) : throw new InvalidOperationException($"{path}: no report from {Time}");
        double cpu = double.Parse(last[2], CultureInfo.InvariantCulture) + double.Parse(last[3], CultureInfo.InvariantCulture);
        return (signal != 0 ? -1 : int.Parse(last[1]), signal, long.Parse(last[0]), cpu);
    }

    private static nint Keep(List<nint> strings, string s)
    {
        var bytes = Encoding.UTF8.GetBytes(s + "\0");
        nint p = Marshal.AllocHGlobal(bytes.Length);
        Marshal.Copy(bytes, 0, p, bytes.Length);
        strings.Add(p);
        return p;
    }

    /// <summary>At most the first 1 MiB of an output file: a run that floods its output is judged on its start.</summary>
    private static string ReadLimited(string path)
    {
        if (!File.Exists(path)) return "";
        using var f = File.OpenRead(path);
        var buf = new byte[(int)Math.Min(f.Length, 1 << 20)];
        f.ReadExactly(buf);
        return Encoding.UTF8.GetString(buf);
    }
}

using System.Diagnostics;
using System.Text;
using CaptureAgent.Capture;
using CaptureAgent.Config;
using CaptureAgent.Native;
using Microsoft.Win32.SafeHandles;
using CaptureAgent.Common;

namespace CaptureAgent.Boot;

/// <summary>
/// The capture itself, as a child of the capture kernel's PID 1 (the same binary, started with
/// <see cref="Command"/>): runs the target chain from a given target and tells PID 1 how it goes,
/// one line at a time on its standard output (a pipe), which it first moves off fd 1 so that hooks
/// and other children write to the console instead:
/// <code>
///   target I          target I (0-based) is being tried
///   where I PATH      target I writes to PATH (a dump directory, a device, a remote path)
///   alive             work goes on (at most once a second: a window filtered, a batch of pages written)
///   result I STATE    target I ended: complete, incomplete or failed
///   peak KIB          its peak resident memory (VmHWM)
///   done              the chain and its post hooks are over
/// </code>
/// If it dies or falls silent, PID 1 logs it and starts another one at the next target.
/// </summary>
public static class CaptureWorker
{
    public const string Command = "--capture-worker";

    public static int Run(string[] args)
    {
        Log.Level = 2;
        using var channel = Channel.Open();
        try
        {
            var config = AgentConfig.Load(AgentConfig.DefaultPath);   // PID 1 has reported its errors
            string cmdline = File.Exists("/proc/cmdline") ? File.ReadAllText("/proc/cmdline") : "";
            var chain = NewChain(config, cmdline, channel);
            if (args.Length == 3 && args[1] == "--post-hooks")
            {
                chain.RunPostHooks(args[2], Environment.GetEnvironmentVariable("CAPTURE_AGENT_DUMP"));
                channel.Send("done");
                return ExitCodes.Ok;
            }
            if (args.Length != 3 || args[1] != "--first" || !int.TryParse(args[2], out int first))
            {
                Log.Error($"{Command}: expected --first N or --post-hooks STATUS");
                return ExitCodes.Usage;
            }
            var outcomes = chain.Run(first);
            channel.Send($"peak {ProcessMemory.PeakRssKiB()}");
            channel.Send("done");
            var last = outcomes[^1];
            return last.Complete ? ExitCodes.Ok : last.Saved ? ExitCodes.Degraded : ExitCodes.Failed;
        }
        catch (Exception e)
        {
            Log.Error($"capture failed: {ErrorText.Of(e)}");
            return ExitCodes.Failed;
        }
    }

    private static CaptureChain NewChain(AgentConfig config, string cmdline, Channel channel)
    {
        var faults = FaultInjection.FromCommandLine(cmdline);
        int current = -1;
        return new CaptureChain(config, "/proc/vmcore", Log.Info, "/mnt", CaptureCommandLine.Value(cmdline, CaptureCommandLine.BootIdParameter))
        {
            ProgressFactory = () =>
            {
                var console = Log.Progress("capture-agent: saving vmcore");
                return (done, total) =>
                {
                    console?.Invoke(done, total);
                    channel.Alive();
                    faults?.OnProgress(current, done, total);
                };
            },
            Heartbeat = channel.Alive,
            TargetStarting = i => { current = i; channel.Send($"target {i}"); },
            TargetWhere = (i, where) => channel.Send($"where {i} {where.ReplaceLineEndings(" ")}"),
            TargetFinished = (i, o) => channel.Send($"result {i} {(o.Complete ? "complete" : o.Saved ? "incomplete" : "failed")}"),
        };
    }

    /// <summary>The line channel to PID 1: the pipe that was fd 1, moved to a close-on-exec descriptor.</summary>
    private sealed class Channel : IDisposable
    {
        private readonly FileStream? _out;
        private readonly Stopwatch _sinceAlive = Stopwatch.StartNew();

        private Channel(FileStream? output) => _out = output;

        public static Channel Open()
        {
            int fd = Libc.DupCloexec(1);
            if (fd < 0) return new Channel(null);
            // From now on fd 1 is the console, for the children (hooks, ssh) and for anything printed.
            Libc.Dup2(2, 1);
            return new Channel(new FileStream(new SafeFileHandle(fd, ownsHandle: true), FileAccess.Write, 1));
        }

        public void Alive()
        {
            if (_sinceAlive.ElapsedMilliseconds < 1000) return;
            Send("alive");
        }

        public void Send(string line)
        {
            _sinceAlive.Restart();
            if (_out is null) return;
            try
            {
                _out.Write(Encoding.UTF8.GetBytes(line + "\n"));
                _out.Flush();
            }
            catch (IOException) { }   // PID 1 went away: nothing to tell
        }

        public void Dispose() => _out?.Dispose();
    }
}

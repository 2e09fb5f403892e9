using System.Diagnostics;
using System.Text;

namespace CaptureAgent.Tests.Integration;

/// <summary>
/// Real vmcores made by scripts/fixtures.sh (a Debian kernel crashed under qemu and captured),
/// and the external oracles. Missing fixtures fail loudly: CI makes them before the tests run.
/// </summary>
public static class Fixtures
{
    public static string Cache => Environment.GetEnvironmentVariable("CAPTURE_AGENT_CACHE")
        ?? Path.Combine(Environment.GetEnvironmentVariable("HOME") ?? "/root", ".cache", "capture-agent");

    public static string Dir(string name)
    {
        var d = Path.Combine(Cache, "vmcores", name);
        if (!File.Exists(Path.Combine(d, "vmcore")))
            throw new InvalidOperationException($"fixture {d}/vmcore is missing: run scripts/fixtures.sh first");
        return d;
    }

    public static string Vmcore(string name) => Path.Combine(Dir(name), "vmcore");
    public static string Vmlinux(string name) => Path.Combine(Dir(name), "vmlinux");
    public static string Marker(string name) => File.ReadAllText(Path.Combine(Dir(name), "marker.txt")).Trim();

    /// <summary>The NativeAOT binary published by .ci/run (or CAPTURE_AGENT_BIN).</summary>
    public static string Binary
    {
        get
        {
            var env = Environment.GetEnvironmentVariable("CAPTURE_AGENT_BIN");
            if (env is not null) return env;
            var dir = AppContext.BaseDirectory;
            while (dir is not null && !File.Exists(Path.Combine(dir, "CaptureAgent.sln"))) dir = Path.GetDirectoryName(dir);
            var bin = Path.Combine(dir ?? ".", "artifacts", "bin", "capture-agent");
            if (!File.Exists(bin)) throw new InvalidOperationException($"{bin} is missing: publish it first (.ci/run does)");
            return bin;
        }
    }

    public static string OracleScript(string name) => Path.Combine(AppContext.BaseDirectory, "oracles", name);

    public sealed record Run(int ExitCode, string Stdout, string Stderr);

    public static Run Exec(string file, IEnumerable<string> args, string? stdin = null, int timeoutSeconds = 600)
    {
        var psi = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (stdin is not null) p.StandardInput.Write(stdin);
        p.StandardInput.Close();
        if (!p.WaitForExit(timeoutSeconds * 1000))
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"{file} {string.Join(' ', args)} did not finish in {timeoutSeconds} s");
        }
        return new Run(p.ExitCode, stdout.Result, stderr.Result);
    }

    public static string Sh(string command, int timeoutSeconds = 600) =>
        Exec("/bin/bash", ["-c", command], timeoutSeconds: timeoutSeconds) is var r && r.ExitCode == 0
            ? r.Stdout
            : throw new InvalidOperationException($"`{command}` failed: {r.Stderr}{r.Stdout}");

    public static string Makedumpfile => "/usr/bin/makedumpfile";

    /// <summary>An upstream makedumpfile new enough for 6.12 kernels, when the environment names one.</summary>
    public static string? UpstreamMakedumpfile => Environment.GetEnvironmentVariable("MAKEDUMPFILE_UPSTREAM") is { Length: > 0 } p && File.Exists(p) ? p : null;
}

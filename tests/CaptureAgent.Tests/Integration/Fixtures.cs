using Xunit;
using System.Diagnostics;
using System.Text;

namespace CaptureAgent.Tests.Integration;

/// <summary>
/// Real vmcores made by scripts/fixtures.sh (a Debian kernel crashed under qemu and captured),
/// and the external oracles. Missing fixtures fail loudly: CI makes them before the tests run.
/// </summary>
public static class Fixtures
{
    private static readonly Lock StaticPublish = new();

    /// <summary>
    /// The statically linked agent (the capture initramfs's /init and the package's binary):
    /// CAPTURE_AGENT_STATIC_BIN, else artifacts/static, published here as scripts/e2e and
    /// scripts/build-deb publish it when absent or older than a source. One publish at a time: the
    /// test classes that need it run in parallel.
    /// </summary>
    /// <summary>
    /// The repository's root: the first directory above the test binary that holds CaptureAgent.sln.
    /// The one way tests find scripts/, src/ and artifacts/, wherever the test file or the build output sits.
    /// </summary>
    public static string RepoRoot
    {
        get
        {
            string? dir = AppContext.BaseDirectory;
            while (dir is not null && !File.Exists(Path.Combine(dir, "CaptureAgent.sln"))) dir = Path.GetDirectoryName(dir);
            return dir ?? throw new InvalidOperationException($"no CaptureAgent.sln above {AppContext.BaseDirectory}");
        }
    }

    public static string StaticAgent()
    {
        if (Environment.GetEnvironmentVariable("CAPTURE_AGENT_STATIC_BIN") is { Length: > 0 } env) return env;
        string repo = RepoRoot;
        string bin = Path.Combine(repo, "artifacts", "static", "capture-agent");
        lock (StaticPublish)
        {
            var newestSource = Directory.EnumerateFiles(Path.Combine(repo, "src"), "*.cs", SearchOption.AllDirectories)
                .Where(f => !f.Contains("/obj/", StringComparison.Ordinal)).Append(Path.Combine(repo, "Directory.Build.props")).Max(File.GetLastWriteTimeUtc);
            if (!File.Exists(bin) || File.GetLastWriteTimeUtc(bin) < newestSource)
            {
                var r = Exec("dotnet", ["publish", Path.Combine(repo, "src/CaptureAgent/CaptureAgent.csproj"), "-c", "Release", "-p:StaticBuild=true",
                    "--artifacts-path", Path.Combine(repo, "artifacts/static-build"), "-o", Path.Combine(repo, "artifacts/static"), "-v", "quiet", "-nologo"], timeoutSeconds: 1800);
                Assert.True(r.ExitCode == 0, r.Stdout + r.Stderr);
            }
        }
        return bin;
    }

    public static string Cache => Environment.GetEnvironmentVariable("CAPTURE_AGENT_CACHE")
        ?? Path.Combine(Environment.GetEnvironmentVariable("HOME") ?? "/root", ".cache", "capture-agent");

    public static string Dir(string name)
    {
        TestCategory.Require(TestCategory.Fixture);
        var d = Path.Combine(Cache, "vmcores", name);
        if (!File.Exists(Path.Combine(d, "vmcore")))
            throw new InvalidOperationException($"fixture {d}/vmcore is missing: run scripts/fixtures.sh first");
        return d;
    }

    /// <summary>The kernel package a fixture series uses, as scripts/kernels decided it (never named in a test).</summary>
    public sealed record KernelChoice(string Series, string Package, string Version, string Release, string Flavour,
        string? RootInCache = null, string ModuleCompression = "package")
    {
        /// <summary>
        /// The tree: dpkg -x of the package (boot/ and lib/modules or usr/lib/modules), or for a derived
        /// series (e.g. its modules recompressed) the tree the fixture scripts made from it.
        /// </summary>
        public string Root => Path.Combine(Cache, RootInCache ?? Path.Combine("kernels", Release, "root"));
        public string Vmlinux => Path.Combine(Cache, "kernels", Release, "vmlinux");
    }

    /// <summary>
    /// The selection of <paramref name="series"/> (e.g. "6.1", "6.12") from $CACHE/selection/SERIES.env,
    /// which scripts/lib/kernel-selection.sh writes; missing means the fixture scripts never ran.
    /// </summary>
    public static KernelChoice Kernel(string series)
    {
        TestCategory.Require(TestCategory.Fixture);
        string file = Path.Combine(Cache, "selection", series + ".env");
        if (!File.Exists(file))
            throw new InvalidOperationException($"no kernel selected for series {series} ({file} is missing): run scripts/kernels resolve {series} and scripts/fixtures.sh {series}");
        var values = File.ReadAllLines(file).Select(l => l.Split('=', 2)).Where(p => p.Length == 2).ToDictionary(p => p[0], p => p[1]);
        string Field(string key) => values.TryGetValue(key, out var v) && v.Length > 0 ? v
            : throw new InvalidOperationException($"{file} has no {key}=: run scripts/kernels resolve {series}");
        return new KernelChoice(series, Field("package"), Field("version"), Field("release"), Field("flavour"),
            values.GetValueOrDefault("root"), values.GetValueOrDefault("module_compression") ?? "package");
    }

    /// <summary>uname -r of the kernel a fixture (e.g. "6.1-1024") was made from.</summary>
    public static string Release(string name) => File.ReadAllText(Path.Combine(Dir(name), "kernel-release.txt")).Trim();

    public static string Vmcore(string name) => Path.Combine(Dir(name), "vmcore");

    /// <summary>QEMU's dump-guest-memory ELF that scripts/qemu-dump.sh makes (e.g. "6.1-1024-qemu").</summary>
    public static string QemuElf(string name)
    {
        TestCategory.Require(TestCategory.Fixture);
        string elf = Path.Combine(Cache, "vmcores", name, "vmcore.elf");
        return File.Exists(elf) ? elf : throw new InvalidOperationException($"fixture {elf} is missing: run scripts/qemu-dump.sh first");
    }
    public static string Vmlinux(string name) => Path.Combine(Dir(name), "vmlinux");
    public static string Marker(string name) => File.ReadAllText(Path.Combine(Dir(name), "marker.txt")).Trim();

    /// <summary>The NativeAOT binary published by .ci/run (or CAPTURE_AGENT_BIN).</summary>
    public static string Binary
    {
        get
        {
            TestCategory.Require(TestCategory.Binary);
            var env = Environment.GetEnvironmentVariable("CAPTURE_AGENT_BIN");
            if (env is not null) return env;
            var bin = Path.Combine(RepoRoot, "artifacts", "bin", "capture-agent");
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

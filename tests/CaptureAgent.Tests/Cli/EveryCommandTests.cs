using System.Diagnostics;
using CaptureAgent.Cli;
using CaptureAgent.Compression;
using CaptureAgent.Dump;
using CaptureAgent.Filtering;
using CaptureAgent.Output;
using CaptureAgent.Vmcore;
using CaptureAgent.Tests.Integration;
using CaptureAgent.Tests.Synthetic;
using Xunit;
using CaptureAgent.Common;
using CaptureAgent.Formats;

namespace CaptureAgent.Tests.Cli;

/// <summary>
/// Every command and subcommand of the help table, run as the published binary would be by a new
/// user: --help prints that command's help and does nothing else; an unknown option or an extra
/// argument is a one-line usage error; an existing output is kept unless -f.
/// </summary>
[Trait("Category", "Binary")]
public class EveryCommandTests
{
    /// <summary>A scratch working directory, $HOME and $CAPTURE_AGENT_ROOT: what a run must leave as it found them.</summary>
    private sealed class Sandbox : IDisposable
    {
        private readonly TempDir _dir = new();
        public string Cwd => Dir("cwd");
        public string Home => Dir("home");
        public string Root => Dir("root");
        public string Files => Dir("files");

        private string Dir(string name) => Directory.CreateDirectory(_dir.File(name)).FullName;

        public Fixtures.Run Run(params string[] args) => Shell(null, args);

        /// <summary>The binary with <paramref name="args"/>, standard input from a file (or empty).</summary>
        public Fixtures.Run Shell(string? stdinFile, string[] args)
        {
            var psi = new ProcessStartInfo(stdinFile is null ? Fixtures.Binary : "/bin/sh")
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                RedirectStandardInput = true,
                UseShellExecute = false,
                WorkingDirectory = Cwd,
            };
            if (stdinFile is not null)
            {
                psi.ArgumentList.Add("-c");
                psi.ArgumentList.Add("exec \"$0\" \"$@\" < \"$STDIN_FILE\"");
                psi.ArgumentList.Add(Fixtures.Binary);
                psi.Environment["STDIN_FILE"] = stdinFile;
            }
            foreach (var a in args) psi.ArgumentList.Add(a);
            psi.Environment["HOME"] = Home;
            psi.Environment[CaptureAgent.Host.HostLayout.RootVariable] = Root;
            using var p = Process.Start(psi)!;
            var stdout = p.StandardOutput.ReadToEndAsync();
            var stderr = p.StandardError.ReadToEndAsync();
            p.StandardInput.Close();
            if (!p.WaitForExit(60_000))
            {
                p.Kill(entireProcessTree: true);
                throw new TimeoutException($"capture-agent {string.Join(' ', args)} did not finish in 60 s");
            }
            return new Fixtures.Run(p.ExitCode, stdout.Result, stderr.Result);
        }

        public void AssertUntouched(string what)
        {
            foreach (var dir in new[] { Cwd, Home, Root })
                Assert.True(!Directory.EnumerateFileSystemEntries(dir).Any(),
                    $"{what} left {string.Join(", ", Directory.EnumerateFileSystemEntries(dir))}");
        }

        public void Dispose() => _dir.Dispose();
    }

    /// <summary>Every command and subcommand as the words that name it, with the help it has.</summary>
    public static IEnumerable<(string[] Words, string Usage)> Commands()
    {
        foreach (var doc in CommandHelp.All)
        {
            yield return ([doc.Name], doc.Usage);
            if (BashCompletion.Subcommands.TryGetValue(doc.Name, out var subs))
                foreach (var sub in subs) yield return ([doc.Name, sub], doc.Usage);
        }
        // makedumpfile's forms and --version.
        yield return (["--dump-dmesg"], CommandHelp.Find("dmesg")!.Usage);
        yield return (["-R"], CommandHelp.Find("rearrange")!.Usage);
        yield return (["-d", "31"], CommandHelp.Find("dump")!.Usage);
        yield return (["--version"], CommandHelp.Find("version")!.Usage);
    }

    [Fact]
    public void HelpAnywhereOnTheLinePrintsTheHelpAndDoesNothingElse()
    {
        using var box = new Sandbox();
        int runs = 0;
        foreach (var (words, usage) in Commands())
        {
            List<string[]> lines =
            [
                [.. words, "--help"],
                [.. words, "-h"],
                [words[0], "--help", .. words[1..]],
                // Help wins over a mistake elsewhere on the line, and over an operand that would be written.
                [.. words, "--bogus", "--help"],
                [.. words, "file-that-must-not-appear", "--help"],
            ];
            foreach (var line in lines)
            {
                var r = box.Run(line);
                string shown = "capture-agent " + string.Join(' ', line);
                Assert.True(r.ExitCode == 0, $"{shown}: exit {r.ExitCode}, stderr: {r.Stderr}");
                Assert.True(r.Stdout == usage + "\n", $"{shown}: printed\n{r.Stdout}");
                Assert.True(r.Stderr.Length == 0, $"{shown}: said on stderr: {r.Stderr}");
                box.AssertUntouched(shown);
                runs++;
            }
        }
        Assert.True(runs >= 5 * (CommandHelp.All.Length + 10), $"only {runs} runs");
    }

    [Fact]
    public void AnUnknownOptionIsAUsageErrorEverywhere()
    {
        using var box = new Sandbox();
        foreach (var (words, _) in Commands())
        {
            string[] misplaced = words.Length == 1 ? [.. words, "-Z"] : [words[0], "--bogus", .. words[1..]];
            // What arms, disarms or crashes the machine is tried in one form only: should the reader
            // ever let an option through, this test must not run such a command more than once.
            string[][] lines = words[0] is "load" or "unload" or "test" ? [[.. words, "--bogus"]] : [[.. words, "--bogus"], [.. words, "--bogus=1"], misplaced];
            foreach (string[] line in lines)
            {
                var r = box.Run(line);
                AssertUsageError(r, "capture-agent " + string.Join(' ', line), line.Contains("-Z") ? "-Z" : "--bogus");
                box.AssertUntouched(string.Join(' ', line));
            }
        }
    }

    /// <summary>What takes no operand (or fewer than given) says so instead of ignoring it.</summary>
    [Theory]
    [InlineData("status", "extra")]
    [InlineData("load", "--dry-run", "extra")]   // --dry-run: inert even if the extra word were ignored (unload has no such form: not run)
    [InlineData("capture", "extra")]
    [InlineData("savecore", "extra")]
    [InlineData("estimate", "extra")]
    [InlineData("crashkernel", "extra")]
    [InlineData("install", "extra")]
    [InlineData("uninstall", "extra")]
    [InlineData("propagate", "extra")]
    [InlineData("selftest", "extra")]
    [InlineData("test", "--crash", "extra")]     // no --yes and no CRASH on stdin: inert either way
    [InlineData("version", "extra")]
    [InlineData("net", "list", "extra")]
    [InlineData("net", "modules", "eth0", "extra")]
    [InlineData("net", "up", "extra")]
    [InlineData("config", "check", "a", "extra")]
    [InlineData("config", "default", "extra")]
    [InlineData("config", "import", "extra")]
    [InlineData("initramfs", "build", "-o", "out", "extra")]
    [InlineData("kernel-hook", "add", "6.1.0-1-amd64", "/boot/vmlinuz", "extra")]
    [InlineData("pin", "6.1.0-1-amd64", "extra")]
    [InlineData("verify", "a", "extra")]
    [InlineData("report", "a", "extra")]
    [InlineData("dmesg", "a", "b", "extra")]
    [InlineData("dump", "a", "b", "extra")]
    [InlineData("rearrange", "a", "extra")]
    [InlineData("help", "dump", "extra")]
    public void AnExtraArgumentIsAUsageError(params string[] line)
    {
        using var box = new Sandbox();
        AssertUsageError(box.Run(line), "capture-agent " + string.Join(' ', line), "'extra'");
        box.AssertUntouched(string.Join(' ', line));
    }

    private static void AssertUsageError(Fixtures.Run r, string shown, string named)
    {
        Assert.True(r.ExitCode == ExitCodes.Usage, $"{shown}: exit {r.ExitCode}, stdout: {r.Stdout} stderr: {r.Stderr}");
        Assert.True(r.Stdout.Length == 0, $"{shown}: printed {r.Stdout}");
        var said = r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(said.Length == 1 && said[0].StartsWith("capture-agent: error: ", StringComparison.Ordinal) && said[0].Contains(named, StringComparison.Ordinal),
            $"{shown}: not one line naming {named}: {r.Stderr}");
    }

    [Fact]
    public void VersionIsTheBuildsEitherWay()
    {
        using var box = new Sandbox();
        foreach (string[] line in (string[][])[["--version"], ["version"]])
        {
            var r = box.Run(line);
            Assert.Equal((0, $"capture-agent {BuildInfo.Version}\n", ""), (r.ExitCode, r.Stdout, r.Stderr));
        }
    }

    [Fact]
    public void AnExistingOutputIsKeptUnlessForced()
    {
        using var box = new Sandbox();
        string vmcore = Path.Combine(box.Files, "vmcore"), output = Path.Combine(box.Files, "out"), log = Path.Combine(box.Files, "log");
        new SyntheticKernel().WriteElf(vmcore);
        foreach (var path in new[] { output, log }) File.WriteAllText(path, "keep me");
        foreach (string[] line in (string[][])[["dump", "-d", "31", vmcore, output], ["-cd31", vmcore, output], ["dmesg", vmcore, log], ["--dump-dmesg", vmcore, log]])
        {
            var r = box.Run(line);
            Assert.True(r.ExitCode == ExitCodes.Failed, $"{string.Join(' ', line)}: exit {r.ExitCode}: {r.Stderr}");
            Assert.Contains("exists: not overwritten (-f overwrites it)", r.Stderr);
            Assert.Equal("keep me", File.ReadAllText(line[^1]));
        }
        string flat = Path.Combine(box.Files, "flat");
        WriteFlattened(vmcore, flat);
        var refused = box.Shell(flat, ["rearrange", output]);
        Assert.True(refused.ExitCode == ExitCodes.Failed, refused.Stderr);
        Assert.Equal("keep me", File.ReadAllText(output));

        Assert.Equal(0, box.Run("dump", "-f", "-cd", "31", vmcore, output).ExitCode);
        using (var kd = new KdumpFile(output)) Assert.Equal((uint)PageCodec.Zlib, kd.Header.Status);
        // The plain synthetic kernel has no log: the one the fuzz tests lay out has three records.
        string withLog = Path.Combine(box.Files, "vmcore-with-log");
        File.WriteAllBytes(withLog, Fuzz.FuzzInputs.Synthetic(fiveLevel: false).Serialize(out _));
        var dmesg = box.Run("dmesg", "-f", withLog, log);
        Assert.True(dmesg.ExitCode == 0, dmesg.Stderr);
        Assert.Contains("sysrq triggered crash", File.ReadAllText(log));
        var rearranged = box.Shell(flat, ["-R", "-f", output]);
        Assert.True(rearranged.ExitCode == 0, rearranged.Stderr);
        Assert.Equal(0, box.Run("verify", output).ExitCode);
        // A new file needs no -f.
        Assert.Equal(0, box.Run("dump", "--num-threads=1", "-d31", vmcore, Path.Combine(box.Files, "new")).ExitCode);
    }

    /// <summary>makedumpfile -F's stream of the vmcore, written in-process (the binary would write it to a pipe).</summary>
    private static void WriteFlattened(string vmcore, string path)
    {
        using var source = new DumpSource(vmcore);
        using var file = File.Create(path);
        using var sink = new FlattenedSink(file, leaveOpen: true);
        new KdumpCompressedWriter(source, sink, new DumpOptions { Level = DumpLevel.All }).Write();
    }

    /// <summary>--message-level N with makedumpfile's bits: 2 the common messages, 4 errors, 16 the report; -q and -v.</summary>
    [Theory]
    [InlineData(new[] { "--message-level", "4" }, false, false)]
    [InlineData(new[] { "--message-level=2" }, true, false)]
    [InlineData(new[] { "--message-level", "16" }, false, true)]
    [InlineData(new[] { "--message-level", "31" }, true, true)]
    [InlineData(new[] { "-q" }, false, false)]
    [InlineData(new[] { "-v" }, true, true)]
    [InlineData(new string[0], true, false)]
    public void MessageLevelBitsChooseWhatIsSaid(string[] level, bool summary, bool report)
    {
        using var box = new Sandbox();
        string vmcore = Path.Combine(box.Files, "vmcore");
        new SyntheticKernel().WriteElf(vmcore);
        var r = box.Run(["dump", "-d", "31", .. level, vmcore, Path.Combine(box.Files, "out")]);
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal(summary, r.Stderr.Contains("The dumpfile is saved", StringComparison.Ordinal));
        Assert.Equal(report, r.Stderr.Contains("Excluded pages:", StringComparison.Ordinal));
        if (!summary && !report) Assert.Equal("", r.Stderr);
        Assert.Equal(2, box.Run("dump", "--message-level", "32", vmcore, Path.Combine(box.Files, "other")).ExitCode);
    }
}

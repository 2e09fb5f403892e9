using System.Text.RegularExpressions;
using CaptureAgent.Cli;
using CaptureAgent.Config;
using CaptureAgent.Tests.Integration;
using Xunit;
using CaptureAgent.Common;

namespace CaptureAgent.Tests.Host.Host;

/// <summary>
/// `COMMAND --help`, capture-agent(8), capture-agent.conf(5) and the bash completion come from the
/// same tables; here the pages are rendered by man(1) and compared line for line with what the
/// commands print, and checked by groff for warnings.
/// </summary>
[Collection("console")]   // swaps Console.Out
public class ManualTests
{
    private static readonly object ConsoleLock = new();

    private static (int Code, string Stdout) Run(params string[] args)
    {
        lock (ConsoleLock)
        {
            var old = Console.Out;
            var w = new StringWriter();
            Console.SetOut(w);
            try { return (Program.Main(args), w.ToString()); }
            finally { Console.SetOut(old); }
        }
    }

    /// <summary>The page as man shows it on a wide terminal, without formatting characters.</summary>
    private static string Render(string roff)
    {
        using var dir = new TempDir();
        string page = dir.File("page.8");
        File.WriteAllText(page, roff);
        var r = Fixtures.Exec("/bin/sh", ["-c", $"MANWIDTH=250 MAN_KEEP_FORMATTING= man --nh --nj -E UTF-8 -l '{page}' 2>&1 | col -bx"]);
        Assert.True(r.ExitCode == 0, $"man -l failed: {r.Stdout}{r.Stderr}");
        return r.Stdout;
    }

    /// <summary>groff's own warnings (what lintian reports as groff-message): none.</summary>
    private static void AssertNoGroffWarnings(string roff)
    {
        using var dir = new TempDir();
        string page = dir.File("page");
        File.WriteAllText(page, roff);
        var r = Fixtures.Exec("/bin/sh", ["-c", $"LC_ALL=C.UTF-8 MANROFFSEQ='' MANWIDTH=80 man --warnings -E UTF-8 -l -Tutf8 -Z '{page}' 2>&1 >/dev/null"]);
        Assert.True(r.ExitCode == 0 && r.Stdout.Trim().Length == 0, $"groff warnings:\n{r.Stdout}{r.Stderr}");
    }

    private static void AssertLinesInOrder(string usage, string rendered, string what)
    {
        var lines = rendered.Split('\n').Select(l => l.TrimEnd()).ToList();
        int at = 0;
        foreach (var line in usage.TrimEnd('\n').Split('\n').Select(l => l.TrimEnd()).Where(l => l.Length > 0))
        {
            // man indents the section body; the help line is the rest of a page line.
            int found = lines.FindIndex(at, l => l.EndsWith(line, StringComparison.Ordinal) && l[..^line.Length].Trim().Length == 0);
            Assert.True(found >= 0, $"{what}: the help line\n  {line}\nis not in the man page (after line {at})");
            at = found + 1;
        }
    }

    [Fact]
    public void EveryCommandsHelpIsItsSectionOfTheManPage()
    {
        string rendered = Render(ManPages.Command(null));
        Assert.True(CommandHelp.All.Length >= 20);
        foreach (var doc in CommandHelp.All)
        {
            var (code, stdout) = Run(doc.Name, "--help");
            Assert.Equal(ExitCodes.Ok, code);
            Assert.Equal(doc.Usage + "\n", stdout.Replace("\r\n", "\n"));
            Assert.Equal(stdout, Run("help", doc.Name).Stdout);
            AssertLinesInOrder(stdout, rendered, $"capture-agent {doc.Name} --help");
        }
        var (overviewCode, overview) = Run("--help");
        Assert.Equal(ExitCodes.Ok, overviewCode);
        AssertLinesInOrder(overview, rendered, "capture-agent --help");
        // Every command the overview lists has a section (nothing listed without one).
        foreach (Match m in Regex.Matches(overview, @"(?m)^  capture-agent ([a-z-]+)"))
            Assert.True(CommandHelp.Find(m.Groups[1].Value) is not null, $"'{m.Groups[1].Value}' is in --help but has no help text of its own");
        AssertNoGroffWarnings(ManPages.Command(DateTimeOffset.FromUnixTimeSeconds(1796400000)));
    }

    [Fact]
    public void ConfigManPageDescribesEveryKeyWithItsDefault()
    {
        string roff = ManPages.Config(null);
        string rendered = Render(roff);
        foreach (var key in ConfigKeys.All)
        {
            var line = rendered.Split('\n').FirstOrDefault(l => l.Trim().StartsWith(key.Name + " = ", StringComparison.Ordinal));
            Assert.True(line is not null, $"{key.Name} is not described in capture-agent.conf(5)");
            string flat = Regex.Replace(rendered, @"\s+", " ");
            Assert.Contains($"Default: {key.DefaultDescription}", flat);
        }
        AssertNoGroffWarnings(roff);
        // A mistake in a key name is caught: the parser knows only the table's keys.
        Assert.Contains(AgentConfig.Parse("keep_dump = 3\n").Errors, e => e.Contains("unknown key 'keep_dump'"));
    }

    [Fact]
    public void EveryKeyConfigCheckPrintsIsInTheKeyTable()
    {
        // The parser accepts only the table's keys, so a key `config check` prints but the table
        // lacks makes its own output unreadable (stall_timeout was: found by the config fuzzer).
        var config = AgentConfig.Parse("target = LABEL=crashdump\nfstype = ext4\nstall_timeout = 120\nnetwork = dhcp\n");
        Assert.Empty(config.Errors);
        var printed = ConfigCommand.Effective(config).Where(l => !l.StartsWith('#')).ToList();
        foreach (var line in printed)
        {
            string key = line[..line.IndexOf(" = ", StringComparison.Ordinal)];
            Assert.True(ConfigKeys.Find(key) is not null, $"config check prints '{key}', which capture-agent.conf(5) does not know");
        }
        Assert.Empty(AgentConfig.Parse(string.Join('\n', printed) + "\n").Errors);
    }

    [Fact]
    public void VersionIsTheOneFromDirectoryBuildProps()
    {
        string repo = Fixtures.RepoRoot;
        string props = File.ReadAllText(Path.Combine(repo, "Directory.Build.props"));
        string version = Regex.Match(props, "<Version>([^<]+)</Version>").Groups[1].Value;
        Assert.Matches(@"^\d+\.\d+\.\d+", version);
        Assert.Equal($"capture-agent {version}\n", Run("--version").Stdout);
        Assert.Equal($"capture-agent {version}\n", Run("version").Stdout);
        Assert.Contains($"\"capture_agent_version\": \"{version}\"", Run("version", "--json").Stdout);
        Assert.Contains($"\"capture_agent_version\": \"{version}\"", new CaptureAgent.Formats.DumpManifest().ToJson());
        Assert.Equal(version, CaptureAgent.Formats.DumpManifest.Parse(new CaptureAgent.Formats.DumpManifest().ToJson()).AgentVersion);
        Assert.Contains($"capture-agent {version}", ManPages.Command(null).Split('\n')[0]);
        // debian/changelog's newest entry names the same version (scripts/build-deb refuses otherwise).
        string changelog = File.ReadAllLines(Path.Combine(repo, "debian", "changelog"))[0];
        Assert.StartsWith($"capture-agent ({version})", changelog);
    }

    [Fact]
    public void BashCompletionCompletesCommandsAndOptions()
    {
        using var dir = new TempDir();
        string script = dir.File("capture-agent");
        File.WriteAllText(script, BashCompletion.Script());
        string Complete(string line)
        {
            var words = line.Split(' ');
            string cmd = $". '{script}'; COMP_WORDS=({string.Join(' ', words.Select(w => $"'{w}'"))}); COMP_CWORD={words.Length - 1}; _capture_agent; printf '%s\\n' \"${{COMPREPLY[@]}}\"";
            var r = Fixtures.Exec("/bin/bash", ["-c", cmd]);
            Assert.True(r.ExitCode == 0, r.Stderr);
            return r.Stdout;
        }
        Assert.Contains("config\n", Complete("capture-agent con"));
        Assert.Contains("propagate\n", Complete("capture-agent pro"));
        var load = Complete("capture-agent load --");
        foreach (var o in new[] { "--auto", "--early", "--dry-run", "--kernel", "--initrd", "--config" }) Assert.Contains(o + "\n", load);
        Assert.Equal("import\n", Complete("capture-agent config im"));
        Assert.Contains("--target\n", Complete("capture-agent propagate --t"));
        // What came with the codecs and the crashkernel measurement.
        var dump = Complete("capture-agent dump -");
        foreach (var o in new[] { "-l", "-p", "-c", "-z", "--compression", "--no-compress" }) Assert.Contains(o + "\n", dump);
        Assert.Equal("--measure\n", Complete("capture-agent estimate --mea"));
    }

    [Fact]
    public void ManPageNamesEveryExitStatus()
    {
        string rendered = Regex.Replace(Render(ManPages.Command(null)), @"\s+", " ");
        int start = rendered.IndexOf("EXIT STATUS ", StringComparison.Ordinal);
        Assert.True(start >= 0, "capture-agent(8) has no EXIT STATUS section");
        int end = rendered.IndexOf(" FILES ", start, StringComparison.Ordinal);
        Assert.True(end > start, "capture-agent(8) has no FILES section after EXIT STATUS");
        string exits = rendered[start..end];
        foreach (int code in new[] { ExitCodes.Ok, ExitCodes.Failed, ExitCodes.Usage, ExitCodes.Degraded, ExitCodes.ArmedWontSave })
            Assert.Matches($@" {code} [a-z]", exits);
        Assert.Contains("4 armed, but the dump would not be saved", Regex.Replace(Run("status", "--help").Stdout, @"\s+", " "));
    }

}

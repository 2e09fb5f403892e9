using CaptureAgent.Cli;
using CaptureAgent.Config;
using Xunit;

namespace CaptureAgent.Tests.CaptureKernel.Config;

public class ConfigCommandTests
{
    private static (int Exit, string Out, string Err) Run(params string[] args)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        int rc = ConfigCommand.Run(args, o, e);
        return (rc, o.ToString(), e.ToString());
    }

    private static TempDir RhelRoot()
    {
        var root = new TempDir();
        Directory.CreateDirectory(root.File("etc/sysconfig"));
        File.WriteAllText(root.File("etc/kdump.conf"), Samples.Rhel9KdumpConf);
        File.WriteAllText(root.File("etc/sysconfig/kdump"), Samples.Rhel9Sysconfig);
        File.WriteAllText(root.File("etc/fstab"), Samples.Rhel9Fstab);
        return root;
    }

    [Fact]
    public void ImportWritesA0600FileAndNeverOverwritesWithoutForce()
    {
        using var root = RhelRoot();
        using var outDir = new TempDir();
        string output = outDir.File("capture-agent.conf");

        var (rc, stdout, stderr) = Run("import", "--root", root.Path, "-o", output);
        Assert.Equal(0, rc);
        Assert.Equal("", stdout);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(output));
        string text = File.ReadAllText(output);
        var c = AgentConfig.Parse(text, output);
        Assert.Empty(c.Errors);
        Assert.Equal("/dev/mapper/rhel-root", c.Target);
        // Sources are named by their path on the imported system.
        Assert.Contains("from /etc/kdump.conf, /etc/sysconfig/kdump", text);
        // Each setting not imported is on stderr too, with its line.
        Assert.Contains("capture-agent: not imported: /etc/kdump.conf:", stderr);
        Assert.Contains("auto_reset_crashkernel yes", stderr);
        Assert.Contains("capture-agent: not imported: /etc/sysconfig/kdump:", stderr);
        Assert.Contains($"wrote {output}", stderr);
        Assert.Equal([output], Directory.GetFiles(outDir.Path));   // no temporary left

        File.WriteAllText(output, "target = LABEL=mine\n");
        (rc, _, stderr) = Run("import", "--root", root.Path, "-o", output);
        Assert.Equal(1, rc);
        Assert.Contains("exists", stderr);
        Assert.Equal("target = LABEL=mine\n", File.ReadAllText(output));

        (rc, _, _) = Run("import", "--root", root.Path, "-o", output, "--force");
        Assert.Equal(0, rc);
        Assert.Equal(text, File.ReadAllText(output));
        Assert.Single(Directory.GetFiles(outDir.Path));
    }

    [Fact]
    public void ForceReplacesASymlinkInsteadOfWritingThroughIt()
    {
        using var root = RhelRoot();
        using var outDir = new TempDir();
        string victim = outDir.File("victim"), link = outDir.File("capture-agent.conf");
        File.WriteAllText(victim, "precious\n");
        File.CreateSymbolicLink(link, victim);
        Assert.Equal(1, Run("import", "--root", root.Path, "-o", link).Exit);
        Assert.Equal(0, Run("import", "--root", root.Path, "-o", link, "--force").Exit);
        Assert.Equal("precious\n", File.ReadAllText(victim));
        Assert.Null(new FileInfo(link).LinkTarget);
        Assert.Contains("target = /dev/mapper/rhel-root", File.ReadAllText(link));
    }

    [Fact]
    public void ImportWithoutOutputPrintsTheConfiguration()
    {
        using var root = new TempDir();
        Directory.CreateDirectory(root.File("etc/default"));
        File.WriteAllText(root.File("etc/default/kdump-tools"), Samples.Debian12KdumpTools);
        File.WriteAllText(root.File("etc/fstab"), Samples.Debian12Fstab);
        var (rc, stdout, stderr) = Run("import", "--root", root.Path);
        Assert.Equal(0, rc);
        var c = AgentConfig.Parse(stdout);
        Assert.Empty(c.Errors);
        Assert.Equal("UUID=4b1f6a0e-7d9c-4e2b-a1f3-5c6d7e8f9a0b", c.Target);
        Assert.Contains("not imported: /etc/default/kdump-tools:", stderr);
        Assert.DoesNotContain("not imported", stdout.Split('\n').Where(l => !l.StartsWith('#')).Aggregate("", (a, b) => a + b));
    }

    [Fact]
    public void ExplicitPathsAreReadInsteadOfTheStandardOnes()
    {
        using var root = RhelRoot();
        using var other = new TempDir();
        File.WriteAllText(other.File("defaults"), Samples.UbuntuSshKdumpTools);
        var (rc, stdout, _) = Run("import", "--root", root.Path, "--kdump-tools", other.File("defaults"));
        Assert.Equal(0, rc);
        Assert.Equal("ssh:ubuntu@crash-collector.example.com", AgentConfig.Parse(stdout).Target);
        // A file outside --root is named by the path given.
        Assert.Contains($"from {other.File("defaults")}", stdout);
    }

    [Fact]
    public void UsageErrorsAndNothingToImport()
    {
        using var empty = new TempDir();
        Assert.Equal(1, Run("import", "--root", empty.Path).Exit);
        Assert.Equal(2, Run("import", "--bogus").Exit);
        Assert.Equal(2, Run("import", "--root").Exit);
        Assert.Equal(2, Run("import", "--root", empty.File("missing")).Exit);
        Assert.Equal(2, Run().Exit);
        Assert.Equal(2, Run("frobnicate").Exit);
        var (rc, _, err) = Run("import", "--kdump-conf", empty.File("nope.conf"));
        Assert.Equal(1, rc);
        Assert.Contains("nope.conf", err);

        using var both = RhelRoot();
        Directory.CreateDirectory(both.File("etc/default"));
        File.WriteAllText(both.File("etc/default/kdump-tools"), "USE_KDUMP=1\n");
        (rc, _, err) = Run("import", "--root", both.Path);
        Assert.Equal(2, rc);
        Assert.Contains("--kdump-tools", err);
    }

    [Fact]
    public void CheckPrintsEachErrorWithItsLine()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("bad.conf"), "target = LABEL=dumps\ndump_level = 40\n# fine\ncompression = lz4\nwhat\n");
        var (rc, stdout, stderr) = Run("check", dir.File("bad.conf"));
        Assert.Equal(1, rc);
        Assert.Equal("", stdout);
        Assert.Contains($"{dir.File("bad.conf")}:2: dump_level must be 0-31", stderr);
        Assert.Contains($"{dir.File("bad.conf")}:4: compression", stderr);
        Assert.Contains($"{dir.File("bad.conf")}:5: expected key = value", stderr);
        Assert.Contains("3 errors", stderr);

        Assert.Equal(1, Run("check", dir.File("missing.conf")).Exit);
        Assert.Equal(2, Run("check", "a", "b").Exit);
    }

    [Fact]
    public void CheckPrintsTheEffectiveSettingsWhichReadBackTheSame()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("ok.conf"), "target = nfs:10.0.0.2:/srv/crash\ntarget = LABEL=dumps\npath = /var/crash\nkeep_size = 20G\nmin_free = 1536M\npre_hook = /usr/bin/true\n");
        var (rc, stdout, stderr) = Run("check", dir.File("ok.conf"));
        Assert.Equal(0, rc);
        Assert.Equal("", stderr);
        var lines = stdout.Split('\n');
        Assert.Contains("target = nfs:10.0.0.2:/srv/crash", lines);
        Assert.Contains("path = /var/crash/{host}-{date}", lines);
        Assert.Contains("dump_level = 31", lines);
        Assert.Contains("keep_size = 20G", lines);
        Assert.Contains("min_free = 1536M", lines);
        Assert.Contains("failure_action = reboot", lines);
        Assert.Contains("# network: dhcp (a target needs the network)", lines);
        var again = AgentConfig.Parse(stdout);
        Assert.Empty(again.Errors);
        Assert.Equal(ConfigCommand.Effective(AgentConfig.Parse(File.ReadAllText(dir.File("ok.conf")))), ConfigCommand.Effective(again));

        // No target, or only a broken one: the capture kernel would have nowhere to write. An error.
        File.WriteAllText(dir.File("none.conf"), "dump_level = 1\n");
        (rc, _, stderr) = Run("check", dir.File("none.conf"));
        Assert.Equal(1, rc);
        Assert.Contains("names no target", stderr);
        File.WriteAllText(dir.File("bad.conf"), "target = LABEL=\n");
        (rc, _, stderr) = Run("check", dir.File("bad.conf"));
        Assert.Equal(1, rc);
        Assert.Contains("has no usable target", stderr);
    }
}

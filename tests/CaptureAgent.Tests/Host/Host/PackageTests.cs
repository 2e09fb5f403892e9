using System.IO.Compression;
using CaptureAgent.Host;
using CaptureAgent.Tests.Integration;
using Xunit;

namespace CaptureAgent.Tests.Host.Host;

/// <summary>
/// scripts/build-deb on the static binary: lintian finds no error or warning, the package holds what
/// `install --stage` lays out (the list `install` writes on a host) plus its documentation, its man
/// pages are the binary's own, and the same sources give the same bytes.
/// </summary>
[Trait("Category", "Binary")]
public class PackageTests
{
    private static string Repo => Fixtures.RepoRoot;


    private static string StaticAgent()
    {
        TestCategory.Require(TestCategory.Binary);
        return Fixtures.StaticAgent();
    }

    private static string Deb(string dir) => Directory.GetFiles(dir, "capture-agent_*_amd64.deb").Single();

    [Fact]
    public void BuildDebMakesALintianCleanPackageOfTheInstallLayout()
    {
        string agent = StaticAgent();
        Assert.True(File.Exists("/usr/bin/lintian"), "lintian is missing: apt-get install lintian (scripts/test does)");
        using var outDir = new TempDir();
        var build = Fixtures.Exec(Path.Combine(Repo, "scripts/build-deb"), ["--binary", agent, "--out", outDir.Path, "--lintian"], timeoutSeconds: 1200);
        Assert.True(build.ExitCode == 0, $"build-deb --lintian:\n{build.Stdout}{build.Stderr}");
        Assert.Contains("== lintian", build.Stdout);
        string deb = Deb(outDir.Path);

        // Control: the version of Directory.Build.props, the conflict with kdump-tools, /etc's files as conffiles.
        string Field(string name) => Fixtures.Exec("/usr/bin/dpkg-deb", ["-f", deb, name]).Stdout.Trim();
        Assert.Equal(Fixtures.Exec(agent, ["version"]).Stdout.Trim(), $"capture-agent {Field("Version")}");
        Assert.Equal("kdump-tools", Field("Conflicts"));
        using var control = new TempDir();
        Assert.Equal(0, Fixtures.Exec("/usr/bin/dpkg-deb", ["--control", deb, control.Path]).ExitCode);
        Assert.Equal([KernelHooks.DebianPostinst, KernelHooks.DebianPostrm], File.ReadAllLines(control.File("conffiles")).Order(StringComparer.Ordinal));
        foreach (var script in new[] { "postinst", "prerm", "postrm" })
        {
            var sc = Fixtures.Exec("/usr/bin/shellcheck", ["--shell=sh", "--severity=style", control.File(script)]);
            Assert.True(sc.ExitCode == 0, $"shellcheck {script}:\n{sc.Stdout}");
        }

        // Contents: what install --stage lays out, the documentation, the lintian overrides; nothing else.
        using var tree = new TempDir();
        Assert.Equal(0, Fixtures.Exec("/usr/bin/dpkg-deb", ["-x", deb, tree.Path]).ExitCode);
        var files = Directory.EnumerateFiles(tree.Path, "*", SearchOption.AllDirectories).Select(f => "/" + Path.GetRelativePath(tree.Path, f)).Order(StringComparer.Ordinal).ToList();
        using var stage = new TempDir();
        Assert.Equal(0, Fixtures.Exec(agent, ["install", "--stage", "--root", stage.Path, "--binary", agent]).ExitCode);
        var expected = Directory.EnumerateFiles(stage.Path, "*", SearchOption.AllDirectories).Select(f => "/" + Path.GetRelativePath(stage.Path, f))
            .Concat(["/usr/share/doc/capture-agent/copyright", "/usr/share/doc/capture-agent/changelog.gz", "/usr/share/doc/capture-agent/README.md.gz",
                     "/usr/share/lintian/overrides/capture-agent"]).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(expected, files);
        Assert.Equal(File.ReadAllBytes(agent), File.ReadAllBytes(tree.Path + HostLayout.AgentBinary));
        Assert.Contains(EarlyHooks.InitramfsToolsHook, files);
        Assert.Contains(EarlyHooks.DracutModuleSetup, files);

        // The man pages are the binary's own rendering, dated by the changelog entry.
        string epoch = Fixtures.Exec("/usr/bin/dpkg-parsechangelog", ["-l", Path.Combine(Repo, "debian/changelog"), "-S", "Timestamp"]).Stdout.Trim();
        var man = Fixtures.Exec("/bin/sh", ["-c", $"SOURCE_DATE_EPOCH={epoch} '{agent}' help --man 8"]);
        using (var gz = new GZipStream(File.OpenRead(tree.Path + Installer.ManPage8), CompressionMode.Decompress))
        using (var reader = new StreamReader(gz))
            Assert.Equal(man.Stdout, reader.ReadToEnd());

        // The same sources and binary: the same package, byte for byte.
        using var again = new TempDir();
        var second = Fixtures.Exec(Path.Combine(Repo, "scripts/build-deb"), ["--binary", agent, "--out", again.Path], timeoutSeconds: 1200);
        Assert.True(second.ExitCode == 0, second.Stderr);
        Assert.Equal(File.ReadAllBytes(deb), File.ReadAllBytes(Deb(again.Path)));
    }

    /// <summary>scripts/build-rpm: rpmbuild takes the spec; the RPM holds the install layout minus Debian's hooks.</summary>
    [Fact]
    public void BuildRpmMakesAnRpmOfTheInstallLayoutWithoutDebiansHooks()
    {
        string agent = StaticAgent();
        Assert.True(File.Exists("/usr/bin/rpmbuild"), "rpmbuild is missing: apt-get install rpm (scripts/test does)");
        using var outDir = new TempDir();
        var build = Fixtures.Exec(Path.Combine(Repo, "scripts/build-rpm"), ["--binary", agent, "--out", outDir.Path], timeoutSeconds: 1200);
        Assert.True(build.ExitCode == 0, $"build-rpm:\n{build.Stdout}{build.Stderr}");
        string rpm = Directory.GetFiles(outDir.Path, "capture-agent-*.x86_64.rpm").Single();
        string version = Fixtures.Exec(agent, ["version"]).Stdout.Trim()["capture-agent ".Length..];
        Assert.Equal($"{version} 1 MIT kdump-utils", Fixtures.Exec("/usr/bin/rpm", ["-qp", "--qf", "%{VERSION} %{RELEASE} %{LICENSE} [%{CONFLICTS}]", rpm]).Stdout.Trim());
        var files = Fixtures.Exec("/usr/bin/rpm", ["-qlp", rpm]).Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).ToHashSet();
        using var stage = new TempDir();
        Assert.Equal(0, Fixtures.Exec(agent, ["install", "--stage", "--root", stage.Path, "--binary", agent]).ExitCode);
        foreach (var f in Directory.EnumerateFiles(stage.Path, "*", SearchOption.AllDirectories).Select(f => "/" + Path.GetRelativePath(stage.Path, f)))
        {
            bool debianOnly = f.StartsWith("/etc/kernel/", StringComparison.Ordinal) || f.StartsWith("/usr/share/initramfs-tools/", StringComparison.Ordinal);
            Assert.True(files.Contains(f) != debianOnly, $"{f}: {(debianOnly ? "Debian's, in the RPM" : "missing from the RPM")}");
        }
        Assert.Contains("/etc/capture-agent.conf", files);   // %ghost: made by %post, removed with the package
        var changelog = Fixtures.Exec("/usr/bin/rpm", ["-qp", "--changelog", rpm]).Stdout;
        Assert.Contains($" - {version}-1\n", changelog);
    }

    [Fact]
    public void BuildDebRefusesADynamicBinary()
    {
        TestCategory.Require(TestCategory.Binary);
        using var outDir = new TempDir();
        var dynamic = Fixtures.Exec(Path.Combine(Repo, "scripts/build-deb"), ["--binary", "/bin/sh", "--out", outDir.Path]);
        Assert.Equal(1, dynamic.ExitCode);
        Assert.Contains("dynamically linked", dynamic.Stderr);
        Assert.Empty(Directory.EnumerateFileSystemEntries(outDir.Path));
    }
}

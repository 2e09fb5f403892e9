using CaptureAgent.Host;
using CaptureAgent.Tests.Integration;
using Xunit;

namespace CaptureAgent.Tests.Host.Host;

/// <summary>
/// The .deb under the real dpkg, in a Debian bookworm chroot (mmdebstrap minbase, cached): install
/// writes the config from fstab, builds the installed kernel's capture initramfs, enables the units
/// with deb-systemd-helper; the /etc/kernel hook rebuilds a removed image; remove keeps the config and
/// leaves the hooks silent; purge leaves nothing. No systemd runs in a chroot, so nothing is armed
/// here: arming under systemd is the installed-system harness's job.
/// </summary>
[Trait("Category", "Root")]
[Trait("Category", "Binary")]
[Trait("Category", "Fixture")]
public class PackageChrootTests
{
    private const string Kernel = "9.9.9-chroot-amd64";
    private const string Uuid = "4b1f6a0e-7d9c-4e2b-a1f3-5c6d7e8f9a0b";

    private static string Repo => Fixtures.RepoRoot;


    /// <summary>
    /// bookworm minbase with init-system-helpers (and <paramref name="extra"/> packages, in a tarball
    /// of its own), made once into the cache from the host's own Debian sources.
    /// </summary>
    private static string ChrootTarball(string name = "bookworm-minbase", string extra = "")
    {
        TestCategory.Require(TestCategory.Fixture);
        string dir = Path.Combine(Fixtures.Cache, "package-chroot");
        string tar = Path.Combine(dir, name + ".tar");
        if (File.Exists(tar)) return tar;
        Assert.True(File.Exists("/usr/bin/mmdebstrap"), "mmdebstrap is missing: apt-get install mmdebstrap");
        Directory.CreateDirectory(dir);
        const string sources = "/etc/apt/sources.list.d/debian.sources";
        // apt as root: its unprivileged _apt sandbox fails where /dev/null is not world-writable (seen on a test host).
        var args = new List<string> { "--variant=minbase", "--mode=root", "--aptopt=APT::Sandbox::User \"root\"", "--include=init-system-helpers" + (extra.Length > 0 ? "," + extra : ""),
                                      "--format=tar", "bookworm", tar + ".tmp" };
        if (File.Exists(sources)) args.Add(sources);
        var r = Fixtures.Exec("/usr/bin/mmdebstrap", args, timeoutSeconds: 1800);
        Assert.True(r.ExitCode == 0, $"mmdebstrap failed:\n{r.Stderr[Math.Max(0, r.Stderr.Length - 3000)..]}");
        File.Move(tar + ".tmp", tar);
        return tar;
    }

    private static Fixtures.Run Chroot(string root, params string[] command) =>
        Fixtures.Exec("/usr/sbin/chroot", [root, "/usr/bin/env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C.UTF-8", .. command], timeoutSeconds: 600);

    /// <summary>Every path below the root but dpkg's database, the logs and /dev.</summary>
    private static SortedSet<string> Tree(string root)
    {
        var set = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var e in FileTree.Entries(root))
        {
            string rel = "/" + Path.GetRelativePath(root, e);
            if (rel.StartsWith("/var/lib/dpkg/", StringComparison.Ordinal) || rel.StartsWith("/var/log/", StringComparison.Ordinal)
                || rel.StartsWith("/var/cache/debconf/", StringComparison.Ordinal) || rel.StartsWith("/proc/", StringComparison.Ordinal)
                || rel.StartsWith("/dev/", StringComparison.Ordinal)) continue;   // /dev/fd is /proc/self/fd: this process's
            set.Add(rel);
        }
        return set;
    }

    /// <summary>The chroot unpacked, with what an installed system has and minbase has not: a root filesystem in fstab, a kernel.</summary>
    private static string UnpackedRoot(TempDir work, string tarball)
    {
        string root = work.File("root");
        Directory.CreateDirectory(root);
        Assert.Equal(0, Fixtures.Exec("/usr/bin/tar", ["-C", root, "--numeric-owner", "-xpf", tarball]).ExitCode);
        File.WriteAllText(Path.Combine(root, "etc/fstab"), $"UUID={Uuid} / ext4 errors=remount-ro 0 1\n");
        Directory.CreateDirectory(Path.Combine(root, "boot"));
        File.WriteAllText(Path.Combine(root, $"boot/vmlinuz-{Kernel}"), "kernel\n");
        Directory.CreateDirectory(Path.Combine(root, $"lib/modules/{Kernel}"));
        File.WriteAllText(Path.Combine(root, $"lib/modules/{Kernel}/modules.dep"), "");
        File.WriteAllText(Path.Combine(root, $"lib/modules/{Kernel}/modules.builtin"), "kernel/fs/ext4/ext4.ko\n");
        return root;
    }

    /// <summary>scripts/build-deb on the static binary, into WORK/deb.</summary>
    private static string BuiltDeb(TempDir work)
    {
        string agent = Fixtures.StaticAgent();
        var build = Fixtures.Exec(Path.Combine(Repo, "scripts/build-deb"), ["--binary", agent, "--out", work.File("deb")], timeoutSeconds: 1200);
        Assert.True(build.ExitCode == 0, build.Stderr);
        return Directory.GetFiles(work.File("deb"), "*.deb").Single();
    }

    /// <summary>
    /// Debian's real dracut (dracut-core) with the package's module in /usr/lib/dracut/modules.d: the
    /// host initramfs it writes holds nothing of capture-agent while early_load is off, and with
    /// early_load = yes the agent, the capture kernel and its initramfs, the config and the pre-mount
    /// hook. The boot that runs the hook is the installed-system harness's (a VM); this is the build.
    /// </summary>
    [Fact]
    public void DebianDracutPacksEarlyArmingOnlyWithEarlyLoad()
    {
        TestCategory.Require(TestCategory.Root);
        string tarball = ChrootTarball("bookworm-dracut", "dracut-core");
        using var work = new TempDir();
        string deb = BuiltDeb(work);
        string root = UnpackedRoot(work, tarball);
        File.Copy(deb, Path.Combine(root, "tmp/capture-agent.deb"));
        var install = Chroot(root, "dpkg", "-i", "/tmp/capture-agent.deb");
        Assert.True(install.ExitCode == 0, install.Stdout + install.Stderr);
        Assert.True(File.Exists(root + EarlyHooks.DracutModuleSetup), "the package has no dracut module");

        List<string> Dracut(string image)
        {
            // Uncompressed and without an early microcode archive: one cpio archive the host's cpio lists.
            var r = Chroot(root, "dracut", "--force", "--no-hostonly", "--no-kernel", "--no-compress", "--no-early-microcode",
                           "--kver", Kernel, "/tmp/" + image);
            Assert.True(r.ExitCode == 0, $"dracut:\n{r.Stdout}{r.Stderr}");
            var list = Fixtures.Exec("/bin/sh", ["-c", $"cpio -it --quiet < '{Path.Combine(root, "tmp", image)}'"]);
            Assert.True(list.ExitCode == 0, list.Stderr);
            return list.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).ToList();
        }
        string[] packed = [EarlyHooks.AgentInImage[1..], EarlyHooks.KernelInImage[1..], EarlyHooks.InitramfsInImage[1..], "etc/capture-agent.conf"];

        var off = Dracut("off.img");
        Assert.True(off.Count > 50, $"dracut wrote an image of {off.Count} entries");
        foreach (var f in packed) Assert.DoesNotContain(f, off);
        Assert.DoesNotContain(off, e => e.Contains("capture-agent-load", StringComparison.Ordinal));

        string conf = Path.Combine(root, "etc/capture-agent.conf");
        File.AppendAllText(conf, "early_load = yes\n");
        var on = Dracut("on.img");
        foreach (var f in packed) Assert.Contains(f, on);
        Assert.Contains(on, e => e.Contains("hooks/pre-mount/", StringComparison.Ordinal) && e.EndsWith("capture-agent-load.sh", StringComparison.Ordinal));
    }

    [Fact]
    public void InstallRemoveAndPurgeUnderDpkg()
    {
        TestCategory.Require(TestCategory.Root);
        string tarball = ChrootTarball();
        string agent = Fixtures.StaticAgent();
        using var work = new TempDir();
        string deb = BuiltDeb(work);
        string root = UnpackedRoot(work, tarball);
        var before = Tree(root);
        File.Copy(deb, Path.Combine(root, "tmp/capture-agent.deb"));

        var install = Chroot(root, "dpkg", "-i", "/tmp/capture-agent.deb");
        Assert.True(install.ExitCode == 0, install.Stdout + install.Stderr);
        File.Delete(Path.Combine(root, "tmp/capture-agent.deb"));
        string conf = Path.Combine(root, "etc/capture-agent.conf");
        Assert.Contains($"target = UUID={Uuid}", File.ReadAllText(conf));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(conf));
        string image = Path.Combine(root, $"var/lib/capture-agent/{Kernel}/initramfs.img");
        Assert.True(File.Exists(image), install.Stderr);
        foreach (var unit in new[] { "capture-agent.service", "capture-agent-savecore.service" })
            Assert.NotNull(new FileInfo(Path.Combine(root, "etc/systemd/system/multi-user.target.wants", unit)).LinkTarget);
        Assert.Equal(Fixtures.Exec(agent, ["version"]).Stdout, Chroot(root, "capture-agent", "version").Stdout);

        // A kernel package's postinst runs the hook: the missing image is built again.
        File.Delete(image);
        var hook = Chroot(root, "/etc/kernel/postinst.d/capture-agent", Kernel, $"/boot/vmlinuz-{Kernel}");
        Assert.True(hook.ExitCode == 0 && File.Exists(image), hook.Stderr);

        var remove = Chroot(root, "dpkg", "-r", "capture-agent");
        Assert.True(remove.ExitCode == 0, remove.Stderr);
        Assert.False(File.Exists(Path.Combine(root, "usr/sbin/capture-agent")));
        Assert.True(File.Exists(conf));   // removed, not purged: the administrator's config stays
        var silent = Chroot(root, "/etc/kernel/postinst.d/capture-agent", Kernel, $"/boot/vmlinuz-{Kernel}");
        Assert.Equal((0, ""), (silent.ExitCode, silent.Stdout + silent.Stderr));

        var purge = Chroot(root, "dpkg", "-P", "capture-agent");
        Assert.True(purge.ExitCode == 0, purge.Stderr);
        var after = Tree(root);
        Assert.True(before.SetEquals(after),
            $"left behind: {string.Join(", ", after.Except(before))}; gone: {string.Join(", ", before.Except(after))}");
    }
}

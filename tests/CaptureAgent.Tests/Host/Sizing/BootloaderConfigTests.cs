using CaptureAgent.Cli;
using CaptureAgent.Sizing;
using Xunit;

namespace CaptureAgent.Tests.Host.Sizing;

/// <summary>crashkernel= into GRUB, BLS entries and /etc/kernel/cmdline of fake roots; dry runs, idempotence, modes.</summary>
[Collection("console")]
public class BootloaderConfigTests
{
    private static string Put(string root, string rel, string text, UnixFileMode? mode = null)
    {
        string path = Path.Combine(root, rel);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, text);
        if (mode is { } m) File.SetUnixFileMode(path, m);
        return path;
    }

    /// <summary>Every file under a root with its content, to compare trees before and after.</summary>
    private static Dictionary<string, string> Snapshot(string root) =>
        Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories).ToDictionary(f => Path.GetRelativePath(root, f), File.ReadAllText);

    private static (int Rc, string Out) Run(params string[] args)
    {
        var previous = Console.Out;
        var sw = new StringWriter();
        Console.SetOut(sw);
        try { return (CrashkernelCommand.Run(args), sw.ToString()); }
        finally { Console.SetOut(previous); }
    }

    private const string DebianGrub = "GRUB_DEFAULT=0\nGRUB_TIMEOUT=5\nGRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\nGRUB_CMDLINE_LINUX=\"\"\n";

    [Fact]
    public void DebianGrubGetsTheSnippetAndTheDefaultFileStays()
    {
        using var dir = new TempDir();
        Put(dir.Path, "etc/default/grub", DebianGrub);
        Directory.CreateDirectory(Path.Combine(dir.Path, "etc/default/grub.d"));
        var (rc, output) = Run("--size", "192M", "--root", dir.Path, "--apply");
        Assert.Equal(0, rc);
        string snippet = File.ReadAllText(Path.Combine(dir.Path, "etc/default/grub.d/capture-agent.cfg"));
        Assert.Contains("GRUB_CMDLINE_LINUX_DEFAULT=\"$GRUB_CMDLINE_LINUX_DEFAULT crashkernel=192M\"", snippet);
        Assert.Equal(DebianGrub, File.ReadAllText(Path.Combine(dir.Path, "etc/default/grub")));
        Assert.Contains("--- /dev/null", output);
        Assert.Contains("+GRUB_CMDLINE_LINUX_DEFAULT=", output);
        Assert.Contains("run update-grub", output);   // not "/" : never runs the target's update-grub
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead,
                     File.GetUnixFileMode(Path.Combine(dir.Path, "etc/default/grub.d/capture-agent.cfg")));

        // The snippet really sets the variable as grub-mkconfig would source it.
        var sh = Integration.Fixtures.Exec("/bin/sh", ["-c", $". '{dir.Path}/etc/default/grub'; for f in '{dir.Path}'/etc/default/grub.d/*.cfg; do . \"$f\"; done; echo \"$GRUB_CMDLINE_LINUX_DEFAULT\""]);
        Assert.Equal("quiet crashkernel=192M", sh.Stdout.Trim());
    }

    [Fact]
    public void ExistingCrashkernelInGrubIsLeftAndOverriddenByTheLastOne()
    {
        using var dir = new TempDir();
        Put(dir.Path, "etc/default/grub", "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet crashkernel=384M-:128M\"\n");
        Put(dir.Path, "etc/default/grub.d/kdump-tools.cfg", "GRUB_CMDLINE_LINUX_DEFAULT=\"$GRUB_CMDLINE_LINUX_DEFAULT crashkernel=512M-:192M\"\n");
        Put(dir.Path, "usr/sbin/update-grub", "#!/bin/sh\n");
        var plan = BootloaderConfig.Plan(dir.Path, "256M");
        Assert.True(plan.GrubSnippet);
        Assert.Contains(plan.Notes, n => n.Contains("etc/default/grub also sets crashkernel=; ours comes later"));
        // kdump-tools.cfg sorts after capture-agent.cfg: grub-mkconfig reads it later and its value would win.
        Assert.Contains(plan.Notes, n => n.Contains("kdump-tools.cfg also sets crashkernel= and is read after"));
        Assert.Single(plan.Changes);
    }

    [Fact]
    public void GrubWithoutGrubDirEditsCmdlineLinux()
    {
        using var dir = new TempDir();
        string grub = Put(dir.Path, "etc/default/grub", "GRUB_TIMEOUT=5\nGRUB_CMDLINE_LINUX=\"rhgb quiet crashkernel=1G-4G:192M,4G-64G:256M,64G-:512M\"\nGRUB_ENABLE_BLSCFG=true\n",
                          UnixFileMode.UserRead | UnixFileMode.UserWrite);
        var (rc, output) = Run("--size", "160M", "--root", dir.Path, "--apply");
        Assert.Equal(0, rc);
        Assert.Equal("GRUB_TIMEOUT=5\nGRUB_CMDLINE_LINUX=\"rhgb quiet crashkernel=160M\"\nGRUB_ENABLE_BLSCFG=true\n", File.ReadAllText(grub));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(grub));
        Assert.Contains("-GRUB_CMDLINE_LINUX=\"rhgb quiet crashkernel=1G-4G:192M,4G-64G:256M,64G-:512M\"", output);
        Assert.Contains("+GRUB_CMDLINE_LINUX=\"rhgb quiet crashkernel=160M\"", output);
        Assert.Contains("grub2-mkconfig", output);
    }

    [Fact]
    public void BlsEntriesAndKernelCmdline()
    {
        using var dir = new TempDir();
        string a = Put(dir.Path, "boot/loader/entries/debian-6.1.conf", "title Debian\nlinux /vmlinuz-6.1\ninitrd /initrd.img-6.1\noptions root=UUID=1234 ro quiet\n");
        string b = Put(dir.Path, "boot/loader/entries/fedora-6.9.conf", "title Fedora\nversion 6.9\noptions root=UUID=5678 ro crashkernel=1G-4G:192M,4G-:256M rhgb\ngrub_users $grub_users\n",
                       UnixFileMode.UserRead | UnixFileMode.UserWrite);
        string c = Put(dir.Path, "efi/loader/entries/uki-less.conf", "title Bare\nlinux /vmlinuz\n");
        Put(dir.Path, "boot/loader/entries/readme.txt", "not an entry\n");
        string cmdline = Put(dir.Path, "etc/kernel/cmdline", "root=UUID=1234 ro crashkernel=384M,high crashkernel=72M,low\n");
        var (rc, _) = Run("--size", "128M", "--root", dir.Path, "--apply");
        Assert.Equal(0, rc);
        Assert.Equal("title Debian\nlinux /vmlinuz-6.1\ninitrd /initrd.img-6.1\noptions root=UUID=1234 ro quiet crashkernel=128M\n", File.ReadAllText(a));
        Assert.Equal("title Fedora\nversion 6.9\noptions root=UUID=5678 ro crashkernel=128M rhgb\ngrub_users $grub_users\n", File.ReadAllText(b));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(b));
        Assert.Equal("title Bare\nlinux /vmlinuz\noptions crashkernel=128M\n", File.ReadAllText(c));
        // The ,high/,low pair collapses into one value.
        Assert.Equal("root=UUID=1234 ro crashkernel=128M\n", File.ReadAllText(cmdline));
        Assert.Equal("not an entry\n", File.ReadAllText(Path.Combine(dir.Path, "boot/loader/entries/readme.txt")));
        Assert.Empty(Directory.EnumerateFiles(dir.Path, ".*capture-agent*", SearchOption.AllDirectories));   // no temp files left
    }

    [Fact]
    public void DryRunWritesNothing()
    {
        using var dir = new TempDir();
        Put(dir.Path, "etc/default/grub", DebianGrub);
        Directory.CreateDirectory(Path.Combine(dir.Path, "etc/default/grub.d"));
        Put(dir.Path, "boot/loader/entries/x.conf", "options root=/dev/vda1\n");
        Put(dir.Path, "etc/kernel/cmdline", "root=/dev/vda1\n");
        var before = Snapshot(dir.Path);
        var (rc, output) = Run("--size", "128M", "--root", dir.Path);
        Assert.Equal(0, rc);
        Assert.Equal(before, Snapshot(dir.Path));
        Assert.Contains("dry run: nothing written", output);
        Assert.Contains("+options root=/dev/vda1 crashkernel=128M", output);
        Assert.Contains("-root=/dev/vda1", output);
    }

    [Fact]
    public void SecondApplyChangesNothing()
    {
        using var dir = new TempDir();
        Put(dir.Path, "etc/default/grub", DebianGrub);
        Directory.CreateDirectory(Path.Combine(dir.Path, "etc/default/grub.d"));
        Put(dir.Path, "boot/loader/entries/x.conf", "options root=/dev/vda1 quiet\n");
        Put(dir.Path, "etc/kernel/cmdline", "root=/dev/vda1 quiet\n");
        Assert.Equal(0, Run("--size", "144M", "--root", dir.Path, "--apply").Rc);
        var first = Snapshot(dir.Path);
        var times = Directory.EnumerateFiles(dir.Path, "*", SearchOption.AllDirectories).ToDictionary(f => f, File.GetLastWriteTimeUtc);
        Thread.Sleep(20);
        var (rc, output) = Run("--size", "144M", "--root", dir.Path, "--apply");
        Assert.Equal(0, rc);
        Assert.Equal(first, Snapshot(dir.Path));
        Assert.All(times, t => Assert.Equal(t.Value, File.GetLastWriteTimeUtc(t.Key)));   // not rewritten either
        Assert.Contains("nothing to change", output);
        Assert.DoesNotContain("wrote", output);
        Assert.False(BootloaderConfig.Plan(dir.Path, "144M").AnyChange);
    }

    [Fact]
    public void SymlinkedFileIsNotReplaced()
    {
        using var dir = new TempDir();
        string real = Put(dir.Path, "elsewhere/cmdline", "root=/dev/vda1\n");
        Directory.CreateDirectory(Path.Combine(dir.Path, "etc/kernel"));
        File.CreateSymbolicLink(Path.Combine(dir.Path, "etc/kernel/cmdline"), real);
        var (rc, _) = Run("--size", "128M", "--root", dir.Path, "--apply");
        Assert.Equal(1, rc);
        Assert.Equal("root=/dev/vda1\n", File.ReadAllText(real));
    }

    [Fact]
    public void NoBootLoaderAndBadSizesAreReported()
    {
        using var dir = new TempDir();
        var (rc, output) = Run("--size", "128M", "--root", dir.Path);
        Assert.Equal(1, rc);
        Assert.Contains("no boot loader configuration found", output);
        Assert.Equal(2, Run("--size", "lots", "--root", dir.Path).Rc);
        Assert.True(BootloaderConfig.IsValidSize("1G-4G:192M,4G-:256M"));
        Assert.True(BootloaderConfig.IsValidSize("256M,high"));
        Assert.True(BootloaderConfig.IsValidSize("128M@16M"));
        Assert.False(BootloaderConfig.IsValidSize("128M; rm -rf /"));
    }

    [Fact]
    public void CrashkernelTokenRules()
    {
        Assert.Equal("a crashkernel=1G b", BootloaderConfig.SetCrashkernel("a crashkernel=256M b", "1G"));
        Assert.Equal("a b crashkernel=1G", BootloaderConfig.SetCrashkernel("a b", "1G"));
        string same = "a  crashkernel=1G   b";
        Assert.Same(same, BootloaderConfig.SetCrashkernel(same, "1G"));   // untouched, spacing and all
        Assert.Equal("crashkernel=64M", BootloaderConfig.SetCrashkernel("", "64M"));
        Assert.Equal("x=\"a b\" crashkernel=64M", BootloaderConfig.SetCrashkernel("x=\"a b\"", "64M"));
    }
}

using System.Diagnostics;
using System.Text.RegularExpressions;
using CaptureAgent.Host;
using CaptureAgent.Tests.Integration;
using Xunit;

namespace CaptureAgent.Tests.Host.Host;

/// <summary>
/// The early-boot hooks as their generators run them, against the published binary installed into a
/// fake root: initramfs-tools' real hook-functions (package initramfs-tools-core), dracut's and
/// mkinitcpio's helper functions stood in for by ones that copy into the image directory. Early and
/// late arming must build the same capture command line.
/// </summary>
[Trait("Category", "Binary")]
public class EarlyHookTests
{
    private const string HookFunctions = "/usr/share/initramfs-tools/hook-functions";
    private const string Append = "capture_test.marker=1 acpi_no_memhotplug";

    private static string Release => HostLayout.RunningRelease();

    /// <summary>A host with initramfs-tools, the running kernel's release, capture-agent installed, and this config.</summary>
    private static FakeHost Installed(bool earlyLoad)
    {
        var h = new FakeHost();
        h.AddKernel(Release);
        h.Write("usr/sbin/mkinitramfs", "#!/bin/sh\n", 0x1ed);
        h.Config(FakeHost.DefaultConfig + $"kernel_cmdline_append = {Append}\nblacklist = nouveau,floppy\nearly_load = {(earlyLoad ? "yes" : "no")}\n");
        var r = Fixtures.Exec(Fixtures.Binary, ["install", "--root", h.Root]);
        Assert.True(r.ExitCode == 0, r.Stderr + r.Stdout);
        return h;
    }

    private static Fixtures.Run Run(string file, IEnumerable<string> args, Dictionary<string, string> env)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        foreach (var (k, v) in env) psi.Environment[k] = v;
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(300_000)) { p.Kill(true); throw new TimeoutException(file); }
        return new Fixtures.Run(p.ExitCode, stdout.Result, stderr.Result);
    }

    /// <summary>initramfs-tools' hook, run as mkinitramfs runs it: $DESTDIR the image's tree, $version the kernel.</summary>
    private static Fixtures.Run InitramfsToolsHook(FakeHost h, string destDir)
    {
        Assert.True(File.Exists(HookFunctions), $"{HookFunctions} is missing: apt-get install initramfs-tools-core (scripts/test does)");
        Directory.CreateDirectory(destDir);
        // install puts the hook in only with early_load = yes; the package ships it always.
        if (!File.Exists(h.Root + EarlyHooks.InitramfsToolsHook)) h.Write(EarlyHooks.InitramfsToolsHook.TrimStart('/'), EarlyHooks.InitramfsToolsHookScript, 0x1ed);
        return Run("/bin/sh", [h.Root + EarlyHooks.InitramfsToolsHook],
            new() { ["DESTDIR"] = destDir, ["version"] = Release, ["verbose"] = "n", [HostLayout.RootVariable] = h.Root });
    }

    private static string CommandLine(Fixtures.Run load)
    {
        Assert.True(load.ExitCode == 0, load.Stderr);
        var m = Regex.Match(load.Stderr, "(?m)^capture command line: (.*)$");
        Assert.True(m.Success, load.Stderr);
        return m.Groups[1].Value;
    }

    [Fact]
    public void InitramfsToolsPacksTheConfigAndEarlyArmingHasTheServicesCommandLine()
    {
        using var h = Installed(earlyLoad: true);
        using var image = new TempDir();
        string dest = image.File("root");
        var hook = InitramfsToolsHook(h, dest);
        Assert.True(hook.ExitCode == 0, hook.Stderr + hook.Stdout);

        // What load --early reads in the initramfs: the agent, the capture kernel and initramfs load --auto arms, the config.
        Assert.True(File.Exists(Path.Combine(dest, "usr/bin/capture-agent")), hook.Stderr);
        Assert.Equal(File.ReadAllBytes(Path.Combine(h.Root, $"boot/vmlinuz-{Release}")), File.ReadAllBytes(Path.Combine(dest, "capture-agent/vmlinuz")));
        Assert.Equal(File.ReadAllBytes(h.Layout.ImagePath(Release)), File.ReadAllBytes(Path.Combine(dest, "capture-agent/initramfs.img")));
        Assert.Equal(File.ReadAllText(h.Layout.ConfigPath), File.ReadAllText(Path.Combine(dest, "etc/capture-agent.conf")));

        // The service's arming (late) and the initramfs's (early, the packed agent on the packed files): one command line.
        var late = Run(Fixtures.Binary, ["load", "--auto", "--dry-run"], new() { [HostLayout.RootVariable] = h.Root });
        var early = Run(Path.Combine(dest, "usr/bin/capture-agent"), ["load", "--early", "--dry-run", "--root", dest], new() { [HostLayout.RootVariable] = "" });
        string lateLine = CommandLine(late), earlyLine = CommandLine(early);
        Assert.Equal(lateLine, earlyLine);
        Assert.Contains(Append, earlyLine);
        Assert.Contains("modprobe.blacklist=nouveau,floppy", earlyLine);
        Assert.Contains($"capture kernel: {dest}/capture-agent/vmlinuz", early.Stderr);
        Assert.Contains("early arming from the initramfs", early.Stderr);

        // Without the packed config, early arming would have lost both: the copy is what makes them equal.
        File.Delete(Path.Combine(dest, "etc/capture-agent.conf"));
        string bare = CommandLine(Run(Path.Combine(dest, "usr/bin/capture-agent"), ["load", "--early", "--dry-run", "--root", dest], new() { [HostLayout.RootVariable] = "" }));
        Assert.DoesNotContain(Append, bare);
        Assert.NotEqual(lateLine, bare);
    }

    [Fact]
    public void NothingIsPackedWithoutEarlyLoadAndAFailureNeverFailsTheBuild()
    {
        using var h = Installed(earlyLoad: false);
        using var image = new TempDir();
        string dest = image.File("root");
        var hook = InitramfsToolsHook(h, dest);
        Assert.Equal((0, ""), (hook.ExitCode, hook.Stdout + hook.Stderr));
        Assert.Empty(Directory.EnumerateFileSystemEntries(dest));

        // early_load = yes but the kernel image is gone: a warning, exit 0, nothing packed.
        h.Config(File.ReadAllText(h.Layout.ConfigPath).Replace("early_load = no", "early_load = yes"));
        File.Delete(Path.Combine(h.Root, $"boot/vmlinuz-{Release}"));
        hook = InitramfsToolsHook(h, dest);
        Assert.Equal(0, hook.ExitCode);
        Assert.Contains("no kernel image for", hook.Stderr);
        Assert.Contains("early arming skipped", hook.Stderr);
        Assert.Empty(Directory.EnumerateFileSystemEntries(dest));
    }

    // dracut's and mkinitcpio's helpers, standing in: each copies SOURCE to $DESTDIR/DEST.
    private const string CopyInto = """
        put() { mkdir -p "$DESTDIR$(dirname "$2")" && cp "$1" "$DESTDIR$2"; }
        inst_binary() { put "$1" "$2"; }
        inst_simple() { put "$1" "$2"; }
        inst_hook() { echo "hook $1 $2 $3" >> "$DESTDIR/.hooks"; }
        add_binary() { put "$1" "$2"; }
        add_file() { put "$1" "$2"; }
        add_runscript() { echo runscript >> "$DESTDIR/.hooks"; }
        warning() { echo "WARNING: $*" >&2; }
        """;

    [Theory]
    [InlineData("dracut")]
    [InlineData("mkinitcpio")]
    public void DracutAndMkinitcpioHooksPackTheSameFiles(string generator)
    {
        using var h = Installed(earlyLoad: true);
        using var image = new TempDir();
        string dest = image.File("root");
        Directory.CreateDirectory(dest);
        var g = EarlyHooks.Generators.Single(x => x.Name == generator);
        string setup = image.File("setup");
        File.WriteAllText(setup, g.Files[0].Text);
        string script = generator == "dracut"
            ? $"{CopyInto}\nkernel='{Release}'; moddir='{EarlyHooks.DracutModuleDirectory}'\n. '{setup}'\ncheck || exit 9\ninstall\n"
            : $"{CopyInto}\nKERNELVERSION='{Release}'\n. '{setup}'\nbuild\n";
        var env = new Dictionary<string, string> { ["DESTDIR"] = dest, [HostLayout.RootVariable] = h.Root };
        var r = Run("/bin/bash", ["-c", script], env);
        Assert.True(r.ExitCode == 0, r.Stderr + r.Stdout);
        foreach (var f in new[] { "usr/bin/capture-agent", "capture-agent/vmlinuz", "capture-agent/initramfs.img", "etc/capture-agent.conf" })
            Assert.True(File.Exists(Path.Combine(dest, f)), $"{generator}: {f} not packed\n{r.Stderr}");
        string hooks = File.ReadAllText(Path.Combine(dest, ".hooks"));
        Assert.Contains(generator == "dracut" ? $"hook pre-mount 00 {EarlyHooks.DracutModuleDirectory}/capture-agent-load.sh" : "runscript", hooks);

        // Switched off: dracut leaves the module out (check fails), mkinitcpio packs nothing.
        h.Config(File.ReadAllText(h.Layout.ConfigPath).Replace("early_load = yes", "early_load = no"));
        Directory.Delete(dest, true);
        Directory.CreateDirectory(dest);
        r = Run("/bin/bash", ["-c", script], env);
        Assert.Equal(generator == "dracut" ? 9 : 0, r.ExitCode);
        Assert.Empty(Directory.EnumerateFileSystemEntries(dest));
    }
}

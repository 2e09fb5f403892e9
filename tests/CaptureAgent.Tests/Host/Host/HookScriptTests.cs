using System.Diagnostics;
using System.Text.Json;
using CaptureAgent.Cli;
using CaptureAgent.Host;
using CaptureAgent.Tests.Integration;
using Xunit;
using CaptureAgent.Common;

namespace CaptureAgent.Tests.Host.Host;

/// <summary>
/// The installed kernel hooks run by sh, as dpkg's run-parts and kernel-install run them, against
/// the published binary installed into a fake root ($CAPTURE_AGENT_ROOT points everything there).
/// </summary>
[Trait("Category", "Binary")]
public class HookScriptTests
{
    private const string K = "6.1.0-77-amd64";

    private static Fixtures.Run Sh(FakeHost h, string script, params string[] args)
    {
        var psi = new ProcessStartInfo("/bin/sh") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(h.Root + script);
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment[HostLayout.RootVariable] = h.Root;
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(300_000)) { p.Kill(true); throw new TimeoutException(script); }
        return new Fixtures.Run(p.ExitCode, stdout.Result, stderr.Result);
    }

    private static FakeHost Installed()
    {
        var h = new FakeHost();
        h.AddKernel(K);
        var r = Fixtures.Exec(Fixtures.Binary, ["install", "--root", h.Root]);
        Assert.True(r.ExitCode == 0, r.Stderr + r.Stdout);
        Assert.Equal(File.ReadAllBytes(Fixtures.Binary), File.ReadAllBytes(h.Agent));
        return h;
    }

    [Fact]
    public void DebianHooksCreateAndRemoveTheStoreEntry()
    {
        using var h = Installed();
        string image = Path.Combine(h.Root, "var/lib/capture-agent", K, "initramfs.img");
        var add = Sh(h, KernelHooks.DebianPostinst, K, $"/boot/vmlinuz-{K}");
        Assert.True(add.ExitCode == 0 && File.Exists(image), add.Stderr);
        Assert.Contains("no capture initramfs yet", add.Stderr);
        // The published binary is dynamically linked: its loader and libc go in beside it as /init.
        var list = Fixtures.Sh($"zstd -dc '{image}' | cpio -t --quiet");
        Assert.Contains("\ninit\n", "\n" + list);
        Assert.Contains("block/virtio_blk.ko", list);
        Assert.Matches(@"(?m)^lib.*/ld-linux-x86-64\.so\.2$", list);
        Assert.Contains("libc.so.6", list);
        // dpkg reconfiguring the same kernel: nothing changed, nothing rebuilt.
        var again = Sh(h, KernelHooks.DebianPostinst, K, $"/boot/vmlinuz-{K}");
        Assert.Equal(0, again.ExitCode);
        Assert.Contains("is current", again.Stderr);

        var rm = Sh(h, KernelHooks.DebianPostrm, K, $"/boot/vmlinuz-{K}");
        Assert.True(rm.ExitCode == 0, rm.Stderr);
        Assert.False(Directory.Exists(Path.GetDirectoryName(image)));
    }

    [Fact]
    public void KernelInstallPluginAddsAndRemoves()
    {
        using var h = Installed();
        string image = Path.Combine(h.Root, "var/lib/capture-agent", K, "initramfs.img");
        var add = Sh(h, KernelHooks.KernelInstallPlugin, "add", K, "/boot/efi/abc/" + K, $"/usr/lib/modules/{K}/vmlinuz");
        Assert.True(add.ExitCode == 0 && File.Exists(image), add.Stderr);
        Assert.Equal(0, Sh(h, KernelHooks.KernelInstallPlugin, "inspect", K).ExitCode);
        Assert.True(File.Exists(image));
        var rm = Sh(h, KernelHooks.KernelInstallPlugin, "remove", K, "/boot/efi/abc/" + K);
        Assert.True(rm.ExitCode == 0, rm.Stderr);
        Assert.False(File.Exists(image));
    }

    [Fact]
    public void HooksNeverFailThePackageOperation()
    {
        using var h = Installed();
        // A kernel without a module tree: the agent fails, the hook reports it and exits 0.
        var broken = Sh(h, KernelHooks.DebianPostinst, "9.9.9-gone", "/boot/vmlinuz-9.9.9-gone");
        Assert.Equal(0, broken.ExitCode);
        Assert.Contains("no module tree", broken.Stderr);
        Assert.Contains("no capture initramfs for 9.9.9-gone", broken.Stderr);
        Assert.False(Directory.Exists(Path.Combine(h.Root, "var/lib/capture-agent/9.9.9-gone")));
        // No arguments, a path-like release, and the agent gone: all exit 0 with a message.
        var none = Sh(h, KernelHooks.DebianPostinst);
        Assert.Equal(0, none.ExitCode);
        Assert.Contains("without a kernel release", none.Stderr);
        var evil = Sh(h, KernelHooks.KernelInstallPlugin, "add", "../../etc", "/x", "/y");
        Assert.Equal(0, evil.ExitCode);
        Assert.Contains("is not a kernel release", evil.Stderr);
        // The package removed but not purged: the /etc/kernel conffiles stay and do nothing, silently.
        File.Delete(h.Agent);
        foreach (var script in new[] { KernelHooks.DebianPostinst, KernelHooks.DebianPostrm })
        {
            var r = Sh(h, script, K, $"/boot/vmlinuz-{K}");
            Assert.Equal(0, r.ExitCode);
            Assert.Equal("", r.Stderr + r.Stdout);
        }
        var plugin = Sh(h, KernelHooks.KernelInstallPlugin, "add", K, "/x", "/y");
        Assert.Equal((0, ""), (plugin.ExitCode, plugin.Stderr + plugin.Stdout));
    }

    [Fact]
    public void PublishedBinaryInstallsDryRunAndUninstalls()
    {
        using var h = new FakeHost();
        var before = h.Tree();
        var dry = Fixtures.Exec(Fixtures.Binary, ["install", "--root", h.Root, "--dry-run"]);
        Assert.Equal(0, dry.ExitCode);
        Assert.Contains("would write /usr/lib/kernel/install.d/45-capture-agent.install (0755)", dry.Stdout);
        Assert.Equal(before, h.Tree());
        // CAPTURE_AGENT_ROOT is the default root when --root is not given.
        var psi = new ProcessStartInfo(Fixtures.Binary, ["install"]) { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.Environment[HostLayout.RootVariable] = h.Root;
        using (var p = Process.Start(psi)!)
        {
            p.WaitForExit();
            Assert.Equal(0, p.ExitCode);
        }
        Assert.True(File.Exists(h.Root + KernelHooks.Service));
        Assert.Equal(0, Fixtures.Exec(Fixtures.Binary, ["uninstall", "--root", h.Root, "--purge"]).ExitCode);
        Assert.Equal(before, h.Tree());
    }
}

/// <summary>`status` reports the store: what load --auto arms, whether its image is stale and why, every stored image.</summary>
[Trait("Category", "Binary")]
public class StatusStoreTests
{
    private const string K = "6.1.0-99-amd64";

    private static JsonElement Status(FakeHost h)
    {
        var psi = new ProcessStartInfo(Fixtures.Binary, ["status", "--json"]) { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.Environment[HostLayout.RootVariable] = h.Root;
        using var p = Process.Start(psi)!;
        string stdout = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        using var doc = JsonDocument.Parse(stdout);
        return doc.RootElement.Clone();
    }

    [Fact]
    public void StatusNamesThePinnedKernelAndAStaleImage()
    {
        using var h = new FakeHost();
        h.AddKernel(K);
        h.FakeAgent();
        h.Config(FakeHost.DefaultConfig);
        Assert.Equal(ExitCodes.Ok, KernelHookCommand.Pin([K, "--root", h.Root]));   // pins and builds

        var s = Status(h);
        Assert.Equal(K, s.GetProperty("auto_release").GetString());
        Assert.Equal("pinned", s.GetProperty("auto_reason").GetString());
        Assert.Equal(0, s.GetProperty("auto_rebuild_needed").GetArrayLength());
        var entry = Assert.Single(s.GetProperty("capture_store").EnumerateArray());
        Assert.Equal(K, entry.GetProperty("kernel_release").GetString());
        Assert.True(entry.GetProperty("pinned").GetBoolean());
        Assert.True(entry.GetProperty("kernel_present").GetBoolean());
        Assert.Equal(new FileInfo(h.Layout.ImagePath(K)).Length, entry.GetProperty("image_bytes").GetInt64());

        // An edited config: the image is stale, and status says so before the service rebuilds it.
        h.Config(FakeHost.DefaultConfig + "dump_level = 1\n");
        s = Status(h);
        Assert.Contains(s.GetProperty("auto_rebuild_needed").EnumerateArray(), c => c.GetString()!.StartsWith("config changed", StringComparison.Ordinal));
    }
}

using CaptureAgent.Cli;
using CaptureAgent.Host;
using Xunit;
using CaptureAgent.Common;

namespace CaptureAgent.Tests.Host.Host;

/// <summary>Which kernel `load --auto` arms: the pin when it is usable, the running kernel otherwise, always with the reason.</summary>
public class ChooseAndPinTests
{
    private const string Running = "6.12.1-1-amd64", Old = "6.1.0-99-amd64";

    private static FakeHost Host()
    {
        var h = new FakeHost();
        h.FakeAgent();
        h.Config(FakeHost.DefaultConfig);
        h.AddKernel(Running);
        h.AddKernel(Old);
        return h;
    }

    [Fact]
    public void NoPinMeansTheRunningKernel()
    {
        using var h = Host();
        var c = CaptureStore.Choose(h.Root, Running);
        Assert.Equal(Running, c.Release);
        Assert.False(c.Pinned);
        Assert.Null(c.PinnedRelease);
        Assert.Equal("the running kernel", c.Reason);
        Assert.Equal(Path.Combine(h.Root, "boot", $"vmlinuz-{Running}"), c.KernelPath);
        Assert.Equal(Path.Combine(h.Root, "var/lib/capture-agent", Running, "initramfs.img"), c.InitramfsPath);
        Assert.True(c.KernelExists);
        Assert.False(c.InitramfsExists);   // EnsureCurrent builds it
    }

    [Fact]
    public void PinWithKernelAndImageIsChosen()
    {
        using var h = Host();
        Assert.Equal(ExitCodes.Ok, KernelHookCommand.Pin([Old, "--root", h.Root]));   // pins and builds
        Assert.Equal(Old + "\n", File.ReadAllText(Path.Combine(h.Root, "var/lib/capture-agent/pinned")));
        var c = CaptureStore.Choose(h.Root, Running);
        Assert.Equal(Old, c.Release);
        Assert.True(c.Pinned);
        Assert.Equal("pinned", c.Reason);
        Assert.Equal(Path.Combine(h.Root, "boot", $"vmlinuz-{Old}"), c.KernelPath);
        Assert.True(c.InitramfsExists);

        Assert.Equal(ExitCodes.Ok, KernelHookCommand.Pin(["--unpin", "--root", h.Root]));
        Assert.False(File.Exists(Path.Combine(h.Root, "var/lib/capture-agent/pinned")));
        Assert.Equal(Running, CaptureStore.Choose(h.Root, Running).Release);
    }

    [Fact]
    public void PinnedButKernelImageGoneFallsBackWithAReason()
    {
        using var h = Host();
        Assert.Equal(ExitCodes.Ok, KernelHookCommand.Pin([Old, "--root", h.Root]));
        File.Delete(Path.Combine(h.Root, "boot", $"vmlinuz-{Old}"));
        var c = CaptureStore.Choose(h.Root, Running);
        Assert.Equal(Running, c.Release);
        Assert.False(c.Pinned);
        Assert.Equal(Old, c.PinnedRelease);
        Assert.Equal($"{Old} is pinned but its kernel image {h.Root}/boot/vmlinuz-{Old} does not exist; using the running kernel {Running}", c.Reason);
    }

    [Fact]
    public void PinnedButNotBuiltFallsBackWithAReason()
    {
        using var h = Host();
        Assert.Equal(ExitCodes.Ok, KernelHookCommand.Pin([Old, "--no-build", "--root", h.Root]));
        var c = CaptureStore.Choose(h.Root, Running);
        Assert.Equal(Running, c.Release);
        Assert.Contains("has not been built (capture-agent kernel-hook add " + Old + ")", c.Reason);
        // Built afterwards: now the pin holds.
        Assert.Null(CaptureStore.EnsureCurrent(h.Root, Old, _ => { }).Error);
        Assert.True(CaptureStore.Choose(h.Root, Running).Pinned);
    }

    [Fact]
    public void KernelImageBesideTheModulesCounts()
    {
        using var h = new FakeHost();
        h.FakeAgent();
        h.AddKernel(Old, withImage: false);
        Assert.Equal(ExitCodes.Failed, KernelHookCommand.Pin([Old, "--root", h.Root]));   // no image anywhere: refused
        Assert.False(File.Exists(Path.Combine(h.Root, "var/lib/capture-agent/pinned")));
        File.WriteAllText(Path.Combine(h.ModuleDir(Old), "vmlinuz"), "kernel\n");   // kernel-install layout
        Assert.Equal(ExitCodes.Ok, KernelHookCommand.Pin([Old, "--root", h.Root]));
        var c = CaptureStore.Choose(h.Root, Running);
        Assert.True(c.Pinned);
        Assert.Equal(Path.Combine(h.ModuleDir(Old), "vmlinuz"), c.KernelPath);
    }

    [Fact]
    public void GarbageInThePinFileIsIgnoredWithAReason()
    {
        using var h = Host();
        h.Write("var/lib/capture-agent/pinned", "../../etc/passwd\n");
        var c = CaptureStore.Choose(h.Root, Running);
        Assert.Equal(Running, c.Release);
        Assert.Contains("not a kernel release", c.Reason);
        Assert.Equal(ExitCodes.Usage, KernelHookCommand.Pin(["../x", "--root", h.Root]));
        Assert.Equal(ExitCodes.Usage, KernelHookCommand.Pin([Old, "--unpin", "--root", h.Root]));
    }

    [Fact]
    public void KernelHookCommandAddsAndRemoves()
    {
        using var h = Host();
        Assert.Equal(ExitCodes.Ok, KernelHookCommand.Run(["add", Old, "/boot/vmlinuz-" + Old, "--root", h.Root]));
        Assert.True(File.Exists(Path.Combine(h.Root, "var/lib/capture-agent", Old, "initramfs.img")));
        Assert.Equal(ExitCodes.Ok, KernelHookCommand.Run(["remove", Old, "--root", h.Root]));
        Assert.False(Directory.Exists(Path.Combine(h.Root, "var/lib/capture-agent", Old)));
        Assert.Equal(ExitCodes.Usage, KernelHookCommand.Run(["add", "--root", h.Root]));
        Assert.Equal(ExitCodes.Usage, KernelHookCommand.Run(["add", "../../x", "--root", h.Root]));
        Assert.Equal(ExitCodes.Failed, KernelHookCommand.Run(["add", "9.9.9-none", "--root", h.Root]));   // no module tree
    }
}

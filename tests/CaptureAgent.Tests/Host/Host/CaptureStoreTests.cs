using CaptureAgent.Host;
using CaptureAgent.Tests.Integration;
using Xunit;

namespace CaptureAgent.Tests.Host.Host;

/// <summary>The per-kernel store on a fake root: first build, each rebuild trigger, the no-change case, failures, removal.</summary>
public class CaptureStoreTests
{
    private const string K = "6.1.0-99-amd64";

    private static (FakeHost Host, List<string> Log) Built()
    {
        var h = new FakeHost();
        h.FakeAgent();
        h.AddKernel(K);
        h.Config(FakeHost.DefaultConfig);
        var log = new List<string>();
        var r = CaptureStore.EnsureCurrent(h.Layout, K, log.Add);
        Assert.True(r.Rebuilt, string.Join('\n', log));
        Assert.Null(r.Error);
        Assert.Equal(["no capture initramfs yet"], r.Changes);
        return (h, log);
    }

    private static List<string> ImageList(string image) => Fixtures.Sh($"zstd -dc '{image}' | cpio -t --quiet").Split('\n', StringSplitOptions.RemoveEmptyEntries).ToList();

    private static StoreResult Again(FakeHost h, List<string>? log = null) => CaptureStore.EnsureCurrent(h.Layout, K, (log ?? []).Add);

    [Fact]
    public void FirstBuildHoldsTheTargetChainAndNothingChangesAfterwards()
    {
        var (h, log) = Built();
        using var _ = h;
        string dir = Path.Combine(h.Root, "var/lib/capture-agent", K), image = Path.Combine(dir, "initramfs.img");
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(image));
        Assert.Equal((UnixFileMode)0x1c0, File.GetUnixFileMode(dir));
        Assert.Equal((UnixFileMode)0x1c0, File.GetUnixFileMode(Path.Combine(h.Root, "var/lib/capture-agent")));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(dir, "stamp.json")));
        // UUID= found on vda1 by its real ext4 superblock: virtio_blk below, virtio_pci above it, then ext4.
        var list = ImageList(image);
        Assert.True(log.Count > 0, string.Join("\n", log));
        Assert.Contains("init", list);
        Assert.Contains("etc/capture-agent.conf", list);
        foreach (var m in new[] { "block/virtio_blk.ko", "virtio/virtio_pci.ko", "virtio/virtio.ko", "virtio/virtio_ring.ko", "ext4/ext4.ko", "jbd2/jbd2.ko" })
            Assert.Contains(list, e => e.EndsWith(m, StringComparison.Ordinal));
        Assert.DoesNotContain(list, e => e.Contains("ahci") || e.Contains("nvme"));
        Assert.Contains(log, l => l.EndsWith("modules: virtio_ring virtio virtio_blk virtio_pci jbd2 mbcache ext4", StringComparison.Ordinal));
        // The agent bytes are /init.
        Fixtures.Sh($"cd '{h.Machine.Scratch("")}' && mkdir x && cd x && zstd -dc '{image}' | cpio -i -d --quiet init");
        Assert.Equal(File.ReadAllBytes(h.Agent), File.ReadAllBytes(Path.Combine(h.Machine.Scratch("x"), "init")));
        // The stamp names the target's device and chain.
        string stamp = File.ReadAllText(Path.Combine(dir, "stamp.json"));
        Assert.Contains($"UUID={FakeHost.Uuid} -> vda1 (ext4 UUID={FakeHost.Uuid}) needs virtio_blk virtio_pci ext4", stamp);
        Assert.Contains("\"kernel_release\": \"6.1.0-99-amd64\"", stamp);
        // Plain `load` and the early-boot hooks find it under the old name.
        Assert.Equal($"{K}/initramfs.img", new FileInfo(Path.Combine(h.Root, "var/lib/capture-agent", $"initramfs-{K}.img")).LinkTarget);

        long mtime = File.GetLastWriteTimeUtc(image).Ticks;
        var again = Again(h);
        Assert.False(again.Rebuilt);
        Assert.Empty(again.Changes);
        Assert.Equal(mtime, File.GetLastWriteTimeUtc(image).Ticks);
        Assert.Empty(CaptureStore.Check(h.Layout, K));
    }

    [Fact]
    public void ConfigChangeRebuilds()
    {
        using var h = Built().Host;
        h.Config(FakeHost.DefaultConfig + "keep_dumps = 2\n");
        Assert.Equal(["config changed"], CaptureStore.Check(h.Layout, K));
        var r = Again(h);
        Assert.True(r.Rebuilt);
        Assert.Equal(["config changed"], r.Changes);
        Fixtures.Sh($"cd '{h.Machine.Scratch("")}' && mkdir y && cd y && zstd -dc '{r.ImagePath}' | cpio -i -d --quiet etc/capture-agent.conf");
        Assert.EndsWith("keep_dumps = 2\n", File.ReadAllText(h.Machine.Scratch("y/etc/capture-agent.conf")));
        Assert.False(Again(h).Rebuilt);
    }

    [Fact]
    public void ExtraModuleInTheConfigChangesTheModuleSet()
    {
        using var h = Built().Host;
        h.Config(FakeHost.DefaultConfig + "extra_modules = nvme\n");
        var r = Again(h);
        Assert.Equal(["config changed", "module set changed: +nvme_core, +nvme"], r.Changes);
        Assert.Contains(ImageList(r.ImagePath), e => e.EndsWith("nvme/host/nvme.ko", StringComparison.Ordinal));
    }

    [Fact]
    public void ModuleTreeChangesRebuildWithoutAConfigChange()
    {
        using var h = Built().Host;
        // A module file rewritten by a package upgrade (same release): new size and mtime.
        string blk = Path.Combine(h.ModuleDir(K), "kernel/drivers/block/virtio_blk.ko");
        File.AppendAllText(blk, "fixed\n");
        Assert.Equal(["module set changed: virtio_blk updated"], Again(h).Changes);
        // depmod ran again and virtio_blk now needs crc16.
        string dep = Path.Combine(h.ModuleDir(K), "modules.dep");
        File.WriteAllText(dep, File.ReadAllText(dep).Replace("block/virtio_blk.ko: ", "block/virtio_blk.ko: kernel/lib/crc16.ko "));
        File.SetLastWriteTimeUtc(dep, DateTime.UtcNow.AddMinutes(1));
        Assert.Equal(["module set changed: +crc16, modules.dep updated"], Again(h).Changes);
        // depmod alone (same dependencies, new modules.dep mtime) is still a change: the module set may differ.
        File.SetLastWriteTimeUtc(dep, DateTime.UtcNow.AddMinutes(2));
        Assert.Equal(["module set changed: modules.dep updated"], Again(h).Changes);
        Assert.Empty(Again(h).Changes);
    }

    [Fact]
    public void TargetOnAnotherDiskChangesTheChain()
    {
        using var h = Built().Host;
        h.MoveFilesystemToSda();
        var r = Again(h);
        Assert.True(r.Rebuilt);
        Assert.Equal(2, r.Changes.Count);
        Assert.StartsWith("target chain changed: ", r.Changes[0]);
        Assert.Contains($"now UUID={FakeHost.Uuid} -> sda1", r.Changes[0]);
        Assert.Contains("was UUID=", r.Changes[0]);
        Assert.Equal("module set changed: +sd_mod, +libahci, +ahci, -virtio_ring, -virtio, -virtio_blk, -virtio_pci", r.Changes[1]);
        var list = ImageList(r.ImagePath);
        Assert.Contains(list, e => e.EndsWith("ata/ahci.ko", StringComparison.Ordinal));
        Assert.DoesNotContain(list, e => e.Contains("virtio"));
    }

    [Fact]
    public void NewAgentRebuilds()
    {
        using var h = Built().Host;
        h.FakeAgent("#!/bin/sh\n# capture-agent stand-in, version 2\n");
        Assert.Equal(["agent updated"], Again(h).Changes);
        // Same bytes but a new mtime (reinstalled): the stamp cannot know it is the same, so rebuild.
        File.SetLastWriteTimeUtc(h.Agent, DateTime.UtcNow.AddMinutes(5));
        Assert.Equal(["agent updated"], Again(h).Changes);
    }

    [Fact]
    public void MissingOrDamagedStampRebuilds()
    {
        using var h = Built().Host;
        string stamp = Path.Combine(h.Root, "var/lib/capture-agent", K, "stamp.json");
        File.WriteAllText(stamp, "{ not json");
        var r = Again(h);
        Assert.Single(r.Changes);
        Assert.StartsWith("stamp unreadable", r.Changes[0]);
        File.Delete(stamp);
        Assert.Equal(["no stamp"], Again(h).Changes);
        Assert.Empty(Again(h).Changes);
    }

    [Fact]
    public void FailedRebuildKeepsThePreviousImage()
    {
        using var h = Built().Host;
        string image = Path.Combine(h.Root, "var/lib/capture-agent", K, "initramfs.img");
        var before = File.ReadAllBytes(image);
        h.Config(FakeHost.DefaultConfig + "extra_modules = no_such_driver\n");
        var log = new List<string>();
        var r = Again(h, log);
        Assert.False(r.Rebuilt);
        Assert.True(r.Usable);
        Assert.Contains("no_such_driver", r.Error);
        Assert.Contains(log, l => l.Contains("failed") && l.Contains("the previous image") && l.Contains("stays in use"));
        Assert.Equal(before, File.ReadAllBytes(image));
        Assert.Empty(Directory.GetFiles(Path.GetDirectoryName(image)!, "*.tmp-*"));
        // Nothing stored for a kernel without a module tree: an error, no image.
        var none = CaptureStore.EnsureCurrent(h.Layout, "6.2.0-1-amd64", null);
        Assert.False(none.Usable);
        Assert.Contains("no module tree", none.Error);
    }

    [Fact]
    public void ConfigWithErrorsNeverReplacesAWorkingImage()
    {
        using var h = Built().Host;
        string image = Path.Combine(h.Root, "var/lib/capture-agent", K, "initramfs.img");
        var before = File.ReadAllBytes(image);
        // The only target mistyped: the image built from it would have nowhere to write.
        h.Config("target = LABELL=root\npath = /var/crash\n");
        var log = new List<string>();
        var r = Again(h, log);
        Assert.False(r.Rebuilt);
        Assert.True(r.Usable);
        Assert.Contains("error", r.Error);
        Assert.Contains(log, l => l.Contains("the previous image") && l.Contains("stays in use"));
        Assert.Equal(before, File.ReadAllBytes(image));
        // What the kernel package hooks run says so by its exit status.
        Assert.Equal(CaptureAgent.Common.ExitCodes.Failed, CaptureAgent.Cli.KernelHookCommand.Run(["add", K, "--root", h.Root, "--force"]));
        Assert.Equal(before, File.ReadAllBytes(image));
        // A config without any target is refused the same way.
        h.Config("path = /var/crash\n");
        Assert.NotNull(Again(h).Error);
        Assert.Equal(before, File.ReadAllBytes(image));
    }

    [Fact]
    public void RemoveDeletesTheEntryAndItsPin()
    {
        using var h = Built().Host;
        CaptureStore.Pin(h.Layout, K);
        var log = new List<string>();
        Assert.True(CaptureStore.Remove(h.Layout, K, log.Add));
        Assert.False(Directory.Exists(Path.Combine(h.Root, "var/lib/capture-agent", K)));
        Assert.False(File.Exists(Path.Combine(h.Root, "var/lib/capture-agent", $"initramfs-{K}.img")));
        Assert.Null(CaptureStore.ReadPin(h.Layout, out _));
        Assert.Contains(log, l => l.Contains("pin is dropped"));
        Assert.False(CaptureStore.Remove(h.Layout, K, log.Add));
    }

    [Fact]
    public void PlantedLinkInsteadOfTheStoreIsRefused()
    {
        using var h = new FakeHost();
        h.FakeAgent();
        h.AddKernel(K);
        h.Config(FakeHost.DefaultConfig);
        string elsewhere = Directory.CreateDirectory(h.Machine.Scratch("elsewhere")).FullName;
        Directory.CreateDirectory(Path.Combine(h.Root, "var/lib"));
        File.CreateSymbolicLink(Path.Combine(h.Root, "var/lib/capture-agent"), elsewhere);
        var r = CaptureStore.EnsureCurrent(h.Layout, K, null);
        Assert.Contains("symbolic link", r.Error);
        Assert.Empty(Directory.EnumerateFileSystemEntries(elsewhere));
    }

    [Fact]
    public void ReleasesThatAreNotOnePathComponentAreRefused()
    {
        using var h = new FakeHost();
        foreach (var bad in new[] { "../etc", "a/b", "", ".hidden", "-rf", "6.1 0" })
        {
            Assert.False(HostLayout.IsValidRelease(bad));
            Assert.Throws<ArgumentException>(() => CaptureStore.EnsureCurrent(h.Layout, bad, null));
        }
        Assert.True(HostLayout.IsValidRelease("6.12.117+deb12-amd64"));
    }
}

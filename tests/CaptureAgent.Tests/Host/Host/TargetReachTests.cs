using CaptureAgent.Host;
using CaptureAgent.Kexec;
using CaptureAgent.Targets;
using CaptureAgent.Tests.Integration;
using CaptureAgent.Tests.CaptureKernel.Targets;
using Xunit;

namespace CaptureAgent.Tests.Host.Host;

/// <summary>
/// Whether the capture image can reach each target (CaptureImagePlan.Reach and WouldNotSave), on a
/// fake host: LUKS by dm-crypt uuid and by a real cryptsetup header, md arrays and their modules,
/// and the stored image that lacks the modules a target now needs.
/// </summary>
public class TargetReachTests
{
    private const string K = "6.1.0-99-amd64";
    private const string InnerUuid = "9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d";

    private static FakeHost Host(string config)
    {
        var h = new FakeHost();
        h.FakeAgent();
        h.AddKernel(K);
        h.Config(config);
        return h;
    }

    /// <summary>An ext4 filesystem with <see cref="InnerUuid"/> as the node of <paramref name="device"/>.</summary>
    private static void InnerFilesystem(FakeHost h, string device)
    {
        string image = Blkid.Image(h.Machine.Scratch("inner.img"), 8);
        Blkid.Run("/usr/sbin/mkfs.ext4", ["-q", "-F", "-U", InnerUuid, image]);
        h.Machine.NodeFromImage(device, image);
    }

    /// <summary>A real LUKS2 header (cryptsetup on a plain file: no root, no device mapper).</summary>
    private static string LuksImage(string path)
    {
        File.WriteAllBytes(path, []);
        Fixtures.Sh($"truncate -s 20M '{path}'");
        var r = Fixtures.Exec("cryptsetup", ["luksFormat", "--batch-mode", "--type", "luks2", "--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000", path, "-d", "-"], stdin: "test-passphrase");
        Assert.True(r.ExitCode == 0, $"cryptsetup luksFormat (apt-get install cryptsetup-bin): {r.Stderr}");
        return path;
    }

    [Fact]
    public void APlainDiskIsReachable()
    {
        using var h = Host(FakeHost.DefaultConfig);
        var plan = CaptureImagePlan.Make(h.Layout, K);
        Assert.True(Assert.Single(plan.Reach).Reachable);
        Assert.Null(plan.WouldNotSave());
        Assert.Empty(plan.SkippedTargets());
    }

    [Fact]
    public void ATargetInsideDmCryptIsNotReachableAndStatusSaysWhatToDo()
    {
        using var h = Host($"target = UUID={InnerUuid}\n");
        h.Machine.AddDisk(null, "dm-0", "253:0", 16384);
        h.Machine.Attribute("dm-0", "dm/name", "luks-sda1");
        h.Machine.Attribute("dm-0", "dm/uuid", "CRYPT-LUKS2-0123456789abcdef0123456789abcdef-luks-sda1");
        h.Machine.Stack("dm-0", "sda1");
        InnerFilesystem(h, "dm-0");
        var log = new List<string>();
        var r = CaptureStore.EnsureCurrent(h.Layout, K, log.Add);
        Assert.NotNull(r.WouldNotSave);
        Assert.Contains($"UUID={InnerUuid}: dm-0 is inside the encrypted volume luks-sda1 (dm-crypt LUKS2)", r.WouldNotSave);
        Assert.Contains("put the dump target outside the encrypted volume, or use a network target", r.WouldNotSave);
        Assert.Single(log, l => l.StartsWith("the dump would not be saved: "));
        Assert.Equal(r.WouldNotSave, CaptureStore.Inspect(h.Layout, K).WouldNotSave);
        var armed = new CrashKernelState(true, 256 << 20, "crashkernel=256M", "", false, null);
        Assert.StartsWith("armed, but the dump would not be saved: ", armed.Explain(r.WouldNotSave));
        Assert.StartsWith("armed: ", armed.Explain(null));
        Assert.DoesNotContain('\n', armed.Explain(r.WouldNotSave));
    }

    /// <summary>
    /// A disk the running system does not see: unreachable, unless extra_modules names the drivers
    /// the capture kernel will find it with (ServiceCommandsEndToEndTests' guest: its first kernel
    /// never loads virtio_blk, its capture kernel does and saves).
    /// </summary>
    [Fact]
    public void AnAbsentDiskIsReachableOnlyWhenExtraModulesNameItsDrivers()
    {
        using (var h = Host("target = LABEL=elsewhere\nfstype = ext4\n"))
            Assert.Contains("LABEL=elsewhere: its device is not on this machine now", CaptureImagePlan.Make(h.Layout, K).WouldNotSave());
        using (var h = Host("target = LABEL=elsewhere\nfstype = ext4\nextra_modules = virtio_pci virtio_blk\n"))
        {
            var plan = CaptureImagePlan.Make(h.Layout, K);
            Assert.True(Assert.Single(plan.Reach).Reachable);
            Assert.Null(plan.WouldNotSave());
        }
    }

    [Fact]
    public void ALaterReachableTargetArmsAndTheSkippedOneIsNamed()
    {
        using var h = Host($"target = raw:/dev/sda1\ntarget = UUID={FakeHost.Uuid}\n");
        LuksImage(Path.Combine(h.Machine.Dev, "sda1"));
        var plan = CaptureImagePlan.Make(h.Layout, K);
        Assert.Null(plan.WouldNotSave());
        var skipped = Assert.Single(plan.SkippedTargets());
        Assert.StartsWith("raw:/dev/sda1: sda1 is on sda1, an encrypted volume (LUKS2)", skipped);
        // config check warns with the same words.
        var warning = Assert.Single(CaptureImagePlan.StackObstacles(h.Layout, CaptureAgent.Config.AgentConfig.Parse(File.ReadAllText(h.Layout.ConfigPath), "conf")));
        Assert.Equal("raw:/dev/sda1", warning.Target.Text);
        Assert.Contains("the capture kernel cannot unlock it", warning.Obstacle);
    }

    [Fact]
    public void AnMdArrayNeedsItsModulesInTheImage()
    {
        using var h = Host($"target = UUID={InnerUuid}\n");
        h.Machine.AddDisk(null, "md0", "9:0", 16384);
        h.Machine.Attribute("md0", "md/level", "raid1");
        h.Machine.Attribute("md0", "md/metadata_version", "1.2");
        h.Machine.Stack("md0", "vda1");
        h.Machine.Stack("md0", "sda1");
        InnerFilesystem(h, "md0");
        // The fake module tree has no md modules: the target cannot be reached.
        var plan = CaptureImagePlan.Make(h.Layout, K);
        Assert.Contains("md_mod, raid1 (needed to reach md0) are not in 6.1.0-99-amd64's modules", plan.WouldNotSave());

        // Build the image, then add the modules to the tree: the plan is fine, the stored image is not.
        AddMdModules(h);
        Assert.Null(CaptureImagePlan.Make(h.Layout, K).WouldNotSave());
        h.Config($"target = UUID={FakeHost.Uuid}\n");
        Assert.Null(CaptureStore.EnsureCurrent(h.Layout, K, _ => { }).Error);
        h.Config($"target = UUID={InnerUuid}\n");
        var stale = CaptureStore.Inspect(h.Layout, K);
        Assert.True(stale.WouldNotSave is not null, string.Join("; ", stale.Changes));
        // Built for vda1 alone: it lacks the second member's SATA drivers and the md layer.
        Assert.StartsWith("the stored capture initramfs of 6.1.0-99-amd64 lacks sd_mod, ahci, md_mod, raid1 (", stale.WouldNotSave);
        var rebuilt = CaptureStore.EnsureCurrent(h.Layout, K, _ => { });
        Assert.True(rebuilt.Rebuilt);
        Assert.Null(rebuilt.WouldNotSave);
        Assert.Null(CaptureStore.Inspect(h.Layout, K).WouldNotSave);
    }

    [Fact]
    public void ExternalMetadataArraysAreNotAssembledByTheCaptureKernel()
    {
        using var t = new FakeSysfs();
        t.AddDisk(null, "md126", "9:126", 16384);
        t.Attribute("md126", "md/level", "raid1");
        t.Attribute("md126", "md/metadata_version", "external:/md127/0");
        Assert.Contains("external metadata", StackReach.Obstacle("md126", t.Sys, t.Dev));
        t.AddDisk(null, "md1", "9:1", 16384);
        t.Attribute("md1", "md/level", "raid6");
        t.Attribute("md1", "md/metadata_version", "1.2");
        Assert.Null(StackReach.Obstacle("md1", t.Sys, t.Dev, (_, _) => VolumeIdentity.Unknown));
    }

    [Fact]
    public void TheCaptureKernelNamesALuksVolumeWhenTheTargetIsNotFound()
    {
        using var t = new FakeSysfs();
        t.AddDisk(null, "vdb", "254:16", 40960);
        LuksImage(Path.Combine(t.Dev, "vdb"));
        var clock = new CaptureAgent.Tests.CaptureKernel.Targets.Md.MdAssemblyClock();
        var locator = new TargetLocator(t.Sys, t.Dev) { ProbeTimeout = Timeout.InfiniteTimeSpan };
        var e = Assert.Throws<TargetNotFoundException>(() => locator.WaitFor(TargetSpec.Parse("LABEL=dump"), TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1), clock));
        Assert.Contains("vdb (crypto_LUKS)", e.Message);
        Assert.Contains("vdb is an encrypted volume (LUKS): if the target is inside, the capture kernel cannot unlock it", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    /// <summary>md_mod and raid1 files in the fake tree, with their modules.dep lines.</summary>
    private static void AddMdModules(FakeHost h)
    {
        string dir = h.ModuleDir(K);
        foreach (var m in new[] { "kernel/drivers/md/md-mod.ko", "kernel/drivers/md/raid1.ko" })
        {
            Directory.CreateDirectory(Path.Combine(dir, Path.GetDirectoryName(m)!));
            File.WriteAllText(Path.Combine(dir, m), $"module {m}\n");
        }
        File.AppendAllText(Path.Combine(dir, "modules.dep"), "kernel/drivers/md/md-mod.ko:\nkernel/drivers/md/raid1.ko: kernel/drivers/md/md-mod.ko\n");
    }
}

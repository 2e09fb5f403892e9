using CaptureAgent.Config;
using CaptureAgent.Rehearsal;
using CaptureAgent.Targets;
using CaptureAgent.Tests.Integration;
using Xunit;

namespace CaptureAgent.Tests.Host.Rehearsal;

/// <summary>The self-test's scratch disk: which filesystem, identity and controller; made by the real mkfs and read back by our own probe.</summary>
public class ScratchDiskTests
{
    private static TargetEntry Target(string text)
    {
        Assert.True(TargetEntry.TryParse(text, out var t, out var error), error);
        return t;
    }

    private static readonly HashSet<string> VirtioImage = ["virtio_pci", "virtio_blk", "ext4"];

    [Theory]
    [InlineData("LABEL=crashdump", "ext4", "crashdump", null, false)]
    [InlineData("UUID=0b4c6a2e-5d1f-4c39-9a57-3e2f1b8d7c60", "xfs", null, "0b4c6a2e-5d1f-4c39-9a57-3e2f1b8d7c60", false)]
    [InlineData("PARTLABEL=crash", "btrfs", null, null, true)]
    [InlineData("PARTUUID=6f1c2a3b-0d4e-4f5a-8b6c-7d8e9fa0b1c2", "vfat", null, null, true)]
    [InlineData("/dev/vda1", "ext4", null, null, true)]
    [InlineData("/dev/vda", "ext4", null, null, false)]
    public void TheConfigNamesTheIdentity(string target, string fs, string? label, string? uuid, bool partitioned)
    {
        var notes = new List<string>();
        var p = ScratchDisk.Plan(Target(target), fs, null, VirtioImage, null, notes);
        Assert.Equal(fs, p.FilesystemType);
        Assert.Equal(label, p.Label);
        Assert.Equal(uuid, p.Uuid);
        Assert.Equal(partitioned, p.Partitioned);
        Assert.Equal(partitioned ? 1L << 20 : 0, p.FilesystemOffset);
        Assert.Equal(DiskController.Virtio, p.Controller);
        Assert.Empty(notes);
    }

    [Fact]
    public void TheRealVolumeGivesTheTypeAndTheOtherHalfOfItsIdentity()
    {
        var notes = new List<string>();
        var p = ScratchDisk.Plan(Target("UUID=11111111-2222-4333-8444-555555555555"), null,
            new VolumeIdentity("xfs", "11111111-2222-4333-8444-555555555555", "data"), VirtioImage, null, notes);
        Assert.Equal(("xfs", "data"), (p.FilesystemType, p.Label));
        Assert.Empty(notes);

        // Neither the config nor the machine says: ext4, and a note saying it was assumed.
        p = ScratchDisk.Plan(Target("LABEL=x"), null, null, VirtioImage, null, notes);
        Assert.Equal("ext4", p.FilesystemType);
        Assert.Contains(notes, n => n.Contains("ext4 assumed"));
    }

    [Theory]
    [InlineData("nfs:10.0.2.2:/srv/crash", "not a local filesystem")]
    [InlineData("raw:/dev/vdb", "not a local filesystem")]
    [InlineData("/dev/sda1", "cannot reproduce")]
    [InlineData("/dev/vda2", "only /dev/vda and /dev/vda1")]
    [InlineData("PARTUUID=1234abcd-01", "MBR disk signature")]
    public void WhatCannotBeRehearsedIsSaid(string target, string message)
    {
        var e = Assert.Throws<ArgumentException>(() => ScratchDisk.Plan(Target(target), "ext4", null, VirtioImage, null, []));
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void AFilesystemSelftestCannotMakeIsRefused()
    {
        var e = Assert.Throws<ArgumentException>(() => ScratchDisk.Plan(Target("LABEL=x"), "zfs", null, VirtioImage, null, []));
        Assert.Contains("scratch zfs filesystem cannot be made", e.Message);
    }

    [Fact]
    public void TheControllerIsTheOneTheImageCanDrive()
    {
        var notes = new List<string>();
        Assert.Equal(DiskController.Nvme, ScratchDisk.ChooseController(["nvme", "nvme_core", "ext4"], null, false, notes));
        Assert.Equal(DiskController.Ahci, ScratchDisk.ChooseController(["ahci", "libahci", "sd_mod"], null, false, notes));
        Assert.Equal(DiskController.VirtioScsi, ScratchDisk.ChooseController(["virtio_scsi", "sd_mod"], null, false, notes));
        // Built into the capture kernel counts as in the image.
        Assert.Equal(DiskController.Virtio, ScratchDisk.ChooseController([], new HashSet<string> { "virtio_blk" }, false, notes));
        Assert.Empty(notes);
        Assert.Equal(DiskController.Virtio, ScratchDisk.ChooseController(["ext4"], null, false, notes));
        Assert.Contains("no disk driver QEMU emulates", Assert.Single(notes));

        var nvme = ScratchDisk.Plan(Target("LABEL=x"), "ext4", null, new HashSet<string> { "nvme" }, null, []);
        Assert.Equal(["-drive", "file=/s.img,format=raw,if=none,id=scratch", "-device", "nvme,drive=scratch,serial=capture-selftest"],
            ScratchDisk.QemuArguments(nvme, "/s.img"));
    }

    [Theory]
    [InlineData("ext4", "LABEL=crashdump", "crashdump", null)]
    [InlineData("ext4", "UUID=0b4c6a2e-5d1f-4c39-9a57-3e2f1b8d7c60", null, "0b4c6a2e-5d1f-4c39-9a57-3e2f1b8d7c60")]
    [InlineData("xfs", "UUID=0b4c6a2e-5d1f-4c39-9a57-3e2f1b8d7c60", null, "0b4c6a2e-5d1f-4c39-9a57-3e2f1b8d7c60")]
    [InlineData("btrfs", "LABEL=crashdump", "crashdump", null)]
    [InlineData("vfat", "UUID=1A2B-3C4D", null, "1A2B-3C4D")]
    [InlineData("vfat", "LABEL=CRASHDUMP", "CRASHDUMP", null)]
    public void TheRealMkfsWritesWhatOurProbeFinds(string fs, string target, string? label, string? uuid)
    {
        var plan = ScratchDisk.Plan(Target(target), fs, null, VirtioImage, null, []);
        string tool = ScratchDisk.MkfsCommand(plan, "x").Tool;
        Assert.True(CrashVm.FindOnPath(tool) is not null, $"{tool} is missing: scripts/test installs it");
        using var dir = new TempDir();
        string image = dir.File("scratch.img");
        ScratchDisk.Create(plan, image, 512L << 20, _ => { });
        var volume = SuperblockProbe.ProbePath(image);
        Assert.Equal(fs, volume.Type);
        if (label is not null) Assert.Equal(label, volume.Label);
        if (uuid is not null) Assert.Equal(uuid, volume.Uuid, ignoreCase: true);
        Assert.True(new FileInfo(image).Length == 512L << 20);
    }

    [Fact]
    public void APartitionTargetGetsAGptWithItsNameAndGuid()
    {
        const string partUuid = "6f1c2a3b-0d4e-4f5a-8b6c-7d8e9fa0b1c2";
        using var dir = new TempDir();
        foreach (var (target, check) in new[] { ($"PARTUUID={partUuid}", $"\"uuid\":\"{partUuid.ToUpperInvariant()}\""), ("PARTLABEL=crash dump", "\"name\":\"crash dump\"") })
        {
            var plan = ScratchDisk.Plan(Target(target), "ext4", null, VirtioImage, null, []);
            string image = dir.File($"disk-{plan.PartUuid ?? "label"}.img");
            ScratchDisk.Create(plan, image, 256L << 20, _ => { });
            string table = Fixtures.Exec("/usr/sbin/sfdisk", ["--json", image]).Stdout.Replace(" ", "").Replace("\n", "");
            Assert.Contains("\"label\":\"gpt\"", table);
            Assert.Contains("\"start\":2048", table);
            Assert.Contains(check.Replace(" ", ""), table);
            // The filesystem sits at the partition's start: our probe finds ext4 there.
            var part = new byte[64 << 10];
            using (var f = File.OpenRead(image)) { f.Position = 1 << 20; f.ReadExactly(part); }
            Assert.Equal("ext4", SuperblockProbe.Probe(part).Type);
            // And back out as a file of its own (what debugfs reads), still sparse.
            string fs = dir.File("fs.img");
            ScratchDisk.Extract(image, plan.FilesystemOffset, fs);
            Assert.Equal("ext4", SuperblockProbe.ProbePath(fs).Type);
            Assert.Equal(new FileInfo(image).Length - (1 << 20), new FileInfo(fs).Length);
            Assert.Equal(0, Fixtures.Exec("/usr/sbin/e2fsck", ["-n", "-f", fs]).ExitCode);
        }
    }

    [Fact]
    public void TheHostsControllerWinsOverTheImagesSoAMissingDriverIsRehearsed()
    {
        using var h = new CaptureAgent.Tests.Host.Host.FakeHost();
        // vda1 on virtio, sda1 behind ahci; an NVMe disk and a Xen disk added here.
        h.Machine.AddDisk("pci0000:00/0000:00:05.0/nvme/nvme0", "nvme0n1", "259:0", 65536);
        h.Machine.BindDriver("pci0000:00/0000:00:05.0", "pci", "nvme", "nvme");
        h.Machine.AddDisk("vbd-51712", "xvda", "202:0", 65536);
        h.Machine.BindDriver("vbd-51712", "xen", "vbd", "xen_blkfront");
        var notes = new List<string>();
        Assert.Equal(DiskController.Virtio, SelfTest.HostController(h.Layout, "vda1", null, notes));
        Assert.Equal(DiskController.Ahci, SelfTest.HostController(h.Layout, "sda1", null, notes));
        Assert.Equal(DiskController.Nvme, SelfTest.HostController(h.Layout, "nvme0n1", null, notes));
        Assert.Contains("the target's disk nvme0n1 is on Nvme (nvme): the scratch disk goes there too", notes);
        Assert.Null(SelfTest.HostController(h.Layout, "xvda", null, notes));
        Assert.Contains(notes, n => n.StartsWith("the target's disk xvda is on vbd, which the VM cannot emulate", StringComparison.Ordinal));

        // The image drives virtio only, the target is on NVMe: the scratch disk goes on NVMe, and the notes say why it will fail.
        notes.Clear();
        var plan = ScratchDisk.Plan(Target("LABEL=x"), "ext4", null, VirtioImage, null, notes, DiskController.Nvme);
        Assert.Equal(DiskController.Nvme, plan.Controller);
        Assert.Contains(notes, n => n.StartsWith("the capture initramfs lacks the driver of the target's Nvme controller (nvme)", StringComparison.Ordinal));
        notes.Clear();
        Assert.Equal(DiskController.Ahci, ScratchDisk.Plan(Target("LABEL=x"), "ext4", null, ["ahci", "sd_mod"], null, notes, DiskController.Ahci).Controller);
        Assert.Empty(notes);
    }
}

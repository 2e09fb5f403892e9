using System.Diagnostics;
using CaptureAgent.Capture;
using CaptureAgent.Config;
using CaptureAgent.Tests.CaptureKernel.Targets;
using CaptureAgent.Tests.CaptureKernel.Targets.Lvm;
using Xunit;

namespace CaptureAgent.Tests.CaptureKernel.Capture;

/// <summary>
/// The capture chain over storage it cannot use, in a fake /sys and /dev: a PV whose metadata fails
/// its checksum, two VGs of one name, a LUKS2 container named as the target. Each target ends in
/// one line saying why, within its device timeout, and the chain goes on to the next; the vmcore is
/// never touched (no target got that far).
/// </summary>
public class BadStorageChainTests
{
    private const string LuksUuid = "0a1b2c3d-1111-2222-3333-444455556666";

    private static VgText Vg(string name, int seed, string pvId) => new()
    {
        Name = name, Id = SyntheticLvm.Id(seed),
        Pvs = [new TestPv("pv0", pvId, 8 * 2048, 7)],
        Lvs = [new TestLv("lin", SyntheticLvm.Id(seed + 1), [new TestSegment(0, 4, "striped", 0, ("pv0", 0))])],
    };

    private static byte[] Luks2Header()
    {
        var h = new byte[1 << 20];
        "LUKS"u8.CopyTo(h);
        h[4] = 0xBA; h[5] = 0xBE; h[7] = 2;
        System.Text.Encoding.ASCII.GetBytes(LuksUuid).CopyTo(h.AsSpan(168));
        return h;
    }

    [Fact]
    public void EachUnusableTargetIsOneLineAndTheChainMovesOn()
    {
        using var t = new FakeSysfs();
        string proc = Directory.CreateDirectory(t.Scratch("proc")).FullName;
        // vda: a PV of vg-data whose metadata text is damaged.
        string pvA = SyntheticLvm.Id(1), pvB = SyntheticLvm.Id(2), pvC = SyntheticLvm.Id(3);
        var vda = SyntheticLvm.Pv(8, pvA, Vg("vg-data", 10, pvA).ToString());
        vda[SyntheticLvm.MdaOffset + 600] ^= 0x01;
        // vdb and vdc: PVs of two different VGs that are both called vg-twin.
        var vdb = SyntheticLvm.Pv(8, pvB, Vg("vg-twin", 20, pvB).ToString());
        var vdc = SyntheticLvm.Pv(8, pvC, Vg("vg-twin", 30, pvC).ToString());
        int slot = 4;
        foreach (var (name, image) in new[] { ("vda", vda), ("vdb", vdb), ("vdc", vdc), ("vdd", Luks2Header()) })
        {
            t.AddDisk($"pci0000:00/0000:00:0{slot}.0/virtio{slot}", name, $"254:{(slot - 4) * 16}", image.Length / 512);
            t.Node(name, image);
            slot++;
        }
        var config = AgentConfig.Parse($"""
            target = /dev/vg-data/lin
            target = /dev/vg-twin/lin
            target = UUID={LuksUuid}
            device_timeout = 1
            path = /var/crash
            """);
        Assert.Empty(config.Errors);
        var messages = new List<string>();
        var clock = Stopwatch.StartNew();
        var outcomes = new CaptureChain(config, t.Scratch("no-vmcore"), messages.Add, Directory.CreateDirectory(t.Scratch("mnt")).FullName, null)
        {
            SysRoot = t.Sys, DevRoot = t.Dev, ProcRoot = proc, ConfigureNetwork = false,
        }.Run();

        Assert.Equal(3, outcomes.Count);
        Assert.All(outcomes, o => Assert.False(o.Saved));
        Assert.All(outcomes, o => Assert.DoesNotContain('\n', o.Message));
        Assert.Contains("lvm: vda: metadata text at byte 4608 fails its checksum", outcomes[0].Message);
        Assert.StartsWith("/dev/vg-twin/lin: lvm: 2 volume groups are named vg-twin (ids ", outcomes[1].Message);
        Assert.Equal($"{Path.Combine(t.Dev, "vdd")} is an encrypted volume (LUKS2): the capture kernel cannot unlock it; put the dump target outside the encrypted volume, or use a network target (nfs:, ssh:)", outcomes[2].Message);
        Assert.Equal(2, messages.Count(m => m == "capture-agent: trying the next target"));
        // The damaged VG waits out its device timeout (another PV could still bring a good copy);
        // the other two are refused at once.
        Assert.InRange(clock.Elapsed.TotalSeconds, 0.9, 20);
        Assert.False(File.Exists(t.Scratch("no-vmcore")));
    }
}

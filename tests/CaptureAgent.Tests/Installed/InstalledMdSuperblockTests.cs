using System.Buffers.Binary;
using CaptureAgent.Tests.Integration;
using Xunit;

namespace CaptureAgent.Tests.Installed;

/// <summary>
/// The md RAID1 superblocks scripts/installed-system writes on the host (whose kernel may have no
/// md driver, so mdadm --create cannot run there): util-linux's blkid must recognise them (it
/// does not check the checksum), the kernel's checksum (calc_sb_1_csum, computed here on its own)
/// must match, and both members must name the same array, creation time and event count and hold
/// roles 0 and 1 — what mdadm compares before assembling them in the guest's initramfs.
/// </summary>
[Trait("Category", "Installed")]
public class InstalledMdSuperblockTests
{
    private const string ArrayUuid = "5c1e3f0a-7d42-4b9e-9a61-2f8c0d5e7b13";

    [Fact]
    public void BothMembersAreOneCleanArrayForBlkid()
    {
        using var dir = new TempDir();
        string[] members = [dir.File("m0.img"), dir.File("m1.img")];
        const long size = 64L << 20;
        foreach (var m in members)
            using (var f = File.Create(m)) f.SetLength(size);
        var r = Fixtures.Exec("/usr/bin/python3", [Script(), ArrayUuid, "installed-test:0", .. members.Select(m => $"{m}:0:{size}")]);
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal($"{1 << 20} {size - (1 << 20)}", r.Stdout.Trim());   // data offset 1 MiB, the rest in 4 KiB blocks

        var subs = new HashSet<string>();
        for (int role = 0; role < members.Length; role++)
        {
            var probe = Blkid(members[role]);
            Assert.Equal("linux_raid_member", probe["TYPE"]);
            Assert.Equal(ArrayUuid, probe["UUID"]);
            Assert.Equal("installed-test:0", probe["LABEL"]);
            Assert.True(subs.Add(probe["UUID_SUB"]), "both members have the same device UUID");
            Assert.Equal((uint)role, Field32(members[role], 160));          // dev_number
            Assert.Equal(KernelChecksum(members[role]), Field32(members[role], 216));   // sb_csum
        }
        Assert.Equal(Field64(members[0], 64), Field64(members[1], 64));     // ctime
        Assert.Equal(Field64(members[0], 200), Field64(members[1], 200));   // events
        Assert.Equal(ulong.MaxValue, Field64(members[1], 208));             // resync_offset: in sync
    }

    private static string Script()
    {
        return Path.Combine(Fixtures.RepoRoot, "scripts", "lib", "installed-md.py");
    }

    private static Dictionary<string, string> Blkid(string file)
    {
        var r = Fixtures.Exec("/usr/sbin/blkid", ["-p", "-o", "export", file]);
        Assert.True(r.ExitCode == 0, $"blkid -p {file}: exit {r.ExitCode} {r.Stderr}");
        return r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => l.Split('=', 2)).Where(p => p.Length == 2).ToDictionary(p => p[0], p => p[1]);
    }

    // The superblock lies 4 KiB into the member (metadata 1.2); offsets from md_p.h.
    private static byte[] Superblock(string file)
    {
        using var f = File.OpenRead(file);
        f.Seek(4096, SeekOrigin.Begin);
        var b = new byte[256];
        f.ReadExactly(b);
        return b;
    }

    /// <summary>
    /// The kernel's calc_sb_1_csum: the superblock and its roles table (256 + 2*max_dev bytes) as
    /// little-endian 32-bit words with sb_csum taken as 0, summed in 64 bits, the carry folded in.
    /// </summary>
    private static uint KernelChecksum(string file)
    {
        uint maxDev = Field32(file, 220);
        Assert.InRange(maxDev, 1u, (4096u - 256) / 2);
        var b = new byte[256 + 2 * maxDev];
        using (var f = File.OpenRead(file))
        {
            f.Seek(4096, SeekOrigin.Begin);
            f.ReadExactly(b);
        }
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(216), 0);
        ulong sum = 0;
        for (int i = 0; i + 4 <= b.Length; i += 4) sum += BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(i));
        if (b.Length % 4 == 2) sum += BinaryPrimitives.ReadUInt16LittleEndian(b.AsSpan(b.Length - 2));
        return (uint)((sum & 0xffffffff) + (sum >> 32));
    }

    private static uint Field32(string file, int offset) => BinaryPrimitives.ReadUInt32LittleEndian(Superblock(file).AsSpan(offset));
    private static ulong Field64(string file, int offset) => BinaryPrimitives.ReadUInt64LittleEndian(Superblock(file).AsSpan(offset));
}

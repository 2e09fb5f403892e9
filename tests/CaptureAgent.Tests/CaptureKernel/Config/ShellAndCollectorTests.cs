using CaptureAgent.Config;
using Xunit;

namespace CaptureAgent.Tests.CaptureKernel.Config;

public class ShellAndCollectorTests
{
    [Fact]
    public void ShellValuesAreReadAsTheShellWouldSetThem()
    {
        var (a, other) = ShellAssignments.Parse("""
            # comment
            A=plain   # trailing comment
            export B="double \"quoted\" \$HOME \\ end"
            C='single $A "kept" # not a comment'
              D=x#y
            E="$A-${A}-${UNSET:-fallback}-${A:-other}"
            F="line one \
            line two"
            G="spans
            two lines"
            H=a\ b
            export A
            I=$(uname -r)
            J=`hostname`
            K=$NOT_SET
            L=value command-run-with-it
            M=""
            """);
        var d = ShellAssignments.Last(a);
        Assert.Equal("plain", d["A"].Value);
        Assert.Equal("double \"quoted\" $HOME \\ end", d["B"].Value);
        Assert.Equal("single $A \"kept\" # not a comment", d["C"].Value);
        Assert.Equal("x#y", d["D"].Value);
        Assert.Equal("plain-plain-fallback-plain", d["E"].Value);
        Assert.Equal("line one line two", d["F"].Value);
        Assert.Equal("spans\ntwo lines", d["G"].Value);
        Assert.Equal("a b", d["H"].Value);
        Assert.Contains("command substitution", d["I"].Problem);
        Assert.Contains("command substitution", d["J"].Problem);
        Assert.Contains("$NOT_SET is not set", d["K"].Problem);
        Assert.Contains("followed by a command", d["L"].Problem);
        Assert.Equal("", d["M"].Value);
        Assert.Null(d["M"].Problem);
        // Line numbers are where each assignment starts; the continued and multi-line ones count their lines.
        Assert.Equal(2, d["A"].Line);
        Assert.Equal(9, d["G"].Line);
        Assert.Equal(11, d["H"].Line);
        Assert.Empty(other);   // `export A` alone changes nothing
    }

    [Fact]
    public void ShellCodeIsReturnedUninterpreted()
    {
        var (a, other) = ShellAssignments.Parse("""
            [ -r /etc/kdump-extra ] && . /etc/kdump-extra
            if true; then X=1; fi
            Y=2; Z=3
            """);
        Assert.Equal(["[ -r /etc/kdump-extra ] && . /etc/kdump-extra", "if true; then X=1; fi"], other.Select(o => o.Text));
        Assert.Equal(["Y", "Z"], a.Select(x => x.Name));
    }

    [Theory]
    [InlineData("makedumpfile -l --message-level 7 -d 31", 31, null, "lzo")]
    [InlineData("/usr/sbin/makedumpfile -cd31", 31, null, "zlib")]
    [InlineData("makedumpfile -d1 -z", 1, null, "zstd")]
    [InlineData("makedumpfile -p -d 11,31", 11, 31, "snappy")]
    [InlineData("makedumpfile", 0, null, "none")]
    [InlineData("makedumpfile -F -d 31", 31, null, "none")]
    public void MakedumpfileOptionsAreReadLikeGetopt(string cmd, int level, int? fallback, string codec)
    {
        var s = CollectorSettings.Parse(cmd);
        Assert.False(s.Unknown);
        Assert.Equal((level, fallback, codec), (s.DumpLevel, s.FallbackDumpLevel, s.Compression));
    }

    [Fact]
    public void CollectorsWithoutEquivalentsSayWhy()
    {
        var elf = CollectorSettings.Parse("makedumpfile -E -x /usr/lib/debug/vmlinux --split -L 10G -d 31");
        Assert.Equal(["-E", "-x /usr/lib/debug/vmlinux", "--split", "-L 10G"], elf.Unmapped.Select(u => u.Option));
        var cp = CollectorSettings.Parse("cp --sparse=always");
        Assert.True(cp.WholeCopy);
        Assert.Equal((0, "none"), (cp.DumpLevel, cp.Compression));
        Assert.Single(cp.Unmapped);
        Assert.True(CollectorSettings.Parse("/usr/local/bin/my-collector --fast").Unknown);
    }

    [Fact]
    public void CommandLineAppendsAreSorted()
    {
        var s = CmdlineAppend.Sort("irqpoll nr_cpus=4 reset_devices rd.driver.blacklist=a,b modprobe.blacklist=c udev.children-max=2 systemd.unit=x.service foo=\"a b\" panic=10");
        Assert.Equal(["nr_cpus=4", "foo=\"a b\""], s.Kept);
        Assert.Equal(["a", "b", "c"], s.Blacklist);
        Assert.Equal(["irqpoll", "reset_devices", "panic=10"], s.AlreadyAdded);
        Assert.Equal(["udev.children-max=2", "systemd.unit=x.service"], s.Dropped.Select(d => d.Token));
    }

    [Fact]
    public void FstabFindsTheFilesystemHoldingAPath()
    {
        var e = Fstab.Parse("""
            UUID=r / ext4 defaults 0 1
            UUID=v /var xfs defaults 0 2
            UUID=n /var/crash/nope ext4 noauto 0 0
            /dev/sdb1 /srv/my\040dumps ext4 defaults 0 2
            none /proc proc defaults 0 0
            """);
        Assert.Equal("UUID=v", Fstab.Holding(e, "/var/crash/x")!.Spec);
        Assert.Equal("UUID=r", Fstab.Holding(e, "/varnish")!.Spec);
        Assert.Equal("/dev/sdb1", Fstab.Holding(e, "/srv/my dumps/crash")!.Spec);
        Assert.Equal("/crash", Fstab.Below(Fstab.Holding(e, "/var/crash")!, "/var/crash"));
        Assert.Equal("/", Fstab.Below(Fstab.Holding(e, "/var")!, "/var"));
        Assert.Equal("UUID=r", Fstab.Root(e)!.Spec);
        var (target, fs, prefix, why) = Fstab.AsTarget(new FstabEntry("rpool/ROOT/ubuntu", "/", "zfs", "defaults", 1));
        Assert.Null(target);
        Assert.NotNull(why);
    }
}

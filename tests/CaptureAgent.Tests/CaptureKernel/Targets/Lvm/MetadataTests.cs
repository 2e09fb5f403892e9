using System.Text;
using CaptureAgent.Targets;
using CaptureAgent.Targets.Lvm;
using Xunit;

namespace CaptureAgent.Tests.CaptureKernel.Targets.Lvm;

/// <summary>The text metadata parser, the VG model built from it, and the LV maps: on text written by the tests.</summary>
public class MetadataTests
{
    private static readonly string VgId = SyntheticLvm.Id(1), Pv0 = SyntheticLvm.Id(2), Pv1 = SyntheticLvm.Id(3);

    private static VgText TwoPvVg(params TestLv[] lvs) => new()
    {
        Name = "vg-data",
        Id = VgId,
        Seqno = 7,
        Pvs = [new TestPv("pv0", Pv0, 40960, 19), new TestPv("pv1", Pv1, 40960, 19)],
        Lvs = [.. lvs],
    };

    [Fact]
    public void ParsesTheGrammarLvmWrites()
    {
        var root = MetadataText.Parse("""
            # a comment
            vg { id = "a\"b\\c" n = -42 f = 1.5 empty = [] list = ["x", 3, 'y z'] bare = word
              sub { deeper { k = 1 } }
            }
            contents = "Text Format Volume Group"   # trailing comment
            """);
        var vg = root.Section("vg")!;
        Assert.Equal("a\"b\\c", vg.Value("id")!.Text);
        Assert.Equal(-42, vg.Value("n")!.Integer);
        Assert.Equal(MetadataValueKind.Float, vg.Value("f")!.Kind);
        Assert.Empty(vg.Value("empty")!.Items);
        Assert.Equal(["\"x\"", "3", "\"y z\""], vg.Value("list")!.Items.Select(i => i.ToString()));
        Assert.Equal("word", vg.Value("bare")!.Text);
        Assert.Equal(1, vg.Section("sub")!.Section("deeper")!.Value("k")!.Integer);
        Assert.Equal("Text Format Volume Group", root.Value("contents")!.Text);
    }

    [Fact]
    public void ANulEndsTheText()
    {
        var root = MetadataText.Parse(Encoding.ASCII.GetBytes("a = 1\0 this { is not parsed"));
        Assert.Equal(1, root.Value("a")!.Integer);
    }

    [Theory]
    [InlineData("vg { a = 1", "not closed")]
    [InlineData("vg { a = 1 a = 2 }", "appears twice")]
    [InlineData("vg { a 1 }", "expected '=' or '{'")]
    [InlineData("vg { a = \"open }", "string is not closed")]
    [InlineData("vg { a = [1, 2 }", "expected a value")]
    [InlineData("vg { a = 99999999999999999999 }", "not a 64-bit integer")]
    [InlineData("vg { a = 1.2.3 }", "expected '=' or '{'")]
    [InlineData("vg { = 1 }", "unexpected '='")]
    public void BadTextIsRefusedWithItsLine(string text, string expected)
    {
        var e = Assert.Throws<InvalidDataException>(() => MetadataText.Parse(text));
        Assert.Contains(expected, e.Message);
        Assert.StartsWith("metadata line 1:", e.Message);
    }

    [Fact]
    public void NestingAndEntryCountsAreBounded()
    {
        string deep = string.Concat(Enumerable.Repeat("s {", 40)) + string.Concat(Enumerable.Repeat("}", 40));
        Assert.Contains("nested deeper", Assert.Throws<InvalidDataException>(() => MetadataText.Parse(deep)).Message);
        string many = "a = [" + string.Join(",", Enumerable.Repeat("1", MetadataText.MaxEntries + 1)) + "]";
        Assert.Contains("more than", Assert.Throws<InvalidDataException>(() => MetadataText.Parse(many)).Message);
    }

    [Fact]
    public void VolumeGroupModelFromLvmStyleText()
    {
        var text = TwoPvVg(
            new TestLv("root", SyntheticLvm.Id(10), [new TestSegment(0, 4, "striped", 0, ("pv0", 0)), new TestSegment(4, 2, "striped", 0, ("pv1", 3))]),
            new TestLv("data", SyntheticLvm.Id(11), [new TestSegment(0, 8, "striped", 128, ("pv0", 4), ("pv1", 5))]));
        var vg = VolumeGroupMetadata.Parse(Encoding.UTF8.GetBytes(text.ToString()));
        Assert.Equal(("vg-data", VgId, 7L, 2048L), (vg.Name, vg.Id, vg.Seqno, vg.ExtentSize));
        Assert.Equal(Pv1, vg.Pvs["pv1"].Id);
        Assert.Equal("/dev/pv1", vg.Pvs["pv1"].DeviceHint);
        var root = vg.Lv("root")!;
        Assert.True(root.Visible && root.Writable);
        Assert.Equal([0L, 4L], root.Segments.Select(s => s.StartExtent));
        var data = vg.Lv("data")!;
        Assert.Equal(128, data.Segments[0].StripeSize);
        Assert.Equal([new SegmentArea("pv0", 4), new SegmentArea("pv1", 5)], data.Segments[0].Areas);
    }

    [Fact]
    public void LvMapsGiveTheDmTableLvmWouldLoad()
    {
        var text = TwoPvVg(
            new TestLv("root", SyntheticLvm.Id(10), [new TestSegment(0, 4, "striped", 0, ("pv0", 0)), new TestSegment(4, 2, "striped", 0, ("pv1", 3))]),
            new TestLv("data", SyntheticLvm.Id(11), [new TestSegment(0, 8, "striped", 128, ("pv0", 4), ("pv1", 5))]));
        var vg = VolumeGroupMetadata.Parse(Encoding.UTF8.GetBytes(text.ToString()));
        var devices = Devices(vg);
        var root = LogicalVolumeLayout.Map(vg, vg.Lv("root")!, devices);
        Assert.Equal(6 * 2048, root.Sectors);
        Assert.Equal(["0 8192 linear 254:16 2048", "8192 4096 linear 254:32 8192"],
            root.Segments.Select(s => $"{s.Start} {s.Length} {s.TargetType} {s.Parameters}"));
        var data = LogicalVolumeLayout.Map(vg, vg.Lv("data")!, devices);
        Assert.Equal("0 16384 striped 2 128 254:16 10240 254:32 12288",
            string.Join("", data.Segments.Select(s => $"{s.Start} {s.Length} {s.TargetType} {s.Parameters}")));
        // Chunk 0 on the first stripe, chunk 1 on the second, chunk 2 back on the first, one chunk further.
        Assert.Equal(("254:16", 10240L + 5, 123L), Where(data, 5));
        Assert.Equal(("254:32", 12288L, 128L), Where(data, 128));
        Assert.Equal(("254:16", 10240L + 128 + 1, 127L), Where(data, 257));
    }

    private static (string, long, long) Where(LogicalVolumeLayout layout, long sector)
    {
        var (stripe, at, run) = layout.SegmentAt(sector)!.Locate(sector);
        return (stripe.Pv.Device.DeviceNumber, at, run);
    }

    private static Dictionary<string, PvDevice> Devices(VolumeGroupMetadata vg) => new()
    {
        ["pv0"] = new PvDevice(vg.Pvs["pv0"].Id, Device("vdb", 16, 40960)),
        ["pv1"] = new PvDevice(vg.Pvs["pv1"].Id, Device("vdc", 32, 40960)),
    };

    internal static SysfsBlockDevice Device(string name, int minor, long sectors) =>
        new() { Name = name, Node = "/dev/" + name, Major = 254, Minor = minor, Sectors = sectors, SysfsPath = "/sys/devices/virtual/block/" + name };

    [Theory]
    [InlineData(new long[] { 0, 4, 5, 2 }, "at extent 5 where 4 was expected")]   // a gap
    [InlineData(new long[] { 0, 4, 3, 2 }, "at extent 3 where 4 was expected")]   // an overlap
    public void SegmentsMustCoverTheLvWithoutGaps(long[] starts, string expected)
    {
        var text = TwoPvVg(new TestLv("root", SyntheticLvm.Id(10),
            [new TestSegment(starts[0], starts[1], "striped", 0, ("pv0", 0)), new TestSegment(starts[2], starts[3], "striped", 0, ("pv1", 0))]));
        var vg = VolumeGroupMetadata.Parse(Encoding.UTF8.GetBytes(text.ToString()));
        Assert.Contains(expected, Assert.Throws<InvalidDataException>(() => LogicalVolumeLayout.Map(vg, vg.Lv("root")!, Devices(vg))).Message);
    }

    [Theory]
    [InlineData("striped", 1, 128, 3, "do not divide into 2 stripes")]
    [InlineData("striped", 18, 128, 4, "lie outside PV")]
    [InlineData("striped", 0, 96, 4, "not a power of two")]
    public void AbsurdSegmentsDamageOnlyTheirLv(string type, long firstPe, long stripeSize, long count, string expected)
    {
        var text = TwoPvVg(
            new TestLv("bad", SyntheticLvm.Id(12), [new TestSegment(0, count, type, stripeSize, ("pv0", firstPe), ("pv1", 0))]),
            new TestLv("good", SyntheticLvm.Id(13), [new TestSegment(0, 2, "striped", 0, ("pv1", 10))]));
        var vg = VolumeGroupMetadata.Parse(Encoding.UTF8.GetBytes(text.ToString()));
        Assert.Contains(expected, vg.Lv("bad")!.Damage);
        Assert.Null(vg.Lv("good")!.Damage);
        Assert.Contains(expected, LvmActivator.Unusable(vg, vg.Lv("bad")!));
    }

    [Fact]
    public void AStripeOnSomethingNotAPvNamesAnInterruptedPvmove()
    {
        var text = TwoPvVg(new TestLv("moving", SyntheticLvm.Id(12), [new TestSegment(0, 2, "striped", 0, ("pvmove0", 0))]));
        var vg = VolumeGroupMetadata.Parse(Encoding.UTF8.GetBytes(text.ToString()));
        Assert.Contains("pvmove", vg.Lv("moving")!.Damage);
    }

    [Theory]
    [InlineData("extent_size = 0", "extent_size = 0 is out of range")]
    [InlineData("extent_size = 9999999999999", "out of range")]
    [InlineData("seqno = \"x\"", "'seqno' is not an integer")]
    [InlineData("id = \"short\"", "is malformed")]
    public void BadVgFieldsAreNamed(string replacement, string expected)
    {
        string text = TwoPvVg().ToString();
        string key = replacement[..replacement.IndexOf(' ')];
        var lines = text.Split('\n').Select(l => l.TrimStart('\t').StartsWith(key + " =", StringComparison.Ordinal) && !l.StartsWith("\t\t", StringComparison.Ordinal) ? "\t" + replacement : l);
        var e = Assert.Throws<InvalidDataException>(() => VolumeGroupMetadata.Parse(Encoding.UTF8.GetBytes(string.Join('\n', lines))));
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void ExtentCountsNoDeviceHoldsAreRefused()
    {
        var text = new VgText { Name = "vg", Id = VgId, Pvs = [new TestPv("pv0", Pv0, 40960, 1L << 40)] };
        var e = Assert.Throws<InvalidDataException>(() => VolumeGroupMetadata.Parse(Encoding.UTF8.GetBytes(text.ToString())));
        Assert.Contains("PV pv0: 1099511627776 extents of 2048 sectors are more than any device holds", e.Message);
    }

    [Fact]
    public void UnsupportedKindsAreRefusedNamingTheirType()
    {
        var text = TwoPvVg(
            new TestLv("pool", SyntheticLvm.Id(20), [new TestSegment(0, 4, "thin-pool", 0)]),
            new TestLv("thin", SyntheticLvm.Id(21), [new TestSegment(0, 4, "thin", 0)]),
            new TestLv("mirrored", SyntheticLvm.Id(22), [new TestSegment(0, 4, "raid1", 0)]),
            new TestLv("origin", SyntheticLvm.Id(23), [new TestSegment(0, 2, "striped", 0, ("pv0", 0))]),
            new TestLv("snap", SyntheticLvm.Id(24), [new TestSegment(0, 2, "snapshot", 0)], Extra: ""),
            new TestLv("hidden", SyntheticLvm.Id(25), [new TestSegment(0, 2, "striped", 0, ("pv1", 0))], Status: "\"READ\", \"WRITE\""),
            new TestLv("ro", SyntheticLvm.Id(26), [new TestSegment(0, 2, "striped", 0, ("pv1", 2))], Status: "\"READ\", \"VISIBLE\""));
        string s = text.ToString().Replace("type = \"snapshot\"", "type = \"snapshot\"\n\t\t\t\torigin = \"origin\"\n\t\t\t\tcow_store = \"cow\"");
        var vg = VolumeGroupMetadata.Parse(Encoding.UTF8.GetBytes(s));
        Assert.Contains("is a thin-pool volume", LvmActivator.Unusable(vg, vg.Lv("pool")!));
        Assert.Contains("vg-data/thin is a thin volume: the capture kernel activates only linear and striped LVs", LvmActivator.Unusable(vg, vg.Lv("thin")!));
        Assert.Contains("is a raid1 volume", LvmActivator.Unusable(vg, vg.Lv("mirrored")!));
        Assert.Contains("origin of snapshot snap", LvmActivator.Unusable(vg, vg.Lv("origin")!));
        Assert.Contains("hidden part", LvmActivator.Unusable(vg, vg.Lv("hidden")!));
        Assert.Contains("read-only", LvmActivator.Unusable(vg, vg.Lv("ro")!));
    }

    [Theory]
    [InlineData("\tlock_type = \"sanlock\"", "shared through lvmlockd (sanlock)")]
    [InlineData("\tstatus_extra = 1", null)]
    public void SharedVolumeGroupsAreNotActivated(string extra, string? expected)
    {
        var text = new VgText
        {
            Name = "vg", Id = VgId, Extra = extra,
            Pvs = [new TestPv("pv0", Pv0, 40960, 19)],
            Lvs = [new TestLv("lv", SyntheticLvm.Id(30), [new TestSegment(0, 2, "striped", 0, ("pv0", 0))])],
        };
        var vg = VolumeGroupMetadata.Parse(Encoding.UTF8.GetBytes(text.ToString()));
        var why = LvmActivator.Unusable(vg, vg.Lv("lv")!);
        if (expected is null) Assert.Null(why);
        else Assert.Contains(expected, why);
    }

    [Theory]
    [InlineData("vg", "lv", "vg-lv")]
    [InlineData("vg-a", "lv-b", "vg--a-lv--b")]
    [InlineData("debian-vg", "root", "debian--vg-root")]
    public void DmNamesDoubleDashesBothWays(string vg, string lv, string dm)
    {
        Assert.Equal(dm, LvmNames.DmName(vg, lv));
        Assert.Equal((vg, lv), LvmNames.SplitDmName(dm));
        Assert.Equal((vg, lv), LvmNames.VolumeOfPath("mapper/" + dm));
        Assert.Equal((vg, lv), LvmNames.VolumeOfPath(vg + "/" + lv));
        Assert.Equal(dm, LvmNames.DmNameOfPath(vg + "/" + lv));
    }

    [Theory]
    [InlineData("mapper/crypt")]          // no dash: not an LV
    [InlineData("mapper/vg-lv-real")]     // a layer of an LV
    [InlineData("disk/by-id/x")]
    [InlineData("md/root")]
    [InlineData("vda1")]
    public void PathsThatNameNoLv(string rel) => Assert.Null(LvmNames.VolumeOfPath(rel));

    [Fact]
    public void DmUuidIsLvmsPrefixAndBothIdsWithoutDashes() =>
        Assert.Equal("LVM-" + VgId + SyntheticLvm.Id(9), LvmNames.DmUuid(SyntheticLvm.Dashed(VgId), SyntheticLvm.Dashed(SyntheticLvm.Id(9))));
}

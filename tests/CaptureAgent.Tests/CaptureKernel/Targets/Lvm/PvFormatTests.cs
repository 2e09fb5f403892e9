using System.Buffers.Binary;
using System.Text;
using CaptureAgent.Targets;
using CaptureAgent.Targets.Lvm;
using Xunit;

namespace CaptureAgent.Tests.CaptureKernel.Targets.Lvm;

/// <summary>The PV label and the metadata area on images the tests write, damaged in the ways that matter.</summary>
public class PvFormatTests
{
    private static readonly string PvId = SyntheticLvm.Id(5);

    [Fact]
    public void ChecksumIsLvmsCrc()
    {
        var data = Encoding.ASCII.GetBytes("The quick brown fox jumps over the lazy dog");
        Assert.Equal(SyntheticLvm.Crc(data), LvmChecksum.Compute(data));
        Assert.Equal(SyntheticLvm.Crc(data.AsSpan(10), SyntheticLvm.Crc(data.AsSpan(0, 10))), LvmChecksum.Compute(data.AsSpan(10), LvmChecksum.Compute(data.AsSpan(0, 10))));
        Assert.Equal(0xf597a6cfu, LvmChecksum.Compute([]));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(3)]
    public void LabelIsFoundInAnyOfTheFirstFourSectors(int sector)
    {
        var image = new byte[1 << 20];
        SyntheticLvm.WriteLabel(image, PvId, sector);
        var label = PhysicalVolumeLabel.Parse(image.AsSpan(0, 2048), out string? problem);
        Assert.Null(problem);
        Assert.NotNull(label);
        Assert.Equal((PvId, (ulong)image.Length, sector), (label.PvUuid, label.DeviceSize, label.Sector));
        Assert.Equal([new DiskArea(1 << 20, 0)], label.DataAreas);
        Assert.Equal([new DiskArea(SyntheticLvm.MdaOffset, SyntheticLvm.MdaSize)], label.MetadataAreas);
    }

    [Fact]
    public void DamagedLabelsAreNamedNotTaken()
    {
        var image = new byte[1 << 20];
        SyntheticLvm.WriteLabel(image, PvId);
        image[512 + 40] ^= 1;   // inside the PV uuid: the CRC no longer matches
        Assert.Null(PhysicalVolumeLabel.Parse(image.AsSpan(0, 2048), out string? problem));
        Assert.Equal("LVM2 label in sector 1 fails its checksum", problem);

        SyntheticLvm.WriteLabel(image, PvId);
        BinaryPrimitives.WriteUInt64LittleEndian(image.AsSpan(512 + 8), 2);   // claims to be sector 2
        Assert.Null(PhysicalVolumeLabel.Parse(image.AsSpan(0, 2048), out problem));
        Assert.Contains("names another sector", problem);

        SyntheticLvm.WriteLabel(image, PvId);
        BinaryPrimitives.WriteUInt32LittleEndian(image.AsSpan(512 + 20), 500);   // PV header past the sector, CRC fixed up
        BinaryPrimitives.WriteUInt32LittleEndian(image.AsSpan(512 + 16), SyntheticLvm.Crc(image.AsSpan(512 + 20, 492)));
        Assert.Null(PhysicalVolumeLabel.Parse(image.AsSpan(0, 2048), out problem));
        Assert.Contains("outside the label sector", problem);

        Assert.Null(PhysicalVolumeLabel.Parse(new byte[2048], out problem));
        Assert.Null(problem);
    }

    [Fact]
    public void AreaListsThatNeverEndAreRefused()
    {
        var image = new byte[1 << 20];
        SyntheticLvm.WriteLabel(image, PvId);
        var s = image.AsSpan(512, 512);
        for (int at = 32 + 40; at + 16 <= 512; at += 16) BinaryPrimitives.WriteUInt64LittleEndian(s[at..], 4096);   // no terminator anywhere
        BinaryPrimitives.WriteUInt32LittleEndian(s[16..], SyntheticLvm.Crc(s[20..]));
        Assert.Null(PhysicalVolumeLabel.Parse(image.AsSpan(0, 2048), out string? problem));
        Assert.Contains("run past the label sector", problem);
    }

    private static string Text(long seqno = 1) => new VgText
    {
        Name = "vg", Id = SyntheticLvm.Id(6), Seqno = seqno,
        Pvs = [new TestPv("pv0", PvId, 2048 * 8, 7)],
    }.ToString();

    private static MetadataCopy? Read(byte[] image, out string? problem) =>
        MetadataArea.Read(BlockSource.FromBytes(image), new DiskArea(SyntheticLvm.MdaOffset, SyntheticLvm.MdaSize), out problem);

    [Fact]
    public void MetadataIsReadAndCheckedWithItsTrailingNulRemoved()
    {
        var image = SyntheticLvm.Pv(2, PvId, Text());
        var copy = Read(image, out string? problem);
        Assert.Null(problem);
        Assert.Equal(Text(), Encoding.UTF8.GetString(copy!.Text));
        Assert.False(copy.Wrapped);
        Assert.Equal(1, VolumeGroupMetadata.Parse(copy.Text).Seqno);
    }

    [Fact]
    public void TextThatWrapsContinuesAfterTheHeader()
    {
        var image = new byte[2 << 20];
        SyntheticLvm.WriteLabel(image, PvId);
        string text = Text(41);
        SyntheticLvm.WriteMetadata(image, text, textOffset: SyntheticLvm.MdaSize - 300);
        var copy = Read(image, out string? problem);
        Assert.Null(problem);
        Assert.True(copy!.Wrapped);
        Assert.Equal(text, Encoding.UTF8.GetString(copy.Text));
        Assert.Equal(41, VolumeGroupMetadata.Parse(copy.Text).Seqno);
    }

    [Fact]
    public void DamageInTheAreaIsNamed()
    {
        var image = SyntheticLvm.Pv(2, PvId, Text());
        image[SyntheticLvm.MdaOffset + 512 + 10] ^= 0x20;   // one letter of the text
        Assert.Null(Read(image, out string? problem));
        Assert.Contains("fails its checksum", problem);

        image = SyntheticLvm.Pv(2, PvId, Text());
        image[SyntheticLvm.MdaOffset + 100] ^= 1;           // the header's padding: its own CRC fails
        Assert.Null(Read(image, out problem));
        Assert.Contains("checksum mismatch", problem);

        image = SyntheticLvm.Pv(2, PvId, Text());
        image[SyntheticLvm.MdaOffset + 5] = (byte)'X';      // the magic
        Assert.Null(Read(image, out problem));
        Assert.Contains("no LVM2 metadata magic", problem);
    }

    [Theory]
    [InlineData(100, 1000, "outside the area")]               // text inside the header
    [InlineData(2 << 20, 1000, "outside the area")]           // past the area
    [InlineData(512, 2 << 20, "outside the area")]            // larger than the area
    public void RawLocationsOutsideTheAreaAreRefused(long offset, long size, string expected)
    {
        var image = SyntheticLvm.Pv(3, PvId, Text());
        var h = image.AsSpan(SyntheticLvm.MdaOffset, 512);
        BinaryPrimitives.WriteUInt64LittleEndian(h[40..], (ulong)offset);
        BinaryPrimitives.WriteUInt64LittleEndian(h[48..], (ulong)size);
        BinaryPrimitives.WriteUInt32LittleEndian(h, SyntheticLvm.Crc(h[4..]));
        Assert.Null(Read(image, out string? problem));
        Assert.Contains(expected, problem);
    }

    [Fact]
    public void TextLargerThanTheCapIsRefusedBeforeItIsRead()
    {
        const int mda = 4 << 20;
        var image = new byte[8 << 20];
        SyntheticLvm.WriteLabel(image, PvId);
        SyntheticLvm.WriteMetadata(image, Text() + new string('#', 2 << 20), mdaSize: mda);
        var copy = MetadataArea.Read(BlockSource.FromBytes(image), new DiskArea(SyntheticLvm.MdaOffset, mda), out string? problem);
        Assert.Null(copy);
        Assert.Contains("more than the 1 MiB read here", problem);
    }

    [Fact]
    public void EmptyAndIgnoredAreasHoldNoCopyAndNoProblem()
    {
        var orphan = SyntheticLvm.Pv(2, PvId, null);
        SyntheticLvm.WriteMetadata(orphan, "");
        var h = orphan.AsSpan(SyntheticLvm.MdaOffset, 512);
        h[40..64].Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(h, SyntheticLvm.Crc(h[4..]));
        Assert.Null(Read(orphan, out string? problem));
        Assert.Null(problem);

        var ignored = SyntheticLvm.Pv(2, PvId, null);
        SyntheticLvm.WriteMetadata(ignored, Text(), flags: 1);
        Assert.Null(Read(ignored, out problem));
        Assert.Null(problem);
    }
}

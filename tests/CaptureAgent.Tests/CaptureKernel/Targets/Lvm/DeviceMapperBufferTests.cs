using System.Buffers.Binary;
using System.Text;
using CaptureAgent.Targets;
using Xunit;

namespace CaptureAgent.Tests.CaptureKernel.Targets.Lvm;

/// <summary>
/// The dm-ioctl buffers, byte by byte, against the layout of include/uapi/linux/dm-ioctl.h:
/// struct dm_ioctl is 312 bytes (name at 48, uuid at 176), struct dm_target_spec 40.
/// </summary>
public class DeviceMapperBufferTests
{
    [Fact]
    public void IoctlNumbersAreIowrOfTheStructSize()
    {
        // _IOWR(0xfd, nr, struct dm_ioctl): 0xc000_0000 | 312 << 16 | 0xfd << 8 | nr.
        Assert.Equal(0xc138fd00u, Native.Libc.DmIoctl.VersionCmd);
        Assert.Equal(0xc138fd03u, Native.Libc.DmIoctl.CreateCmd);
        Assert.Equal(0xc138fd06u, Native.Libc.DmIoctl.SuspendCmd);
        Assert.Equal(0xc138fd09u, Native.Libc.DmIoctl.TableLoadCmd);
        Assert.Equal(0xc138fd0cu, Native.Libc.DmIoctl.TableStatusCmd);
    }

    [Fact]
    public void RequestHeader()
    {
        var b = DeviceMapper.Request("vg-lv", "LVM-abc", 0);
        Assert.Equal(312, b.Length);
        Assert.Equal([4u, 0u, 0u], new[] { 0, 4, 8 }.Select(o => BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(o))));
        Assert.Equal(312u, BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(12)));   // data_size
        Assert.Equal(312u, BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(16)));   // data_start
        Assert.Equal("vg-lv\0", Encoding.ASCII.GetString(b, 48, 6));
        Assert.Equal("LVM-abc\0", Encoding.ASCII.GetString(b, 176, 8));
        Assert.Throws<IOException>(() => DeviceMapper.Request(new string('n', 128), null, 0));
    }

    [Fact]
    public void TableLoadSpecsAreAlignedAndChained()
    {
        var b = DeviceMapper.TableRequest("vg-lv", [new DmTarget(0, 8192, "linear", "254:1 2048"), new DmTarget(8192, 4096, "striped", "2 128 254:1 10240 254:17 2048")]);
        Assert.Equal(2u, BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(20)));   // target_count
        var first = b.AsSpan(312);
        Assert.Equal(0ul, BinaryPrimitives.ReadUInt64LittleEndian(first));
        Assert.Equal(8192ul, BinaryPrimitives.ReadUInt64LittleEndian(first[8..]));
        uint next = BinaryPrimitives.ReadUInt32LittleEndian(first[20..]);
        Assert.Equal(56u, next);   // 40 + "254:1 2048\0" (11) = 51, to 56
        Assert.Equal("linear\0", Encoding.ASCII.GetString(b, 312 + 24, 7));
        Assert.Equal("254:1 2048\0", Encoding.ASCII.GetString(b, 312 + 40, 11));
        var second = b.AsSpan(312 + (int)next);
        Assert.Equal(8192ul, BinaryPrimitives.ReadUInt64LittleEndian(second));
        Assert.Equal("striped\0", Encoding.ASCII.GetString(b, 312 + 56 + 24, 8));
        Assert.Equal(0, b.Length % 8);
        Assert.Equal((uint)b.Length, BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(12)));
    }

    /// <summary>DM_TABLE_STATUS answers with next counted from the first spec, not from each one.</summary>
    [Fact]
    public void TableStatusAnswerIsParsed()
    {
        var b = DeviceMapper.Request("vg-lv", null, 200);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(20), 2);
        WriteSpec(b, 312, 0, 8192, "linear", "254:1 2048", next: 56);
        WriteSpec(b, 312 + 56, 8192, 4096, "linear", "254:17 2048", next: 112);
        var table = DeviceMapper.ParseTable(b);
        Assert.Equal(["0 8192 linear 254:1 2048", "8192 4096 linear 254:17 2048"], table.Select(t => t.ToString()));
    }

    [Fact]
    public void TableAnswerRunningPastItsBufferIsRefused()
    {
        var b = DeviceMapper.Request("vg-lv", null, 64);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(20), 3);
        WriteSpec(b, 312, 0, 8, "linear", "1:2 0", next: 4000);
        Assert.Throws<IOException>(() => DeviceMapper.ParseTable(b));
    }

    private static void WriteSpec(byte[] b, int at, ulong start, ulong length, string type, string parameters, uint next)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(at), start);
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(at + 8), length);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(at + 20), next);
        Encoding.ASCII.GetBytes(type).CopyTo(b, at + 24);
        Encoding.ASCII.GetBytes(parameters + "\0").CopyTo(b, at + 40);
    }

    /// <summary>huge_encode_dev: minor's low byte, major above it, minor's high bits from bit 20.</summary>
    [Theory]
    [InlineData(253, 0, 0xfd00ul)]
    [InlineData(253, 300, 0x10fd2cul)]
    [InlineData(259, 65536, 0x10010300ul)]
    public void DeviceNumbersAreDecodedAsTheKernelEncodesThem(int major, int minor, ulong encoded)
    {
        var b = DeviceMapper.Request("x", null, 0);
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(40), encoded);
        var info = DeviceMapper.Info(b);
        Assert.Equal((major, minor), (info.Major, info.Minor));
    }
}

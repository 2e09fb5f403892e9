using CaptureAgent.Vmcore;
using Xunit;

namespace CaptureAgent.Tests.Engine.Vmcore;

public class VmcoreInfoTests
{
    [Fact]
    public void ParsesEveryValueKind()
    {
        var info = new VmcoreInfo("OSRELEASE=6.1.0-21-amd64\nPAGESIZE=4096\nSYMBOL(mem_section)=ffff88fb7ffd9000\n" +
                                  "SIZE(page)=64\nOFFSET(page._mapcount)=48\nLENGTH(zone.free_area)=11\nNUMBER(phys_base)=-748683264\n" +
                                  "NUMBER(VMALLOC_START)=0xffffc90000000000\nKERNELOFFSET=33400000\nCRASHTIME=1795404914\n" +
                                  "NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)=-129\nSIZE(page)=99\n");
        Assert.Equal("6.1.0-21-amd64", info.OsRelease);
        Assert.Equal(0xffff88fb7ffd9000UL, info.Symbol("mem_section"));
        Assert.Equal(64, info.Size("page"));                       // first occurrence wins
        Assert.Equal(48, info.Offset("page._mapcount"));
        Assert.Equal(11, info.Length("zone.free_area"));
        Assert.Equal(-748683264, info.Num("phys_base"));
        Assert.Equal(unchecked((long)0xffffc90000000000UL), info.Num("VMALLOC_START"));
        Assert.Equal(0x33400000UL, info.KernelOffset);
        Assert.Equal(1795404914, info.CrashTime);
        Assert.Equal(0xffffff7fu, unchecked((uint)info.Num("PAGE_BUDDY_MAPCOUNT_VALUE")!.Value));
        Assert.Null(info.Symbol("missing"));
        Assert.Null(info.Num("missing"));
    }

    [Fact]
    public void ParsesNoteDescriptorUpToNul()
    {
        var bytes = System.Text.Encoding.ASCII.GetBytes("OSRELEASE=6.12.1\nPAGESIZE=4096\n\0\0garbage=1");
        var info = VmcoreInfo.Parse(bytes);
        Assert.Equal("6.12.1", info.OsRelease);
        Assert.Null(info.String("garbage"));
    }

    [Fact]
    public void ElfNotesStopAtPaddingAndReadNamesAndAlignment()
    {
        var ms = new MemoryStream();
        void Note(string name, uint type, int descLen)
        {
            var n = System.Text.Encoding.ASCII.GetBytes(name + "\0");
            ms.Write(BitConverter.GetBytes(n.Length)); ms.Write(BitConverter.GetBytes(descLen)); ms.Write(BitConverter.GetBytes(type));
            ms.Write(n); ms.Write(new byte[(4 - n.Length % 4) % 4]);
            ms.Write(new byte[descLen]); ms.Write(new byte[(4 - descLen % 4) % 4]);
        }
        Note("CORE", 1, 336);
        Note("CORE", 1, 336);
        Note("VMCOREINFO", 0, 13);
        ms.Write(new byte[64]);   // /proc/vmcore pads with zeros
        var notes = ElfNotes.Parse(ms.ToArray());
        Assert.Equal(3, notes.Count);
        Assert.Equal("VMCOREINFO", notes[2].Name);
        Assert.Equal(13, notes[2].DescSize);
        Assert.Equal(12 + 8 + 336 + 12 + 8 + 336 + 12 + 12, notes[2].DescOffset);
    }
}

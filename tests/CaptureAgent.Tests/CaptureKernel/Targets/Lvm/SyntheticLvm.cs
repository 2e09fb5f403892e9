using System.Buffers.Binary;
using System.Globalization;
using System.Text;

namespace CaptureAgent.Tests.CaptureKernel.Targets.Lvm;

/// <summary>
/// PV images laid out as lvm2 lays them out (label in sector 1, PV header, one metadata area at
/// 4 KiB, data from 1 MiB), written by the tests' own code from the on-disk format, so the reader
/// can be fed damage lvm2 would never write.
/// </summary>
public static class SyntheticLvm
{
    public const int MdaOffset = 4096;
    public const int MdaSize = (1 << 20) - MdaOffset;
    public const long PeStart = 2048;   // sectors: 1 MiB
    public const int HeaderSize = 512;

    /// <summary>A 32-character id of lvm's alphabet, the same for the same seed.</summary>
    public static string Id(int seed)
    {
        const string alphabet = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
        var rng = new Random(seed);
        return new string(Enumerable.Range(0, 32).Select(_ => alphabet[rng.Next(alphabet.Length)]).ToArray());
    }

    /// <summary>"abcdef-ghij-..." as the metadata text spells ids.</summary>
    public static string Dashed(string id) =>
        string.Join('-', id[..6], id[6..10], id[10..14], id[14..18], id[18..22], id[22..26], id[26..]);

    /// <summary>An independent CRC: bit by bit, the reflected 0xEDB88320 polynomial, lvm's 0xf597a6cf start, no final inversion.</summary>
    public static uint Crc(ReadOnlySpan<byte> data, uint crc = 0xf597a6cf)
    {
        foreach (byte b in data)
        {
            crc ^= b;
            for (int k = 0; k < 8; k++) crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB88320u : crc >> 1;
        }
        return crc;
    }

    /// <summary>The label and PV header: one data area from <see cref="PeStart"/>, one metadata area at <see cref="MdaOffset"/>.</summary>
    public static void WriteLabel(byte[] image, string pvId, int sector = 1)
    {
        var s = image.AsSpan(sector * 512, 512);
        s.Clear();
        "LABELONE"u8.CopyTo(s);
        BinaryPrimitives.WriteUInt64LittleEndian(s[8..], (ulong)sector);
        BinaryPrimitives.WriteUInt32LittleEndian(s[20..], 32);
        "LVM2 001"u8.CopyTo(s[24..]);
        var pv = s[32..];
        Encoding.ASCII.GetBytes(pvId).CopyTo(pv);
        BinaryPrimitives.WriteUInt64LittleEndian(pv[32..], (ulong)image.Length);
        WriteArea(pv[40..], (ulong)PeStart * 512, 0);   // data area: to the end of the device
        WriteArea(pv[56..], 0, 0);
        WriteArea(pv[72..], MdaOffset, MdaSize);       // metadata area
        WriteArea(pv[88..], 0, 0);
        BinaryPrimitives.WriteUInt32LittleEndian(s[16..], Crc(s[20..]));
    }

    private static void WriteArea(Span<byte> at, ulong offset, ulong size)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(at, offset);
        BinaryPrimitives.WriteUInt64LittleEndian(at[8..], size);
    }

    /// <summary>
    /// The metadata area header and the text at <paramref name="textOffset"/> within the area, wrapping past
    /// the area's end to just after the header as lvm's circular buffer does. The text gets lvm's trailing NUL.
    /// </summary>
    public static void WriteMetadata(byte[] image, string text, long textOffset = HeaderSize, uint flags = 0, int mdaSize = MdaSize)
    {
        var bytes = Encoding.UTF8.GetBytes(text + "\0");
        long first = Math.Min(bytes.Length, mdaSize - textOffset);
        bytes.AsSpan(0, (int)first).CopyTo(image.AsSpan((int)(MdaOffset + textOffset)));
        bytes.AsSpan((int)first).CopyTo(image.AsSpan(MdaOffset + HeaderSize));
        var h = image.AsSpan(MdaOffset, HeaderSize);
        h.Clear();
        " LVM2 x[5A%r0N*>"u8.CopyTo(h[4..]);
        BinaryPrimitives.WriteUInt32LittleEndian(h[20..], 1);
        BinaryPrimitives.WriteUInt64LittleEndian(h[24..], MdaOffset);
        BinaryPrimitives.WriteUInt64LittleEndian(h[32..], (ulong)mdaSize);
        BinaryPrimitives.WriteUInt64LittleEndian(h[40..], (ulong)textOffset);
        BinaryPrimitives.WriteUInt64LittleEndian(h[48..], (ulong)bytes.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(h[56..], Crc(bytes));
        BinaryPrimitives.WriteUInt32LittleEndian(h[60..], flags);
        BinaryPrimitives.WriteUInt32LittleEndian(h, Crc(h[4..]));
    }

    /// <summary>A PV image of <paramref name="megabytes"/> MiB with its label and the VG's text.</summary>
    public static byte[] Pv(int megabytes, string pvId, string? vgText)
    {
        var image = new byte[megabytes << 20];
        WriteLabel(image, pvId);
        if (vgText is not null) WriteMetadata(image, vgText);
        return image;
    }
}

/// <summary>A segment of a test LV: extents, type, stripe size (sectors) and its (PV key, first extent) stripes.</summary>
public sealed record TestSegment(long Start, long Count, string Type, long StripeSize, params (string Pv, long Pe)[] Stripes);

public sealed record TestLv(string Name, string Id, TestSegment[] Segments, string Status = "\"READ\", \"WRITE\", \"VISIBLE\"", string Extra = "");

public sealed record TestPv(string Key, string Id, long DevSizeSectors, long PeCount);

/// <summary>The text lvm writes for a VG (format version 1), with its comments.</summary>
public sealed class VgText
{
    public required string Name { get; init; }
    public required string Id { get; init; }
    public long Seqno { get; init; } = 1;
    public long ExtentSize { get; init; } = 2048;   // 1 MiB
    public string Status { get; init; } = "\"RESIZEABLE\", \"READ\", \"WRITE\"";
    public string Extra { get; init; } = "";
    public List<TestPv> Pvs { get; init; } = [];
    public List<TestLv> Lvs { get; init; } = [];

    public override string ToString()
    {
        var s = new StringBuilder();
        s.Append(CultureInfo.InvariantCulture, $"{Name} {{\n\tid = \"{SyntheticLvm.Dashed(Id)}\"\n\tseqno = {Seqno}\n\tformat = \"lvm2\"\t\t\t# informational\n");
        s.Append(CultureInfo.InvariantCulture, $"\tstatus = [{Status}]\n\tflags = []\n\textent_size = {ExtentSize}\t\t# some Megabytes\n\tmax_lv = 0\n\tmax_pv = 0\n\tmetadata_copies = 0\n{Extra}\n");
        s.Append("\tphysical_volumes {\n");
        foreach (var pv in Pvs)
            s.Append(CultureInfo.InvariantCulture, $"\n\t\t{pv.Key} {{\n\t\t\tid = \"{SyntheticLvm.Dashed(pv.Id)}\"\n\t\t\tdevice = \"/dev/{pv.Key}\"\t# Hint only\n\n\t\t\tstatus = [\"ALLOCATABLE\"]\n\t\t\tflags = []\n\t\t\tdev_size = {pv.DevSizeSectors}\n\t\t\tpe_start = {SyntheticLvm.PeStart}\n\t\t\tpe_count = {pv.PeCount}\n\t\t}}\n");
        s.Append("\t}\n");
        if (Lvs.Count > 0)
        {
            s.Append("\n\tlogical_volumes {\n");
            foreach (var lv in Lvs)
            {
                s.Append(CultureInfo.InvariantCulture, $"\n\t\t{lv.Name} {{\n\t\t\tid = \"{SyntheticLvm.Dashed(lv.Id)}\"\n\t\t\tstatus = [{lv.Status}]\n\t\t\tflags = []\n\t\t\tcreation_time = 1700000000\t# 2023-11-14\n\t\t\tcreation_host = \"host\"\n\t\t\tsegment_count = {lv.Segments.Length}\n{lv.Extra}");
                for (int i = 0; i < lv.Segments.Length; i++)
                {
                    var seg = lv.Segments[i];
                    s.Append(CultureInfo.InvariantCulture, $"\n\t\t\tsegment{i + 1} {{\n\t\t\t\tstart_extent = {seg.Start}\n\t\t\t\textent_count = {seg.Count}\n\n\t\t\t\ttype = \"{seg.Type}\"\n");
                    if (seg.Type == "striped")
                    {
                        s.Append(CultureInfo.InvariantCulture, $"\t\t\t\tstripe_count = {seg.Stripes.Length}{(seg.Stripes.Length == 1 ? "\t# linear" : "")}\n");
                        if (seg.Stripes.Length > 1) s.Append(CultureInfo.InvariantCulture, $"\t\t\t\tstripe_size = {seg.StripeSize}\n");
                        s.Append("\n\t\t\t\tstripes = [\n");
                        s.Append(string.Join(",\n", seg.Stripes.Select(st => $"\t\t\t\t\t\"{st.Pv}\", {st.Pe}")));
                        s.Append("\n\t\t\t\t]\n");
                    }
                    s.Append("\t\t\t}\n");
                }
                s.Append("\t\t}\n");
            }
            s.Append("\t}\n");
        }
        s.Append("}\n# Generated by LVM2 version 2.03.16(2) (2022-05-18): Tue Nov 14 00:00:00 2023\n\ncontents = \"Text Format Volume Group\"\nversion = 1\n\ndescription = \"\"\n\ncreation_host = \"host\"\t# Linux host 6.1.0 x86_64\ncreation_time = 1700000000\t# Tue Nov 14 00:00:00 2023\n\n");
        return s.ToString();
    }
}

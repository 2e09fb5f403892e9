using System.Text;

namespace CaptureAgent.Tests.Host.Initramfs;

/// <summary>
/// A strict reader of newc cpio archives for the tests: every header field, the 4-byte padding
/// after names and data, and the trailer. Independent of the writer, so it can check its bytes.
/// </summary>
public static class NewcArchive
{
    public sealed record Entry(string Name, uint Inode, uint Mode, uint Uid, uint Gid, uint Nlink, uint Mtime,
        uint DevMajor, uint DevMinor, uint RdevMajor, uint RdevMinor, uint Check, byte[] Data)
    {
        public uint Type => Mode & 0xF000;
        public uint Permissions => Mode & 0xFFF;
    }

    /// <summary>The entries before TRAILER!!!, and the archive's length up to the end of the trailer entry.</summary>
    public static (List<Entry> Entries, int TrailerEnd) Read(byte[] archive)
    {
        var entries = new List<Entry>();
        int p = 0;
        while (true)
        {
            if (p + 110 > archive.Length) throw new InvalidDataException($"header at {p} runs past the end");
            string h = Encoding.ASCII.GetString(archive, p, 110);
            if (!h.StartsWith("070701", StringComparison.Ordinal)) throw new InvalidDataException($"bad magic at {p}: {h[..6]}");
            uint F(int i)
            {
                string field = h.Substring(6 + i * 8, 8);
                if (!field.All(Uri.IsHexDigit)) throw new InvalidDataException($"field {i} at {p} is not hex: {field}");
                return Convert.ToUInt32(field, 16);
            }
            uint nameSize = F(11), fileSize = F(6);
            int nameAt = p + 110;
            if (archive[nameAt + (int)nameSize - 1] != 0) throw new InvalidDataException($"name at {nameAt} is not NUL-terminated");
            string name = Encoding.UTF8.GetString(archive, nameAt, (int)nameSize - 1);
            int dataAt = Align4(nameAt + (int)nameSize);
            for (int i = nameAt + (int)nameSize; i < dataAt; i++)
                if (archive[i] != 0) throw new InvalidDataException($"non-zero name padding at {i}");
            var data = archive.AsSpan(dataAt, (int)fileSize).ToArray();
            int next = Align4(dataAt + (int)fileSize);
            for (int i = dataAt + (int)fileSize; i < next; i++)
                if (archive[i] != 0) throw new InvalidDataException($"non-zero data padding at {i}");
            if (name == "TRAILER!!!") return (entries, next);
            entries.Add(new Entry(name, F(0), F(1), F(2), F(3), F(4), F(5), F(7), F(8), F(9), F(10), F(12), data));
            p = next;
        }
    }

    private static int Align4(int x) => (x + 3) & ~3;
}

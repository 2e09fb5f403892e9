using System.Buffers.Binary;
using System.Text;

namespace CaptureAgent.Tests.Fuzz;

/// <summary>
/// Mutated metadata vmcores (<see cref="MetadataVmcore"/>): ELF and program headers, notes,
/// VMCOREINFO lines, and the pages of the page tables, mem_section, mem_map, init_uts_ns and the
/// printk ring, including pointers bent to other pages of the image (cycles). Each is dumped to a
/// kdump-compressed file (which `verify` must accept when the dump says it is good), sometimes to
/// ELF or with zlib, and its log read with `dmesg`.
/// </summary>
public sealed class VmcoreKind : IFuzzKind
{
    private readonly MetadataVmcore _meta;
    private readonly byte[] _base;
    private readonly MetadataVmcore.Layout _layout;
    private readonly string[] _infoLines;
    private readonly ulong[] _pageOffsets;

    public string Name { get; }

    public VmcoreKind(string name, MetadataVmcore meta)
    {
        Name = name;
        _meta = meta;
        _base = meta.Serialize(out _layout);
        _infoLines = meta.VmcoreInfo.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        _pageOffsets = _layout.Regions.Where(r => r.What is not ("elf-header" or "phdrs" or "notes" or "vmcoreinfo"))
            .Select(r => (ulong)r.Offset).ToArray();
    }

    /// <summary>The unmutated image, for tests that start from it.</summary>
    public byte[] Base => _base;

    // What the readers depend on most: removing or bending these reaches the deep paths.
    private static readonly string[] SensitiveKeys =
    [
        "PAGESIZE", "SYMBOL(mem_section)", "SYMBOL(prb)", "SYMBOL(init_top_pgt)", "NUMBER(phys_base)", "SIZE(page)",
        "OFFSET(page.flags)", "OFFSET(page._mapcount)", "OFFSET(page.private)", "OFFSET(page.compound_head)", "NUMBER(MAX_PHYSMEM_BITS)",
        "NUMBER(SECTION_SIZE_BITS)", "LENGTH(mem_section)", "SIZE(mem_section)", "SIZE(printk_ringbuffer)", "SIZE(prb_desc)",
        "SIZE(printk_info)", "OFFSET(prb_desc_ring.count_bits)", "OFFSET(printk_info.text_len)", "KERNELOFFSET",
        "NUMBER(pgtable_l5_enabled)", "SYMBOL(init_uts_ns)", "LENGTH(zone.free_area)", "NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)",
    ];

    public FuzzCase Make(Mutator m, string dir)
    {
        var notes = new List<string>();
        byte[] image = _base;
        if (m.Chance(25))
        {
            string info = MutateInfo(m, notes);
            image = _meta.Serialize(out _, info);
        }
        else image = (byte[])_base.Clone();
        int count = 1 + m.Below(3);
        for (int i = 0; i < count; i++) notes.Add(MutateBytes(m, image));
        string input = Path.Combine(dir, "vmcore");
        File.WriteAllBytes(input, image);
        string dump = Path.Combine(dir, "dump"), log = Path.Combine(dir, "dmesg.txt");
        var steps = new List<FuzzStep>
        {
            new(["dump", "-d", "31", input, dump], Check: FuzzRunner.Verified(dump, dir)),
            new(["dmesg", input, log], Check: r => r.ExitCode == 0 && (!File.Exists(log) || new FileInfo(log).Length == 0) ? "dmesg exit 0 with an empty log" : null),
        };
        if (m.Chance(20)) steps.Add(new(["dump", "-E", "-d", "31", input, dump + ".elf"], Check: FuzzRunner.Verified(dump + ".elf", dir)));
        if (m.Chance(10)) steps.Add(new(["dump", "-c", "-d", "1", input, dump + ".zlib"], Check: FuzzRunner.Verified(dump + ".zlib", dir)));
        return new FuzzCase(string.Join("; ", notes), steps, image);
    }

    private string MutateInfo(Mutator m, List<string> notes)
    {
        var lines = _infoLines.ToList();
        int Find(string key) => lines.FindIndex(l => l.StartsWith(key + "=", StringComparison.Ordinal));
        int at = m.Chance(50) && Find(m.Pick(SensitiveKeys)) is int k and >= 0 ? k : m.Below(lines.Count);
        string line = lines[at];
        string key = line.Contains('=') ? line[..line.IndexOf('=')] : line;
        switch (m.Below(9))
        {
            case 0:
                lines.RemoveAt(at);
                notes.Add($"VMCOREINFO {key} removed");
                break;
            case 1:
            {
                string value = NumberText(m);
                lines.Insert(0, $"{key}={value}");   // the first occurrence wins
                notes.Add($"VMCOREINFO {key}={value} put first");
                break;
            }
            case 2 or 3:
            {
                string value = NumberText(m);
                lines[at] = $"{key}={value}";
                notes.Add($"VMCOREINFO {key}={value}");
                break;
            }
            case 4:
                lines[at] = $"{key}={new string('9', 1 + m.Below(20000))}";
                notes.Add($"VMCOREINFO {key} = a long number");
                break;
            case 5:
                for (int i = 0, n = 1 + m.Below(50000); i < n; i++) lines.Add($"NUMBER(x{i})={i}");
                notes.Add("VMCOREINFO with many extra lines");
                break;
            case 6:
                lines[at] = key.Length > 1 ? key[..^1] + (char)('A' + m.Below(26)) + line[key.Length..] : line;
                notes.Add($"VMCOREINFO key {key} renamed");
                break;
            case 7:
                lines[at] = line + "\0\u0001\u00ff" + new string('=', m.Below(10));
                notes.Add($"VMCOREINFO {key} with junk");
                break;
            default:
                if (m.Chance(10))
                {
                    // Megabytes of VMCOREINFO: more than a kernel ever writes, more than the heap should hold.
                    var big = new StringBuilder();
                    while (big.Length < (4 << 20) + m.Below(8 << 20)) big.Append("SYMBOL(filler)=ffffffff81000000\n");
                    lines.Add(big.ToString());
                    notes.Add("VMCOREINFO of megabytes");
                }
                else
                {
                    lines.Reverse();
                    notes.Add("VMCOREINFO lines reversed");
                }
                break;
        }
        return string.Join('\n', lines) + "\n";
    }

    private static string NumberText(Mutator m)
    {
        ulong v = m.Value((ulong)m.Below(4096));
        return m.Below(5) switch
        {
            0 => v.ToString("x"),
            1 => "0x" + v.ToString("x"),
            2 => "-" + (v % 100000).ToString(),
            3 => "",
            _ => v.ToString(),
        };
    }

    private string MutateBytes(Mutator m, byte[] image)
    {
        int roll = m.Below(100);
        if (roll < 5) return m.Somewhere(image, 0, 64, "ELF header");
        if (roll < 22) return Phdr(m, image);
        if (roll < 27) return NoteHeader(m, image);
        string label = roll switch { < 42 => "pagetables", < 52 => "mem_section", < 70 => "mem_map", < 92 => "printk", _ => "uts" };
        var pages = _layout.Of(label).ToList();
        if (pages.Count == 0) return $"no {label} page";
        var page = m.Pick(pages);
        if (!m.Chance(30)) return m.Somewhere(image, page.Offset, page.Length, label);
        // A pointer to another page of the image (or the same one): page-table loops, ring cycles.
        long at = page.Offset + m.Below(page.Length / 8) * 8;
        long target = m.Chance(20) ? page.Offset : (long)m.Pick(_pageOffsets);
        var targetRegion = _layout.Regions.First(r => r.Offset == target);
        var (pa, va) = AddressesOf(targetRegion.Offset);
        ulong value = label == "pagetables" ? pa | 0x63 : va;
        BinaryPrimitives.WriteUInt64LittleEndian(image.AsSpan((int)at), value);
        return $"{label}: a pointer to {targetRegion.What} page 0x{pa:x} at {at}";
    }

    /// <summary>The physical and kernel virtual address of the page at a file offset, from the unmutated program headers.</summary>
    private (ulong Pa, ulong Va) AddressesOf(long fileOffset)
    {
        var phdrs = _layout.Of("phdrs").First();
        for (long p = phdrs.Offset + 56; p < phdrs.Offset + phdrs.Length; p += 56)
        {
            var h = _base.AsSpan((int)p, 56);
            ulong off = BinaryPrimitives.ReadUInt64LittleEndian(h[8..]), size = BinaryPrimitives.ReadUInt64LittleEndian(h[32..]);
            ulong delta = (ulong)fileOffset - off;
            if ((ulong)fileOffset >= off && delta < size)
                return (BinaryPrimitives.ReadUInt64LittleEndian(h[24..]) + delta, BinaryPrimitives.ReadUInt64LittleEndian(h[16..]) + delta);
        }
        return (0, 0);
    }

    private string Phdr(Mutator m, byte[] image)
    {
        var phdrs = _layout.Of("phdrs").First();
        int count = (int)(phdrs.Length / 56);
        int index = m.Below(count);
        long at = phdrs.Offset + index * 56L;
        var (field, offset, width) = m.Pick(PhdrFields);
        m.Field(image, (int)(at + offset), width);
        return $"phdr {index}: {field}";
    }

    private static readonly (string, int, int)[] PhdrFields =
        [("p_type", 0, 4), ("p_offset", 8, 8), ("p_vaddr", 16, 8), ("p_paddr", 24, 8), ("p_paddr", 24, 8), ("p_filesz", 32, 8), ("p_memsz", 40, 8), ("p_memsz", 40, 8)];

    private string NoteHeader(Mutator m, byte[] image)
    {
        var notes = _layout.Of("notes").First();
        var headers = new List<long>();
        for (long pos = 0; pos + 12 <= notes.Length;)
        {
            headers.Add(notes.Offset + pos);
            uint namesz = BinaryPrimitives.ReadUInt32LittleEndian(_base.AsSpan((int)(notes.Offset + pos)));
            uint descsz = BinaryPrimitives.ReadUInt32LittleEndian(_base.AsSpan((int)(notes.Offset + pos + 4)));
            pos += 12 + ((namesz + 3) & ~3L) + ((descsz + 3) & ~3L);
        }
        long h = m.Pick(headers);
        int field = m.Below(3);
        m.Field(image, (int)(h + field * 4), 4);
        return $"note header at {h}: {(field == 0 ? "namesz" : field == 1 ? "descsz" : "type")}";
    }
}

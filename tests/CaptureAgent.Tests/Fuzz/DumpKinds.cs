using System.Buffers.Binary;
using System.Text;
using CaptureAgent.Capture;
using CaptureAgent.Dump;
using CaptureAgent.Output;
using CaptureAgent.Targets.Raw;
using CaptureAgent.Formats;

namespace CaptureAgent.Tests.Fuzz;

/// <summary>The dump files made from one metadata vmcore, as the mutations' starting points.</summary>
public sealed class DumpBases
{
    public required byte[] Kdump { get; init; }
    /// <summary>The same dump in each codec makedumpfile writes (zstd, lzo, snappy, zlib), for the readers' decompressors.</summary>
    public required IReadOnlyList<(string Codec, byte[] Bytes)> Kdumps { get; init; }
    public required byte[] Flattened { get; init; }
    public required byte[] RawImage { get; init; }

    /// <summary>Dumps <paramref name="vmcore"/> with the published binary (kdump-compressed, flattened) and writes a raw target image in-process.</summary>
    public static DumpBases Make(byte[] vmcore, string dir)
    {
        Directory.CreateDirectory(dir);
        string elf = Path.Combine(dir, "base.vmcore"), kdump = Path.Combine(dir, "base.kdump");
        File.WriteAllBytes(elf, vmcore);
        var r = FuzzRunner.Exec(["dump", "-d", "31", elf, kdump], dir);
        if (r.ExitCode != 0) throw new InvalidOperationException($"the base dump failed (exit {r.ExitCode}): {r.Stderr}");
        r = FuzzRunner.Exec(["dump", "-F", "-d", "31", elf], dir);
        if (r.ExitCode != 0) throw new InvalidOperationException($"the base flattened dump failed (exit {r.ExitCode}): {r.Stderr}");
        var flat = File.ReadAllBytes(Path.Combine(dir, "stdout.txt"));
        var kdumps = new List<(string, byte[])> { ("zstd", File.ReadAllBytes(kdump)) };
        foreach (var (option, codec) in new[] { ("-l", "lzo"), ("-p", "snappy"), ("-c", "zlib") })
        {
            string path = $"{kdump}.{codec}";
            r = FuzzRunner.Exec(["dump", option, "-d", "31", elf, path], dir);
            if (r.ExitCode != 0) throw new InvalidOperationException($"the base {codec} dump failed (exit {r.ExitCode}): {r.Stderr}");
            kdumps.Add((codec, File.ReadAllBytes(path)));
        }
        return new DumpBases { Kdump = File.ReadAllBytes(kdump), Kdumps = kdumps, Flattened = flat, RawImage = MakeRawImage(elf, dir) };
    }

    /// <summary>A raw dump area (header, log, flattened stream) in a file just large enough for it.</summary>
    private static byte[] MakeRawImage(string vmcore, string dir)
    {
        string image = Path.Combine(dir, "base.raw");
        using (var f = File.Create(image)) f.SetLength(64 << 20);
        using (var src = new DumpSource(vmcore))
        {
            var result = RawDeviceWriter.Save(image, src, new DumpOptions(), CaptureJob.Facts(src, null), _ => { }, allowRegularFile: true);
            if (!result.Complete) throw new InvalidOperationException($"the base raw image is not complete: {result.Message}");
        }
        var bytes = File.ReadAllBytes(image);
        var header = RawDumpHeader.Parse(bytes, out _) ?? throw new InvalidOperationException("no raw header written");
        return bytes[..(int)(header.StreamOffset + header.StreamLength + 4096)];
    }

    /// <summary>Where the records of a flattened stream start (after its 4096-byte header), end marker included.</summary>
    public static List<long> Records(ReadOnlySpan<byte> stream, long start = 4096)
    {
        var records = new List<long>();
        for (long pos = start; pos + 16 <= stream.Length;)
        {
            records.Add(pos);
            long offset = BinaryPrimitives.ReadInt64BigEndian(stream[(int)pos..]), size = BinaryPrimitives.ReadInt64BigEndian(stream[(int)(pos + 8)..]);
            if (offset == -1 && size == -1) break;
            pos += 16 + size;
        }
        return records;
    }
}

/// <summary>
/// kdump-compressed files (of every codec) with their headers, notes, bitmaps, descriptors and page
/// data mutated, or cut: `verify` and `dmesg` read them, and `dump` filters them again (its output,
/// when it vouches for it, must pass `verify`).
/// </summary>
public sealed class KdumpKind(string name, IReadOnlyList<(string Codec, byte[] Bytes)> bases) : IFuzzKind
{
    public string Name => name;

    /// <summary>What a re-filtering run writes: each codec, and makedumpfile's usual levels.</summary>
    private static readonly string[][] Refilters =
        [["-d", "31"], ["-d", "1", "-l"], ["-d", "17", "-p"], ["-d", "31", "-c"], ["-d", "0", "--no-compress"], ["-d", "31", "--compression", "auto"], ["-d", "31", "-E"]];

    private static readonly (string, int, int)[] MainFields =
    [
        ("header_version", 8, 4), ("status", 424, 4), ("block_size", 428, 4), ("sub_hdr_size", 432, 4),
        ("bitmap_blocks", 436, 4), ("max_mapnr", 440, 4), ("total_ram_blocks", 444, 4), ("nr_cpus", 460, 4), ("timestamp", 408, 8),
    ];

    private static readonly (string, int, int)[] SubFields =
    [
        ("phys_base", 0, 8), ("dump_level", 8, 4), ("split", 12, 4), ("offset_vmcoreinfo", 32, 8), ("size_vmcoreinfo", 40, 8),
        ("offset_note", 48, 8), ("size_note", 56, 8), ("offset_eraseinfo", 64, 8), ("size_eraseinfo", 72, 8), ("max_mapnr_64", 96, 8),
    ];

    public FuzzCase Make(Mutator m, string dir)
    {
        var (codec, kdump) = m.Pick(bases);
        var image = (byte[])kdump.Clone();
        int block = BinaryPrimitives.ReadInt32LittleEndian(kdump.AsSpan(428));
        long sub = BinaryPrimitives.ReadInt32LittleEndian(kdump.AsSpan(432)), bitmaps = BinaryPrimitives.ReadUInt32LittleEndian(kdump.AsSpan(436));
        long bitmap1 = (1 + sub) * block, bitmap2 = bitmap1 + bitmaps * block / 2, descriptors = (1 + sub + bitmaps) * block;
        var notes = new List<string> { codec };
        for (int i = 0, n = 1 + m.Below(3); i < n; i++)
        {
            int roll = m.Below(100);
            if (roll < 20) { var (f, o, w) = m.Pick(MainFields); m.Field(image, o, w); notes.Add($"header {f}"); }
            else if (roll < 35) { var (f, o, w) = m.Pick(SubFields); m.Field(image, block + o, w); notes.Add($"sub header {f}"); }
            else if (roll < 42) notes.Add(m.Somewhere(image, block + 104, bitmap1 - block - 104, "notes"));
            else if (roll < 52) notes.Add(m.Somewhere(image, bitmap1, bitmap2 - bitmap1, "1st bitmap"));
            else if (roll < 64) notes.Add(m.Somewhere(image, bitmap2, descriptors - bitmap2, "2nd bitmap"));
            else if (roll < 80)
            {
                long index = m.Below(Math.Max(1, (image.Length - descriptors) / 24 / 4));
                var (f, o, w) = m.Pick(new[] { ("offset", 0, 8), ("size", 8, 4), ("flags", 12, 4) });
                m.Field(image, (int)(descriptors + index * 24 + o), w);
                notes.Add($"descriptor {index} {f}");
            }
            else if (roll < 95) notes.Add(m.Somewhere(image, descriptors, image.Length - descriptors, "descriptors and page data"));
            else
            {
                int cut = (int)m.Below(image.Length);
                image = image[..cut];
                notes.Add($"cut at {cut} bytes");
            }
        }
        string input = Path.Combine(dir, "vmcore");
        File.WriteAllBytes(input, image);
        string log = Path.Combine(dir, "dmesg.txt"), output = Path.Combine(dir, "refiltered");
        var steps = new List<FuzzStep> { new(["verify", input]), new(["dmesg", input, log]) };
        if (m.Chance(50))
        {
            var options = m.Pick(Refilters);
            steps.Add(new(["dump", .. options, input, output], Check: options.Contains("-E") ? RefusedInWords : FuzzRunner.Verified(output, dir)));
        }
        return new FuzzCase(string.Join("; ", notes), steps, image);
    }

    /// <summary>An ELF dump needs an ELF vmcore: from a kdump file it is refused (exit 1), as makedumpfile does.</summary>
    private static string? RefusedInWords(ChildResult r) => r.ExitCode == 1 ? null : $"dump -E of a kdump file: exit {r.ExitCode}, not 1";
}

/// <summary>Flattened streams (makedumpfile -F) with records bent, moved, dropped or repeated, or cut: `rearrange` and `verify` read them.</summary>
public sealed class FlattenedKind(string name, byte[] flattened) : IFuzzKind
{
    private readonly List<long> _records = DumpBases.Records(flattened);

    public string Name => name;

    public FuzzCase Make(Mutator m, string dir)
    {
        var stream = new List<byte>(flattened);
        var notes = new List<string>();
        byte[] image;
        int roll = m.Below(100);
        if (roll < 45)
        {
            image = (byte[])flattened.Clone();
            long rec = m.Pick(_records);
            int field = m.Below(2);
            ulong v = m.Value(BinaryPrimitives.ReadUInt64BigEndian(image.AsSpan((int)(rec + field * 8))));
            if (m.Chance(20)) v = field == 0 ? 1UL << 40 : (ulong)m.Below(1 << 21);
            BinaryPrimitives.WriteUInt64BigEndian(image.AsSpan((int)(rec + field * 8)), v);
            notes.Add($"record at {rec}: {(field == 0 ? "offset" : "size")} = {v}");
        }
        else if (roll < 65)
        {
            image = (byte[])flattened.Clone();
            notes.Add(m.Somewhere(image, 0, image.Length, "stream"));
        }
        else if (roll < 75)
        {
            int cut = (int)m.Below(flattened.Length);
            image = flattened[..cut];
            notes.Add($"cut at {cut} bytes");
        }
        else image = Rearranged(m, notes);
        string input = Path.Combine(dir, "vmcore.flat"), output = Path.Combine(dir, "vmcore");
        File.WriteAllBytes(input, image);
        return new FuzzCase(string.Join("; ", notes),
            [new(["rearrange", output], input, FuzzRunner.Verified(output, dir)), new(["verify", input])], image);
    }

    /// <summary>Whole records repeated, dropped or swapped.</summary>
    private byte[] Rearranged(Mutator m, List<string> notes)
    {
        var pieces = new List<byte[]>();
        for (int i = 0; i + 1 < _records.Count; i++)
            pieces.Add(flattened[(int)_records[i]..(int)_records[i + 1]]);
        int a = m.Below(pieces.Count), b = m.Below(pieces.Count);
        switch (m.Below(3))
        {
            case 0: pieces.Insert(b, pieces[a]); notes.Add($"record {a} repeated before record {b}"); break;
            case 1: pieces.RemoveAt(a); notes.Add($"record {a} dropped"); break;
            default: (pieces[a], pieces[b]) = (pieces[b], pieces[a]); notes.Add($"records {a} and {b} swapped"); break;
        }
        var output = new MemoryStream();
        output.Write(flattened, 0, 4096);
        foreach (var p in pieces) output.Write(p);
        output.Write(flattened, (int)_records[^1], flattened.Length - (int)_records[^1]);
        return output.ToArray();
    }
}

/// <summary>
/// Raw dump areas as the capture leaves them on a raw: target: the header's fields (with its CRC
/// made right again most of the time, to get past it), the log, and the flattened stream's records.
/// `savecore` extracts them; an extraction it calls whole must pass `verify`.
/// </summary>
public sealed class RawKind(string name, byte[] rawImage) : IFuzzKind
{
    public string Name => name;

    private static readonly (string, int, int)[] HeaderFields =
    [
        ("version", 24, 4), ("state", 28, 4), ("device size", 32, 8), ("log offset", 40, 8), ("log length", 48, 8), ("log crc", 56, 8),
        ("stream offset", 64, 8), ("stream length", 72, 8), ("stream offset", 64, 8), ("stream length", 72, 8), ("stream crc", 80, 8),
        ("crash time", 88, 8), ("flags", 112, 4), ("dump level", 116, 4),
    ];

    public FuzzCase Make(Mutator m, string dir)
    {
        var image = (byte[])rawImage.Clone();
        var header = RawDumpHeader.Parse(rawImage, out _)!;
        var notes = new List<string>();
        int roll = m.Below(100);
        if (roll < 40)
        {
            var (f, o, w) = m.Pick(HeaderFields);
            m.Field(image, o, w);
            notes.Add($"header {f}");
        }
        else if (roll < 50) notes.Add(m.Somewhere(image, 128, 2560 - 128, "header text"));
        else if (roll < 60) notes.Add(m.Somewhere(image, header.DmesgOffset, header.DmesgLength, "log"));
        else if (roll < 80)
        {
            var records = DumpBases.Records(image.AsSpan((int)header.StreamOffset, (int)header.StreamLength), 4096);
            long rec = header.StreamOffset + m.Pick(records);
            int field = m.Below(2);
            ulong v = m.Chance(30) && field == 0 ? 1UL << 40 : m.Value(BinaryPrimitives.ReadUInt64BigEndian(image.AsSpan((int)(rec + field * 8))));
            BinaryPrimitives.WriteUInt64BigEndian(image.AsSpan((int)(rec + field * 8)), v);
            notes.Add($"stream record at {rec}: {(field == 0 ? "offset" : "size")} = {v}");
        }
        else if (roll < 92) notes.Add(m.Somewhere(image, header.StreamOffset, header.StreamLength, "stream"));
        else
        {
            int cut = (int)m.Below(image.Length);
            image = image[..cut];
            notes.Add($"image cut at {cut} bytes");
        }
        // A header with a wrong CRC is refused at once: make it right again, mostly, to reach the deeper checks.
        if (image.Length >= RawDumpHeader.Size && m.Chance(75))
            BinaryPrimitives.WriteUInt64LittleEndian(image.AsSpan(RawDumpHeader.Size - 8), Common.Crc64.Update(0, image.AsSpan(0, RawDumpHeader.Size - 8)));
        string input = Path.Combine(dir, "raw.img"), saved = Path.Combine(dir, "saved");
        File.WriteAllBytes(input, image);
        return new FuzzCase(string.Join("; ", notes), [new(["savecore", "--device", input, "--dir", saved, "--allow-file"], Check: r => Extracted(r, saved, dir))], image);
    }

    /// <summary>A savecore that says the dump came out whole (exit 0) must leave a directory `verify` calls complete.</summary>
    private static string? Extracted(ChildResult r, string saved, string dir)
    {
        if (r.ExitCode != 0 || !Directory.Exists(saved)) return null;
        foreach (var d in Directory.EnumerateDirectories(saved))
        {
            var v = FuzzRunner.Exec(["verify", d], dir);
            if (FuzzRunner.Judge(v, []) is { } bad) return $"verify of the extracted dump: {bad}";
            if (v.ExitCode != 0) return $"savecore exit 0, but verify of {Path.GetFileName(d)} says (exit {v.ExitCode}): {v.Stdout.Trim()}";
        }
        return null;
    }
}

/// <summary>Saved dump directories (manifest.json, dmesg.txt, vmcore) with the manifest's text and the files damaged, or a file replaced by a FIFO or a directory: `verify` and `report` read them.</summary>
public sealed partial class DumpDirectoryKind(string name, byte[] kdump) : IFuzzKind
{
    public string Name => name;

    [System.Runtime.InteropServices.LibraryImport("libc", EntryPoint = "mkfifo", StringMarshalling = System.Runtime.InteropServices.StringMarshalling.Utf8)]
    private static partial int MkFifo(string path, uint mode);

    public FuzzCase Make(Mutator m, string dir)
    {
        string dumps = Path.Combine(dir, "crash"), d = Path.Combine(dumps, "host-2026-12-05-10:00:00");
        Directory.CreateDirectory(d);
        File.WriteAllBytes(Path.Combine(d, "vmcore"), kdump);
        File.WriteAllText(Path.Combine(d, "dmesg.txt"), "[    0.000000] Linux version 6.1.0-test\n[   12.000000] Kernel panic - not syncing: sysrq triggered crash\n");
        var manifest = new DumpManifest { Complete = true, Host = "host", KernelRelease = "6.1.0-test", CrashTime = DateTimeOffset.UnixEpoch.AddYears(56), DumpLevel = 31, Compression = "zstd" };
        manifest.Files.Add(DumpManifest.Checksum(Path.Combine(d, "dmesg.txt")));
        manifest.Files.Add(DumpManifest.Checksum(Path.Combine(d, "vmcore")));
        string json = manifest.ToJson();
        var notes = new List<string>();
        int roll = m.Below(100);
        if (roll < 45) json = MutateJson(m, json, notes);
        else if (roll < 70)
        {
            var bytes = File.ReadAllBytes(Path.Combine(d, "vmcore"));
            notes.Add(m.Somewhere(bytes, 0, bytes.Length, "vmcore"));
            File.WriteAllBytes(Path.Combine(d, "vmcore"), bytes);
        }
        else if (roll < 85)
        {
            string victim = Path.Combine(d, m.Pick(new[] { "vmcore", "dmesg.txt", "manifest.json" }));
            File.Delete(victim);
            if (m.Chance(70)) { MkFifo(victim, 0x180); notes.Add($"{Path.GetFileName(victim)} is a FIFO"); }
            else { Directory.CreateDirectory(victim); notes.Add($"{Path.GetFileName(victim)} is a directory"); }
        }
        else
        {
            string renamed = m.Pick(new[] { "vmcore-incomplete", "vmcore.flat", "dump.202612051000", "vmcore.raw" });
            File.Move(Path.Combine(d, "vmcore"), Path.Combine(d, renamed));
            notes.Add($"vmcore renamed {renamed}");
        }
        if (!File.Exists(Path.Combine(d, "manifest.json")) && !Directory.Exists(Path.Combine(d, "manifest.json")) && !notes.Any(n => n.StartsWith("manifest.json", StringComparison.Ordinal)))
            File.WriteAllText(Path.Combine(d, "manifest.json"), json);
        return new FuzzCase(string.Join("; ", notes), [new(["verify", d]), new(["report", dumps, "--json"])], Encoding.UTF8.GetBytes(json));
    }

    private static string MutateJson(Mutator m, string json, List<string> notes)
    {
        switch (m.Below(6))
        {
            case 0:
            {
                int at = m.Below(json.Length);
                notes.Add($"manifest cut at {at}");
                return json[..at];
            }
            case 1:
                notes.Add("manifest nested deeply");
                return new string('[', 100 + m.Below(10000)) + json;
            case 2:
            {
                string number = m.Pick(new[] { "-1", "1e308", "18446744073709551616", "99999999999999999999999", "\"x\"", "null", "[]", "{}" });
                var keys = new[] { "\"size\": ", "\"dumpable_pages\": ", "\"dump_level\": ", "\"version\": ", "\"complete\": " };
                string key = m.Pick(keys);
                int at = json.IndexOf(key, StringComparison.Ordinal);
                if (at < 0) return json;
                int end = json.IndexOfAny([',', '\n'], at + key.Length);
                notes.Add($"manifest {key.Trim()} {number}");
                return json[..(at + key.Length)] + number + json[end..];
            }
            case 3:
                notes.Add("manifest names a path");
                return json.Replace("\"dmesg.txt\"", m.Pick(new[] { "\"../../etc/passwd\"", "\"/etc/passwd\"", "\"..\"", "\"\"" }));
            case 4:
            {
                var bytes = Encoding.Latin1.GetBytes(json);
                notes.Add(m.Somewhere(bytes, 0, bytes.Length, "manifest"));
                return Encoding.Latin1.GetString(bytes);
            }
            default:
                notes.Add("manifest with a long string");
                return json.Replace("\"host\"", "\"host\": \"" + new string('h', 1 + m.Below(1 << 20)) + "\", \"x\"");
        }
    }
}

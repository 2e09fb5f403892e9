using System.Globalization;
using System.Text;
using System.Text.Json;
using CaptureAgent.Common;
using Crc = CaptureAgent.Common.Crc64;

namespace CaptureAgent.Host;

/// <summary>One input of a capture initramfs: a CRC-64 over its lines, and the lines for saying what changed.</summary>
public sealed record StampPart(string Name, ulong Crc64, IReadOnlyList<string> Items)
{
    public static StampPart Of(string name, IEnumerable<string> items)
    {
        var list = items.ToList();
        ulong crc = 0;
        foreach (var line in list) crc = Crc.Update(crc, Encoding.UTF8.GetBytes(line + "\n"));
        return new StampPart(name, crc, list);
    }
}

/// <summary>
/// stamp.json beside a stored capture initramfs: what it was built from. The config file's bytes,
/// the target chain (which device each target is on and the driver modules that reach it), the
/// module set (every module file with size and mtime, and modules.dep's mtime), the agent binary
/// (size and mtime) and the files the config brings (keys, hooks). Any difference means a rebuild.
/// </summary>
public sealed class RebuildStamp
{
    public const int Format = 1;
    public const string Config = "config", TargetChain = "target_chain", ModuleSet = "module_set", Agent = "agent", Files = "files";
    private static readonly string[] Order = [Config, TargetChain, ModuleSet, Agent, Files];

    public required string Release { get; init; }
    public required IReadOnlyDictionary<string, StampPart> Parts { get; init; }
    public DateTimeOffset BuiltAt { get; init; }
    public long ImageBytes { get; init; }

    /// <summary>CRC-64 over every part: one number for "is it the same build".</summary>
    public ulong Combined
    {
        get
        {
            ulong crc = 0;
            Span<byte> b = stackalloc byte[8];
            foreach (var name in Order)
                if (Parts.TryGetValue(name, out var p))
                {
                    System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(b, p.Crc64);
                    crc = Crc.Update(crc, b);
                }
            return crc;
        }
    }

    internal static RebuildStamp From(CaptureImagePlan plan)
    {
        var parts = new Dictionary<string, StampPart>
        {
            [Config] = StampPart.Of(Config, [plan.ConfigPath is null ? "absent" : $"{plan.ConfigBytes.Length} bytes crc64 {Crc.Update(0, plan.ConfigBytes):x16}"]),
            [TargetChain] = StampPart.Of(TargetChain, plan.TargetIdentity.Append("modules: " + string.Join(' ', plan.ChainModules))),
            [ModuleSet] = StampPart.Of(ModuleSet, ModuleItems(plan)),
            [Agent] = StampPart.Of(Agent, [FileLine(plan.AgentPath)]),
            [Files] = StampPart.Of(Files, plan.Files.Select(f => $"{f.Destination} {FileLine(f.Source)}")
                .Concat(plan.Executables.Select(FileLine))),
        };
        return new RebuildStamp { Release = plan.Release, Parts = parts };
    }

    private static IEnumerable<string> ModuleItems(CaptureImagePlan plan)
    {
        foreach (var m in plan.Resolved)
            yield return $"{m.Name} {FileLine(Path.Combine(plan.ModuleDirectory, m.RelativePath), m.RelativePath)}";
        var dep = HostFiles.Stat(Path.Combine(plan.ModuleDirectory, "modules.dep"));
        yield return dep is { } d ? $"modules.dep {d.MtimeTicks}" : "modules.dep absent";
    }

    private static string FileLine(string path) => FileLine(path, path);

    private static string FileLine(string path, string shown) =>
        HostFiles.Stat(path) is { } s ? $"{shown} {s.Size} {s.MtimeTicks}" : $"{shown} missing";

    /// <summary>
    /// What differs from <paramref name="current"/>, one phrase per part in a fixed order ("config
    /// changed", "module set changed: +nvme", "target chain changed: ...", "agent updated"); empty when equal.
    /// </summary>
    public List<string> Differences(RebuildStamp current)
    {
        var changes = new List<string>();
        if (Release != current.Release) changes.Add($"built for {Release}, not {current.Release}");
        foreach (var name in Order)
        {
            var now = current.Parts.GetValueOrDefault(name);
            var then = Parts.GetValueOrDefault(name);
            if (now is null || then is not null && then.Crc64 == now.Crc64) continue;
            if (then is null) { changes.Add($"{name.Replace('_', ' ')} not recorded"); continue; }
            changes.Add(name switch
            {
                Config => "config changed",
                Agent => "agent updated",
                TargetChain => "target chain changed" + Detail(then.Items.Where(i => !now.Items.Contains(i)).Select(i => "was " + i)
                    .Concat(now.Items.Where(i => !then.Items.Contains(i)).Select(i => "now " + i))),
                ModuleSet => "module set changed" + Detail(ModuleDelta(then.Items, now.Items)),
                _ => "files changed" + Detail(ChangedNames(then.Items, now.Items)),
            });
        }
        return changes;
    }

    private static string Detail(IEnumerable<string> parts)
    {
        var list = parts.ToList();
        return list.Count == 0 ? "" : ": " + string.Join(", ", list);
    }

    /// <summary>+added -removed, then "NAME updated" for a module (or modules.dep) whose file changed.</summary>
    private static IEnumerable<string> ModuleDelta(IReadOnlyList<string> then, IReadOnlyList<string> now)
    {
        var before = ByName(then);
        var after = ByName(now);
        foreach (var name in after.Keys.Where(k => !before.ContainsKey(k))) yield return "+" + name;
        foreach (var name in before.Keys.Where(k => !after.ContainsKey(k))) yield return "-" + name;
        foreach (var (name, line) in after)
            if (before.TryGetValue(name, out var old) && old != line) yield return name + " updated";
    }

    private static Dictionary<string, string> ByName(IEnumerable<string> items)
    {
        var d = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var i in items) d.TryAdd(FirstWord(i), i);
        return d;
    }

    private static IEnumerable<string> ChangedNames(IReadOnlyList<string> then, IReadOnlyList<string> now) =>
        then.Except(now).Concat(now.Except(then)).Select(FirstWord).Distinct();

    private static string FirstWord(string line) => line.Split(' ', 2)[0];

    public void Write(string path)
    {
        HostFiles.WriteAtomic(path, HostFiles.Mode0600, s =>
        {
            using var w = new Utf8JsonWriter(s, new JsonWriterOptions { Indented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
            w.WriteStartObject();
            w.WriteNumber("format", Format);
            w.WriteString("kernel_release", Release);
            w.WriteString("built_at", BuiltAt.UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture));
            w.WriteNumber("image_bytes", ImageBytes);
            w.WriteString("crc64", Combined.ToString("x16", CultureInfo.InvariantCulture));
            w.WriteStartObject("inputs");
            foreach (var name in Order)
            {
                if (!Parts.TryGetValue(name, out var p)) continue;
                w.WriteStartObject(name);
                w.WriteString("crc64", p.Crc64.ToString("x16", CultureInfo.InvariantCulture));
                w.WriteStartArray("items");
                foreach (var i in p.Items) w.WriteStringValue(i);
                w.WriteEndArray();
                w.WriteEndObject();
            }
            w.WriteEndObject();
            w.WriteEndObject();
        });
    }

    /// <summary>The stamp at <paramref name="path"/>, or null with the reason when it is missing or unreadable.</summary>
    public static RebuildStamp? Read(string path, out string? problem)
    {
        problem = null;
        if (!File.Exists(path)) { problem = "no stamp"; return null; }
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(path));
            var root = doc.RootElement;
            if (root.GetProperty("format").GetInt32() != Format) { problem = "stamp of another format"; return null; }
            var parts = new Dictionary<string, StampPart>();
            foreach (var p in root.GetProperty("inputs").EnumerateObject())
                parts[p.Name] = new StampPart(p.Name, ulong.Parse(p.Value.GetProperty("crc64").GetString()!, NumberStyles.HexNumber, CultureInfo.InvariantCulture),
                    p.Value.GetProperty("items").EnumerateArray().Select(i => i.GetString() ?? "").ToList());
            return new RebuildStamp
            {
                Release = root.GetProperty("kernel_release").GetString() ?? "",
                Parts = parts,
                BuiltAt = DateTimeOffset.Parse(root.GetProperty("built_at").GetString()!, CultureInfo.InvariantCulture),
                ImageBytes = root.GetProperty("image_bytes").GetInt64(),
            };
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException
                                   or OverflowException or IOException or UnauthorizedAccessException or ArgumentNullException)
        {
            problem = $"stamp unreadable ({e.Message})";
            return null;
        }
    }
}

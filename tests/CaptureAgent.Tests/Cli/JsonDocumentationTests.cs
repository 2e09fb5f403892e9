using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using CaptureAgent.Cli;
using CaptureAgent.Common;
using CaptureAgent.Dump;
using CaptureAgent.Formats;
using CaptureAgent.Host;
using CaptureAgent.Kexec;
using CaptureAgent.Net;
using CaptureAgent.Rehearsal;
using CaptureAgent.Report;
using CaptureAgent.Sizing;
using CaptureAgent.Targets.Raw;
using CaptureAgent.Tests.Host.Report;
using CaptureAgent.Tests.Integration;
using Xunit;

namespace CaptureAgent.Tests.Cli;

/// <summary>
/// docs/json-output.md and docs/formats.md list the fields of every JSON output and of
/// manifest.json. Each table is compared with what the code writes, on a synthetic dump directory
/// and results filled in everywhere (so every optional field and nested object appears): a field
/// added, renamed or dropped on one side only fails here.
/// </summary>
public class JsonDocumentationTests
{
    private static string RepoFile(string rel)
    {
        return Path.Combine(Fixtures.RepoRoot, rel);
    }

    /// <summary>The backticked first cells of the tables under each "## " heading.</summary>
    private static Dictionary<string, List<string>> DocumentedFields(string rel)
    {
        var sections = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        List<string>? current = null;
        foreach (var line in File.ReadAllLines(RepoFile(rel)))
        {
            if (line.StartsWith("## ", StringComparison.Ordinal)) sections[line[3..].Trim()] = current = new();
            else if (current is not null && Regex.Match(line, @"^\| `([a-z_\[\].0-9]+)` \|") is { Success: true } m) current.Add(m.Groups[1].Value);
        }
        return sections;
    }

    /// <summary>Every field path of a JSON value: "a", "a.b" for objects, "a[].b" for arrays of objects.</summary>
    private static List<string> FieldPaths(JsonElement e, string prefix = "")
    {
        var paths = new List<string>();
        if (e.ValueKind == JsonValueKind.Array)
        {
            foreach (var item in e.EnumerateArray())
                foreach (var p in FieldPaths(item, prefix + "[]")) if (!paths.Contains(p)) paths.Add(p);
            return paths;
        }
        if (e.ValueKind != JsonValueKind.Object) return paths;
        foreach (var prop in e.EnumerateObject())
        {
            // Elements of a top-level array ("[]") name their fields plainly.
            string name = prefix is "" or "[]" ? prop.Name : $"{prefix}.{prop.Name}";
            paths.Add(name);
            foreach (var p in FieldPaths(prop.Value, name)) if (!paths.Contains(p)) paths.Add(p);
        }
        return paths;
    }

    /// <summary>The fields of one output (an array's elements for array outputs), parsed from what the writer wrote.</summary>
    private static List<string> Written(Action<Stream> write, bool array = false)
    {
        var ms = new MemoryStream();
        write(ms);
        var text = Encoding.UTF8.GetString(ms.ToArray());
        Assert.EndsWith("\n", text);
        using var doc = JsonDocument.Parse(text);
        var root = doc.RootElement;
        if (array)
        {
            Assert.Equal(JsonValueKind.Array, root.ValueKind);
            Assert.True(root.GetArrayLength() > 0, "an empty array says nothing about its fields");
            foreach (var item in root.EnumerateArray()) AssertHeader(item);
            return FieldPaths(root);
        }
        AssertHeader(root);
        return FieldPaths(root);
    }

    private static void AssertHeader(JsonElement o)
    {
        var first = o.EnumerateObject().Take(2).Select(p => p.Name).ToList();
        Assert.Equal(["schema", "capture_agent_version"], first);
        Assert.Equal(JsonOutput.Schema, o.GetProperty("schema").GetInt32());
        Assert.Equal(BuildInfo.Version, o.GetProperty("capture_agent_version").GetString());
    }

    private static void AssertSame(string section, IEnumerable<string> documented, IEnumerable<string> written)
    {
        var doc = documented.ToHashSet();
        var code = written.ToHashSet();
        var missing = code.Except(doc).Order().ToList();
        var stale = doc.Except(code).Order().ToList();
        Assert.True(missing.Count == 0 && stale.Count == 0,
            $"{section}: written but not documented: [{string.Join(", ", missing)}]; documented but not written: [{string.Join(", ", stale)}]");
    }

    /// <summary>A dump directory whose report has every part: manifest, dump header, a log with a panic, a signature.</summary>
    private static List<DumpEntry> SyntheticDumps(TempDir t)
    {
        var d = Directory.CreateDirectory(t.File("crash/web1-2026-03-01-10:00:07")).FullName;
        DumpCatalogTests.WriteKdumpHeader(Path.Combine(d, "vmcore"), "web1", "6.12.117+deb12-amd64", 1772359207);
        File.WriteAllText(Path.Combine(d, "dmesg.txt"), KernelLogSamples.WarnPanicOnWarn);
        var entries = DumpCatalog.Scan(t.File("crash"));
        Assert.NotNull(Assert.Single(entries).Signature);
        return entries;
    }

    [Fact]
    public void EveryCommandTableMatchesItsOutput()
    {
        var doc = DocumentedFields("docs/json-output.md");
        using var t = new TempDir();
        var dumps = SyntheticDumps(t);
        var reportFields = Written(ms => ReportCommand.WriteJson(ms, dumps), array: true);
        AssertSame("report --json", doc["report --json"], reportFields);

        var lines = new List<string>();
        var (verdict, summary) = DumpVerifier.CheckReadable(dumps[0].Directory, lines);
        AssertSame("verify --json", doc["verify --json"],
            Written(ms => VerifyCommand.WriteJson(ms, dumps[0].Directory, verdict.ToString().ToLowerInvariant(), summary, lines)));

        var statusFields = Written(ms => LoadCommand.WriteStatus(ms, Armed(), null, Loaded(), Store(), t.File("crash"), dumps));
        AssertSame("status --json", doc["status --json"], statusFields.Where(f => !f.StartsWith("last_dumps[].", StringComparison.Ordinal)));
        AssertSame("status --json last_dumps[] (report entries)", reportFields,
            statusFields.Where(f => f.StartsWith("last_dumps[].", StringComparison.Ordinal)).Select(f => f["last_dumps[].".Length..]));

        AssertSame("estimate --json", doc["estimate --json"], Written(ms => EstimateCommand.WriteComputed(ms, Estimate(), 256 << 20, true)));
        AssertSame("estimate --measure --json", doc["estimate --measure --json"], Written(ms => EstimateCommand.WriteMeasured(ms, Measure())));
        AssertSame("savecore --json", doc["savecore --json"], Written(ms => SavecoreCommand.WriteJson(ms, [Savecore()]), array: true));
        AssertSame("selftest --json", doc["selftest --json"], Written(ms => SelfTestCommand.WriteJson(ms, SelfTest())));
        AssertSame("net up --json", doc["net up --json"], Written(ms => NetCommand.WriteJson(ms, Lease())));
        AssertSame("version --json", doc["version --json"], Written(ms => JsonOutput.WriteObject(ms, _ => { })));
    }

    [Fact]
    public void ManifestTableMatchesTheManifest()
    {
        var section = DocumentedFields("docs/formats.md").Single(s => s.Key.EndsWith("manifest.json", StringComparison.Ordinal));
        var manifest = new DumpManifest
        {
            Complete = false, IncompleteReason = "the target filled up", Host = "web1", KernelRelease = "6.1.0-21-amd64",
            CrashTime = DateTimeOffset.UnixEpoch.AddDays(20000), DumpLevel = 31, RequestedDumpLevel = 1, Compression = "zstd",
            DumpablePages = 1234, Files = [new ManifestFile("vmcore-incomplete", 4096, "0123456789abcdef")], Problems = ["a problem"],
        };
        AssertSame("manifest.json", section.Value, Written(ms => ms.Write(manifest.ToJsonBytes())));
        // What is written reads back strictly, as verify reads it.
        var back = DumpManifest.Parse(manifest.ToJson());
        Assert.Equal((manifest.Host, manifest.RequestedDumpLevel, manifest.DumpablePages, BuildInfo.Version, JsonOutput.Schema),
            (back.Host, back.RequestedDumpLevel, back.DumpablePages, back.AgentVersion, back.Schema));
        Assert.Equal(manifest.Files, back.Files);
    }

    private static CrashKernelState Armed() => new(true, 256 << 20, "crashkernel=256M", "root=/dev/vda1 crashkernel=256M", false, "none");

    private static Dictionary<string, string> Loaded() => new()
    {
        ["kernel"] = "/boot/vmlinuz-6.1.0-21-amd64", ["initrd"] = "/var/lib/capture-agent/6.1.0-21-amd64/initramfs.img",
        ["cmdline"] = "irqpoll nr_cpus=1 reset_devices", ["loaded_at"] = "2026-03-01T09:00:00Z",
    };

    private static LoadCommand.StoreView Store() => new(
        new CaptureKernelChoice("6.1.0-21-amd64", "/boot/vmlinuz-6.1.0-21-amd64", "/var/lib/capture-agent/6.1.0-21-amd64/initramfs.img", "running", false, null),
        ["config changed"],
        [new StoreEntry("6.1.0-21-amd64", "/var/lib/capture-agent/6.1.0-21-amd64/initramfs.img", 2_900_000, DateTimeOffset.UnixEpoch.AddDays(20000), false, true)],
        null, ["nfs:10.0.2.2:/srv/crash: no network driver in the image"]);

    private static CrashkernelEstimateResult Estimate() => new(
        [new EstimateTerm("initramfs unpacked", 12 << 20, "the image's size, unpacked", EstimatePhase.Boot)],
        80 << 20, 16 << 20, 80 << 20, 1L << 30, ["a note"]);

    private static MeasureResult Measure() => new(
        [new MeasureAttempt(96 << 20, true, "dump saved", 41.5, "MemFree: 30000 kB", 15000, "/tmp/console.log")],
        96 << 20, 112 << 20, true, ["a note"]);

    private static SavecoreResult Savecore() => new("/dev/vdb1", SavecoreStatus.Extracted, "extracted")
    {
        Directory = "/var/crash/web1-2026-03-01-10:00:07", DmesgPath = "/var/crash/web1-2026-03-01-10:00:07/dmesg.txt",
        VmcorePath = "/var/crash/web1-2026-03-01-10:00:07/vmcore", VmcoreBytes = 65536, HeaderCleared = true,
        Header = new RawDumpHeader { Host = "web1", KernelRelease = "6.1.0-21-amd64", CrashTime = DateTimeOffset.UnixEpoch.AddDays(20000) },
        Problems = ["a problem"],
    };

    private static SelfTestResult SelfTest() => new()
    {
        Passed = true, Summary = "a complete dump", Release = "6.1.0-21-amd64", Kernel = "/boot/vmlinuz", Initramfs = "/var/lib/initramfs.img",
        Crashkernel = 256 << 20, GuestMemory = 1L << 30, Target = "LABEL=crashdump", ScratchFilesystem = "ext4", Outcome = "rebooted",
        Seconds = 80.2, AgentPeakKiB = 15000, DumpDirectory = "/var/crash/x", Verify = "complete", ReadBack = "debugfs",
        PanicMessage = "sysrq triggered crash", ConsoleLog = "/tmp/console.log", Notes = ["a note"],
    };

    private static NetworkLease Lease() => new("eth0", "10.0.2.15", 24, "10.0.2.2", ["10.0.2.3"], "dhcp")
    {
        Mac = "52:54:00:12:34:56", Server = "10.0.2.2", LeaseTime = TimeSpan.FromSeconds(86400), Domain = "lab",
    };
}

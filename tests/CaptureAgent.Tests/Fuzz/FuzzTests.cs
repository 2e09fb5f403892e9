using System.Buffers.Binary;
using System.Text;
using CaptureAgent.Tests.Host.Initramfs;
using CaptureAgent.Tests.Integration;
using CaptureAgent.Tests.Synthetic;
using Xunit;
using Xunit.Abstractions;

namespace CaptureAgent.Tests.Fuzz;

/// <summary>
/// The inputs the fuzz kinds start from, made once per test run: metadata vmcores (of a synthetic
/// kernel with a log_buf printk buffer, and of the real fixtures), the dumps made from them, and the
/// fixture kernel's image and one of its modules.
/// </summary>
public static class FuzzInputs
{
    public static string Work { get; } = MakeWork();

    private static string MakeWork()
    {
        string dir = Path.Combine(Path.GetTempPath(), $"capture-agent-fuzz-{Environment.ProcessId}");
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            try { Directory.Delete(dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        };
        return dir;
    }

    private static readonly Dictionary<string, object> Cache = new();

    private static T Once<T>(string key, Func<T> make) where T : notnull
    {
        lock (Cache)
        {
            if (!Cache.TryGetValue(key, out var v)) Cache[key] = v = make();
            return (T)v;
        }
    }

    /// <summary>Where the synthetic kernel keeps log_next_idx (log_buf, log_buf_len and log_first_idx come before it).</summary>
    public const ulong LogNextIdxPa = 0x1ff010;

    /// <summary>A synthetic kernel (4- or 5-level paging) with a variable-length log_buf of a few records, as a metadata vmcore.</summary>
    public static MetadataVmcore Synthetic(bool fiveLevel) => Once($"synthetic-{fiveLevel}", () =>
    {
        var k = new SyntheticKernel(fiveLevel ? KernelStyle.Linux612 : KernelStyle.Linux61, fiveLevel);
        const ulong LogBufPa = 0x200000, VarsPa = LogNextIdxPa - 16;
        const int Len = 4096, Hdr = 16;
        k.Mem.AsSpan((int)LogBufPa, Len).Clear();
        int at = 0;
        foreach (var (ts, text) in new[] { (1UL, "first"), (2UL, "Kernel panic - not syncing: sysrq triggered crash"), (3UL, "CPU: 0 PID: 1 Comm: sh\nCall Trace:") })
        {
            int recLen = (Hdr + text.Length + 7) & ~7;
            var rec = k.Mem.AsSpan((int)LogBufPa + at);
            BinaryPrimitives.WriteUInt64LittleEndian(rec, ts * 1_000_000_000);
            BinaryPrimitives.WriteUInt16LittleEndian(rec[8..], (ushort)recLen);
            BinaryPrimitives.WriteUInt16LittleEndian(rec[10..], (ushort)text.Length);
            Encoding.ASCII.GetBytes(text).CopyTo(rec[Hdr..]);
            at += recLen;
        }
        var vars = k.Mem.AsSpan((int)VarsPa, 64);
        BinaryPrimitives.WriteUInt64LittleEndian(vars, k.DirectVa(LogBufPa));
        BinaryPrimitives.WriteUInt32LittleEndian(vars[8..], Len);
        BinaryPrimitives.WriteUInt32LittleEndian(vars[12..], 0);
        BinaryPrimitives.WriteUInt32LittleEndian(vars[16..], (uint)at);
        string Sym(ulong off) => (k.DirectVa(VarsPa) + off).ToString("x");
        Directory.CreateDirectory(Work);
        string path = Path.Combine(Work, $"synthetic-{fiveLevel}.vmcore");
        k.WriteElf(path, line => line.StartsWith("CRASHTIME")
            ? line + $"\nSYMBOL(log_buf)={Sym(0)}\nSYMBOL(log_buf_len)={Sym(8)}\nSYMBOL(log_first_idx)={Sym(12)}\nSYMBOL(log_next_idx)={Sym(16)}\n" +
              "SIZE(printk_log)=16\nOFFSET(printk_log.ts_nsec)=0\nOFFSET(printk_log.len)=8\nOFFSET(printk_log.text_len)=10"
            : line);
        var meta = MetadataVmcore.From(path);
        File.Delete(path);
        return meta;
    });

    /// <summary>The metadata vmcore of a real fixture (6.1-1024, 6.12-1024).</summary>
    public static MetadataVmcore Fixture(string name) => Once($"fixture-{name}", () => MetadataVmcore.From(Fixtures.Vmcore(name)));

    public static DumpBases Dumps(string name, MetadataVmcore meta) => Once($"dumps-{name}", () => DumpBases.Make(meta.Serialize(out _), Path.Combine(Work, "bases-" + name)));

    /// <summary>The fixture's kernel release (kernel-release.txt) and the root its package was unpacked to.</summary>
    public static (string Release, string Root) FixtureKernel(string name) => Once($"kernel-{name}", () =>
    {
        string release = Fixtures.Release(name);
        return (release, ModuleTrees.Root(release));
    });

    /// <summary>
    /// A small real module of the fixture kernel (plain .ko) that depends on no other: with one, every
    /// case would stop at the missing dependency and the image would never be written.
    /// </summary>
    public static byte[] Module(string name) => Once($"module-{name}", () =>
    {
        var (release, root) = FixtureKernel(name);
        return Directory.EnumerateFiles(Path.Combine(root, "lib", "modules", release, "kernel"), "*.ko", SearchOption.AllDirectories)
            .Select(f => new FileInfo(f)).Where(f => f.Length is > 8_000 and < 40_000).OrderBy(f => f.FullName, StringComparer.Ordinal)
            .Select(f => File.ReadAllBytes(f.FullName)).FirstOrDefault(ko => ko.AsSpan().IndexOf("\0depends=\0"u8) >= 0)
            ?? throw new InvalidOperationException($"no plain .ko of 8-40 KB without dependencies under {root}");
    });
}

/// <summary>Runs a kind within the budget and fails with every failing case (they are kept under FUZZ_KEEP when set).</summary>
public abstract class FuzzTestBase(ITestOutputHelper output)
{
    protected ITestOutputHelper Log { get; } = output;

    /// <summary>About five minutes for every kind together on two cores; FUZZ_SECONDS / FUZZ_CASES raise it.</summary>
    protected void Fuzz(IFuzzKind kind, double defaultSeconds = 16, int defaultCases = 3000)
    {
        _ = FuzzRunner.Binary;   // on the test's own thread, where the Binary category is checked
        var (cases, seconds) = FuzzRunner.Budget(defaultCases, defaultSeconds);
        string work = Path.Combine(FuzzInputs.Work, "cases");
        Directory.CreateDirectory(work);
        var stats = FuzzRunner.Run(kind, work, cases, seconds, FuzzRunner.Jobs);
        Log.WriteLine(stats.ToString());
        foreach (var f in stats.Failures.Take(20)) Log.WriteLine("FAIL " + f);
        Assert.True(stats.Cases > 0, $"{kind.Name}: no case ran");
        Assert.True(stats.Failures.IsEmpty, $"{stats.Failures.Count} of {stats.Cases} {kind.Name} cases failed; first: {stats.Failures.FirstOrDefault()}");
    }
}

/// <summary>Fuzzing on inputs made from the synthetic kernel: no fixture needed.</summary>
[Trait("Category", "Fuzz")]
[Trait("Category", "Binary")]
[Collection("fuzz")]
public class SyntheticFuzzTests(ITestOutputHelper log) : FuzzTestBase(log)
{
    [Fact] public void Vmcore4Level() => Fuzz(new VmcoreKind("vmcore-synthetic", FuzzInputs.Synthetic(false)));
    [Fact] public void Vmcore5Level() => Fuzz(new VmcoreKind("vmcore-synthetic-5level", FuzzInputs.Synthetic(true)));
    [Fact] public void Kdump() => Fuzz(new KdumpKind("kdump-synthetic", FuzzInputs.Dumps("synthetic", FuzzInputs.Synthetic(false)).Kdumps));
    [Fact] public void Flattened() => Fuzz(new FlattenedKind("flattened-synthetic", FuzzInputs.Dumps("synthetic", FuzzInputs.Synthetic(false)).Flattened));
    [Fact] public void RawDevice() => Fuzz(new RawKind("raw-synthetic", FuzzInputs.Dumps("synthetic", FuzzInputs.Synthetic(false)).RawImage));
    [Fact] public void DumpDirectory() => Fuzz(new DumpDirectoryKind("dumpdir-synthetic", FuzzInputs.Dumps("synthetic", FuzzInputs.Synthetic(false)).Kdump));
    [Fact] public void Config() => Fuzz(new ConfigKind());
    [Fact] public void ConfigImport() => Fuzz(new ImportKind());
}

/// <summary>Fuzzing on the metadata of the real vmcore fixtures, their dumps, kernel image and modules.</summary>
[Trait("Category", "Fuzz")]
[Trait("Category", "Binary")]
[Trait("Category", "Fixture")]
[Collection("fuzz")]
public class FixtureFuzzTests(ITestOutputHelper log) : FuzzTestBase(log)
{
    private const string Fx61 = "6.1-1024", Fx612 = "6.12-1024";

    [Fact] public void Vmcore61() => Fuzz(new VmcoreKind("vmcore-6.1", FuzzInputs.Fixture(Fx61)), 26);
    [Fact] public void Vmcore612() => Fuzz(new VmcoreKind("vmcore-6.12", FuzzInputs.Fixture(Fx612)), 26);
    [Fact] public void Kdump() => Fuzz(new KdumpKind("kdump-6.1", FuzzInputs.Dumps(Fx61, FuzzInputs.Fixture(Fx61)).Kdumps));
    [Fact] public void Flattened() => Fuzz(new FlattenedKind("flattened-6.1", FuzzInputs.Dumps(Fx61, FuzzInputs.Fixture(Fx61)).Flattened));
    [Fact] public void RawDevice() => Fuzz(new RawKind("raw-6.12", FuzzInputs.Dumps(Fx612, FuzzInputs.Fixture(Fx612)).RawImage));
    [Fact] public void DumpDirectory() => Fuzz(new DumpDirectoryKind("dumpdir-6.1", FuzzInputs.Dumps(Fx61, FuzzInputs.Fixture(Fx61)).Kdump));

    [Fact]
    public void Initramfs()
    {
        var (release, root) = FuzzInputs.FixtureKernel(Fx61);
        Directory.CreateDirectory(FuzzInputs.Work);
        Fuzz(new InitramfsKind(Path.Combine(root, "boot", $"vmlinuz-{release}"), FuzzInputs.Module(Fx61), FuzzInputs.Work));
    }

    [Fact]
    public void Modules()
    {
        string agent = Path.Combine(FuzzInputs.Work, "fake-agent");
        Directory.CreateDirectory(FuzzInputs.Work);
        File.WriteAllText(agent, "not the agent: the image only carries it\n");
        Fuzz(new ModuleKind(FuzzInputs.Module(Fx61), agent));
    }

    /// <summary>The metadata vmcore keeps what the agent reads: the same log as the real vmcore, and a dump verify accepts.</summary>
    [Fact]
    public void MetadataVmcoreReadsLikeTheFixture()
    {
        var meta = FuzzInputs.Fixture(Fx61);
        string dir = Path.Combine(FuzzInputs.Work, "meta-check");
        Directory.CreateDirectory(dir);
        string small = Path.Combine(dir, "vmcore");
        File.WriteAllBytes(small, meta.Serialize(out _));
        var whole = FuzzRunner.Exec(["dmesg", Fixtures.Vmcore(Fx61), Path.Combine(dir, "whole.txt")], dir);
        var part = FuzzRunner.Exec(["dmesg", small, Path.Combine(dir, "small.txt")], dir);
        Assert.Equal((0, 0), (whole.ExitCode, part.ExitCode));
        Assert.Equal(File.ReadAllText(Path.Combine(dir, "whole.txt")), File.ReadAllText(Path.Combine(dir, "small.txt")));
        var dump = FuzzRunner.Exec(["dump", "-d", "31", small, Path.Combine(dir, "dump")], dir);
        Assert.True(dump.ExitCode == 0, dump.Stderr);
        Assert.Equal(0, FuzzRunner.Exec(["verify", Path.Combine(dir, "dump")], dir).ExitCode);
        Log.WriteLine($"{Fx61}: {meta.PageCount} pages kept ({new FileInfo(small).Length} bytes): " +
                      string.Join(", ", meta.Labels.GroupBy(l => l.Value).Select(g => $"{g.Key} {g.Count()}")));
    }
}

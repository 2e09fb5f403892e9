using CaptureAgent.Tests.Integration;
using Xunit;

namespace CaptureAgent.Tests.Architecture;

/// <summary>
/// The tests mirror src/: a test of the engine's Vmcore folder lives in Engine/Vmcore, one of the host's
/// Report folder in Host/Report, so the tests of a piece of code are found where its path says. Only the
/// cross-layer collections (Integration, Installed, Fuzz, Synthetic helpers, Architecture) stand apart.
/// </summary>
public class TestLayoutTests
{
    /// <summary>Test folder per layer, and the src project it mirrors.</summary>
    private static readonly (string Tests, string Project)[] Layers =
    [
        ("Engine", "CaptureAgent.Engine"),
        ("CaptureKernel", "CaptureAgent.CaptureKernel"),
        ("Host", "CaptureAgent.Host"),
    ];

    /// <summary>Top-level test folders that are not a layer: whole-binary and VM suites, shared helpers.</summary>
    private static readonly string[] CrossLayer = ["Architecture", "Cli", "Fuzz", "Installed", "Integration", "Synthetic", "oracles", "bin", "obj"];

    private static string TestsRoot => Path.Combine(Fixtures.RepoRoot, "tests", "CaptureAgent.Tests");

    private static string Src => Path.Combine(Fixtures.RepoRoot, "src");

    [Fact]
    public void EveryTopLevelTestFolderIsALayerOrNamedCrossLayer()
    {
        var known = Layers.Select(l => l.Tests).Concat(CrossLayer).ToHashSet();
        var stray = Directory.GetDirectories(TestsRoot).Select(Path.GetFileName).Where(d => !known.Contains(d!)).ToList();
        Assert.True(stray.Count == 0, "test folders that mirror no layer: " + string.Join(", ", stray));
    }

    [Fact]
    public void EveryLayerTestFolderHasItsSourceFolder()
    {
        var missing = new List<string>();
        int folders = 0;
        foreach (var (tests, project) in Layers)
            foreach (var dir in Directory.GetDirectories(Path.Combine(TestsRoot, tests), "*", SearchOption.AllDirectories))
            {
                var relative = Path.GetRelativePath(Path.Combine(TestsRoot, tests), dir);
                folders++;
                if (!Directory.Exists(Path.Combine(Src, project, relative)))
                    missing.Add($"{tests}/{relative} (no src/{project}/{relative})");
            }
        // A wrong root would find no folders and pass.
        Assert.True(folders >= 10, $"only {folders} layer test folders under {TestsRoot}");
        Assert.True(missing.Count == 0, "test folders without a source folder:\n" + string.Join("\n", missing));
    }

    [Fact]
    public void TestNamespacesFollowTheirFolders()
    {
        var wrong = new List<string>();
        foreach (var file in Directory.EnumerateFiles(TestsRoot, "*.cs", SearchOption.AllDirectories))
        {
            var relative = Path.GetRelativePath(TestsRoot, Path.GetDirectoryName(file)!);
            if (relative.StartsWith("bin") || relative.StartsWith("obj")) continue;
            var expected = relative == "." ? "CaptureAgent.Tests" : "CaptureAgent.Tests." + relative.Replace('/', '.');
            var declared = File.ReadLines(file).FirstOrDefault(l => l.StartsWith("namespace "));
            if (declared != null && declared != $"namespace {expected};")
                wrong.Add($"{Path.GetRelativePath(TestsRoot, file)}: {declared} (expected {expected})");
        }
        Assert.True(wrong.Count == 0, "namespaces that do not follow their folder:\n" + string.Join("\n", wrong));
    }
}

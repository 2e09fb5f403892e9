using System.Text.RegularExpressions;
using System.Xml.Linq;
using CaptureAgent.Tests.Integration;
using Xunit;

namespace CaptureAgent.Tests.Architecture;

/// <summary>
/// The layers of src/ stay layers: no namespace depends on itself through others, and the projects
/// reference each other one way only, Common below Engine below CaptureKernel below Host below the
/// command line. The namespace graph is read from the sources as /work/shared/tools/nsgraph.py does:
/// namespaces cut at depth 2 (CaptureAgent.Targets.Raw counts as CaptureAgent.Targets), edges from
/// using directives and from fully qualified references to declared namespaces. And libc is called
/// from one place only, Native in the bottom layer.
/// </summary>
public class LayeringTests
{
    /// <summary>The projects under src/, bottom first; a project may reference only those before it.</summary>
    private static readonly string[] LayerOrder =
        ["CaptureAgent.Common", "CaptureAgent.Engine", "CaptureAgent.CaptureKernel", "CaptureAgent.Host", "CaptureAgent"];

    private static string Src => Path.Combine(Fixtures.RepoRoot, "src");

    [Fact]
    public void NoNamespaceCycleInSrc()
    {
        var graph = NamespaceGraph.Read(SourceFiles(Src));
        // A wrong path would find nothing and pass: the agent has over twenty namespaces.
        Assert.True(graph.Nodes.Count >= 20, $"only {graph.Nodes.Count} namespaces found under {Src}");
        var cycles = graph.Cycles();
        Assert.True(cycles.Count == 0, "namespace cycles in src/:\n" + string.Join("\n", cycles.Select(graph.Explain)));
    }

    [Fact]
    public void CycleFinderFindsACycleAndItsFiles()
    {
        var graph = NamespaceGraph.Read(
        [
            ("a/One.cs", "using CaptureAgent.Two;\nnamespace CaptureAgent.One;\nclass A {}"),
            ("b/Two.cs", "namespace CaptureAgent.Two.Deep;\nclass B { int x = CaptureAgent.Three.C.Y; }"),
            ("c/Three.cs", "using static CaptureAgent.One.A;\nnamespace CaptureAgent.Three;\nclass C {}"),
            ("d/Four.cs", "using CaptureAgent.One;\nnamespace CaptureAgent.Four;\nclass D {}"),
        ]);
        var cycle = Assert.Single(graph.Cycles());
        Assert.Equal(["CaptureAgent.One", "CaptureAgent.Three", "CaptureAgent.Two"], cycle.Order());
        Assert.Contains("b/Two.cs", graph.Explain(cycle));
    }

    [Fact]
    public void ProjectReferencesPointDown()
    {
        var projects = Directory.EnumerateFiles(Src, "*.csproj", SearchOption.AllDirectories)
            .Where(p => !IsBuildOutput(p)).ToList();
        var names = projects.Select(Path.GetFileNameWithoutExtension).Order().ToList();
        Assert.Equal(LayerOrder.Order(), names);   // a new project must be given its place in LayerOrder
        var wrong = new List<string>();
        int references = 0;
        foreach (var project in projects)
        {
            string name = Path.GetFileNameWithoutExtension(project);
            foreach (var include in XDocument.Load(project).Descendants("ProjectReference").Select(e => (string?)e.Attribute("Include")))
            {
                string target = Path.GetFileNameWithoutExtension(include ?? "");
                references++;
                if (Array.IndexOf(LayerOrder, target) is var t && (t < 0 || t >= Array.IndexOf(LayerOrder, name)))
                    wrong.Add($"{name} -> {target}");
            }
        }
        Assert.True(references >= LayerOrder.Length - 1, $"only {references} project references under src/");
        Assert.True(wrong.Count == 0, "project references that do not point to a lower layer: " + string.Join(", ", wrong));
    }

    [Fact]
    public void EachNamespaceLivesInOneProject()
    {
        var homes = new Dictionary<string, HashSet<string>>();
        foreach (var (path, text) in SourceFiles(Src))
        {
            if (NamespaceGraph.Declared(text) is not { } ns) continue;
            string project = Path.GetRelativePath(Src, path).Split(Path.DirectorySeparatorChar)[0];
            homes.TryAdd(NamespaceGraph.Node(ns), []);
            homes[NamespaceGraph.Node(ns)].Add(project);
        }
        var split = homes.Where(h => h.Value.Count > 1).Select(h => $"{h.Key} in {string.Join(" and ", h.Value.Order())}").ToList();
        Assert.True(homes.Count >= 20, $"only {homes.Count} namespaces found under {Src}");
        Assert.True(split.Count == 0, "namespaces split across layers: " + string.Join("; ", split));
    }

    [Fact]
    public void PInvokeOnlyInNative()
    {
        string native = Path.Combine(Src, "CaptureAgent.Common", "Native") + Path.DirectorySeparatorChar;
        var imports = SourceFiles(Src).Where(f => Regex.IsMatch(f.Text, @"\[(LibraryImport|DllImport)\(")).Select(f => f.Path).ToList();
        Assert.NotEmpty(imports);
        var outside = imports.Where(p => !p.StartsWith(native, StringComparison.Ordinal)).ToList();
        Assert.True(outside.Count == 0, "P/Invoke outside src/CaptureAgent.Common/Native: " + string.Join(", ", outside));
    }

    private static bool IsBuildOutput(string path) =>
        path.Split(Path.DirectorySeparatorChar).Any(part => part is "bin" or "obj");

    private static IEnumerable<(string Path, string Text)> SourceFiles(string root)
    {
        Assert.True(Directory.Exists(root), $"{root} does not exist");
        return Directory.EnumerateFiles(root, "*.cs", SearchOption.AllDirectories)
            .Where(p => !IsBuildOutput(p))
            .Select(p => (p, File.ReadAllText(p)));
    }
}

/// <summary>Namespaces cut at depth 2 and the edges between them; strongly connected sets by Tarjan.</summary>
internal sealed partial class NamespaceGraph
{
    public sealed record Cycle(IReadOnlySet<string> Members)
    {
        public List<string> Order() => Members.Order(StringComparer.Ordinal).ToList();
    }

    public HashSet<string> Nodes { get; } = [];
    private readonly Dictionary<string, HashSet<string>> _edges = [];
    /// <summary>For messages: which files make an edge.</summary>
    private readonly Dictionary<(string From, string To), SortedSet<string>> _why = [];

    public static string Node(string ns) => string.Join('.', ns.Split('.').Take(2));

    public static string? Declared(string text) => DeclarationPattern().Match(text) is { Success: true } m ? m.Groups[1].Value : null;

    public static NamespaceGraph Read(IEnumerable<(string Path, string Text)> files)
    {
        var g = new NamespaceGraph();
        var declared = files.Select(f => (f.Path, f.Text, Ns: Declared(f.Text))).Where(f => f.Ns is not null).ToList();
        foreach (var f in declared) g.Nodes.Add(Node(f.Ns!));
        var roots = g.Nodes.Select(n => n.Split('.')[0]).Distinct().Select(Regex.Escape).ToList();
        var qualified = new Regex(@"\b((?:" + string.Join('|', roots) + @")\.\w+)\.");
        foreach (var (path, text, ns) in declared)
        {
            string me = Node(ns!);
            var refs = UsingPattern().Matches(text).Select(m => m.Groups[1].Value)
                .Concat(qualified.Matches(text).Select(m => m.Groups[1].Value));
            foreach (var r in refs.Select(Node).Where(t => t != me && g.Nodes.Contains(t)))
            {
                if (!g._edges.TryGetValue(me, out var to)) g._edges[me] = to = [];
                to.Add(r);
                if (!g._why.TryGetValue((me, r), out var why)) g._why[(me, r)] = why = new SortedSet<string>(StringComparer.Ordinal);
                why.Add(path);
            }
        }
        return g;
    }

    /// <summary>Every strongly connected set of more than one namespace.</summary>
    public List<Cycle> Cycles()
    {
        var index = new Dictionary<string, int>();
        var low = new Dictionary<string, int>();
        var stack = new Stack<string>();
        var onStack = new HashSet<string>();
        var found = new List<Cycle>();
        int next = 0;
        void Visit(string v)
        {
            index[v] = low[v] = next++;
            stack.Push(v);
            onStack.Add(v);
            foreach (var w in _edges.GetValueOrDefault(v) ?? [])
            {
                if (!index.ContainsKey(w)) { Visit(w); low[v] = Math.Min(low[v], low[w]); }
                else if (onStack.Contains(w)) low[v] = Math.Min(low[v], index[w]);
            }
            if (low[v] != index[v]) return;
            var set = new HashSet<string>();
            string x;
            do { x = stack.Pop(); onStack.Remove(x); set.Add(x); } while (x != v);
            if (set.Count > 1) found.Add(new Cycle(set));
        }
        foreach (var v in Nodes.Order(StringComparer.Ordinal))
            if (!index.ContainsKey(v)) Visit(v);
        return found;
    }

    /// <summary>"A B C: A -> B (files), ...": the edges inside a cycle and the files that make them.</summary>
    public string Explain(Cycle c) =>
        string.Join(" ", c.Order()) + ": " + string.Join("; ",
            _why.Where(e => c.Members.Contains(e.Key.From) && c.Members.Contains(e.Key.To))
                .OrderBy(e => e.Key.From, StringComparer.Ordinal).ThenBy(e => e.Key.To, StringComparer.Ordinal)
                .Select(e => $"{e.Key.From} -> {e.Key.To} ({string.Join(", ", e.Value)})"));

    [GeneratedRegex(@"^\s*namespace\s+([\w.]+)", RegexOptions.Multiline)]
    private static partial Regex DeclarationPattern();

    [GeneratedRegex(@"^\s*using\s+(?:static\s+)?([\w.]+)\s*;", RegexOptions.Multiline)]
    private static partial Regex UsingPattern();
}

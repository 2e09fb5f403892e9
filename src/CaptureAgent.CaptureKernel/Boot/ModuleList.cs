using CaptureAgent.Compression;

namespace CaptureAgent.Boot;

/// <summary>
/// lib/modules/RELEASE/capture-agent.modules, written by the image builder and read by the agent
/// as PID 1: the module paths (relative to that directory) in load order, one a line, and a
/// comment line saying which compressed formats the capture kernel decompresses itself, as its
/// build config told the builder ("# kernel decompresses: xz", or "none"). Without that line
/// (no config at build time) the agent finds out at run time.
/// </summary>
public sealed record ModuleList(IReadOnlyList<string> Paths, IReadOnlySet<ModuleCodec>? KernelDecompresses)
{
    public const string FileName = "capture-agent.modules";
    private const string DecompressPrefix = "# kernel decompresses:";
    private const int MaxEntries = 4096;

    public string Format()
    {
        var sb = new System.Text.StringBuilder();
        if (KernelDecompresses is not null)
        {
            var names = KernelDecompresses.Where(c => c != ModuleCodec.None).Order().Select(c => c.ToString().ToLowerInvariant()).ToList();
            sb.Append(DecompressPrefix).Append(' ').Append(names.Count == 0 ? "none" : string.Join(' ', names)).Append('\n');
        }
        foreach (var p in Paths) sb.Append(p).Append('\n');
        return sb.ToString();
    }

    /// <summary>Reads a list; lines that cannot be module paths inside the directory are dropped.</summary>
    public static ModuleList Parse(string text)
    {
        var paths = new List<string>();
        HashSet<ModuleCodec>? kernel = null;
        foreach (var raw in text.Split('\n'))
        {
            string line = raw.Trim();
            if (line.StartsWith(DecompressPrefix, StringComparison.Ordinal))
            {
                kernel = new HashSet<ModuleCodec>();
                foreach (var word in line[DecompressPrefix.Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries))
                    if (Enum.TryParse<ModuleCodec>(word, ignoreCase: true, out var c) && c != ModuleCodec.None) kernel.Add(c);
                continue;
            }
            if (line.Length == 0 || line.StartsWith('#')) continue;
            if (line.StartsWith('/') || line.Split('/').Any(p => p is "" or "." or "..") || !ModuleCompression.IsModuleFile(line)) continue;
            if (paths.Count < MaxEntries) paths.Add(line);
        }
        return new ModuleList(paths, kernel);
    }
}

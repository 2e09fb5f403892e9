using System.IO.Compression;
using System.Text;

namespace CaptureAgent.Initramfs;

/// <summary>One module to load: its path under lib/modules/RELEASE, in load order.</summary>
public sealed record ModuleFile(string Name, string RelativePath)
{
    public bool Compressed => RelativePath.EndsWith(".xz", StringComparison.Ordinal) || RelativePath.EndsWith(".zst", StringComparison.Ordinal) || RelativePath.EndsWith(".gz", StringComparison.Ordinal);
}

/// <summary>
/// Resolves modules with their dependencies in one kernel's module tree: from modules.dep when
/// depmod made one, otherwise from the depends= line of each module's .modinfo (plain, gzip or
/// zstd modules; xz ones need modules.dep). Built-in modules need no file and are skipped.
/// </summary>
public sealed class KernelModules
{
    private readonly string _dir;
    private readonly Dictionary<string, string> _paths = new();           // name -> relative path
    private readonly Dictionary<string, string[]>? _deps;                  // from modules.dep
    private readonly HashSet<string> _builtin = new();

    public string Release { get; }
    public bool HasModulesDep => _deps is not null;

    public KernelModules(string modulesRoot, string release)
    {
        Release = release;
        _dir = Path.Combine(modulesRoot, "lib", "modules", release);
        if (!Directory.Exists(_dir)) throw new IOException($"no module tree at {_dir}");
        string dep = Path.Combine(_dir, "modules.dep");
        if (File.Exists(dep))
        {
            _deps = new();
            foreach (var line in File.ReadLines(dep))
            {
                int colon = line.IndexOf(':');
                if (colon <= 0) continue;
                string rel = line[..colon];
                string name = NameOf(rel);
                _paths[name] = rel;
                _deps[name] = line[(colon + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(NameOf).ToArray();
            }
        }
        else
        {
            foreach (var file in Directory.EnumerateFiles(_dir, "*.ko*", SearchOption.AllDirectories))
                _paths.TryAdd(NameOf(file), Path.GetRelativePath(_dir, file));
        }
        string builtin = Path.Combine(_dir, "modules.builtin");
        if (File.Exists(builtin))
            foreach (var line in File.ReadLines(builtin))
                if (line.Length > 0) _builtin.Add(NameOf(line));
    }

    /// <summary>modprobe treats '-' and '_' alike.</summary>
    public static string Normalize(string name) => name.Replace('-', '_');

    private static string NameOf(string path)
    {
        string f = Path.GetFileName(path);
        int ko = f.IndexOf(".ko", StringComparison.Ordinal);
        return Normalize(ko >= 0 ? f[..ko] : f);
    }

    public bool IsBuiltin(string name) => _builtin.Contains(Normalize(name));
    public bool Exists(string name) => _paths.ContainsKey(Normalize(name));

    /// <summary>
    /// The load list for the wanted modules: dependencies first, each once. Built-in ones are
    /// reported in <paramref name="notes"/>; a blacklisted module is left out with what needs it.
    /// </summary>
    public List<ModuleFile> Resolve(IEnumerable<string> wanted, IEnumerable<string> blacklist, List<string> notes)
    {
        var banned = blacklist.Select(Normalize).ToHashSet();
        var order = new List<ModuleFile>();
        var done = new HashSet<string>();
        var visiting = new HashSet<string>();

        bool Visit(string name, string? neededBy)
        {
            name = Normalize(name);
            if (done.Contains(name)) return true;
            if (banned.Contains(name))
            {
                notes.Add(neededBy is null ? $"{name} is blacklisted: left out" : $"{name} is blacklisted: left out, and {neededBy} with it");
                return false;
            }
            if (IsBuiltin(name)) { done.Add(name); notes.Add($"{name} is built into the kernel"); return true; }
            if (!_paths.TryGetValue(name, out var rel)) throw new IOException($"module {name} not found under {_dir}{(neededBy is null ? "" : $" (needed by {neededBy})")}");
            if (!visiting.Add(name)) return true;   // a dependency cycle: load order as met
            foreach (var dep in Dependencies(name, rel))
                if (!Visit(dep, name)) { visiting.Remove(name); return false; }
            visiting.Remove(name);
            done.Add(name);
            order.Add(new ModuleFile(name, rel));
            return true;
        }

        foreach (var w in wanted) Visit(w, null);
        return order;
    }

    private IEnumerable<string> Dependencies(string name, string rel)
    {
        if (_deps is not null) return _deps.TryGetValue(name, out var d) ? d : [];
        string depends = ModinfoDepends(Path.Combine(_dir, rel));
        return depends.Split(',', StringSplitOptions.RemoveEmptyEntries);
    }

    /// <summary>The value of depends= in a module's .modinfo strings (NUL-separated key=value pairs).</summary>
    public static string ModinfoDepends(string path)
    {
        byte[] data = ReadModule(path);
        ReadOnlySpan<byte> key = "\0depends="u8;
        int at = data.AsSpan().IndexOf(key);
        if (at < 0) return "";
        var rest = data.AsSpan(at + key.Length);
        int end = rest.IndexOf((byte)0);
        return Encoding.ASCII.GetString(end < 0 ? rest : rest[..end]);
    }

    private static byte[] ReadModule(string path)
    {
        if (path.EndsWith(".ko", StringComparison.Ordinal)) return File.ReadAllBytes(path);
        using var file = File.OpenRead(path);
        using Stream plain = path.EndsWith(".gz", StringComparison.Ordinal) ? new GZipStream(file, CompressionMode.Decompress)
            : path.EndsWith(".zst", StringComparison.Ordinal) ? new ZstdSharp.DecompressionStream(file)
            : throw new IOException($"{path}: reading dependencies of xz-compressed modules needs modules.dep (run depmod)");
        using var ms = new MemoryStream();
        plain.CopyTo(ms);
        return ms.ToArray();
    }
}

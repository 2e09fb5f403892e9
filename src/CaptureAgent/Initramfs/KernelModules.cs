namespace CaptureAgent.Initramfs;

/// <summary>One module to load: its path under lib/modules/RELEASE, in load order.</summary>
public sealed record ModuleFile(string Name, string RelativePath)
{
    public bool Compressed => RelativePath.EndsWith(".xz", StringComparison.Ordinal) || RelativePath.EndsWith(".zst", StringComparison.Ordinal) || RelativePath.EndsWith(".gz", StringComparison.Ordinal);
}

/// <summary>
/// Resolves modules with their dependencies in one kernel's module tree: from modules.dep when
/// depmod made one, otherwise from the depends= of each module's ELF .modinfo section (.ko, .ko.gz,
/// .ko.zst or .ko.xz; read as the kernel build wrote them, which is what depmod reads too).
/// Built-in modules need no file and are skipped. The load order depends only on which module
/// needs which, not on where that was read, so both sources give the same list.
/// </summary>
public sealed class KernelModules
{
    private readonly string _dir;
    private readonly Dictionary<string, string> _paths = new();           // name -> relative path
    private readonly Dictionary<string, string[]>? _deps;                  // from modules.dep: every module needed, transitively
    private readonly Dictionary<string, ModuleInfo> _modinfo = new();      // read on demand when there is no modules.dep
    private readonly Dictionary<string, (List<string> Pre, List<string> Post)> _softdeps = new();   // from modules.softdep
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
            string softdep = Path.Combine(_dir, "modules.softdep");
            if (File.Exists(softdep))
                foreach (var line in File.ReadLines(softdep))
                {
                    // "softdep btrfs pre: blake2b-256 sha256 post: ..."
                    var words = line.Split(' ', 3, StringSplitOptions.RemoveEmptyEntries);
                    if (words.Length != 3 || words[0] != "softdep") continue;
                    string name = Normalize(words[1]);
                    if (!_softdeps.TryGetValue(name, out var soft)) _softdeps[name] = soft = ([], []);
                    ModuleInfo.ParseSoftdep(words[2], soft.Pre, soft.Post);
                }
        }
        else
        {
            foreach (var file in Directory.EnumerateFiles(_dir, "*.ko*", SearchOption.AllDirectories))
                if (IsModuleFile(file)) _paths.TryAdd(NameOf(file), Path.GetRelativePath(_dir, file));
        }
        string builtin = Path.Combine(_dir, "modules.builtin");
        if (File.Exists(builtin))
            foreach (var line in File.ReadLines(builtin))
                if (line.Length > 0) _builtin.Add(NameOf(line));
    }

    /// <summary>modprobe treats '-' and '_' alike.</summary>
    public static string Normalize(string name) => name.Replace('-', '_');

    private static bool IsModuleFile(string path) =>
        path.EndsWith(".ko", StringComparison.Ordinal) || path.EndsWith(".ko.xz", StringComparison.Ordinal) ||
        path.EndsWith(".ko.gz", StringComparison.Ordinal) || path.EndsWith(".ko.zst", StringComparison.Ordinal);

    private static string NameOf(string path)
    {
        string f = Path.GetFileName(path);
        int ko = f.IndexOf(".ko", StringComparison.Ordinal);
        return Normalize(ko >= 0 ? f[..ko] : f);
    }

    public bool IsBuiltin(string name) => _builtin.Contains(Normalize(name));
    public bool Exists(string name) => _paths.ContainsKey(Normalize(name));

    /// <summary>
    /// The load list for the wanted modules: each once, every module after all it needs; among
    /// modules free to go next, those of the earlier request first, then by name. Built-in ones are
    /// reported in <paramref name="notes"/>.
    /// A blacklisted module is left out, with every wanted module that needs it and whatever only
    /// those needed. Soft dependencies are named in the notes, not added.
    /// </summary>
    public List<ModuleFile> Resolve(IEnumerable<string> wanted, IEnumerable<string> blacklist, List<string> notes)
    {
        var banned = blacklist.Select(Normalize).ToHashSet();
        var needs = new Dictionary<string, HashSet<string>>();   // kept module -> the modules it needs (all of them)
        var group = new Dictionary<string, int>();                // module -> the first request that brought it in
        int request = -1;
        foreach (var raw in wanted)
        {
            request++;
            string name = Normalize(raw);
            if (needs.ContainsKey(name)) continue;
            if (banned.Contains(name))
            {
                AddNote(notes, $"{name} is blacklisted: left out");
                continue;
            }
            if (IsBuiltin(name))
            {
                AddNote(notes, $"{name} is built into the kernel");
                continue;
            }
            var closure = Needs(name, null);
            var blocked = closure.Where(banned.Contains).Order(StringComparer.Ordinal).ToList();
            if (blocked.Count > 0)
            {
                AddNote(notes, $"{string.Join(", ", blocked)} {(blocked.Count == 1 ? "is" : "are")} blacklisted: left out, and {name} with it");
                continue;
            }
            closure.RemoveWhere(d =>
            {
                if (!IsBuiltin(d)) return false;
                AddNote(notes, $"{d} is built into the kernel");
                return true;
            });
            needs[name] = closure;
            group[name] = request;
            foreach (var d in closure)
                if (needs.TryAdd(d, Needs(d, name).Where(x => !IsBuiltin(x)).ToHashSet())) group[d] = request;
        }
        foreach (var name in needs.Keys.Order(StringComparer.Ordinal))
            if (Softdeps(name) is { Length: > 0 } soft)
                AddNote(notes, $"{name} has optional soft dependencies ({soft}), not added: name them with --module if the target needs them");
        return Order(needs, group);
    }

    private static void AddNote(List<string> notes, string note)
    {
        if (!notes.Contains(note)) notes.Add(note);
    }

    /// <summary>
    /// Kahn's algorithm, taking the ready module of the earliest request, then the alphabetically
    /// first: one order per dependency relation, however the relation was read.
    /// </summary>
    private List<ModuleFile> Order(Dictionary<string, HashSet<string>> needs, Dictionary<string, int> group)
    {
        var waitingOn = needs.ToDictionary(p => p.Key, p => p.Value.Count(needs.ContainsKey));
        var users = needs.Keys.ToDictionary(k => k, _ => new List<string>());
        foreach (var (user, deps) in needs)
            foreach (var d in deps)
                if (users.TryGetValue(d, out var list)) list.Add(user);
        var ready = new SortedSet<(int Group, string Name)>(Comparer<(int Group, string Name)>.Create((a, b) =>
            a.Group != b.Group ? a.Group.CompareTo(b.Group) : string.CompareOrdinal(a.Name, b.Name)));
        foreach (var (name, count) in waitingOn)
            if (count == 0) ready.Add((group[name], name));
        var order = new List<ModuleFile>();
        while (ready.Count > 0)
        {
            var next = ready.Min;
            ready.Remove(next);
            order.Add(new ModuleFile(next.Name, _paths[next.Name]));
            foreach (var u in users[next.Name])
                if (--waitingOn[u] == 0) ready.Add((group[u], u));
        }
        if (order.Count != needs.Count)
        {
            // A dependency cycle (the kernel cannot load those either): keep them, in name order, at the end.
            foreach (var name in needs.Keys.Except(order.Select(m => m.Name)).Order(StringComparer.Ordinal))
                order.Add(new ModuleFile(name, _paths[name]));
        }
        return order;
    }

    /// <summary>Every module <paramref name="name"/> needs, transitively (without itself).</summary>
    private HashSet<string> Needs(string name, string? neededBy)
    {
        var all = new HashSet<string>();
        var stack = new Stack<(string Name, string? By)>();
        stack.Push((name, neededBy));
        while (stack.Count > 0)
        {
            var (n, by) = stack.Pop();
            if (IsBuiltin(n)) continue;
            if (!_paths.TryGetValue(n, out var rel))
                throw new IOException($"module {n} not found under {_dir}{(by is null ? "" : $" (needed by {by})")}");
            foreach (var d in Direct(n, rel))
                if (d != name && all.Add(d)) stack.Push((d, n));
        }
        return all;
    }

    /// <summary>What one module names as needed: its modules.dep line, or its .modinfo depends=.</summary>
    private IEnumerable<string> Direct(string name, string rel)
    {
        if (_deps is not null) return _deps.TryGetValue(name, out var d) ? d : [];
        return Info(name, rel).Depends;
    }

    private ModuleInfo Info(string name, string rel)
    {
        if (!_modinfo.TryGetValue(name, out var info)) _modinfo[name] = info = ModuleInfo.Read(Path.Combine(_dir, rel));
        return info;
    }

    /// <summary>"pre: a b post: c", names sorted: depmod and .modinfo list them in different orders.</summary>
    private string Softdeps(string name)
    {
        IReadOnlyList<string> pre, post;
        if (_deps is not null)
        {
            if (!_softdeps.TryGetValue(name, out var s)) return "";
            (pre, post) = (s.Pre, s.Post);
        }
        else
        {
            var info = Info(name, _paths[name]);
            (pre, post) = (info.SoftdepPre, info.SoftdepPost);
        }
        var parts = new List<string>();
        if (pre.Count > 0) parts.Add("pre: " + string.Join(' ', pre.Order(StringComparer.Ordinal)));
        if (post.Count > 0) parts.Add("post: " + string.Join(' ', post.Order(StringComparer.Ordinal)));
        return string.Join(' ', parts);
    }

    /// <summary>The value of depends= in a module's .modinfo section, comma-separated.</summary>
    public static string ModinfoDepends(string path) => string.Join(',', ModuleInfo.Read(path).Depends);
}

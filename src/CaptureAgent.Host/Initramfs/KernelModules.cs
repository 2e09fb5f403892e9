using CaptureAgent.Compression;

namespace CaptureAgent.Initramfs;

/// <summary>One module to load: its path under the release's module directory, in load order.</summary>
public sealed record ModuleFile(string Name, string RelativePath)
{
    public ModuleCodec Codec => ModuleCompression.CodecOf(RelativePath);
    public bool Compressed => Codec != ModuleCodec.None;
}

/// <summary>
/// Resolves modules the way modprobe would load them, in one kernel's module tree
/// (lib/modules/RELEASE, or usr/lib/modules/RELEASE where a merged-/usr package put it and nothing
/// links lib to usr/lib, as in a tree unpacked with dpkg -x):
/// dependencies from modules.dep when depmod made one, otherwise from the depends= of each
/// module's ELF .modinfo section (.ko, .ko.gz, .ko.zst or .ko.xz; read as the kernel build wrote
/// them, which is what depmod reads too); soft dependencies (modules.softdep, or softdep= of
/// .modinfo, or modules.builtin.modinfo for a built-in module) are loaded with them, before
/// (pre:) or after (post:); a name that is no module is looked up as an alias (modules.alias, or
/// alias= of every module's .modinfo when depmod never ran; modules.builtin.modinfo for built-in
/// ones), since the kernel asks for crypto-crc32c or fs-ext4 and no modprobe runs in the capture
/// kernel to translate. Built-in modules need no file and are skipped. The load order depends only
/// on which module needs which, not on where that was read, so both sources give the same list.
/// </summary>
public sealed class KernelModules
{
    /// <summary>A tree holds a few thousand modules; more than this is not a kernel's module directory.</summary>
    public const int MaxModules = 50_000;
    /// <summary>An alias answered by more modules than this is a device class, not something to load all of.</summary>
    public const int MaxProviders = 8;
    private const long MaxIndexBytes = 64L << 20;   // modules.dep/alias/softdep/builtin.modinfo of a generic kernel: under 2 MiB each

    private readonly Dictionary<string, string> _paths = new();           // name -> relative path
    private readonly Dictionary<string, string[]>? _deps;                  // from modules.dep: every module needed, transitively
    private readonly Dictionary<string, ModuleInfo> _modinfo = new();      // read on demand when there is no modules.dep
    private readonly Dictionary<string, (List<string> Pre, List<string> Post)>? _softdeps;   // from modules.softdep
    private readonly HashSet<string> _builtin = new();
    private readonly BuiltinModinfo _builtinInfo;
    private AliasTable? _aliases;                                           // modules.alias, or built from .modinfo on first use
    private readonly List<string> _scanNotes = new();

    public string Release { get; }
    /// <summary>The directory of this release's modules (…/lib/modules/RELEASE or …/usr/lib/modules/RELEASE).</summary>
    public string Directory { get; }
    public bool HasModulesDep => _deps is not null;
    public bool HasModulesAlias { get; }

    public KernelModules(string modulesRoot, string release)
    {
        Release = release;
        Directory = FindDirectory(modulesRoot, release)
            ?? throw new IOException($"no module tree at {string.Join(" or ", CandidateDirectories(modulesRoot, release))}");
        string dep = Path.Combine(Directory, "modules.dep");
        if (File.Exists(dep))
        {
            _deps = new();
            foreach (var line in IndexLines(dep))
            {
                int colon = line.IndexOf(':');
                if (colon <= 0) continue;
                string rel = line[..colon];
                if (!SafeRelative(rel)) continue;
                string name = NameOf(rel);
                _paths[name] = rel;
                _deps[name] = line[(colon + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(NameOf).ToArray();
            }
            // depmod writes modules.softdep and modules.alias with modules.dep: what they lack, the tree lacks.
            string softdep = Path.Combine(Directory, "modules.softdep");
            _softdeps = File.Exists(softdep) ? ReadSoftdeps(softdep) : new();
        }
        else
        {
            int count = 0;
            foreach (var file in System.IO.Directory.EnumerateFiles(Directory, "*.ko*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = FileAttributes.ReparsePoint }))
            {
                if (!ModuleCompression.IsModuleFile(file)) continue;
                if (++count > MaxModules) throw new IOException($"{Directory} holds more than {MaxModules} module files: not a kernel module tree");
                _paths.TryAdd(NameOf(file), Path.GetRelativePath(Directory, file));
            }
        }
        string alias = Path.Combine(Directory, "modules.alias");
        if (File.Exists(alias))
        {
            HasModulesAlias = true;
            _aliases = AliasTable.FromModulesAlias(IndexLines(alias));
        }
        else if (_deps is not null) _aliases = new AliasTable();
        string builtin = Path.Combine(Directory, "modules.builtin");
        if (File.Exists(builtin))
            foreach (var line in IndexLines(builtin))
                if (line.Length > 0) _builtin.Add(NameOf(line));
        _builtinInfo = BuiltinModinfo.Read(Path.Combine(Directory, "modules.builtin.modinfo"), MaxIndexBytes);
    }

    /// <summary>Where a release's modules may be under a root: lib/modules first, then merged /usr's usr/lib/modules.</summary>
    public static IEnumerable<string> CandidateDirectories(string root, string release)
    {
        yield return Path.Combine(root, "lib", "modules", release);
        yield return Path.Combine(root, "usr", "lib", "modules", release);
    }

    /// <summary>The release's module directory under <paramref name="root"/>, or null when neither place has it.</summary>
    public static string? FindDirectory(string root, string release) =>
        CandidateDirectories(root, release).FirstOrDefault(System.IO.Directory.Exists);

    /// <summary>modprobe treats '-' and '_' alike.</summary>
    public static string Normalize(string name) => name.Replace('-', '_');

    private static string NameOf(string path)
    {
        string f = Path.GetFileName(path);
        int ko = f.IndexOf(".ko", StringComparison.Ordinal);
        return Normalize(ko >= 0 ? f[..ko] : f);
    }

    /// <summary>A modules.dep path that stays inside the tree.</summary>
    private static bool SafeRelative(string rel) =>
        rel.Length > 0 && !rel.StartsWith('/') && !rel.Split('/').Any(p => p is "" or "." or "..") && ModuleCompression.IsModuleFile(rel);

    private static IEnumerable<string> IndexLines(string path)
    {
        if (new FileInfo(path).Length > MaxIndexBytes) throw new IOException($"{path} is larger than {MaxIndexBytes >> 20} MiB: not a depmod index");
        return File.ReadLines(path);
    }

    private static Dictionary<string, (List<string> Pre, List<string> Post)> ReadSoftdeps(string path)
    {
        var softdeps = new Dictionary<string, (List<string> Pre, List<string> Post)>();
        foreach (var line in IndexLines(path))
        {
            // "softdep btrfs pre: blake2b-256 sha256 post: ..."
            var words = line.Split(' ', 3, StringSplitOptions.RemoveEmptyEntries);
            if (words.Length != 3 || words[0] != "softdep") continue;
            string name = Normalize(words[1]);
            if (!softdeps.TryGetValue(name, out var soft)) softdeps[name] = soft = ([], []);
            ModuleInfo.ParseSoftdep(words[2], soft.Pre, soft.Post);
        }
        return softdeps;
    }

    public bool IsBuiltin(string name) => _builtin.Contains(Normalize(name)) || _builtinInfo.Modules.Contains(Normalize(name));
    public bool Exists(string name) => _paths.ContainsKey(Normalize(name));

    /// <summary>
    /// What modprobe NAME would load: the module of that name; else, when NAME is an alias, every
    /// module answering to it — none when a built-in module does (the kernel has it already).
    /// Null when nothing in the tree or the kernel answers to it.
    /// </summary>
    public AliasLookup? Lookup(string name)
    {
        string n = Normalize(name);
        if (IsBuiltin(n)) return new AliasLookup([], n);
        if (_paths.ContainsKey(n)) return new AliasLookup([n], null);
        if (_builtinInfo.Aliases.Match(n) is { Count: > 0 } builtinBy) return new AliasLookup([], builtinBy[0]);
        _aliases ??= AliasTable.FromModinfo(_paths.Keys.Order(StringComparer.Ordinal), m => Info(m, _paths[m]), _scanNotes);
        var providers = _aliases.Match(n).Where(_paths.ContainsKey).ToList();
        if (providers.Count == 0) return null;
        if (providers.Count > MaxProviders) throw new IOException($"{name} is an alias of {providers.Count} modules ({string.Join(' ', providers.Take(5))}...): name the module to load");
        return new AliasLookup(providers, null);
    }

    /// <summary>
    /// The load list for the wanted modules: each once, every module after all it needs; among
    /// modules free to go next, those of the earlier request first, then by name. Built-in ones are
    /// reported in <paramref name="notes"/>. A wanted name that is an alias brings the modules
    /// answering to it.
    /// A blacklisted module is left out, with every wanted module that needs it and whatever only
    /// those needed. Soft dependencies (and theirs) are added: pre: ones load before the module that
    /// names them, post: ones after; one that is blacklisted or missing is left out with a note,
    /// and the module that named it stays.
    /// </summary>
    public List<ModuleFile> Resolve(IEnumerable<string> wanted, IEnumerable<string> blacklist, List<string> notes)
    {
        var r = new Resolution(this, blacklist.Select(Normalize).ToHashSet(), notes);
        int request = -1;
        foreach (var raw in wanted) r.Want(raw, ++request, softOf: null);
        r.AddSoftDependencies();
        foreach (var n in _scanNotes) AddNote(notes, n);
        return r.Order();
    }

    private static void AddNote(List<string> notes, string note)
    {
        if (!notes.Contains(note)) notes.Add(note);
    }

    /// <summary>The state of one <see cref="Resolve"/> call.</summary>
    private sealed class Resolution(KernelModules tree, HashSet<string> banned, List<string> notes)
    {
        /// <summary>Kept module -> the modules it needs (all of them).</summary>
        private readonly Dictionary<string, HashSet<string>> _needs = new();
        /// <summary>Kept module -> modules that must load before it only because of a soft dependency.</summary>
        private readonly Dictionary<string, HashSet<string>> _after = new();
        /// <summary>Module -> the request that brought it in: ready modules of earlier requests load first.</summary>
        private readonly Dictionary<string, int> _group = new();
        /// <summary>Built-in modules asked for, whose soft dependencies still count.</summary>
        private readonly List<(string Name, int Group)> _builtinWanted = new();

        /// <summary>Keeps <paramref name="raw"/> (a module or alias) and what it needs; false when nothing could be kept.</summary>
        public bool Want(string raw, int request, string? softOf)
        {
            string name = Normalize(raw);
            if (_needs.ContainsKey(name)) return true;
            if (banned.Contains(name))
            {
                AddNote(notes, softOf is null ? $"{name} is blacklisted: left out" : $"{name} (soft dependency of {softOf}) is blacklisted: left out");
                return false;
            }
            if (tree.IsBuiltin(name))
            {
                AddNote(notes, $"{name} is built into the kernel");
                if (!_builtinWanted.Any(b => b.Name == name)) _builtinWanted.Add((name, request));
                return true;
            }
            if (!tree.Exists(name)) return WantAlias(raw, name, request, softOf);

            var closure = tree.Needs(name, null);
            var blocked = closure.Where(banned.Contains).Order(StringComparer.Ordinal).ToList();
            if (blocked.Count > 0)
            {
                AddNote(notes, $"{string.Join(", ", blocked)} {(blocked.Count == 1 ? "is" : "are")} blacklisted: left out, and {name} with it");
                return false;
            }
            closure.RemoveWhere(d =>
            {
                if (!tree.IsBuiltin(d)) return false;
                AddNote(notes, $"{d} is built into the kernel");
                return true;
            });
            _needs[name] = closure;
            _group[name] = request;
            foreach (var d in closure)
                if (_needs.TryAdd(d, tree.Needs(d, name).Where(x => !tree.IsBuiltin(x)).ToHashSet())) _group[d] = request;
            return true;
        }

        private bool WantAlias(string raw, string name, int request, string? softOf)
        {
            AliasLookup? found;
            try { found = tree.Lookup(name); }
            catch (IOException e) when (softOf is not null)
            {
                // An optional module that cannot be pinned down costs a note, not the image.
                AddNote(notes, $"{raw} (soft dependency of {softOf}): {e.Message}: left out");
                return false;
            }
            if (found is null)
            {
                if (softOf is null) throw new IOException($"module {name} not found under {tree.Directory}");
                AddNote(notes, $"{raw} (soft dependency of {softOf}) is neither a module nor an alias in {tree.Release}: left out");
                return false;
            }
            if (found.BuiltinBy is { } by)
            {
                AddNote(notes, $"{raw} is built into the kernel ({by})");
                return true;
            }
            AddNote(notes, $"{raw} is an alias of {string.Join(' ', found.Modules)}");
            bool any = false;
            foreach (var m in found.Modules) any |= Want(m, request, softOf);
            return any;
        }

        /// <summary>Soft dependencies of every kept module, and of what they bring, until nothing new comes.</summary>
        public void AddSoftDependencies()
        {
            var done = new HashSet<string>();
            while (true)
            {
                var next = _needs.Keys.Concat(_builtinWanted.Select(b => b.Name)).Where(n => !done.Contains(n)).Order(StringComparer.Ordinal).ToList();
                if (next.Count == 0) return;
                foreach (var user in next)
                {
                    done.Add(user);
                    var (pre, post) = tree.Softdeps(user);
                    if (pre.Count + post.Count == 0) continue;
                    int group = _group.TryGetValue(user, out int g) ? g : _builtinWanted.First(b => b.Name == user).Group;
                    foreach (var dep in pre) AddSoft(user, dep, group, before: true);
                    foreach (var dep in post) AddSoft(user, dep, group, before: false);
                }
            }
        }

        private void AddSoft(string user, string dep, int group, bool before)
        {
            if (!Want(dep, group, softOf: user)) return;
            if (!_needs.ContainsKey(user)) return;   // a built-in user has no place in the order
            foreach (var p in Providers(dep).Where(_needs.ContainsKey))
            {
                if (p == user) continue;
                var (first, then) = before ? (p, user) : (user, p);
                // An ordering the hard dependencies already contradict would make a cycle: they win.
                if (Precedes(then, first)) continue;
                if (!_after.TryGetValue(then, out var set)) _after[then] = set = new();
                set.Add(first);
            }
        }

        /// <summary>The modules a soft dependency name stands for (itself, or what its alias names).</summary>
        private IReadOnlyList<string> Providers(string dep)
        {
            string n = Normalize(dep);
            if (tree.Exists(n)) return [n];
            try { return tree.Lookup(n)?.Modules ?? []; }
            catch (IOException) { return []; }
        }

        /// <summary>Whether <paramref name="a"/> must load before <paramref name="b"/> by what is recorded so far.</summary>
        private bool Precedes(string a, string b)
        {
            var seen = new HashSet<string>();
            var stack = new Stack<string>();
            stack.Push(b);
            while (stack.Count > 0)
            {
                var x = stack.Pop();
                foreach (var y in Before(x))
                {
                    if (y == a) return true;
                    if (seen.Add(y)) stack.Push(y);
                }
            }
            return false;
        }

        private IEnumerable<string> Before(string x) =>
            (_needs.TryGetValue(x, out var hard) ? hard.Where(_needs.ContainsKey) : [])
                .Concat(_after.TryGetValue(x, out var soft) ? soft : []);

        /// <summary>
        /// Kahn's algorithm, taking the ready module of the earliest request, then the alphabetically
        /// first: one order per dependency relation, however the relation was read.
        /// </summary>
        public List<ModuleFile> Order()
        {
            var before = _needs.Keys.ToDictionary(k => k, k => Before(k).ToHashSet());
            var waitingOn = before.ToDictionary(p => p.Key, p => p.Value.Count);
            var users = _needs.Keys.ToDictionary(k => k, _ => new List<string>());
            foreach (var (user, deps) in before)
                foreach (var d in deps) users[d].Add(user);
            var ready = new SortedSet<(int Group, string Name)>(Comparer<(int Group, string Name)>.Create((a, b) =>
                a.Group != b.Group ? a.Group.CompareTo(b.Group) : string.CompareOrdinal(a.Name, b.Name)));
            foreach (var (name, count) in waitingOn)
                if (count == 0) ready.Add((_group[name], name));
            var order = new List<ModuleFile>();
            while (ready.Count > 0)
            {
                var next = ready.Min;
                ready.Remove(next);
                order.Add(new ModuleFile(next.Name, tree._paths[next.Name]));
                foreach (var u in users[next.Name])
                    if (--waitingOn[u] == 0) ready.Add((_group[u], u));
            }
            if (order.Count != _needs.Count)
            {
                // A dependency cycle (the kernel cannot load those either): keep them, in name order, at the end.
                foreach (var name in _needs.Keys.Except(order.Select(m => m.Name)).Order(StringComparer.Ordinal))
                    order.Add(new ModuleFile(name, tree._paths[name]));
            }
            return order;
        }
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
                throw new IOException($"module {n} not found under {Directory}{(by is null ? "" : $" (needed by {by})")}");
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
        if (!_modinfo.TryGetValue(name, out var info)) _modinfo[name] = info = ModuleInfo.Read(Path.Combine(Directory, rel));
        return info;
    }

    /// <summary>A module's soft dependencies: modules.softdep with depmod's output, else its .modinfo (modules.builtin.modinfo when built in).</summary>
    private (IReadOnlyList<string> Pre, IReadOnlyList<string> Post) Softdeps(string name)
    {
        if (IsBuiltin(name))
            return _builtinInfo.Softdeps.TryGetValue(name, out var b) ? (b.Pre, b.Post) : ([], []);
        if (_softdeps is not null)
            return _softdeps.TryGetValue(name, out var s) ? (s.Pre, s.Post) : ([], []);
        var info = Info(name, _paths[name]);
        return (info.SoftdepPre, info.SoftdepPost);
    }

    /// <summary>The value of depends= in a module's .modinfo section, comma-separated.</summary>
    public static string ModinfoDepends(string path) => string.Join(',', ModuleInfo.Read(path).Depends);
}

/// <summary>What a name stands for: the modules to load, or the built-in module that already answers to it.</summary>
public sealed record AliasLookup(IReadOnlyList<string> Modules, string? BuiltinBy);

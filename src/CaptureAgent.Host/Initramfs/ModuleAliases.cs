using System.Text;

namespace CaptureAgent.Initramfs;

/// <summary>
/// Alias -> module, as modprobe matches them: the alias names of modules.alias (or of alias=
/// entries in .modinfo) are shell patterns (pci:v00001AF4d*sv*, crypto-crc32c), matched against
/// the requested name with '-' and '_' alike outside brackets.
/// </summary>
internal sealed class AliasTable
{
    private readonly Dictionary<string, List<string>> _exact = new(StringComparer.Ordinal);
    private readonly List<(string Pattern, string Module)> _patterns = new();

    public int Count { get; private set; }

    public void Add(string alias, string module)
    {
        string a = NormalizeAlias(alias);
        string m = KernelModules.Normalize(module);
        Count++;
        if (a.IndexOfAny(['*', '?', '[']) >= 0) _patterns.Add((a, m));
        else
        {
            if (!_exact.TryGetValue(a, out var list)) _exact[a] = list = new();
            if (!list.Contains(m)) list.Add(m);
        }
    }

    /// <summary>The modules answering to <paramref name="name"/>, by name.</summary>
    public List<string> Match(string name)
    {
        string n = NormalizeAlias(name);
        var found = new SortedSet<string>(StringComparer.Ordinal);
        if (_exact.TryGetValue(n, out var list)) found.UnionWith(list);
        foreach (var (pattern, module) in _patterns)
            if (Glob(pattern, n)) found.Add(module);
        return found.ToList();
    }

    /// <summary>modules.alias: "alias PATTERN MODULE" per line (depmod writes patterns without spaces).</summary>
    public static AliasTable FromModulesAlias(IEnumerable<string> lines)
    {
        var t = new AliasTable();
        foreach (var line in lines)
        {
            var w = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (w.Length == 3 && w[0] == "alias") t.Add(w[1], w[2]);
        }
        return t;
    }

    /// <summary>
    /// The aliases of every module, read from each one's .modinfo (what depmod would have written
    /// into modules.alias). Bounded by the tree's module count (<see cref="KernelModules.MaxModules"/>)
    /// and each module's read (ModuleInfo caps sizes); a module that cannot be read is counted and skipped.
    /// </summary>
    public static AliasTable FromModinfo(IEnumerable<string> modules, Func<string, ModuleInfo> info, List<string> notes)
    {
        var t = new AliasTable();
        var unreadable = new List<string>();
        foreach (var m in modules)
        {
            try
            {
                foreach (var a in info(m).Aliases) t.Add(a, m);
            }
            catch (IOException e)
            {
                if (unreadable.Count == 0) notes.Add($"aliases: {e.Message}");
                unreadable.Add(m);
            }
        }
        notes.Add(unreadable.Count == 0
            ? "no modules.alias (depmod has not run on this tree): aliases read from every module's .modinfo"
            : $"no modules.alias: aliases read from every module's .modinfo; {unreadable.Count} unreadable ({string.Join(' ', unreadable.Take(5))}{(unreadable.Count > 5 ? " ..." : "")})");
        return t;
    }

    /// <summary>'-' as '_', except inside a bracket expression (modprobe's alias_normalize).</summary>
    public static string NormalizeAlias(string alias)
    {
        var sb = new StringBuilder(alias.Length);
        bool inBracket = false;
        foreach (char c in alias)
        {
            if (c == '[') inBracket = true;
            else if (c == ']') inBracket = false;
            sb.Append(c == '-' && !inBracket ? '_' : c);
        }
        return sb.ToString();
    }

    /// <summary>fnmatch(3) without flags: '*', '?', and bracket expressions with ranges and '!' or '^'.</summary>
    public static bool Glob(string pattern, string text)
    {
        int p = 0, t = 0, starP = -1, starT = 0;
        while (t < text.Length)
        {
            if (p < pattern.Length && pattern[p] == '*')
            {
                starP = ++p;
                starT = t;
                continue;
            }
            if (p < pattern.Length && MatchOne(pattern, ref p, text[t]))
            {
                t++;
                continue;
            }
            if (starP < 0) return false;
            // Let the last '*' take one more character and try again from there.
            p = starP;
            t = ++starT;
        }
        while (p < pattern.Length && pattern[p] == '*') p++;
        return p == pattern.Length;
    }

    /// <summary>Whether the pattern element at <paramref name="p"/> matches <paramref name="c"/>; advances past it when it does.</summary>
    private static bool MatchOne(string pattern, ref int p, char c)
    {
        char head = pattern[p];
        if (head == '?') { p++; return true; }
        if (head != '[') { if (head != c) return false; p++; return true; }
        int i = p + 1;
        bool negate = i < pattern.Length && pattern[i] is '!' or '^';
        if (negate) i++;
        bool matched = false;
        bool first = true;
        while (i < pattern.Length && (pattern[i] != ']' || first))
        {
            first = false;
            char lo = pattern[i];
            if (i + 2 < pattern.Length && pattern[i + 1] == '-' && pattern[i + 2] != ']')
            {
                if (c >= lo && c <= pattern[i + 2]) matched = true;
                i += 3;
            }
            else
            {
                if (c == lo) matched = true;
                i++;
            }
        }
        if (i >= pattern.Length) { if (c != '[') return false; p++; return true; }   // no closing ']': a literal '['
        if (matched == negate) return false;
        p = i + 1;
        return true;
    }
}

/// <summary>
/// modules.builtin.modinfo: the .modinfo of every module compiled into the kernel, as
/// NUL-separated "module.key=value" strings. Gives the built-in modules' aliases (a built-in
/// crc32c_generic answers to crypto-crc32c) and soft dependencies (a built-in ext4 still asks
/// for crypto-crc32c, which may be a module).
/// </summary>
internal sealed class BuiltinModinfo
{
    public HashSet<string> Modules { get; } = new(StringComparer.Ordinal);
    public AliasTable Aliases { get; } = new();
    public Dictionary<string, (List<string> Pre, List<string> Post)> Softdeps { get; } = new(StringComparer.Ordinal);

    public static BuiltinModinfo Read(string path, long maxBytes)
    {
        var b = new BuiltinModinfo();
        if (!File.Exists(path)) return b;
        if (new FileInfo(path).Length > maxBytes) throw new IOException($"{path} is larger than {maxBytes >> 20} MiB: not a kernel's modules.builtin.modinfo");
        var data = File.ReadAllBytes(path);
        foreach (var range in data.AsSpan().Split((byte)0))
        {
            var entry = Encoding.UTF8.GetString(data.AsSpan(range));
            int dot = entry.IndexOf('.');
            int eq = entry.IndexOf('=');
            if (dot <= 0 || eq <= dot + 1) continue;
            string module = KernelModules.Normalize(entry[..dot]);
            string key = entry[(dot + 1)..eq];
            string value = entry[(eq + 1)..];
            b.Modules.Add(module);
            if (key == "alias" && value.Length > 0) b.Aliases.Add(value, module);
            else if (key == "softdep")
            {
                if (!b.Softdeps.TryGetValue(module, out var s)) b.Softdeps[module] = s = ([], []);
                ModuleInfo.ParseSoftdep(value, s.Pre, s.Post);
            }
        }
        return b;
    }
}

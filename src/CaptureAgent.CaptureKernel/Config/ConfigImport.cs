using System.Text;
namespace CaptureAgent.Config;

/// <summary>Where an imported setting came from: "/etc/kdump.conf:12" and the line as written.</summary>
public sealed record ImportOrigin(string Where, string Text);

/// <summary>A setting of the old configuration that has no capture-agent equivalent, and why.</summary>
public sealed record ImportNote(ImportOrigin Origin, string Why);

/// <summary>
/// The capture-agent.conf being built from another tool's configuration. Every value is checked
/// with <see cref="AgentConfig.Parse"/> as it is set, so the output always parses cleanly; a value
/// it refuses becomes a "not imported" note with the parser's reason. Nothing is dropped silently:
/// a setting is either written, or listed with the reason at the end of the file and on stderr.
/// </summary>
public sealed class ConfigImport
{
    /// <summary>The schema's keys in the order they are written.</summary>
    public static readonly string[] KeyOrder = [.. ConfigKeys.Names];

    private static readonly string[] Repeatable = [.. ConfigKeys.All.Where(k => k.Repeatable).Select(k => k.Name)];

    private sealed record Setting(string Key, string Value, string Where, List<string> Comments);

    private readonly List<Setting> _settings = new();

    /// <summary>The files read, as shown in the header.</summary>
    public List<string> Sources { get; } = new();
    public List<ImportNote> NotImported { get; } = new();
    /// <summary>Remarks on imported settings (a changed meaning, a substitute): written above them and shown on stderr.</summary>
    public List<string> Remarks { get; } = new();
    /// <summary>Problems with the result as a whole (no target found): written at the top and shown on stderr.</summary>
    public List<string> Warnings { get; } = new();
    /// <summary>Remarks on the import as a whole (an old directive name, a changed behaviour): written at the top and shown on stderr.</summary>
    public List<string> Notes { get; } = new();

    public IEnumerable<(string Key, string Value)> Settings =>
        _settings.OrderBy(s => Array.IndexOf(KeyOrder, s.Key)).Select(s => (s.Key, s.Value));

    public string? Get(string key) => _settings.LastOrDefault(s => s.Key == key)?.Value;
    public IEnumerable<string> GetAll(string key) => _settings.Where(s => s.Key == key).Select(s => s.Value);

    /// <summary>Sets a key (replacing a single-valued one); false and a note when capture-agent would refuse the value.</summary>
    public bool Set(string key, string value, ImportOrigin origin, string? remark = null)
    {
        value = value.Trim();
        string? error = Check(key, value);
        if (error is not null)
        {
            if (key == "target") DropTarget(origin, error);
            else Drop(origin, error);
            return false;
        }
        if (!Repeatable.Contains(key))
        {
            int i = _settings.FindIndex(s => s.Key == key);
            if (i >= 0) _settings.RemoveAt(i);
        }
        else if (_settings.Any(s => s.Key == key && s.Value == value)) return true;
        var setting = new Setting(key, value, origin.Where, new List<string>());
        _settings.Add(setting);
        if (remark is not null) Remark(key, remark);
        return true;
    }

    /// <summary>A remark written above the (last) line of <paramref name="key"/>.</summary>
    public void Remark(string key, string remark)
    {
        remark = OneLine(remark);
        var s = _settings.LastOrDefault(x => x.Key == key);
        if (s is null) { Warnings.Add(remark); return; }
        if (!s.Comments.Contains(remark)) s.Comments.Add(remark);
        Remarks.Add($"{key}: {remark}");
    }

    public void Drop(ImportOrigin origin, string why) => NotImported.Add(new ImportNote(origin with { Text = OneLine(origin.Text) }, OneLine(why)));

    /// <summary>
    /// A target of the old configuration that capture-agent cannot use: listed like any other
    /// setting, and a warning besides, since the dump will go elsewhere or nowhere.
    /// </summary>
    public void DropTarget(ImportOrigin origin, string why)
    {
        Drop(origin, why);
        Warn($"the dump target {OneLine(origin.Text)} ({origin.Where}) is not imported: {why}");
        TargetsDropped++;
    }

    /// <summary>How many targets of the old configuration were not imported.</summary>
    public int TargetsDropped { get; private set; }

    /// <summary>After the targets: a warning when every target named was dropped.</summary>
    public void WarnIfNoTargetLeft()
    {
        if (TargetsDropped > 0 && !GetAll("target").Any())
            Warn("no dump target is left: add a `target =` line, or the capture kernel has nowhere to save the dump");
    }

    public void Warn(string warning) => Warnings.Add(OneLine(warning));
    public void Note(string note) => Notes.Add(OneLine(note));

    public bool IsEmpty => _settings.Count == 0 && NotImported.Count == 0;

    private static string? Check(string key, string value)
    {
        if (value.Contains('#')) return $"'#' starts a comment in capture-agent.conf, so {key} cannot hold '{value}'";
        if (value.Contains('\n')) return $"{key} cannot span lines";
        var probe = AgentConfig.Parse($"{key} = {value}", key);
        if (probe.Errors.Count > 0) return string.Join("; ", probe.Errors.Select(e => e.StartsWith(key + ":1: ", StringComparison.Ordinal) ? e[(key.Length + 4)..] : e));
        // The parser trims quotes around a value: a value that starts or ends with one would change.
        if (key == "kernel_cmdline_append" && probe.KernelCommandLineAppend != value)
            return $"capture-agent.conf would read kernel_cmdline_append as '{probe.KernelCommandLineAppend}', not '{value}' (quotes at either end are trimmed)";
        return null;
    }

    private static string OneLine(string s) => s.Replace("\r", " ").Replace('\n', ' ').Trim();

    public string Render()
    {
        var sb = new StringBuilder();
        sb.Append("# capture-agent configuration imported by `capture-agent config import`");
        sb.Append(Sources.Count > 0 ? $" from {string.Join(", ", Sources)}.\n" : ".\n");
        sb.Append("# Check it with `capture-agent config check`, then `systemctl restart capture-agent`: its\n");
        sb.Append("# `load --auto` rebuilds the capture initramfs from this file and arms it. Settings without\n");
        sb.Append("# an equivalent are listed at the end with the reason.\n");
        if (Warnings.Count + Notes.Count > 0) sb.Append("#\n");
        foreach (var w in Warnings) sb.Append("# WARNING: ").Append(w).Append('\n');
        foreach (var n in Notes) sb.Append("# note: ").Append(n).Append('\n');
        bool first = true;
        foreach (var key in KeyOrder)
            foreach (var s in _settings.Where(x => x.Key == key))
            {
                // A blank line before each commented setting keeps a remark visibly with its line.
                if (first || s.Comments.Count > 0) sb.Append('\n');
                first = false;
                foreach (var c in s.Comments) sb.Append("# ").Append(c).Append('\n');
                sb.Append(s.Key).Append(" = ").Append(s.Value).Append("   # ").Append(s.Where).Append('\n');
            }
        if (NotImported.Count > 0)
        {
            sb.Append("\n# ---- not imported: no equivalent in capture-agent ----\n");
            foreach (var n in NotImportedInFileOrder())
                sb.Append("# ").Append(n.Origin.Where).Append(": ").Append(n.Origin.Text).Append('\n')
                  .Append("#     ").Append(n.Why).Append('\n');
        }
        return sb.ToString();
    }

    /// <summary>The notes by file (in the order the files were read) and line.</summary>
    public IEnumerable<ImportNote> NotImportedInFileOrder() =>
        NotImported.Select((n, i) => (n, i)).OrderBy(x => FileRank(x.n.Origin.Where)).ThenBy(x => LineOf(x.n.Origin.Where)).ThenBy(x => x.i).Select(x => x.n);

    private int FileRank(string where)
    {
        int colon = where.LastIndexOf(':');
        string file = colon > 0 && int.TryParse(where[(colon + 1)..], out _) ? where[..colon] : where;
        int i = Sources.IndexOf(file);
        return i < 0 ? Sources.Count : i;
    }

    private static int LineOf(string where)
    {
        int colon = where.LastIndexOf(':');
        return colon > 0 && int.TryParse(where[(colon + 1)..], out int line) ? line : int.MaxValue;
    }

    /// <summary>Shell-like words: quotes group, a backslash escapes (dracut_args, core_collector).</summary>
    public static List<string> Words(string text)
    {
        var words = new List<string>();
        var cur = new StringBuilder();
        bool inWord = false;
        char quote = '\0';
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if (quote != '\0')
            {
                if (c == quote) quote = '\0';
                else if (c == '\\' && quote == '"' && i + 1 < text.Length && text[i + 1] is '"' or '\\' or '$') cur.Append(text[++i]);
                else cur.Append(c);
                continue;
            }
            if (char.IsWhiteSpace(c))
            {
                if (inWord) { words.Add(cur.ToString()); cur.Clear(); inWord = false; }
                continue;
            }
            inWord = true;
            if (c is '"' or '\'') quote = c;
            else if (c == '\\' && i + 1 < text.Length) cur.Append(text[++i]);
            else cur.Append(c);
        }
        if (inWord) words.Add(cur.ToString());
        return words;
    }
}

/// <summary>What a makedumpfile command line (or another core collector) means for capture-agent.</summary>
public sealed class CollectorSettings
{
    public int DumpLevel { get; set; }
    public int? FallbackDumpLevel { get; set; }
    /// <summary>zstd, zlib or none.</summary>
    public string Compression { get; set; } = "none";
    /// <summary>A copy of the whole /proc/vmcore (cp, scp, cat, dd): every page, uncompressed.</summary>
    public bool WholeCopy { get; set; }
    /// <summary>Not a collector capture-agent understands: its settings are left at their defaults.</summary>
    public bool Unknown { get; set; }
    /// <summary>(key the remark belongs to, remark).</summary>
    public List<(string Key, string Text)> Remarks { get; } = new();
    /// <summary>(option as written, why it has no equivalent).</summary>
    public List<(string Option, string Why)> Unmapped { get; } = new();

    private static readonly string[] CopyPrograms = ["cp", "scp", "cat", "dd", "rsync"];

    /// <summary>Why makedumpfile's --message-level is not carried over (what `dump` has, the capture kernel has not).</summary>
    public const string MessageLevelWhy =
        "the capture kernel's console always gets capture-agent's summary (each target tried, the level used, the result); "
        + "capture-agent.conf has no message level (`capture-agent dump --message-level N` sets one for a run by hand)";
    private const string ShortWithValue = "bdgiLx";
    private const string ShortFlags = "cDeEFfhlpRvXz";
    private static readonly string[] LongWithValue =
        ["message-level", "num-threads", "cyclic-buffer", "splitblock-size", "config", "eppic", "work-dir", "size-limit", "vtop", "extension", "exclude-xen-dom", "dump-level"];

    /// <summary>
    /// Reads makedumpfile's options as its getopt does: clustered flags (-cd31), values joined or
    /// separate, --name=value. Without -c/-l/-p/-z makedumpfile stores pages uncompressed, and
    /// without -d it keeps every page (level 0): so do we.
    /// </summary>
    public static CollectorSettings Parse(string commandLine)
    {
        var s = new CollectorSettings();
        var words = ConfigImport.Words(commandLine);
        if (words.Count == 0) { s.Unknown = true; return s; }
        string program = System.IO.Path.GetFileName(words[0]);
        if (CopyPrograms.Contains(program))
        {
            s.WholeCopy = true;
            s.Remarks.Add(("dump_level", $"'{program}' copied all of /proc/vmcore: every page is kept (dump_level 0), uncompressed; "
                          + "set save_raw_copy = yes to also keep a byte copy of /proc/vmcore (twice the space)"));
            foreach (var w in words.Skip(1)) s.Unmapped.Add((w, $"an argument of {program}, which capture-agent does not run"));
            return s;
        }
        if (program != "makedumpfile")
        {
            s.Unknown = true;
            return s;
        }
        for (int i = 1; i < words.Count; i++)
        {
            string w = words[i];
            if (w.StartsWith("--", StringComparison.Ordinal))
            {
                string name = w[2..], value = "";
                int eq = name.IndexOf('=');
                if (eq >= 0) { value = name[(eq + 1)..]; name = name[..eq]; }
                else if (LongWithValue.Contains(name) && i + 1 < words.Count) value = words[++i];
                string shown = value.Length > 0 ? $"--{name} {value}" : $"--{name}";
                switch (name)
                {
                    case "dump-level": s.Level(value, shown); break;
                    case "message-level": s.Unmapped.Add((shown, MessageLevelWhy)); break;
                    case "num-threads": s.Unmapped.Add((shown, "capture-agent compresses on one thread, which keeps its memory within the capture kernel's few MiB")); break;
                    case "cyclic-buffer" or "non-cyclic" or "splitblock-size" or "work-dir" or "non-mmap":
                        s.Unmapped.Add((shown, "capture-agent filters in fixed windows with bounded memory; there is nothing to tune")); break;
                    case "size-limit": s.Unmapped.Add((shown, "no size limit: when space is short capture-agent uses fallback_dump_level and keeps min_free")); break;
                    case "split": s.Unmapped.Add((shown, "a dump is one file; split dumps are not supported")); break;
                    case "config" or "eppic" or "extension": s.Unmapped.Add((shown, "erasing or filtering data by debuginfo is not supported")); break;
                    default: s.Unmapped.Add((shown, "not a makedumpfile option capture-agent has an equivalent for")); break;
                }
                continue;
            }
            if (w.Length < 2 || w[0] != '-')
            {
                s.Unmapped.Add((w, "an argument of the collector; capture-agent names its files itself"));
                continue;
            }
            for (int k = 1; k < w.Length; k++)
            {
                char o = w[k];
                if (ShortWithValue.Contains(o))
                {
                    string value = k + 1 < w.Length ? w[(k + 1)..] : i + 1 < words.Count ? words[++i] : "";
                    string shown = $"-{o} {value}";
                    switch (o)
                    {
                        case 'd': s.Level(value, shown); break;
                        case 'L': s.Unmapped.Add((shown, "no size limit: when space is short capture-agent uses fallback_dump_level and keeps min_free")); break;
                        case 'x' or 'i' or 'g': s.Unmapped.Add((shown, "capture-agent reads the kernel's layout from VMCOREINFO; no vmlinux or info file is used")); break;
                        default: s.Unmapped.Add((shown, "not a makedumpfile option capture-agent has an equivalent for")); break;
                    }
                    break;
                }
                switch (o)
                {
                    case 'c': s.Compression = "zlib"; break;
                    case 'z': s.Compression = "zstd"; break;
                    case 'l': s.Compression = "lzo"; break;
                    case 'p': s.Compression = "snappy"; break;
                    case 'F': s.Remarks.Add(("compression", "-F: capture-agent writes the flattened format by itself where it is needed (ssh and raw targets)")); break;
                    case 'E': s.Unmapped.Add(("-E", "capture-agent saves kdump-compressed dumps; ELF only by `capture-agent dump -E` run by hand")); break;
                    case 'e': s.Unmapped.Add(("-e", "excluding unused vmemmap pages is not supported")); break;
                    default:
                        s.Unmapped.Add(($"-{o}", ShortFlags.Contains(o) ? "not a capture setting in capture-agent" : "not a makedumpfile option"));
                        break;
                }
            }
        }
        return s;
    }

    private void Level(string value, string shown)
    {
        // makedumpfile -d 11,31: the first level, then the next ones when the dump does not fit.
        var parts = value.Split(',');
        var levels = new List<int>();
        foreach (var p in parts)
        {
            if (!int.TryParse(p, out int l) || l is < 0 or > 31)
            {
                Unmapped.Add((shown, $"dump level '{value}' is not 0-31"));
                return;
            }
            levels.Add(l);
        }
        DumpLevel = levels[0];
        FallbackDumpLevel = levels.Count > 1 ? levels[^1] : null;
        if (levels.Count > 2)
            Remarks.Add(("fallback_dump_level", $"-d {value}: capture-agent has one fallback level, the last ({levels[^1]}); {string.Join(',', levels.Skip(1).SkipLast(1))} skipped"));
    }
}

/// <summary>Sorting a kdump command-line append into what capture-agent keeps, maps and drops.</summary>
public sealed class CmdlineAppend
{
    public List<string> Kept { get; } = new();
    public List<string> Blacklist { get; } = new();
    /// <summary>Parameters capture-agent's loader adds by itself, left out.</summary>
    public List<string> AlreadyAdded { get; } = new();
    public List<(string Token, string Why)> Dropped { get; } = new();

    private static readonly HashSet<string> LoaderTokens =
        [.. CaptureCommandLine.Tokenize(CaptureCommandLine.Required), .. CaptureCommandLine.Tokenize(CaptureCommandLine.Savers)];

    public static CmdlineAppend Sort(string append)
    {
        var r = new CmdlineAppend();
        foreach (var token in CaptureCommandLine.Tokenize(append))
        {
            int eq = token.IndexOf('=');
            string name = eq < 0 ? token : token[..eq], value = eq < 0 ? "" : token[(eq + 1)..].Trim('"');
            if (LoaderTokens.Contains(token)) r.AlreadyAdded.Add(token);
            else if (name is "rd.driver.blacklist" or "modprobe.blacklist" or "module_blacklist")
                r.Blacklist.AddRange(value.Split(',', StringSplitOptions.RemoveEmptyEntries));
            else if (name.StartsWith("rd.", StringComparison.Ordinal) || name.StartsWith("rd_", StringComparison.Ordinal))
                r.Dropped.Add((token, "a dracut parameter; capture-agent's initramfs has no dracut"));
            else if (name.StartsWith("udev.", StringComparison.Ordinal))
                r.Dropped.Add((token, "a udev parameter; capture-agent's initramfs has no udev"));
            else if (name.StartsWith("systemd.", StringComparison.Ordinal))
                r.Dropped.Add((token, "a systemd parameter; capture-agent is /init of its own initramfs, without systemd"));
            else r.Kept.Add(token);
        }
        return r;
    }
}

using System.Globalization;
using CaptureAgent.Compression;
using CaptureAgent.Filtering;
using CaptureAgent.Common;
using CaptureAgent.Formats;

namespace CaptureAgent.Config;

/// <summary>What to do when a crash is captured.</summary>
public enum FinalAction { Reboot, Halt, Poweroff, Shell }

/// <summary>
/// /etc/capture-agent.conf: `key = value` lines, `#` comments; `target`, `pre_hook` and `post_hook`
/// may repeat. Every problem names its line; a bad line is reported and its default kept, so a
/// typo never costs the dump.
/// </summary>
public sealed class AgentConfig
{
    public const string DefaultPath = "/etc/capture-agent.conf";

    /// <summary>Dump targets in the order they are tried; the next is tried when one fails.</summary>
    public List<TargetEntry> Targets { get; } = new();
    public string? FilesystemType { get; private set; }
    /// <summary>Dump directory template under the target's root (see <see cref="PathTemplate"/>).</summary>
    public string Path { get; private set; } = "/var/crash/" + PathTemplate.DefaultLeaf;
    public DumpLevel DumpLevel { get; private set; } = DumpLevel.All;
    /// <summary>The level used instead when the dump will not fit on the target.</summary>
    public DumpLevel FallbackDumpLevel { get; private set; } = DumpLevel.All;
    public PageCodec Compression { get; private set; } = PageCodec.Zstd;
    /// <summary>compression = auto: the codec is chosen at capture time from measured speeds.</summary>
    public bool AutoCompression { get; private set; }
    public int KeepDumps { get; private set; }
    public long KeepBytes { get; private set; }
    public long MinFreeBytes { get; private set; } = 64L << 20;
    public FinalAction FinalAction { get; private set; } = FinalAction.Reboot;
    public FinalAction FailureAction { get; private set; } = FinalAction.Reboot;
    public TimeSpan DeviceTimeout { get; private set; } = TimeSpan.FromSeconds(60);
    /// <summary>"dhcp", "none" or a static "ADDR/PREFIX [via GATEWAY]"; null = dhcp when a target needs the network.</summary>
    public string? Network { get; private set; }
    public string NetworkInterface { get; private set; } = "auto";
    public TimeSpan NetworkTimeout { get; private set; } = TimeSpan.FromSeconds(30);
    /// <summary>How long the capture may make no progress before PID 1 takes it for hung, kills it and goes on.</summary>
    public TimeSpan StallTimeout { get; private set; } = TimeSpan.FromSeconds(300);
    public List<string> Dns { get; } = new();
    public string SshKey { get; private set; } = "/root/.ssh/capture-agent_id_ed25519";
    public string SshKnownHosts { get; private set; } = "/etc/capture-agent/known_hosts";
    public string? NfsOptions { get; private set; }
    public List<string> PreHooks { get; } = new();
    public List<string> PostHooks { get; } = new();
    public List<string> ExtraModules { get; } = new();
    public List<string> Blacklist { get; } = new();
    public string? KernelCommandLineAppend { get; private set; }
    /// <summary>Also keep a byte copy of /proc/vmcore (vmcore.raw), after the dump: for verification, costs RAM-sized space.</summary>
    public bool SaveRawCopy { get; private set; }
    /// <summary>Arm from the host's initramfs too, before the root filesystem is mounted (the early hooks pack this config).</summary>
    public bool EarlyLoad { get; private set; }
    public List<string> Errors { get; } = new();

    /// <summary>The first target as written, for messages.</summary>
    public string? Target => Targets.Count > 0 ? Targets[0].Text : null;

    public bool NeedsNetwork => Network != "none" && Targets.Any(t => t.NeedsNetwork);

    /// <summary>A config is a page or two; a file of megabytes is not one, and must not fill the heap.</summary>
    public const int MaxBytes = 1 << 20;
    /// <summary>The longest line a setting needs (a kernel command line is at most 2048 bytes).</summary>
    public const int MaxLineLength = 4096;

    public static AgentConfig Load(string path)
    {
        if (!File.Exists(path)) return new AgentConfig();
        return Parse(InputFile.ReadText(path, MaxBytes), path);
    }

    /// <summary>Errors listed one by one; a file of thousands of broken lines gets a count for the rest.</summary>
    public const int MaxListedErrors = 100;
    private int _unlisted;

    /// <summary>Records the error of line <paramref name="lineNo"/>; the text is made only for the listed ones.</summary>
    private void Error(string source, int lineNo, string message)
    {
        if (Errors.Count < MaxListedErrors) Errors.Add($"{source}:{lineNo}: {message}");
        else _unlisted++;
    }

    /// <summary>Why no target of this config can be used, or null when at least one can.</summary>
    public string? NoUsableTarget(string source) => Targets.Count > 0 ? null
        : Errors.Any(e => e.Contains("target", StringComparison.Ordinal))
            ? $"{source} has no usable target: every target line has an error"
            : $"{source} names no target: the capture kernel would have nowhere to save the dump";

    /// <summary>
    /// Reads the config line by line over spans: a file of tens of thousands of broken lines must
    /// not become a heap of line, key and message strings (40,000 lines once peaked at 24 MiB).
    /// </summary>
    public static AgentConfig Parse(string text, string source = "config")
    {
        var c = new AgentConfig();
        int lineNo = 0;
        foreach (var range in text.AsSpan().Split('\n'))
        {
            lineNo++;
            c.ParseLine(text.AsSpan(range), source, lineNo);
        }
        if (c._unlisted > 0) c.Errors.Add($"{source}: {c._unlisted} more errors (not listed)");
        return c;
    }

    private void ParseLine(ReadOnlySpan<char> raw, string source, int lineNo)
    {
        if (raw.Length > MaxLineLength)
        {
            Error(source, lineNo, $"the line is {raw.Length} characters long, more than the {MaxLineLength} a setting may take");
            return;
        }
        var line = raw.Trim();
        int hash = line.IndexOf('#');
        if (hash >= 0) line = line[..hash].Trim();
        if (line.Length == 0) return;
        int eq = line.IndexOf('=');
        if (eq <= 0)
        {
            if (Errors.Count < MaxListedErrors) Error(source, lineNo, $"expected key = value, got '{raw.Trim()}'");
            else _unlisted++;
            return;
        }
        var keySpan = line[..eq].Trim();
        Span<char> lower = stackalloc char[keySpan.Length];
        keySpan.ToLowerInvariant(lower);
        var value = line[(eq + 1)..].Trim();
        // One pair of surrounding quotes is syntax; quotes inside (dyndbg="...") are the value's.
        if (value.Length >= 2 && value[0] == '"' && value[^1] == '"') value = value[1..^1];
        string? error = Set(new string(lower), new string(value));
        if (error is not null) Error(source, lineNo, error);
    }

    private string? Set(string key, string value)
    {
        // The key table is the one list of keys: the man page and the default config come from it too.
        if (ConfigKeys.Find(key) is null) return $"unknown key '{key}'";
        switch (key)
        {
            case "target":
                if (!TargetEntry.TryParse(value, out var entry, out var targetError)) return targetError;
                if (Targets.Count == MaxRepeats) return $"more than {MaxRepeats} targets";
                Targets.Add(entry);
                return null;
            case "fstype":
                if (value is not ("ext4" or "ext3" or "ext2" or "xfs" or "btrfs" or "vfat"))
                    return $"fstype must be ext4, ext3, ext2, xfs, btrfs or vfat, got '{value}'";
                FilesystemType = value; return null;
            case "path":
                if (PathTemplate.Validate(value) is { } pathError) return pathError;
                Path = PathTemplate.Normalize(value); return null;
            case "dump_level" or "fallback_dump_level":
                if (!int.TryParse(value, out int d) || d is < 0 or > 31) return $"{key} must be 0-31, got '{value}'";
                if (key == "dump_level") DumpLevel = (DumpLevel)d; else FallbackDumpLevel = (DumpLevel)d;
                return null;
            case "compression":
                string codecName = value.ToLowerInvariant();
                if (codecName == "auto")
                {
                    (Compression, AutoCompression) = (PageCodec.Zstd, true);
                    return null;
                }
                if (PageCompressors.Parse(codecName) is not PageCodec codec)
                    return $"compression must be zstd, lzo, snappy, zlib, none or auto, got '{value}'";
                (Compression, AutoCompression) = (codec, false);
                return null;
            case "keep_dumps":
                if (!int.TryParse(value, out int keep) || keep is < 0 or > 10000) return $"keep_dumps must be 0 (keep all) to 10000, got '{value}'";
                KeepDumps = keep; return null;
            case "keep_size" or "min_free":
                if (!TryParseSize(value, out long bytes)) return $"{key} must be a size such as 512M or 20G, got '{value}'";
                if (key == "keep_size") KeepBytes = bytes; else MinFreeBytes = bytes;
                return null;
            case "final_action" or "failure_action":
                if (!Enum.TryParse<FinalAction>(value, ignoreCase: true, out var action) || int.TryParse(value, out _))
                    return $"{key} must be reboot, halt, poweroff or shell, got '{value}'";
                if (key == "final_action") FinalAction = action; else FailureAction = action;
                return null;
            case "stall_timeout":
                if (!int.TryParse(value, out int stall) || stall is < 10 or > 86400) return $"stall_timeout must be 10-86400 seconds, got '{value}'";
                StallTimeout = TimeSpan.FromSeconds(stall);
                return null;
            case "device_timeout" or "network_timeout":
                if (!int.TryParse(value, out int secs) || secs is < 1 or > 3600) return $"{key} must be 1-3600 seconds, got '{value}'";
                if (key == "device_timeout") DeviceTimeout = TimeSpan.FromSeconds(secs); else NetworkTimeout = TimeSpan.FromSeconds(secs);
                return null;
            case "network":
                if (value is not ("dhcp" or "none") && !LooksLikeStaticAddress(value))
                    return $"network must be dhcp, none or ADDR/PREFIX [via GATEWAY], got '{value}'";
                Network = value; return null;
            case "network_interface":
                if (value.Length == 0 || value.Contains('/')) return $"network_interface must be auto, a name or a MAC address, got '{value}'";
                NetworkInterface = value; return null;
            case "dns":
                foreach (var ip in Split(value))
                    if (!System.Net.IPAddress.TryParse(ip, out _)) return $"dns must list IP addresses, got '{ip}'";
                return AddNames(Dns, key, value);
            case "ssh_key" or "ssh_known_hosts":
                if (!value.StartsWith('/')) return $"{key} must be an absolute path, got '{value}'";
                if (key == "ssh_key") SshKey = value; else SshKnownHosts = value;
                return null;
            case "nfs_options":
                if (value.Contains(' ')) return $"nfs_options is a comma-separated list without spaces, got '{value}'";
                NfsOptions = value; return null;
            case "pre_hook" or "post_hook":
                if (!value.StartsWith('/')) return $"{key} must be an absolute path, got '{value}'";
                var hooks = key == "pre_hook" ? PreHooks : PostHooks;
                if (hooks.Count == MaxRepeats) return $"more than {MaxRepeats} {key} lines";
                hooks.Add(value); return null;
            case "extra_modules": return AddNames(ExtraModules, key, value);
            case "blacklist": return AddNames(Blacklist, key, value);
            case "kernel_cmdline_append":
                // x86's COMMAND_LINE_SIZE: a longer one never reaches the capture kernel whole.
                if (value.Length > 2047) return $"kernel_cmdline_append is {value.Length} characters, more than a kernel command line holds (2047)";
                KernelCommandLineAppend = value; return null;
            case "save_raw_copy" or "early_load":
                if (value is not ("yes" or "no")) return $"{key} must be yes or no, got '{value}'";
                if (key == "save_raw_copy") SaveRawCopy = value == "yes"; else EarlyLoad = value == "yes";
                return null;
            default: return $"unknown key '{key}'";
        }
    }

    /// <summary>Repeatable settings (targets, hooks) a config may have; more is a mistake, not a setup.</summary>
    public const int MaxRepeats = 64;

    /// <summary>Adds a list setting's names; all of them together must fit one line of the effective config.</summary>
    private static string? AddNames(List<string> list, string key, string value)
    {
        var names = Split(value).ToList();
        if (list.Sum(n => n.Length + 1) + names.Sum(n => n.Length + 1) > MaxLineLength - 64)
            return $"{key} names more than fits one line ({MaxLineLength - 64} characters) in all";
        list.AddRange(names);
        return null;
    }

    private static bool LooksLikeStaticAddress(string v)
    {
        var parts = v.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length is not (1 or 3)) return false;
        var cidr = parts[0].Split('/');
        if (cidr.Length != 2 || !System.Net.IPAddress.TryParse(cidr[0], out _) || !int.TryParse(cidr[1], out int p) || p is < 0 or > 32) return false;
        return parts.Length == 1 || (parts[1] == "via" && System.Net.IPAddress.TryParse(parts[2], out _));
    }

    /// <summary>Sizes as 123, 64k, 512M, 20G, 1T (powers of 1024).</summary>
    public static bool TryParseSize(string text, out long bytes)
    {
        bytes = 0;
        string t = text.Trim();
        if (t.Length == 0) return false;
        int shift = char.ToUpperInvariant(t[^1]) switch { 'K' => 10, 'M' => 20, 'G' => 30, 'T' => 40, _ => 0 };
        if (shift > 0) t = t[..^1];
        if (!long.TryParse(t, NumberStyles.None, CultureInfo.InvariantCulture, out long n) || n > (long.MaxValue >> shift)) return false;
        bytes = n << shift;
        return true;
    }

    private static IEnumerable<string> Split(string v) => v.Split([',', ' '], StringSplitOptions.RemoveEmptyEntries);
}

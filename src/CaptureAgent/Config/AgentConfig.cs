using CaptureAgent.Compression;
using CaptureAgent.Filtering;

namespace CaptureAgent.Config;

/// <summary>What to do when a crash is captured.</summary>
public enum FinalAction { Reboot, Halt, Poweroff, Shell }

/// <summary>
/// /etc/capture-agent.conf: `key = value` lines, `#` comments. Every problem names its line; a
/// bad line is reported and its default kept, so a typo never costs the dump.
/// </summary>
public sealed class AgentConfig
{
    public const string DefaultPath = "/etc/capture-agent.conf";

    /// <summary>Dump target: /dev/NAME, UUID=..., LABEL=... (mounted by the agent).</summary>
    public string? Target { get; private set; }
    public string? FilesystemType { get; private set; }
    /// <summary>Directory under the target's root; each dump gets its own &lt;host&gt;-&lt;date&gt; below it.</summary>
    public string Path { get; private set; } = "/var/crash";
    public DumpLevel DumpLevel { get; private set; } = DumpLevel.All;
    public PageCodec Compression { get; private set; } = PageCodec.Zstd;
    public FinalAction FinalAction { get; private set; } = FinalAction.Reboot;
    public FinalAction FailureAction { get; private set; } = FinalAction.Reboot;
    public TimeSpan DeviceTimeout { get; private set; } = TimeSpan.FromSeconds(60);
    public List<string> ExtraModules { get; } = new();
    public List<string> Blacklist { get; } = new();
    public string? KernelCommandLineAppend { get; private set; }
    /// <summary>Also keep a byte copy of /proc/vmcore (vmcore.raw), after the dump: for verification, costs RAM-sized space.</summary>
    public bool SaveRawCopy { get; private set; }
    public List<string> Errors { get; } = new();

    public static AgentConfig Load(string path)
    {
        if (!File.Exists(path)) return new AgentConfig();
        return Parse(File.ReadAllText(path), path);
    }

    public static AgentConfig Parse(string text, string source = "config")
    {
        var c = new AgentConfig();
        int lineNo = 0;
        foreach (var raw in text.Split('\n'))
        {
            lineNo++;
            var line = raw.Trim();
            int hash = line.IndexOf('#');
            if (hash >= 0) line = line[..hash].Trim();
            if (line.Length == 0) continue;
            int eq = line.IndexOf('=');
            if (eq <= 0)
            {
                c.Errors.Add($"{source}:{lineNo}: expected key = value, got '{raw.Trim()}'");
                continue;
            }
            string key = line[..eq].Trim().ToLowerInvariant(), value = line[(eq + 1)..].Trim().Trim('"');
            string? error = c.Set(key, value);
            if (error is not null) c.Errors.Add($"{source}:{lineNo}: {error}");
        }
        return c;
    }

    private string? Set(string key, string value)
    {
        switch (key)
        {
            case "target": Target = value; return null;
            case "fstype": FilesystemType = value; return null;
            case "path":
                if (!value.StartsWith('/') || value.Split('/').Contains("..")) return $"path must be absolute without '..', got '{value}'";
                Path = value; return null;
            case "dump_level":
                if (!int.TryParse(value, out int d) || d is < 0 or > 31) return $"dump_level must be 0-31, got '{value}'";
                DumpLevel = (DumpLevel)d; return null;
            case "compression":
                switch (value.ToLowerInvariant())
                {
                    case "zstd": Compression = PageCodec.Zstd; return null;
                    case "zlib": Compression = PageCodec.Zlib; return null;
                    case "none": Compression = PageCodec.None; return null;
                    default: return $"compression must be zstd, zlib or none, got '{value}'";
                }
            case "final_action" or "failure_action":
                if (!Enum.TryParse<FinalAction>(value, ignoreCase: true, out var action) || int.TryParse(value, out _))
                    return $"{key} must be reboot, halt, poweroff or shell, got '{value}'";
                if (key == "final_action") FinalAction = action; else FailureAction = action;
                return null;
            case "device_timeout":
                if (!int.TryParse(value, out int secs) || secs is < 1 or > 3600) return $"device_timeout must be 1-3600 seconds, got '{value}'";
                DeviceTimeout = TimeSpan.FromSeconds(secs); return null;
            case "extra_modules": ExtraModules.AddRange(Split(value)); return null;
            case "blacklist": Blacklist.AddRange(Split(value)); return null;
            case "kernel_cmdline_append": KernelCommandLineAppend = value; return null;
            case "save_raw_copy":
                if (value is not ("yes" or "no")) return $"save_raw_copy must be yes or no, got '{value}'";
                SaveRawCopy = value == "yes"; return null;
            default: return $"unknown key '{key}'";
        }
    }

    private static IEnumerable<string> Split(string v) => v.Split([',', ' '], StringSplitOptions.RemoveEmptyEntries);
}

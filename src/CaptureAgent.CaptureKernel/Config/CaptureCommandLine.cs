namespace CaptureAgent.Config;

/// <summary>
/// The capture kernel's command line: the running kernel's, minus what must not carry over, plus
/// what a kdump kernel needs. Rules follow RHEL kdump-utils and Debian kdump-tools.
/// </summary>
public static class CaptureCommandLine
{
    /// <summary>Parameters dropped from the running command line (by name, with or without a value).</summary>
    public static readonly string[] Dropped =
    [
        "crashkernel",     // a capture kernel reserves nothing
        "initrd",          // our initramfs is passed to kexec_file_load instead
        "BOOT_IMAGE",      // bootloader noise
        "init", "rdinit",  // the agent is /init of its initramfs
        "hugepages", "hugepagesz", "default_hugepagesz",   // would eat the tiny reservation
        "kmemleak", "slub_debug", "cma", "hugetlb_cma",
        "nr_cpus", "maxcpus", "irqpoll", "reset_devices", "panic",   // set below
        "resume", "resume_offset",
        BootIdParameter,   // the running kernel's own value is added below
        "CAPTURE_AGENT_ROLE",   // a rehearsal VM's first-kernel role: the capture kernel's /init must capture
    ];

    /// <summary>
    /// The first kernel's boot id, handed to the agent for the {boot_id} path placeholder (it ties
    /// the dump to `journalctl -b ID`). A dotted name is a module parameter to the kernel: it is
    /// neither reported as unknown nor passed to /init.
    /// </summary>
    public const string BootIdParameter = "capture_agent.boot_id";

    /// <summary>What every capture kernel gets: one CPU, devices reset, interrupts polled, memory savers.</summary>
    public const string Required = "irqpoll nr_cpus=1 reset_devices";

    /// <summary>
    /// Memory savers for a small reservation (as RHEL appends) and a reboot if the capture kernel
    /// itself panics. Only key=value forms: a bare word the kernel does not know (novmcoredd on a
    /// kernel without device dumps) is handed to /init as an argument.
    /// </summary>
    public const string Savers = "cgroup_disable=memory mce=off numa=off transparent_hugepage=never cma=0 hugetlb_cma=0 panic=10";

    public static string Build(string running, string? extra = null, IEnumerable<string>? blacklist = null, string? bootId = null)
    {
        // Everything after a lone "--" is for the first kernel's init, not for the kernel.
        var tokens = Tokenize(running);
        int initArgs = tokens.IndexOf("--");
        if (initArgs >= 0) tokens = tokens[..initArgs];
        var kept = tokens.Where(t => !Dropped.Contains(Name(t), StringComparer.Ordinal)).ToList();
        kept.Add(Required);
        kept.Add(Savers);
        var modules = (blacklist ?? []).Where(m => m.Length > 0).ToList();
        if (modules.Count > 0) kept.Add("modprobe.blacklist=" + string.Join(',', modules));
        if (bootId is { Length: > 0 } && bootId.All(c => char.IsAsciiHexDigit(c) || c == '-')) kept.Add($"{BootIdParameter}={bootId}");
        if (!string.IsNullOrWhiteSpace(extra)) kept.Add(extra.Trim());
        return WithoutRepeats(string.Join(' ', kept));
    }

    /// <summary>
    /// Drops a parameter that appears again later, word for word (no_timer_check inherited from the
    /// running kernel and added again by a platform quirk). Keeping each token's last copy keeps what
    /// the kernel sees: for any name, the last token carrying it is untouched. Words after a lone
    /// "--" go to init as positional arguments and are left as they are.
    /// </summary>
    public static string WithoutRepeats(string cmdline)
    {
        var tokens = Tokenize(cmdline);
        int initArgs = tokens.IndexOf("--");
        int end = initArgs < 0 ? tokens.Count : initArgs;
        var kept = new List<string>(tokens.Count);
        for (int i = 0; i < tokens.Count; i++)
            if (i >= end || tokens.IndexOf(tokens[i], i + 1, end - i - 1) < 0) kept.Add(tokens[i]);
        return string.Join(' ', kept);
    }

    /// <summary>The value of a parameter on a command line (the last one wins, as in the kernel), or null.</summary>
    public static string? Value(string cmdline, string name)
    {
        string? value = null;
        foreach (var t in Tokenize(cmdline))
            if (Name(t) == name && t.Length > name.Length) value = t[(name.Length + 1)..].Trim('"');
        return value;
    }

    private static string Name(string token)
    {
        int eq = token.IndexOf('=');
        return eq < 0 ? token : token[..eq];
    }

    /// <summary>Splits on spaces outside double quotes, as the kernel's parser does.</summary>
    public static List<string> Tokenize(string cmdline)
    {
        var tokens = new List<string>();
        var current = new System.Text.StringBuilder();
        bool quoted = false;
        foreach (char c in cmdline.Trim())
        {
            if (c == '"') quoted = !quoted;
            if (char.IsWhiteSpace(c) && !quoted)
            {
                if (current.Length > 0) { tokens.Add(current.ToString()); current.Clear(); }
                continue;
            }
            current.Append(c);
        }
        if (current.Length > 0) tokens.Add(current.ToString());
        return tokens;
    }
}

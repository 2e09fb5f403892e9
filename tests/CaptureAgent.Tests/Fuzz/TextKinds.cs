using System.Text;
using CaptureAgent.Config;
using CaptureAgent.Tests.CaptureKernel.Config;

namespace CaptureAgent.Tests.Fuzz;

/// <summary>Line-level mutations of configuration text: lines dropped, repeated, swapped, bent, made huge or binary.</summary>
public static class TextMutations
{
    public static string Mutate(Mutator m, string text, List<string> notes)
    {
        var lines = text.Split('\n').ToList();
        for (int n = 0, count = 1 + m.Below(3); n < count; n++)
        {
            int at = m.Below(lines.Count);
            switch (m.Below(10))
            {
                case 0: lines.RemoveAt(at); notes.Add($"line {at + 1} removed"); break;
                case 1: lines.Insert(m.Below(lines.Count), lines[at]); notes.Add($"line {at + 1} repeated"); break;
                case 2:
                {
                    int b = m.Below(lines.Count);
                    (lines[at], lines[b]) = (lines[b], lines[at]);
                    notes.Add($"lines {at + 1} and {b + 1} swapped");
                    break;
                }
                case 3:
                {
                    int eq = Math.Max(lines[at].IndexOfAny(['=', ' ']), 0);
                    string value = m.Pick(Values);
                    lines[at] = lines[at][..eq] + (eq > 0 ? lines[at][eq].ToString() : "") + value;
                    notes.Add($"line {at + 1} value '{Shorten(value)}'");
                    break;
                }
                case 4:
                    lines.Insert(at, new string((char)('a' + m.Below(26)), 1000 + m.Below(200_000)));
                    notes.Add($"a long line at {at + 1}");
                    break;
                case 5:
                {
                    var junk = new byte[1 + m.Below(64)];
                    for (int i = 0; i < junk.Length; i++) junk[i] = (byte)m.Next();
                    lines.Insert(at, Encoding.Latin1.GetString(junk));
                    notes.Add($"binary junk at line {at + 1}");
                    break;
                }
                case 6: lines[at] = lines[at].Length > 0 ? lines[at][..m.Below(lines[at].Length)] : "="; notes.Add($"line {at + 1} cut"); break;
                case 7: lines[at] = "\"" + lines[at]; notes.Add($"line {at + 1} with an open quote"); break;
                case 8:
                {
                    // Many copies, but the text stays within MaxText: a long line repeated 20,000 times
                    // would be gigabytes, which only tests the generator.
                    int k = Math.Min(1 + m.Below(20000), MaxText / (lines[at].Length + 1));
                    for (int i = 0; i < k; i++) lines.Add(lines[at]);
                    notes.Add($"line {at + 1} repeated {k} times");
                    break;
                }
                default: lines[at] = lines[at].Replace(' ', '\t'); notes.Add($"line {at + 1} with tabs"); break;
            }
        }
        return Bounded(lines, notes);
    }

    /// <summary>The most text a mutation makes: far above the agent's own limit on a config, far below what a test process can hold.</summary>
    private const int MaxText = 8 << 20;

    /// <summary>Lines joined, dropping lines from the end once the text would pass MaxText (several repeats of long lines add up).</summary>
    private static string Bounded(List<string> lines, List<string> notes)
    {
        long total = 0;
        int keep = 0;
        while (keep < lines.Count && total + lines[keep].Length + 1 <= MaxText) total += lines[keep++].Length + 1;
        if (keep < lines.Count) notes.Add($"cut to {keep} lines");
        return string.Join('\n', lines.Take(keep));
    }

    private static readonly string[] Values =
    [
        "", "0", "-1", "99999999999999999999", "0x10", "1e9", "none", "yes", "LABEL=", "UUID=x", "raw:", "nfs:", "ssh:", "ssh:@",
        "nfs:host:", "/dev/", "../../etc", "/var/crash/{host}/{date}/{kver}/{boot_id}/{x}", "{", "}", "\"", "'", "$(reboot)", "`id`",
        "1G", "999999999999T", "shell", "reboot now", "10.0.0.1/33", "a,b,,c", new string('x', 5000),
    ];

    private static string Shorten(string s) => s.Length > 40 ? s[..40] + "..." : s;
}

/// <summary>capture-agent.conf mutated: `config check` must name each error; a config it accepts must read back without errors and with a target.</summary>
public sealed class ConfigKind : IFuzzKind
{
    public string Name => "config";

    private static readonly string[] Bases =
    [
        "target = LABEL=crashdump\npath = /var/crash\ndump_level = 31\ncompression = zstd\nkeep_dumps = 3\nfinal_action = reboot\n",
        "target = nfs:10.0.2.2:/srv/crash\nnfs_options = soft,timeo=100\nnetwork = dhcp\nnetwork_timeout = 30\ndns = 10.0.2.3\npath = /var/crash/{host}-{date}\n",
        "target = ssh:kdump@collector:22\nssh_key = /root/.ssh/id\nssh_known_hosts = /etc/capture-agent/known_hosts\nnetwork = 10.0.0.5/24 via 10.0.0.1\n",
        "target = raw:/dev/disk/by-partlabel/crashraw\ntarget = UUID=0b5e3a3c-1d1e-4e0a-9a57-5a4c1f3c0a11\nfstype = ext4\nmin_free = 64M\nkeep_size = 20G\n",
        "target = PARTUUID=1234-01\npre_hook = /usr/lib/capture-agent/pre\npost_hook = /usr/lib/capture-agent/post\nextra_modules = nvme,ahci\nblacklist = nouveau\nkernel_cmdline_append = quiet\nstall_timeout = 120\n",
    ];

    public FuzzCase Make(Mutator m, string dir)
    {
        var notes = new List<string>();
        string text = TextMutations.Mutate(m, m.Pick(Bases), notes);
        string input = Path.Combine(dir, "capture-agent.conf");
        File.WriteAllText(input, text, Encoding.Latin1);
        return new FuzzCase(string.Join("; ", notes), [new(["config", "check", input], Check: ReadsBack)], Encoding.Latin1.GetBytes(text));
    }

    /// <summary>What `config check` prints for an accepted config is itself a config without errors, with a target.</summary>
    private static string? ReadsBack(ChildResult r)
    {
        if (r.ExitCode != 0) return null;
        var again = AgentConfig.Parse(r.Stdout, "effective");
        if (again.Errors.Count > 0) return $"config check accepted a config whose effective settings do not parse: {again.Errors[0]}";
        return again.Targets.Count == 0 ? "config check accepted a config without a target" : null;
    }
}

/// <summary>RHEL kdump.conf + sysconfig and Debian kdump-tools defaults mutated: `config import` must say what it cannot import; what it writes must parse.</summary>
public sealed class ImportKind : IFuzzKind
{
    public string Name => "config-import";

    private static readonly (string Option, string Text)[] Bases =
    [
        ("--kdump-conf", Samples.Rhel9KdumpConf), ("--kdump-conf", Samples.RhelEverythingKdumpConf), ("--kdump-conf", Samples.RhelNfsKdumpConf),
        ("--kdump-conf", Samples.RhelSshRawKdumpConf), ("--kdump-conf", Samples.FedoraKdumpConf), ("--sysconfig", Samples.Rhel9Sysconfig),
        ("--kdump-tools", Samples.Debian12KdumpTools), ("--kdump-tools", Samples.UbuntuSshKdumpTools), ("--kdump-tools", Samples.DebianNfsKdumpTools),
    ];

    public FuzzCase Make(Mutator m, string dir)
    {
        var notes = new List<string>();
        var (option, text) = m.Pick(Bases);
        text = TextMutations.Mutate(m, text, notes);
        string root = Path.Combine(dir, "root"), input = Path.Combine(dir, "input.conf");
        Directory.CreateDirectory(Path.Combine(root, "etc"));
        File.WriteAllText(Path.Combine(root, "etc", "fstab"), m.Chance(50) ? Samples.Rhel9Fstab : Samples.Debian12Fstab);
        File.WriteAllText(input, text, Encoding.Latin1);
        return new FuzzCase($"{option}: {string.Join("; ", notes)}", [new(["config", "import", option, input, "--root", root], Check: Parses)], Encoding.Latin1.GetBytes(text));
    }

    private static string? Parses(ChildResult r)
    {
        if (r.ExitCode != 0) return null;
        var c = AgentConfig.Parse(r.Stdout, "imported");
        return c.Errors.Count > 0 ? $"config import exit 0 with output that does not parse: {c.Errors[0]}" : null;
    }
}

using System.Globalization;
using System.Text;
using CaptureAgent.Config;
using CaptureAgent.Common;

namespace CaptureAgent.Cli;

/// <summary>
/// capture-agent(8) and capture-agent.conf(5) in roff (man macros), rendered from the help table
/// (<see cref="CommandHelp"/>) and the key table (<see cref="ConfigKeys"/>): the usage texts go in
/// verbatim, in no-fill blocks, so `man capture-agent` shows what `--help` prints.
/// </summary>
public static class ManPages
{
    private const string Description = """
        capture-agent saves the memory of a crashed Linux kernel. A capture kernel is loaded with kexec_file_load(2) into the memory the crashkernel= boot parameter reserves; when the running kernel panics, the capture kernel boots there with capture-agent as PID 1 of its own small initramfs, reads /proc/vmcore, leaves out the pages the dump level excludes, compresses the rest and writes a kdump-compressed file that crash(8), drgn and libkdumpfile read, then reboots. Dump targets are tried in order: a local filesystem, a raw partition, an NFS export or an SSH collector.
        On the installed system, capture-agent.service runs load --auto at boot: it arms the pinned or the running kernel, after rebuilding that kernel's capture initramfs in /var/lib/capture-agent when its inputs changed (the configuration, the target's drivers, the kernel's modules, the agent). The kernel package hooks keep one capture initramfs per installed kernel. capture-agent-savecore.service extracts a dump left on a raw target on the next boot. With early_load = yes in capture-agent.conf(5) the host's initramfs arms the capture kernel too, before the root filesystem is mounted, with the same command line.
        The same binary is a makedumpfile-style tool for saved vmcores (dump, dmesg, rearrange), checks and reports saved dumps (verify, report), sizes crashkernel= (estimate, crashkernel) and rehearses a crash in QEMU (selftest).
        """;

    private static readonly (string[] Paths, string What)[] CommandFiles =
    [
        (["/etc/capture-agent.conf"], "the configuration, carried into every capture initramfs; see capture-agent.conf(5)"),
        (["/var/lib/capture-agent/KVER/initramfs.img"], "the capture initramfs of kernel KVER, with stamp.json saying what it was built from"),
        (["/var/lib/capture-agent/pinned"], "the kernel release load --auto arms instead of the running one (capture-agent pin)"),
        (["/run/capture-agent/loaded"], "what was armed last: kernel, initramfs, command line"),
        (["/usr/lib/systemd/system/capture-agent.service"], "arms at boot (load --auto), disarms when stopped"),
        (["/usr/lib/systemd/system/capture-agent-savecore.service"], "extracts dumps left on raw targets, before arming"),
        (["/etc/kernel/postinst.d/capture-agent", "/etc/kernel/postrm.d/capture-agent", "/usr/lib/kernel/install.d/45-capture-agent.install"], "build and remove the capture initramfs of each kernel as kernel packages come and go"),
        (["/usr/share/initramfs-tools/hooks/capture-agent", "/usr/share/initramfs-tools/scripts/init-premount/capture-agent", "/usr/lib/dracut/modules.d/90capture-agent"], "early arming from the host's initramfs, when early_load = yes"),
        (["/root/.ssh/capture-agent_id_ed25519", "/etc/capture-agent/known_hosts"], "the key and host keys of ssh: targets (capture-agent propagate)"),
    ];

    /// <summary>SOURCE_DATE_EPOCH (reproducible builds) as the page's date; none without it.</summary>
    public static DateTimeOffset? DateFromEnvironment() =>
        long.TryParse(Environment.GetEnvironmentVariable("SOURCE_DATE_EPOCH"), NumberStyles.None, CultureInfo.InvariantCulture, out long s)
            ? DateTimeOffset.FromUnixTimeSeconds(s) : null;

    public static string Command(DateTimeOffset? date)
    {
        var sb = new StringBuilder();
        Header(sb, "CAPTURE-AGENT", 8, date, "System Administration");
        sb.Append(".SH NAME\ncapture-agent \\- Linux kernel crash capture (kdump) in one binary\n");
        sb.Append(".SH SYNOPSIS\n.B capture-agent\n.I command\n.RI [ options ]\n.PP\n");
        NoFill(sb, CommandHelp.Overview);
        sb.Append(".SH DESCRIPTION\n");
        Paragraphs(sb, Description);
        sb.Append(".SH COMMANDS\n");
        foreach (var c in CommandHelp.All)
        {
            sb.Append(".SS ").Append(Escape(c.Name)).Append('\n');
            sb.Append(Escape(Sentence(c.Summary))).Append('\n');
            sb.Append(".PP\n");
            NoFill(sb, c.Usage);
        }
        sb.Append(".SH EXIT STATUS\n");
        foreach (var (code, what) in new[] { ("0", "done"), ("1", "failed: nothing usable was produced"), ("2", "usage error"),
                                             ("3", "written, but the input was damaged or filtering degraded (see the messages; each command's help says more)"),
                                             ("4", "load, status: a capture kernel is armed, but the dump would not be saved: no target of the chain can be reached by it (the reason is printed)") })
            sb.Append(".TP\n.B ").Append(code).Append('\n').Append(Escape(what)).Append('\n');
        sb.Append(".SH FILES\n");
        // One tag line per path, the description under the last (.PD 0 keeps the tags together).
        foreach (var (paths, what) in CommandFiles)
        {
            for (int i = 0; i < paths.Length; i++)
                sb.Append(i == 0 ? ".TP\n" : ".PD 0\n.TP\n").Append(".I ").Append(Escape(paths[i])).Append('\n');
            if (paths.Length > 1) sb.Append(".PD\n");
            sb.Append(Escape(Sentence(what))).Append('\n');
        }
        sb.Append(".SH SEE ALSO\n.BR capture\\-agent.conf (5),\n.BR kexec (8),\n.BR makedumpfile (8),\n.BR crash (8),\n.BR systemctl (1)\n");
        return sb.ToString();
    }

    public static string Config(DateTimeOffset? date)
    {
        var sb = new StringBuilder();
        Header(sb, "CAPTURE-AGENT.CONF", 5, date, "File Formats");
        sb.Append(".SH NAME\ncapture-agent.conf \\- configuration of capture-agent, the kernel crash capture agent\n");
        sb.Append(".SH SYNOPSIS\n.I /etc/capture-agent.conf\n");
        sb.Append(".SH DESCRIPTION\n");
        Paragraphs(sb, """
            One setting per line, key = value; a # starts a comment; one pair of double quotes around a value is removed. target, pre_hook and post_hook may repeat; a repeated single-valued key takes the last value. Every mistake is reported with its line number and the key keeps its default, so a typo never costs the dump: check a file with capture-agent config check.
            The capture initramfs carries this file. capture-agent.service rebuilds the running kernel's capture initramfs when the file changed (systemctl restart capture-agent); capture-agent kernel-hook add KVER rebuilds another kernel's. With early_load = yes the host's initramfs carries it as well: rebuild that one too after a change.
            capture-agent install and the package write a first version naming the root filesystem from /etc/fstab as the target; capture-agent config import writes one from /etc/kdump.conf or /etc/default/kdump-tools.
            """);
        sb.Append(".SH KEYS\n");
        foreach (var k in ConfigKeys.All)
        {
            sb.Append(".TP\n.B ").Append(Escape(k.Name)).Append(" = \\fI").Append(Escape(k.Syntax)).Append("\\fR\n");
            sb.Append(Escape(k.Doc)).Append('\n');
            sb.Append(".br\nDefault: ").Append(Escape(k.DefaultDescription)).Append(k.Repeatable ? " (repeatable)" : "").Append(".\n");
        }
        sb.Append(".SH EXAMPLE\n");
        NoFill(sb, """
            # Try the NFS server first, then the local dump partition.
            target = nfs:10.0.2.2:/srv/crash
            target = LABEL=crashdump
            path = /var/crash/{host}-{date}
            dump_level = 31
            keep_dumps = 3
            final_action = reboot
            """);
        sb.Append(".SH FILES\n.TP\n.I /etc/capture\\-agent.conf\nThis file.\n");
        sb.Append(".SH SEE ALSO\n.BR capture\\-agent (8)\n");
        return sb.ToString();
    }

    private static void Header(StringBuilder sb, string title, int section, DateTimeOffset? date, string manual)
    {
        string when = date?.UtcDateTime.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture) ?? "";
        sb.Append($".TH \"{title}\" \"{section}\" \"{when}\" \"capture-agent {Escape(BuildInfo.Version)}\" \"{manual}\"\n");
    }

    private static void Paragraphs(StringBuilder sb, string text)
    {
        bool first = true;
        foreach (var p in text.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            if (!first) sb.Append(".PP\n");
            first = false;
            sb.Append(Escape(p.Trim())).Append('\n');
        }
    }

    /// <summary>A help text line for line: no filling, no adjusting, no hyphenation.</summary>
    private static void NoFill(StringBuilder sb, string text)
    {
        sb.Append(".nf\n");
        foreach (var line in text.TrimEnd('\n').Split('\n')) sb.Append(Escape(line)).Append('\n');
        sb.Append(".fi\n");
    }

    private static string Sentence(string s) => s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..] + (s.EndsWith('.') ? "" : ".");

    /// <summary>
    /// Text as roff reads it literally: backslashes printed, '-' as a minus (options stay
    /// copy-pasteable), and a line that starts with '.' or '\'' not taken as a request.
    /// </summary>
    public static string Escape(string text)
    {
        var sb = new StringBuilder(text.Length + 8);
        foreach (char c in text)
        {
            switch (c)
            {
                case '\\': sb.Append("\\e"); break;
                case '-': sb.Append("\\-"); break;
                default: sb.Append(c); break;
            }
        }
        string s = sb.ToString();
        return s.Length > 0 && s[0] is '.' or '\'' ? "\\&" + s : s;
    }
}

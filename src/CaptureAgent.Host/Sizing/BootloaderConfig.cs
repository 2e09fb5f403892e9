using System.Text;
using System.Text.RegularExpressions;
using CaptureAgent.Config;
namespace CaptureAgent.Sizing;

/// <summary>A file to write: its content before (null: new file) and after, and the mode it keeps.</summary>
public sealed record FileChange(string Path, string? Before, string After, UnixFileMode Mode, string What)
{
    public bool Changed => Before != After;
}

public sealed record BootloaderPlan(IReadOnlyList<FileChange> Changes, IReadOnlyList<string> Notes, bool GrubSnippet)
{
    public bool AnyChange => Changes.Any(c => c.Changed);
}

/// <summary>
/// Puts crashkernel= where each boot loader takes the kernel command line from: a GRUB snippet
/// (Debian's grub-mkconfig reads /etc/default/grub.d/*.cfg after /etc/default/grub), or
/// GRUB_CMDLINE_LINUX itself where there is no grub.d; every Boot Loader Specification entry's
/// `options` line (systemd-boot, and GRUB with BLS on Fedora/RHEL); and /etc/kernel/cmdline, which
/// kernel-install copies into new entries and UKIs. Writes are atomic (temp file, rename) and keep
/// the mode; a second run with the same size changes nothing.
/// </summary>
public static class BootloaderConfig
{
    public const string GrubDefault = "etc/default/grub";
    public const string GrubSnippetDir = "etc/default/grub.d";
    public const string GrubSnippetName = "capture-agent.cfg";
    public const string KernelCmdline = "etc/kernel/cmdline";
    public static readonly string[] BlsDirectories = ["boot/loader/entries", "efi/loader/entries", "boot/efi/loader/entries"];

    private const UnixFileMode DefaultMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead;

    public static string GrubSnippet(string size) =>
        "# Written by `capture-agent crashkernel`: memory reserved for the capture kernel.\n" +
        "# The kernel uses the last crashkernel= of its command line, so this one wins over earlier ones.\n" +
        $"GRUB_CMDLINE_LINUX_DEFAULT=\"$GRUB_CMDLINE_LINUX_DEFAULT crashkernel={size}\"\n";

    public static BootloaderPlan Plan(string root, string size)
    {
        if (!IsValidSize(size)) throw new ArgumentException($"'{size}' is not a crashkernel size (e.g. 128M, 1G, or ranges like 1G-4G:192M,4G-:256M)");
        var changes = new List<FileChange>();
        var notes = new List<string>();
        string R(string rel) => Path.Combine(root, rel);

        bool grubSnippet = false;
        bool grubDir = Directory.Exists(R(GrubSnippetDir)) || File.Exists(R("usr/sbin/update-grub"));
        if (grubDir)
        {
            grubSnippet = true;
            string snippet = Path.Combine(R(GrubSnippetDir), GrubSnippetName);
            changes.Add(Change(snippet, GrubSnippet(size), "GRUB (grub.d snippet)"));
            foreach (var other in OtherGrubFiles(root))
            {
                var text = File.ReadAllText(other);
                if (!Regex.IsMatch(text, @"(?m)^[^#\n]*crashkernel=")) continue;
                bool later = Path.GetDirectoryName(other) == R(GrubSnippetDir)
                             && string.CompareOrdinal(Path.GetFileName(other), GrubSnippetName) > 0;
                notes.Add(later
                    ? $"{other} also sets crashkernel= and is read after {GrubSnippetName}: its value wins; remove it there"
                    : $"{other} also sets crashkernel=; ours comes later on the command line and wins");
            }
        }
        else if (File.Exists(R(GrubDefault)))
        {
            // No grub.d (Fedora, SUSE): edit GRUB_CMDLINE_LINUX itself.
            string path = R(GrubDefault);
            string before = File.ReadAllText(path);
            changes.Add(new FileChange(path, before, SetInGrubDefault(before, size), ModeOf(path), "GRUB (/etc/default/grub)"));
            notes.Add("regenerate grub.cfg: grub2-mkconfig -o /boot/grub2/grub.cfg (or grubby --update-kernel=ALL --args=crashkernel=" + size + ")");
        }

        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var rel in BlsDirectories)
        {
            string dir = R(rel);
            if (!Directory.Exists(dir)) continue;
            string real = new DirectoryInfo(dir).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? Path.GetFullPath(dir);
            if (!seen.Add(real)) continue;
            foreach (var entry in Directory.EnumerateFiles(dir, "*.conf").Order(StringComparer.Ordinal))
            {
                string before = File.ReadAllText(entry);
                changes.Add(new FileChange(entry, before, SetInBlsEntry(before, size), ModeOf(entry), "BLS entry"));
            }
        }
        if (File.Exists(R(KernelCmdline)))
        {
            string path = R(KernelCmdline);
            string before = File.ReadAllText(path);
            string line = string.Join(' ', before.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Trim()));
            string after = SetCrashkernel(line, size) + "\n";
            if (after.TrimEnd('\n') == before.TrimEnd('\n')) after = before;
            changes.Add(new FileChange(path, before, after, ModeOf(path), "kernel-install cmdline"));
        }
        if (changes.Count == 0)
            notes.Add($"no boot loader configuration found under {root} (looked for {GrubDefault}, {GrubSnippetDir}, {string.Join(", ", BlsDirectories)}, {KernelCmdline}); add crashkernel={size} to the kernel command line by hand");
        return new BootloaderPlan(changes, notes, grubSnippet);
    }

    /// <summary>
    /// crashkernel=SIZE in a command line: the one existing token replaced in place, several (e.g.
    /// X,high plus Y,low) replaced by one at the end, none: appended. Unchanged input comes back as is.
    /// </summary>
    public static string SetCrashkernel(string cmdline, string size)
    {
        var tokens = CaptureCommandLine.Tokenize(cmdline);
        string wanted = "crashkernel=" + size;
        var existing = tokens.Where(IsCrashkernel).ToList();
        if (existing.Count == 1 && existing[0] == wanted) return cmdline;
        if (existing.Count == 1) return string.Join(' ', tokens.Select(t => IsCrashkernel(t) ? wanted : t));
        return string.Join(' ', tokens.Where(t => !IsCrashkernel(t)).Append(wanted));
    }

    private static bool IsCrashkernel(string token) => token.StartsWith("crashkernel=", StringComparison.Ordinal);

    /// <summary>Every BLS `options` line gets the value; an entry without one gets an options line.</summary>
    public static string SetInBlsEntry(string entry, string size)
    {
        var lines = entry.Split('\n');
        bool found = false;
        for (int i = 0; i < lines.Length; i++)
        {
            var m = Regex.Match(lines[i], @"^(\s*options)(?:[ \t]+(.*?))?[ \t\r]*$");
            if (!m.Success) continue;
            found = true;
            string value = m.Groups[2].Value;
            string updated = SetCrashkernel(value, size);
            if (updated != value) lines[i] = m.Groups[1].Value + " " + updated.TrimStart();
        }
        string result = string.Join('\n', lines);
        if (!found) result = result.TrimEnd('\n') + $"\noptions crashkernel={size}\n";
        return result;
    }

    /// <summary>GRUB_CMDLINE_LINUX="..." gets the value; without that line one is appended.</summary>
    public static string SetInGrubDefault(string text, string size)
    {
        var lines = text.Split('\n');
        bool found = false;
        for (int i = 0; i < lines.Length; i++)
        {
            var m = Regex.Match(lines[i], "^(\\s*(?:export\\s+)?GRUB_CMDLINE_LINUX=)([\"']?)(.*?)\\2(\\s*)$");
            if (!m.Success) continue;
            found = true;
            string q = m.Groups[2].Value.Length > 0 ? m.Groups[2].Value : "\"";
            string value = m.Groups[3].Value;
            string updated = SetCrashkernel(value, size);
            if (updated != value) lines[i] = m.Groups[1].Value + q + updated + q + m.Groups[4].Value;
        }
        string result = string.Join('\n', lines);
        if (!found) result = result.TrimEnd('\n') + $"\nGRUB_CMDLINE_LINUX=\"crashkernel={size}\"\n";
        return result;
    }

    /// <summary>A size, an offset form (SIZE@OFFSET), ",high"/",low", or the ranges syntax.</summary>
    public static bool IsValidSize(string size) =>
        Regex.IsMatch(size, @"^(\d+[KMGT]?(@\d+[KMGT]?)?(,(high|low))?|(\d+[KMGT]?-(\d+[KMGT]?)?:\d+[KMGT]?,?)+(@\d+[KMGT]?)?)$");

    private static IEnumerable<string> OtherGrubFiles(string root)
    {
        string main = Path.Combine(root, GrubDefault);
        if (File.Exists(main)) yield return main;
        string dir = Path.Combine(root, GrubSnippetDir);
        if (!Directory.Exists(dir)) yield break;
        foreach (var f in Directory.EnumerateFiles(dir, "*.cfg").Order(StringComparer.Ordinal))
            if (Path.GetFileName(f) != GrubSnippetName) yield return f;
    }

    private static FileChange Change(string path, string after, string what) =>
        new(path, File.Exists(path) ? File.ReadAllText(path) : null, after, File.Exists(path) ? ModeOf(path) : DefaultMode, what);

    private static UnixFileMode ModeOf(string path) => File.GetUnixFileMode(path);

    /// <summary>Writes the new content atomically: a temp file in the same directory, fsynced, renamed over.</summary>
    public static void Apply(FileChange change)
    {
        if (!change.Changed) return;
        string dir = Path.GetDirectoryName(change.Path)!;
        if (File.Exists(change.Path) && new FileInfo(change.Path).LinkTarget is not null)
            throw new IOException($"{change.Path} is a symbolic link; not replacing it (edit its target by hand)");
        if (change.Before is null && File.Exists(change.Path))
            throw new IOException($"{change.Path} appeared while planning; run again");
        Directory.CreateDirectory(dir);
        string tmp = Path.Combine(dir, $".{Path.GetFileName(change.Path)}.capture-agent.{Environment.ProcessId}");
        try
        {
            using (var fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                fs.Write(Encoding.UTF8.GetBytes(change.After));
                fs.Flush(flushToDisk: true);
            }
            File.SetUnixFileMode(tmp, change.Mode);
            File.Move(tmp, change.Path, overwrite: true);
        }
        catch
        {
            try { File.Delete(tmp); } catch (IOException) { }
            throw;
        }
    }

    /// <summary>A unified diff of one change (one hunk around the changed lines, 2 lines of context).</summary>
    public static string Diff(FileChange change, string? displayPath = null)
    {
        string name = displayPath ?? change.Path;
        var sb = new StringBuilder();
        sb.Append("--- ").Append(change.Before is null ? "/dev/null" : name).Append('\n');
        sb.Append("+++ ").Append(name).Append('\n');
        var a = Lines(change.Before ?? "");
        var b = Lines(change.After);
        int prefix = 0;
        while (prefix < a.Count && prefix < b.Count && a[prefix] == b[prefix]) prefix++;
        int suffix = 0;
        while (suffix < a.Count - prefix && suffix < b.Count - prefix && a[^(suffix + 1)] == b[^(suffix + 1)]) suffix++;
        int start = Math.Max(0, prefix - 2);
        int endA = Math.Min(a.Count, a.Count - suffix + 2), endB = Math.Min(b.Count, b.Count - suffix + 2);
        int lenA = endA - start, lenB = endB - start;
        sb.Append($"@@ -{(lenA == 0 ? start : start + 1)},{lenA} +{(lenB == 0 ? start : start + 1)},{lenB} @@\n");
        for (int i = start; i < prefix; i++) sb.Append(' ').Append(a[i]).Append('\n');
        for (int i = prefix; i < a.Count - suffix; i++) sb.Append('-').Append(a[i]).Append('\n');
        for (int i = prefix; i < b.Count - suffix; i++) sb.Append('+').Append(b[i]).Append('\n');
        for (int i = a.Count - suffix; i < endA; i++) sb.Append(' ').Append(a[i]).Append('\n');
        return sb.ToString();
    }

    private static List<string> Lines(string text)
    {
        var lines = text.Split('\n').ToList();
        if (lines.Count > 0 && lines[^1].Length == 0) lines.RemoveAt(lines.Count - 1);
        return lines;
    }
}

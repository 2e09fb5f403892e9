using System.Text;
using CaptureAgent.Config;
using CaptureAgent.Targets;

namespace CaptureAgent.Host;

public enum InstallKind
{
    /// <summary>A file written from <see cref="InstallItem.Text"/>, replacing what is there.</summary>
    File,
    /// <summary>The agent binary copied from <see cref="InstallItem.Source"/> (left alone when it is that file already).</summary>
    Binary,
    /// <summary>Written only when missing: the administrator's config is never overwritten.</summary>
    FileIfMissing,
    /// <summary>A symbolic link to <see cref="InstallItem.Text"/> (a unit enabled as `systemctl enable` does).</summary>
    Link,
}

/// <summary>One thing `install` puts on the host; <see cref="Path"/> is absolute on the host (not below the root).</summary>
public sealed record InstallItem(string Path, InstallKind Kind, UnixFileMode Mode, string? Text = null, string? Source = null)
{
    public string ModeText => Kind == InstallKind.Link ? "link" : Convert.ToString((int)Mode, 8).PadLeft(4, '0');
}

/// <summary>
/// `capture-agent install` and `uninstall`: the binary, a default config, the systemd units
/// (enabled) and the kernel package hooks, all below a root directory.
/// </summary>
public static class Installer
{
    /// <summary>Everything install writes, in the order it is written.</summary>
    public static List<InstallItem> Plan(HostLayout host, string agentSource, bool enable = true)
    {
        var items = new List<InstallItem>
        {
            new(HostLayout.AgentBinary, InstallKind.Binary, HostFiles.Mode0755, Source: agentSource),
            new(HostLayout.ConfigFile, InstallKind.FileIfMissing, HostFiles.Mode0600, Text: DefaultConfig(host, out _)),
            new(KernelHooks.Service, InstallKind.File, HostFiles.Mode0644, KernelHooks.ServiceUnit),
            new(KernelHooks.SavecoreService, InstallKind.File, HostFiles.Mode0644, KernelHooks.SavecoreUnit),
            new(KernelHooks.DebianPostinst, InstallKind.File, HostFiles.Mode0755, KernelHooks.DebianPostinstScript),
            new(KernelHooks.DebianPostrm, InstallKind.File, HostFiles.Mode0755, KernelHooks.DebianPostrmScript),
            new(KernelHooks.KernelInstallPlugin, InstallKind.File, HostFiles.Mode0755, KernelHooks.KernelInstallScript),
        };
        if (enable)
            foreach (var unit in new[] { KernelHooks.Service, KernelHooks.SavecoreService })
                items.Add(new(KernelHooks.WantsDirectory + "/" + Path.GetFileName(unit), InstallKind.Link, 0, unit));
        return items;
    }

    /// <summary>Writes the plan (or, with <paramref name="dryRun"/>, only says what it would write); one line per item.</summary>
    public static void Apply(HostLayout host, IEnumerable<InstallItem> items, bool dryRun, Action<string> report)
    {
        foreach (var item in items)
        {
            string path = host.Under(item.Path);
            string verb = dryRun ? "would write" : "wrote";
            switch (item.Kind)
            {
                case InstallKind.FileIfMissing when File.Exists(path) || new FileInfo(path).LinkTarget is not null:
                    report($"kept {item.Path} (exists)");
                    continue;
                case InstallKind.Binary when SameFile(item.Source!, path):
                    report($"kept {item.Path} (already this binary)");
                    continue;
                case InstallKind.Link when new FileInfo(path).LinkTarget == item.Text:
                    report($"kept {item.Path} -> {item.Text}");
                    continue;
            }
            if (dryRun)
            {
                report(item.Kind == InstallKind.Link ? $"would link {item.Path} -> {item.Text}" : $"{verb} {item.Path} ({item.ModeText})");
                continue;
            }
            HostFiles.MakeDirectory(Path.GetDirectoryName(path)!, HostFiles.Mode0755, refuseLink: false);
            switch (item.Kind)
            {
                case InstallKind.Binary:
                    HostFiles.WriteAtomic(path, item.Mode, s =>
                    {
                        using var src = File.OpenRead(item.Source!);
                        src.CopyTo(s);
                    });
                    break;
                case InstallKind.Link:
                    string tmp = $"{path}.tmp-{Environment.ProcessId}";
                    File.Delete(tmp);
                    File.CreateSymbolicLink(tmp, item.Text!);
                    File.Move(tmp, path, overwrite: true);
                    report($"linked {item.Path} -> {item.Text}");
                    continue;
                default:
                    HostFiles.WriteAtomic(path, item.Mode, item.Text!);
                    break;
            }
            report($"{verb} {item.Path} ({item.ModeText})");
        }
    }

    /// <summary>What uninstall removes: everything install wrote except the config (kept unless <paramref name="purge"/>), and the store.</summary>
    public static List<string> RemovalList(bool purge)
    {
        var paths = new List<string>
        {
            KernelHooks.WantsDirectory + "/" + Path.GetFileName(KernelHooks.Service),
            KernelHooks.WantsDirectory + "/" + Path.GetFileName(KernelHooks.SavecoreService),
            KernelHooks.Service, KernelHooks.SavecoreService,
            KernelHooks.DebianPostinst, KernelHooks.DebianPostrm, KernelHooks.KernelInstallPlugin,
            HostLayout.AgentBinary,
        };
        if (purge) paths.Add(HostLayout.ConfigFile);
        return paths;
    }

    public static void Uninstall(HostLayout host, bool purge, bool dryRun, Action<string> report)
    {
        foreach (var p in RemovalList(purge))
        {
            string path = host.Under(p);
            bool present = File.Exists(path) || new FileInfo(path).LinkTarget is not null;
            if (!present) continue;
            if (!dryRun) HostFiles.Remove(path);
            report($"{(dryRun ? "would remove" : "removed")} {p}");
        }
        if (Directory.Exists(host.Store) || new DirectoryInfo(host.Store).LinkTarget is not null)
        {
            if (!dryRun) HostFiles.RemoveTree(host.Store);
            report($"{(dryRun ? "would remove" : "removed")} {HostLayout.StoreDirectory} (the stored capture initramfs images)");
        }
        if (!purge && File.Exists(host.ConfigPath)) report($"kept {HostLayout.ConfigFile} (--purge removes it)");
    }

    /// <summary>
    /// A commented config whose target is the root filesystem as fstab names it (UUID= preferred:
    /// kernel names such as /dev/sda1 can change between boots), dumps under /var/crash.
    /// </summary>
    public static string DefaultConfig(HostLayout host, out List<string> notes)
    {
        notes = new List<string>();
        string? target = null, fsType = null, prefix = "";
        var root = Fstab.Root(Fstab.Load(host.Root));
        if (root is null) notes.Add($"{host.Under("/etc/fstab")} names no root filesystem: set target in {HostLayout.ConfigFile}");
        else
        {
            var (t, fs, pre, why) = Fstab.AsTarget(root);
            if (t is null) notes.Add($"the root filesystem cannot be the dump target ({why}): set target in {HostLayout.ConfigFile}");
            else
            {
                (target, fsType, prefix) = (t, fs, pre);
                if (TargetSpec.TryParse(t, out var spec, out _) && spec.Kind == TargetKind.Path)
                    target = UuidOf(host.Under(spec.Value)) is { } uuid ? "UUID=" + uuid : t;
            }
        }
        var sb = new StringBuilder();
        sb.Append("""
            # capture-agent configuration, written by `capture-agent install`. Check it with
            # `capture-agent config check`. The capture initramfs carries this file: after a change it
            # is rebuilt when capture-agent.service starts (or now: capture-agent kernel-hook add $(uname -r)).
            #
            # Dump targets, tried in order until one holds a complete dump: UUID=, LABEL=, /dev/NAME,
            # raw:DEVICE, nfs:HOST:/export, ssh:user@host[:port]

            """);
        if (target is not null) sb.Append($"target = {target}   # the root filesystem (from /etc/fstab)\n");
        else sb.Append("# target = UUID=...   # no usable root filesystem in /etc/fstab: name the target here\n");
        if (fsType is not null) sb.Append($"fstype = {fsType}\n");
        sb.Append($"path = {prefix}/var/crash\n");
        sb.Append("\n# What an absent line means (capture-agent.conf(5) describes every key):\n");
        foreach (var name in CommentedDefaults)
        {
            var key = ConfigKeys.Find(name)!;
            sb.Append($"# {name} = {key.Default}".PadRight(34)).Append("# ").Append(key.Syntax).Append('\n');
        }
        sb.Append('\n');
        return sb.ToString();
    }

    /// <summary>The keys whose defaults the written config shows, commented out (values from <see cref="ConfigKeys"/>).</summary>
    private static readonly string[] CommentedDefaults =
        ["dump_level", "compression", "keep_dumps", "keep_size", "min_free", "final_action", "failure_action", "early_load"];

    private static string? UuidOf(string node)
    {
        try { return File.Exists(node) ? SuperblockProbe.ProbePath(node).Uuid : null; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return null; }
    }

    private static bool SameFile(string source, string dest)
    {
        if (!File.Exists(dest)) return false;
        string? a = LinkSafePath.Resolve(source, out _), b = LinkSafePath.Resolve(dest, out _);
        if (a is not null && a == b) return true;
        // The same bytes installed earlier: nothing to do either.
        var sa = new FileInfo(source);
        var sb = new FileInfo(dest);
        if (sa.Length != sb.Length) return false;
        using var fa = File.OpenRead(source);
        using var fb = File.OpenRead(dest);
        var ba = new byte[1 << 16];
        var bb = new byte[1 << 16];
        while (true)
        {
            int n = fa.ReadAtLeast(ba, ba.Length, throwOnEndOfStream: false);
            int m = fb.ReadAtLeast(bb, bb.Length, throwOnEndOfStream: false);
            if (n != m || !ba.AsSpan(0, n).SequenceEqual(bb.AsSpan(0, m))) return false;
            if (n == 0) return true;
        }
    }
}

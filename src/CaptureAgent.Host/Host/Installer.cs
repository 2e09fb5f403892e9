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
    /// <summary>A file written gzip-compressed from <see cref="InstallItem.Text"/> (man pages).</summary>
    Gzip,
}

/// <summary>One thing `install` puts on the host; <see cref="Path"/> is absolute on the host (not below the root).</summary>
public sealed record InstallItem(string Path, InstallKind Kind, UnixFileMode Mode, string? Text = null, string? Source = null)
{
    public string ModeText => Kind == InstallKind.Link ? "link" : Convert.ToString((int)Mode, 8).PadLeft(4, '0');
}

/// <summary>What `install` is asked to do.</summary>
/// <param name="Enable">Enable the units (systemctl enable, or the links it would make).</param>
/// <param name="Stage">Lay out a package's files below the root (scripts/build-deb): every early hook of a
/// Debian system, no config (the package's postinst writes it), nothing enabled, no host checks.</param>
public sealed record InstallOptions(bool Enable = true, bool Stage = false);

/// <summary>The man pages (section 8 and 5) and the bash completion, made by the command-line layer from its command table.</summary>
public sealed record InstallDocs(string CommandManPage, string ConfigManPage, string BashCompletion);

/// <summary>
/// `capture-agent install` and `uninstall`: the binary, a default config, the systemd units with
/// their preset, the kernel package hooks, the early-boot hooks of the host's initramfs generator
/// (when early_load = yes), the man pages and the bash completion, all below a root directory.
/// The Debian package is this same list (scripts/build-deb stages it with --stage), so a host
/// installed either way has the same files in the same places.
/// </summary>
public static class Installer
{
    public const string Preset = "/usr/lib/systemd/system-preset/80-capture-agent.preset";
    public const string ManPage8 = "/usr/share/man/man8/capture-agent.8.gz";
    public const string ManPage5 = "/usr/share/man/man5/capture-agent.conf.5.gz";
    public const string BashCompletionFile = "/usr/share/bash-completion/completions/capture-agent";
    /// <summary>dpkg's list of the package's files: when it exists, the package owns these paths.</summary>
    public const string DpkgList = "/var/lib/dpkg/info/capture-agent.list";

    public const string PresetText = """
        # capture-agent: arm the capture kernel at boot, and extract dumps left on raw targets first.
        enable capture-agent.service
        enable capture-agent-savecore.service

        """;

    /// <summary>The units install enables, and the target that wants them.</summary>
    public static readonly string[] Units = [KernelHooks.Service, KernelHooks.SavecoreService];

    /// <summary>Where older versions of install put the units (removed so they cannot shadow /usr/lib's).</summary>
    public static readonly string[] LegacyUnits = ["/etc/systemd/system/capture-agent.service", "/etc/systemd/system/capture-agent-savecore.service"];

    /// <summary>Everything install writes, in the order it is written.</summary>
    public static List<InstallItem> Plan(HostLayout host, string agentSource, InstallOptions o, InstallDocs docs)
    {
        var items = new List<InstallItem> { new(HostLayout.AgentBinary, InstallKind.Binary, HostFiles.Mode0755, Source: agentSource) };
        if (!o.Stage) items.Add(new(HostLayout.ConfigFile, InstallKind.FileIfMissing, HostFiles.Mode0600, Text: DefaultConfig(host, out _)));
        items.AddRange(
        [
            new(KernelHooks.Service, InstallKind.File, HostFiles.Mode0644, KernelHooks.ServiceUnit),
            new(KernelHooks.SavecoreService, InstallKind.File, HostFiles.Mode0644, KernelHooks.SavecoreUnit),
            new(Preset, InstallKind.File, HostFiles.Mode0644, PresetText),
            new(KernelHooks.DebianPostinst, InstallKind.File, HostFiles.Mode0755, KernelHooks.DebianPostinstScript),
            new(KernelHooks.DebianPostrm, InstallKind.File, HostFiles.Mode0755, KernelHooks.DebianPostrmScript),
            new(KernelHooks.KernelInstallPlugin, InstallKind.File, HostFiles.Mode0755, KernelHooks.KernelInstallScript),
        ]);
        foreach (var g in EarlyGenerators(host, o))
            foreach (var (path, text) in g.Files)
                // mkinitcpio sources its hook files; the others are run (or, for dracut's, copied with their mode).
                items.Add(new(path, InstallKind.File, path.StartsWith("/etc/initcpio/", StringComparison.Ordinal) ? HostFiles.Mode0644 : HostFiles.Mode0755, text));
        items.Add(new(ManPage8, InstallKind.Gzip, HostFiles.Mode0644, docs.CommandManPage));
        items.Add(new(ManPage5, InstallKind.Gzip, HostFiles.Mode0644, docs.ConfigManPage));
        items.Add(new(BashCompletionFile, InstallKind.File, HostFiles.Mode0644, docs.BashCompletion));
        return items;
    }

    /// <summary>
    /// Enables the units as the preset says: `systemctl --root=ROOT enable` when systemctl is there
    /// (it works without a running systemd), else the links it would make.
    /// </summary>
    public static void Enable(HostLayout host, bool dryRun, Action<string> report) => SetEnabled(host, true, dryRun, report);

    public static void Disable(HostLayout host, bool dryRun, Action<string> report) => SetEnabled(host, false, dryRun, report);

    private static void SetEnabled(HostLayout host, bool enable, bool dryRun, Action<string> report)
    {
        string verb = enable ? "enable" : "disable";
        if (dryRun)
        {
            foreach (var unit in Units) report($"would {verb} {Path.GetFileName(unit)} ({WantsLink(unit)})");
            return;
        }
        string? systemctl = new[] { "/usr/bin/systemctl", "/bin/systemctl" }.FirstOrDefault(File.Exists);
        if (systemctl is not null && (enable ? Units.All(u => File.Exists(host.Under(u))) : true))
        {
            var args = new List<string> { "--quiet" };
            if (!host.IsLiveRoot) args.Add("--root=" + host.Root);
            args.Add(verb);
            args.AddRange(Units.Select(Path.GetFileName)!);
            var (code, output) = RunTool(systemctl, args);
            if (code == 0)
            {
                foreach (var unit in Units) report($"{verb}d {Path.GetFileName(unit)} (systemctl {verb})");
                return;
            }
            report($"systemctl {verb} exited with {code}{(output.Length > 0 ? ": " + output.Trim() : "")}; making the links by hand");
        }
        foreach (var unit in Units)
        {
            string link = host.Under(WantsLink(unit));
            if (!enable)
            {
                if (new FileInfo(link).LinkTarget is not null) { File.Delete(link); report($"removed {WantsLink(unit)}"); }
                continue;
            }
            if (new FileInfo(link).LinkTarget == unit) continue;
            HostFiles.MakeDirectory(Path.GetDirectoryName(link)!, HostFiles.Mode0755, refuseLink: false);
            string tmp = $"{link}.tmp-{Environment.ProcessId}";
            File.Delete(tmp);
            File.CreateSymbolicLink(tmp, unit);
            File.Move(tmp, link, overwrite: true);
            report($"linked {WantsLink(unit)} -> {unit}");
        }
    }

    private static (int Code, string Output) RunTool(string program, IEnumerable<string> args)
    {
        var psi = new System.Diagnostics.ProcessStartInfo(program) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        try
        {
            using var p = System.Diagnostics.Process.Start(psi)!;
            var stdout = p.StandardOutput.ReadToEndAsync();
            string stderr = p.StandardError.ReadToEnd();
            if (!p.WaitForExit(120_000)) { p.Kill(); return (-1, "did not finish in 120 s"); }
            return (p.ExitCode, stdout.Result + stderr);
        }
        catch (System.ComponentModel.Win32Exception e) { return (-1, e.Message); }
    }

    /// <summary>
    /// The early-boot hooks to install: a package ships those of every generator Debian has (each
    /// packs nothing unless early_load = yes); a host gets those of its own generator, and only
    /// when its config asks for early arming.
    /// </summary>
    public static List<InitramfsGenerator> EarlyGenerators(HostLayout host, InstallOptions o)
    {
        if (o.Stage) return EarlyHooks.Generators.Where(g => g.Name is "initramfs-tools" or "dracut").ToList();
        return Config.AgentConfig.Load(host.ConfigPath).EarlyLoad ? EarlyHooks.Installed(host) : [];
    }

    /// <summary>The link `systemctl enable` makes for a unit wanted by multi-user.target.</summary>
    public static string WantsLink(string unit) => "/etc/systemd/system/multi-user.target.wants/" + Path.GetFileName(unit);

    /// <summary>Why install must not run here (the package owns the files), or null.</summary>
    public static string? PackageOwned(HostLayout host) =>
        File.Exists(host.Under(DpkgList))
            ? "capture-agent is installed as a Debian package: its files are dpkg's (apt upgrade, apt remove, apt purge)"
            : null;

    /// <summary>Writes the plan (or, with <paramref name="dryRun"/>, only says what it would write); one line per item.</summary>
    public static void Apply(HostLayout host, IEnumerable<InstallItem> items, bool dryRun, Action<string> report)
    {
        foreach (var legacy in LegacyUnits)
        {
            string path = host.Under(legacy);
            if (!File.Exists(path)) continue;
            if (!dryRun)
            {
                HostFiles.Remove(host.Under(WantsLink(legacy)));
                HostFiles.Remove(path);
            }
            report($"{(dryRun ? "would remove" : "removed")} {legacy} (an older install's; the unit is in /usr/lib/systemd/system now)");
        }
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
                case InstallKind.Gzip:
                    // gzip -9n: no name, no time stamp, so the same text gives the same bytes.
                    HostFiles.WriteAtomic(path, item.Mode, s =>
                    {
                        using var gz = new System.IO.Compression.GZipStream(s, System.IO.Compression.CompressionLevel.SmallestSize, leaveOpen: true);
                        gz.Write(Encoding.UTF8.GetBytes(item.Text!));
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

    /// <summary>What uninstall removes: every file any install writes except the config (kept unless <paramref name="purge"/>), and the store.</summary>
    public static List<string> RemovalList(bool purge)
    {
        var paths = new List<string>();
        paths.AddRange(Units.Select(WantsLink));
        paths.AddRange(Units);
        paths.AddRange(LegacyUnits);
        paths.AddRange([Preset, KernelHooks.DebianPostinst, KernelHooks.DebianPostrm, KernelHooks.KernelInstallPlugin]);
        paths.AddRange(EarlyHooks.Generators.SelectMany(g => g.Files.Select(f => f.Path)));
        paths.AddRange([ManPage8, ManPage5, BashCompletionFile, HostLayout.AgentBinary]);
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
        // The directories that only install made, once empty (never /usr/lib/dracut/modules.d itself).
        foreach (var dir in new[] { EarlyHooks.DracutModuleDirectory })
        {
            string d = host.Under(dir);
            if (Directory.Exists(d) && !Directory.EnumerateFileSystemEntries(d).Any())
            {
                if (!dryRun) Directory.Delete(d);
                report($"{(dryRun ? "would remove" : "removed")} {dir}");
            }
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
            # capture-agent configuration, written by `capture-agent install` or the package. Check it with
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

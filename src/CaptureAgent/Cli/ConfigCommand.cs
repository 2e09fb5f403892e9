using System.Globalization;
using CaptureAgent.Config;
using CaptureAgent.Common;

namespace CaptureAgent.Cli;

/// <summary>
/// `capture-agent config import`: an existing kdump configuration (RHEL/Fedora /etc/kdump.conf and
/// /etc/sysconfig/kdump, or Debian/Ubuntu /etc/default/kdump-tools) as capture-agent.conf.
/// `capture-agent config check [FILE]`: every error with its line, or the effective settings.
/// </summary>
public static class ConfigCommand
{
    public const string Usage = """
        usage: capture-agent config import [--kdump-conf PATH] [--sysconfig PATH] [--kdump-tools PATH]
                 [--root DIR] [-o OUT [--force]]
               capture-agent config check [FILE]
               capture-agent config default [--root DIR] [-o OUT [--force]]
          import   reads RHEL/Fedora /etc/kdump.conf + /etc/sysconfig/kdump, or Debian/Ubuntu
                   /etc/default/kdump-tools (the standard paths under --root when no path is given;
                   /etc/fstab under --root names the filesystems), and writes the equivalent
                   capture-agent.conf to OUT (0600; an existing OUT only with --force) or stdout.
                   Settings without an equivalent are kept as comments saying why, and listed on stderr.
          check    parses FILE (default /etc/capture-agent.conf): each error with its line, exit 1;
                   otherwise the effective settings, defaults included.
          default  the configuration `install` and the package write when there is none: the root
                   filesystem of /etc/fstab (under --root) as the target by UUID, path /var/crash,
                   the defaults of the main keys as comments; to OUT (0600) or stdout.
        """;

    public static int Run(string[] args) => Run(args, Console.Out, Console.Error);

    public static int Run(string[] args, TextWriter stdout, TextWriter stderr) =>
        CommandLine.Run(Usage, args, a => Subcommand(a, stdout, stderr), stdout, stderr);

    private static int Subcommand(string[] args, TextWriter stdout, TextWriter stderr)
    {
        if (args.Length == 0) throw new UsageException("config: expected import, check or default");
        return args[0] switch
        {
            "import" => Import(args[1..], stdout, stderr),
            "check" => Check(args[1..], stdout, stderr),
            "default" => Default(args[1..], stdout, stderr),
            _ => throw new UsageException($"unknown config command '{args[0]}'"),
        };
    }

    private static int Import(string[] args, TextWriter stdout, TextWriter stderr)
    {
        string? kdumpConf = null, sysconfig = null, kdumpTools = null, output = null;
        string root = "/";
        bool force = false;
        var cli = new ArgReader("config import", args);
        while (cli.Next() is { } option)
        {
            switch (option)
            {
                case "--force": force = true; break;
                case "--kdump-conf": kdumpConf = cli.Value(); break;
                case "--sysconfig": sysconfig = cli.Value(); break;
                case "--kdump-tools": kdumpTools = cli.Value(); break;
                case "--root": root = cli.Value(); break;
                case "-o" or "--output": output = cli.Value(); break;
                default: throw cli.Unknown();
            }
        }
        cli.NoOperands();
        if (!Directory.Exists(root)) throw cli.Error($"--root {root} is not a directory");
        if (output == "-") output = null;

        bool explicitPaths = kdumpConf is not null || sysconfig is not null || kdumpTools is not null;
        if (!explicitPaths)
        {
            kdumpConf = Existing(root, KdumpConfImporter.ConfPath);
            sysconfig = Existing(root, KdumpConfImporter.SysconfigPath);
            kdumpTools = Existing(root, KdumpToolsImporter.DefaultsPath);
        }
        if ((kdumpConf is not null || sysconfig is not null) && kdumpTools is not null)
        {
            string which = explicitPaths ? "both RHEL (--kdump-conf/--sysconfig) and Debian (--kdump-tools) files were given"
                                         : $"both {KdumpConfImporter.ConfPath} and {KdumpToolsImporter.DefaultsPath} exist under {root}";
            throw new UsageException($"{which}: import one with --kdump-conf or --kdump-tools");
        }
        if (kdumpConf is null && sysconfig is null && kdumpTools is null)
        {
            stderr.WriteLine($"capture-agent: error: nothing to import: none of {KdumpConfImporter.ConfPath}, {KdumpConfImporter.SysconfigPath}, {KdumpToolsImporter.DefaultsPath} under {root}");
            return ExitCodes.Failed;
        }

        var import = new ConfigImport();
        try
        {
            if (kdumpTools is not null)
                KdumpToolsImporter.Import(import, Read(kdumpTools, root), root);
            else
                KdumpConfImporter.Import(import, kdumpConf is null ? null : Read(kdumpConf, root), sysconfig is null ? null : Read(sysconfig, root), root);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            stderr.WriteLine($"capture-agent: error: {e.Message}");
            return ExitCodes.Failed;
        }

        string text = import.Render();
        // The importer checks each value as it sets it; this is the whole file, as `config check` reads it.
        var parsed = AgentConfig.Parse(text, output ?? "output");
        foreach (var e in parsed.Errors) stderr.WriteLine($"capture-agent: error: the imported configuration does not parse: {e}");

        foreach (var w in import.Warnings) stderr.WriteLine($"capture-agent: warning: {w}");
        foreach (var n in import.Notes) stderr.WriteLine($"capture-agent: note: {n}");
        foreach (var r in import.Remarks) stderr.WriteLine($"capture-agent: note: {r}");
        foreach (var n in import.NotImportedInFileOrder()) stderr.WriteLine($"capture-agent: not imported: {n.Origin.Where}: {n.Origin.Text}: {n.Why}");

        if (output is null)
        {
            stdout.Write(text);
            stdout.Flush();
        }
        else
        {
            try
            {
                WriteAtomically(output, text, force);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                stderr.WriteLine($"capture-agent: error: {e.Message}");
                return ExitCodes.Failed;
            }
            stderr.WriteLine($"capture-agent: wrote {output}: {import.Settings.Count()} settings, {import.NotImported.Count} not imported (listed at its end)");
        }
        return parsed.Errors.Count > 0 ? ExitCodes.Failed : ExitCodes.Ok;
    }

    private const int MaxImportBytes = 256 << 10, MaxImportLines = 4096;

    private static int Default(string[] args, TextWriter stdout, TextWriter stderr)
    {
        string root = Host.HostLayout.DefaultRoot();
        string? output = null;
        bool force = false;
        var cli = new ArgReader("config default", args);
        while (cli.Next() is { } option)
        {
            switch (option)
            {
                case "--force": force = true; break;
                case "--root": root = cli.Value(); break;
                case "-o" or "--output": output = cli.Value(); break;
                default: throw cli.Unknown();
            }
        }
        cli.NoOperands();
        if (!Directory.Exists(root)) throw cli.Error($"--root {root} is not a directory");
        string text = Host.Installer.DefaultConfig(new Host.HostLayout(root), out var notes);
        foreach (var n in notes) stderr.WriteLine($"capture-agent: warning: {n}");
        if (output is null or "-")
        {
            stdout.Write(text);
            return ExitCodes.Ok;
        }
        try
        {
            WriteAtomically(output, text, force);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            stderr.WriteLine($"capture-agent: error: {e.Message}");
            return ExitCodes.Failed;
        }
        stderr.WriteLine($"capture-agent: wrote {output}");
        return ExitCodes.Ok;
    }

    private static string? Existing(string root, string systemPath)
    {
        string p = Path.Combine(root, systemPath.TrimStart('/'));
        return File.Exists(p) ? p : null;
    }

    /// <summary>Reads a source; the name shown in notes is the system path when the file is under --root.</summary>
    private static ImportFile Read(string path, string root)
    {
        if (!File.Exists(path)) throw new IOException($"cannot read {path}: no such file");
        // kdump.conf, sysconfig/kdump and kdump-tools are a few KiB; the notes about each line must fit the heap too.
        string text = InputFile.ReadText(path, MaxImportBytes);
        int lines = text.Count(c => c == '\n');
        if (lines > MaxImportLines) throw new IOException($"{path} has {lines} lines, more than the {MaxImportLines} a kdump configuration file may have");
        string full = Path.GetFullPath(path), r = Path.GetFullPath(root).TrimEnd('/');
        string shown = r.Length > 0 && full.StartsWith(r + "/", StringComparison.Ordinal) ? full[r.Length..] : path;
        return new ImportFile(shown, text);
    }

    /// <summary>
    /// A temporary file (created exclusively, 0600) in OUT's directory, fsynced, then renamed over
    /// OUT: a crash leaves the old file or the new one, never half of one. rename(2) replaces a
    /// symlink at OUT rather than writing through it.
    /// </summary>
    public static void WriteAtomically(string output, string text, bool force)
    {
        var info = new FileInfo(output);
        bool exists = info.Exists || Directory.Exists(output) || info.LinkTarget is not null;
        if (Directory.Exists(output)) throw new IOException($"{output} is a directory");
        if (exists && !force) throw new IOException($"{output} exists: not overwritten (--force replaces it)");
        string dir = Path.GetDirectoryName(Path.GetFullPath(output))!;
        if (!Directory.Exists(dir)) throw new IOException($"cannot write {output}: {dir} does not exist");
        string tmp = Path.Combine(dir, $".{Path.GetFileName(output)}.{Environment.ProcessId}.{Environment.TickCount64:x}.tmp");
        try
        {
            using (var fs = new FileStream(tmp, new FileStreamOptions
                   {
                       Mode = FileMode.CreateNew,
                       Access = FileAccess.Write,
                       UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
                   }))
            {
                var bytes = new System.Text.UTF8Encoding(false).GetBytes(text);
                fs.Write(bytes);
                fs.Flush(flushToDisk: true);
            }
            // Without --force, a file that appeared meanwhile is not replaced either.
            File.Move(tmp, output, overwrite: force);
        }
        catch
        {
            try { File.Delete(tmp); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            throw;
        }
    }

    private static int Check(string[] args, TextWriter stdout, TextWriter stderr)
    {
        var cli = new ArgReader("config check", args);
        if (cli.Next() is not null) throw cli.Unknown();
        string path = cli.Operands(0, 1, "at most one FILE") is [var file] ? file : AgentConfig.DefaultPath;
        string text;
        try
        {
            text = path == "-" ? ReadLimited(Console.In) : InputFile.ReadText(path, AgentConfig.MaxBytes);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            stderr.WriteLine($"capture-agent: error: cannot read {path}: {ErrorText.Of(e)}");
            return ExitCodes.Failed;
        }
        var c = AgentConfig.Parse(text, path);
        // A config that leaves the capture kernel nowhere to write is an error, not a warning.
        var errors = c.NoUsableTarget(path) is { } none ? [.. c.Errors, none] : c.Errors;
        if (errors.Count > 0)
        {
            foreach (var e in errors) stderr.WriteLine($"capture-agent: error: {e}");
            stderr.WriteLine($"capture-agent: {path}: {errors.Count} error{(errors.Count == 1 ? "" : "s")}");
            return ExitCodes.Failed;
        }
        foreach (var (target, obstacle) in Host.CaptureImagePlan.StackObstacles(new Host.HostLayout(Host.HostLayout.DefaultRoot()), c))
            stderr.WriteLine($"capture-agent: warning: target {target.Text}: {obstacle}");
        foreach (var line in Effective(c)) stdout.WriteLine(line);
        return ExitCodes.Ok;
    }

    /// <summary>Standard input up to the size a config may have.</summary>
    private static string ReadLimited(TextReader input)
    {
        var buf = new char[AgentConfig.MaxBytes + 1];
        int n = input.ReadBlock(buf, 0, buf.Length);
        if (n > AgentConfig.MaxBytes) throw new IOException($"standard input holds more than the {AgentConfig.MaxBytes >> 10} KiB a config may have");
        return new string(buf, 0, n);
    }

    /// <summary>Every setting with the value the agent will use, as capture-agent.conf lines.</summary>
    public static IEnumerable<string> Effective(AgentConfig c)
    {
        foreach (var t in c.Targets) yield return $"target = {t.Text}";
        yield return c.FilesystemType is { } fs ? $"fstype = {fs}" : "# fstype: from each target's superblock";
        yield return $"path = {c.Path}";
        yield return $"dump_level = {(int)c.DumpLevel}";
        yield return $"fallback_dump_level = {(int)c.FallbackDumpLevel}";
        yield return $"compression = {(c.AutoCompression ? "auto" : Compression.PageCompressors.Name(c.Compression))}";
        yield return $"keep_dumps = {c.KeepDumps}";
        yield return $"keep_size = {Size(c.KeepBytes)}";
        yield return $"min_free = {Size(c.MinFreeBytes)}";
        yield return $"final_action = {c.FinalAction.ToString().ToLowerInvariant()}";
        yield return $"failure_action = {c.FailureAction.ToString().ToLowerInvariant()}";
        yield return $"device_timeout = {(int)c.DeviceTimeout.TotalSeconds}";
        yield return c.Network is { } net ? $"network = {net}" : $"# network: {(c.NeedsNetwork ? "dhcp (a target needs the network)" : "none (no target needs the network)")}";
        yield return $"network_interface = {c.NetworkInterface}";
        yield return $"network_timeout = {(int)c.NetworkTimeout.TotalSeconds}";
        yield return $"stall_timeout = {(int)c.StallTimeout.TotalSeconds}";
        yield return c.Dns.Count > 0 ? $"dns = {string.Join(',', c.Dns)}" : "# dns: none";
        yield return $"ssh_key = {c.SshKey}";
        yield return $"ssh_known_hosts = {c.SshKnownHosts}";
        yield return c.NfsOptions is { } o ? $"nfs_options = {o}" : "# nfs_options: capture-agent's defaults";
        foreach (var h in c.PreHooks) yield return $"pre_hook = {h}";
        foreach (var h in c.PostHooks) yield return $"post_hook = {h}";
        yield return c.ExtraModules.Count > 0 ? $"extra_modules = {string.Join(',', c.ExtraModules)}" : "# extra_modules: none";
        yield return c.Blacklist.Count > 0 ? $"blacklist = {string.Join(',', c.Blacklist)}" : "# blacklist: none";
        yield return c.KernelCommandLineAppend is { Length: > 0 } k ? $"kernel_cmdline_append = {k}" : "# kernel_cmdline_append: none";
        yield return $"save_raw_copy = {(c.SaveRawCopy ? "yes" : "no")}";
        yield return $"early_load = {(c.EarlyLoad ? "yes" : "no")}";
    }

    /// <summary>Bytes in the largest unit that divides them exactly (the config's own notation).</summary>
    public static string Size(long bytes)
    {
        if (bytes == 0) return "0";
        foreach (var (suffix, shift) in new[] { ("T", 40), ("G", 30), ("M", 20), ("K", 10) })
            if (bytes % (1L << shift) == 0) return (bytes >> shift).ToString(CultureInfo.InvariantCulture) + suffix;
        return bytes.ToString(CultureInfo.InvariantCulture);
    }
}

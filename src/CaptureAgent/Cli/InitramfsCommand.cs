using CaptureAgent.Initramfs;
using CaptureAgent.Output;
using CaptureAgent.Common;

namespace CaptureAgent.Cli;

/// <summary>`capture-agent initramfs build`: the capture initramfs, written in-process.</summary>
public static class InitramfsCommand
{
    public const string Usage = """
        usage: capture-agent initramfs build -o OUTPUT [--kernel-version KVER] [--modules-root DIR]
                 [--agent PATH] [--config FILE] [--target-device NAME] [--module NAME]... [--blacklist NAME]...
                 [--compress zstd|gzip|none] [--executable PATH]... [--file SRC:/DEST[:MODE]]...
          --target-device  a block device of THIS machine (vda1): its driver chain and filesystem
                           module go into the image (read from /sys)
          --modules-root   where DIR/lib/modules/KVER or DIR/usr/lib/modules/KVER is (an unpacked package)
          --module         an extra module or alias (dependencies, soft dependencies and what aliases
                           name are added); --blacklist leaves one out
          --executable     a program of this machine (/usr/bin/ssh) with its loader and libraries
          --file           a file of this machine copied into the image (mode octal, default 0600)
          --no-nic         do not add this machine's NIC driver for network targets (give --module instead)
        What the config's targets need is added by itself: the NFS client, ssh with its key and
        known_hosts, the hook programs, and this machine's NIC driver when a target uses the network.
        """;

    public static int Run(string[] args) => CommandLine.Run(Usage, args, Build);

    private static int Build(string[] args)
    {
        if (args.Length == 0 || args[0] != "build")
            throw new UsageException(args.Length == 0 ? "initramfs: expected build" : $"initramfs: unknown subcommand '{args[0]}' (build is the one)");
        string? output = null, config = null, targetDevice = null;
        string release = File.Exists("/proc/sys/kernel/osrelease") ? File.ReadAllText("/proc/sys/kernel/osrelease").Trim() : "";
        string modulesRoot = "/", agent = Environment.ProcessPath ?? "/proc/self/exe";
        var modules = new List<string>();
        var blacklist = new List<string>();
        var executables = new List<string>();
        bool noNic = false, allowConfigErrors = false;
        var extraFiles = new List<InitramfsFile>();
        var compression = ImageCompression.Zstd;
        var cli = new ArgReader("initramfs build", args[1..]);
        while (cli.Next() is { } option)
        {
            switch (option)
            {
                case "-o" or "--output": output = cli.Value(); break;
                case "--kernel-version": release = cli.Value(); break;
                case "--modules-root": modulesRoot = cli.Value(); break;
                case "--agent": agent = cli.Value(); break;
                case "--config": config = cli.Value(); break;
                case "--target-device": targetDevice = cli.Value(); break;
                case "--module": modules.AddRange(cli.List()); break;
                case "--blacklist": blacklist.AddRange(cli.List()); break;
                case "--executable": executables.Add(cli.Value()); break;
                case "--no-nic": noNic = true; break;
                case "--allow-config-errors": allowConfigErrors = true; break;   // testing aid: the capture kernel's handling of a bad config
                case "--file": extraFiles.Add(ParseFile(cli)); break;
                case "--compress": compression = ParseCompression(cli); break;
                default: if (!CommandLine.MessageOption(cli, option)) throw cli.Unknown(); break;
            }
        }
        cli.NoOperands();
        if (output is null) throw cli.Error("-o OUTPUT is required");
        if (release.Length == 0) throw cli.Error("--kernel-version is required here");
        string? tmp = null;   // removed unless it became the output
        try
        {
            // The same planning as the store's (Host/CaptureImagePlan): the config's targets as they
            // are attached now, what the targets need, extra_modules, blacklist, plus these options.
            var host = new Host.HostLayout("/");
            var plan = Host.CaptureImagePlan.Make(host, release, new Host.ImageRequest
            {
                ConfigPath = config, AgentPath = agent, ModulesRoot = modulesRoot, Modules = modules, Blacklist = blacklist,
                Executables = executables, Files = extraFiles, TargetDevice = targetDevice, NoNic = noNic, AllowConfigErrors = allowConfigErrors,
            });
            foreach (var line in plan.TargetIdentity) Log.Info(line);
            foreach (var note in plan.Notes) Log.Warn(note);
            tmp = output + ".tmp";
            InitramfsReport report;
            using (var f = FileSink.OpenStream(tmp))
            {
                report = InitramfsBuilder.Build(plan.ToSpec(compression), f);
                f.Flush(flushToDisk: true);
            }
            File.Move(tmp, output, overwrite: true);
            tmp = null;
            foreach (var n in report.Notes) Log.Info(n);
            Log.Info($"{output}: {report.CompressedBytes} bytes ({report.ArchiveBytes} uncompressed), modules: " +
                     (report.Modules.Count == 0 ? "none" : string.Join(' ', report.Modules.Select(m => m.Name))));
            return ExitCodes.Ok;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidDataException or ArgumentException)
        {
            Log.Error(ErrorText.Of(e));
            return ExitCodes.Failed;
        }
        finally
        {
            if (tmp is not null)
                try { File.Delete(tmp); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }

    private static InitramfsFile ParseFile(ArgReader cli)
    {
        try { return InitramfsFile.Parse(cli.Value()); }
        catch (ArgumentException e) { throw cli.Error(e.Message); }
    }

    private static ImageCompression ParseCompression(ArgReader cli) => cli.Value() switch
    {
        "zstd" => ImageCompression.Zstd,
        "gzip" => ImageCompression.Gzip,
        "none" => ImageCompression.None,
        var v => throw cli.Error($"--compress takes zstd, gzip or none, not {v}"),
    };
}

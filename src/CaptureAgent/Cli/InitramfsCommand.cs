using CaptureAgent.Initramfs;
using CaptureAgent.Output;

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

    public static int Run(string[] args)
    {
        if (args.Length == 0 || args[0] != "build")
        {
            Console.Error.WriteLine(Usage);
            return ExitCodes.Usage;
        }
        string? output = null, config = null, targetDevice = null;
        string release = File.Exists("/proc/sys/kernel/osrelease") ? File.ReadAllText("/proc/sys/kernel/osrelease").Trim() : "";
        string modulesRoot = "/", agent = Environment.ProcessPath ?? "/proc/self/exe";
        var modules = new List<string>();
        var blacklist = new List<string>();
        var executables = new List<string>();
        bool noNic = false;
        var extraFiles = new List<InitramfsFile>();
        var compression = ImageCompression.Zstd;
        for (int i = 1; i < args.Length; i++)
        {
            string a = args[i];
            string Next() => ++i < args.Length ? args[i] : throw new ArgumentException($"{a} needs a value");
            try
            {
                switch (a)
                {
                    case "-o" or "--output": output = Next(); break;
                    case "-v": Log.Level = 3; break;
                    case "-q": Log.Level = 0; break;
                    case "--kernel-version": release = Next(); break;
                    case "--modules-root": modulesRoot = Next(); break;
                    case "--agent": agent = Next(); break;
                    case "--config": config = Next(); break;
                    case "--target-device": targetDevice = Next(); break;
                    case "--module": modules.AddRange(Next().Split(',', StringSplitOptions.RemoveEmptyEntries)); break;
                    case "--blacklist": blacklist.AddRange(Next().Split(',', StringSplitOptions.RemoveEmptyEntries)); break;
                    case "--executable": executables.Add(Next()); break;
                    case "--no-nic": noNic = true; break;
                    case "--file": extraFiles.Add(InitramfsFile.Parse(Next())); break;
                    case "--compress":
                        compression = Next() switch
                        {
                            "zstd" => ImageCompression.Zstd,
                            "gzip" => ImageCompression.Gzip,
                            "none" => ImageCompression.None,
                            var v => throw new ArgumentException($"--compress takes zstd, gzip or none, not {v}"),
                        };
                        break;
                    default: throw new ArgumentException($"unknown option {a}");
                }
            }
            catch (ArgumentException e)
            {
                Log.Error(e.Message);
                Console.Error.WriteLine(Usage);
                return ExitCodes.Usage;
            }
        }
        if (output is null || release.Length == 0)
        {
            Log.Error(output is null ? "-o OUTPUT is required" : "--kernel-version is required here");
            return ExitCodes.Usage;
        }
        string? tmp = null;   // removed unless it became the output
        try
        {
            // The same planning as the store's (Host/CaptureImagePlan): the config's targets as they
            // are attached now, what the targets need, extra_modules, blacklist, plus these options.
            var host = new Host.HostLayout("/");
            var plan = Host.CaptureImagePlan.Make(host, release, new Host.ImageRequest
            {
                ConfigPath = config, AgentPath = agent, ModulesRoot = modulesRoot, Modules = modules, Blacklist = blacklist,
                Executables = executables, Files = extraFiles, TargetDevice = targetDevice, NoNic = noNic,
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
            Log.Error(e.Message);
            return ExitCodes.Failed;
        }
        finally
        {
            if (tmp is not null)
                try { File.Delete(tmp); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }
}

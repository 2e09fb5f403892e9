using CaptureAgent.Config;
using CaptureAgent.Targets;
using CaptureAgent.Common;
using CaptureAgent.Formats;
using CaptureAgent.Host;
namespace CaptureAgent.Cli;

/// <summary>
/// `capture-agent savecore`, run at boot (a systemd unit): extracts the dumps the capture kernel
/// wrote onto raw devices (the config's `target = raw:...` lines, or --device) into dump
/// directories. Exit 0 when nothing was waiting or everything came out whole, 3 when a dump was
/// cut short or damaged (extracted as vmcore-incomplete), 1 when a device could not be read, is
/// in use, or holds something else (a filesystem there would be destroyed by the next crash).
/// </summary>
public static class SavecoreCommand
{
    public const string Usage = """
        usage: capture-agent savecore [--device DEV]... [--config FILE] [--dir DIR] [--keep-header] [--discard] [--json]
          --device DEV    a raw dump device: /dev/NAME, PARTUUID=..., PARTLABEL=... (repeatable);
                          default: every `target = raw:...` line of the config
          --config FILE   default /etc/capture-agent.conf; its `path` says where dumps go (default /var/crash/{host}-{date})
          --dir DIR       extract into DIR/{host}-{date} instead
          --keep-header   extract but leave the device saying a dump is waiting
          --discard       forget the dump on the device without extracting it (after a damaged one was looked at)
          --json          one JSON object per device on stdout
        exit status: 0 nothing waiting or all extracted whole, 1 a device failed, 2 usage,
                     3 a dump was cut short or damaged (vmcore-incomplete), or whole with problems the capture reported
        """;

    public static int Run(string[] args) => CommandLine.Run(Usage, args, Savecore);

    private static int Savecore(string[] args)
    {
        var devices = new List<string>();
        string configPath = AgentConfig.DefaultPath;
        string? dir = null;
        bool keepHeader = false, discard = false, json = false, allowImage = false;
        var cli = new ArgReader("savecore", args);
        while (cli.Next() is { } option)
        {
            switch (option)
            {
                case "--device": devices.Add(cli.NonEmptyValue()); break;
                case "--config": configPath = cli.NonEmptyValue(); break;
                case "--dir": dir = cli.NonEmptyValue(); break;
                case "--keep-header": keepHeader = true; break;
                case "--discard": discard = true; break;
                case "--json": json = true; break;
                case "--allow-file": allowImage = true; break;   // testing aid: regular image files as devices
                default: throw cli.Unknown();
            }
        }
        cli.NoOperands();
        if (discard && keepHeader) throw cli.Error("--discard and --keep-header contradict each other");

        string template;
        var specs = new List<string>(devices);
        if (dir is not null)
        {
            if (dir.Contains('{')) throw cli.Error("--dir takes a directory; placeholders belong in the config's path");
            template = Path.GetFullPath(dir).TrimEnd('/') + "/" + PathTemplate.DefaultLeaf;
            if (PathTemplate.Validate(template) is { } bad) throw cli.Error("--dir: " + bad);
        }
        else template = "/var/crash/" + PathTemplate.DefaultLeaf;
        if (devices.Count == 0 || dir is null)
        {
            var config = AgentConfig.Load(configPath);
            foreach (var e in config.Errors.Where(e => e.Contains("target", StringComparison.Ordinal) || e.Contains("path", StringComparison.Ordinal)))
                Log.Warn(e);
            if (dir is null) template = config.Path;
            if (devices.Count == 0) specs.AddRange(config.Targets.Where(t => t.Type == TargetType.Raw).Select(t => t.Device!.ToString()));
        }
        if (specs.Count == 0)
        {
            if (json) JsonOutput.WriteArray<SavecoreResult>([], WriteResult);
            else Log.Info($"no raw dump device: none given and no `target = raw:...` in {configPath}");
            return ExitCodes.Ok;
        }

        var results = new List<SavecoreResult>();
        foreach (var spec in specs)
        {
            string? node = RawDeviceReader.Resolve(spec, out string? problem);
            SavecoreResult r = node is null
                ? new SavecoreResult(spec, SavecoreStatus.Failed, problem!)
                : discard
                    ? RawDeviceReader.Discard(node, allowImage)
                    : RawDeviceReader.Extract(node, template, keepHeader, allowImage, json ? null : Log.Info);
            results.Add(r);
            if (!json)
            {
                if (r.Status == SavecoreStatus.Failed) Log.Error(r.Summary);
                else Log.Info(r.Summary);
                foreach (var p in r.Problems.Skip(1)) Log.Warn(p);
            }
        }
        if (json)
        {
            JsonOutput.ToStdout(stdout => WriteJson(stdout, results));
        }
        if (results.Any(r => r.Status == SavecoreStatus.Failed)) return ExitCodes.Failed;
        return results.Any(r => r.Status is SavecoreStatus.Incomplete or SavecoreStatus.Degraded) ? ExitCodes.Degraded : ExitCodes.Ok;
    }

    /// <summary>One object per device (docs/json-output.md, savecore).</summary>
    internal static void WriteJson(Stream output, IReadOnlyList<SavecoreResult> results) => JsonOutput.WriteArray(output, results, WriteResult);

    private static void WriteResult(System.Text.Json.Utf8JsonWriter w, SavecoreResult r)
    {
        w.WriteString("device", r.Device);
        w.WriteString("status", StatusName(r.Status));
        w.WriteString("summary", r.Summary);
        w.StringOrNull("directory", r.Directory);
        w.StringOrNull("vmcore", r.VmcorePath);
        w.WriteNumber("vmcore_bytes", r.VmcoreBytes);
        w.StringOrNull("dmesg", r.DmesgPath);
        w.WriteBoolean("header_cleared", r.HeaderCleared);
        if (r.Header is { } h)
        {
            w.WriteString("host", h.Host);
            w.WriteString("kernel_release", h.KernelRelease);
            w.WriteString("crash_time", JsonOutput.Time(h.CrashTime));
        }
        w.StringArray("problems", r.Problems);
    }

    private static string StatusName(SavecoreStatus s) => s switch
    {
        SavecoreStatus.NoDump => "none",
        SavecoreStatus.Extracted => "extracted",
        SavecoreStatus.Degraded => "degraded",
        SavecoreStatus.Incomplete => "incomplete",
        _ => "failed",
    };
}

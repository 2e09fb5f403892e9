using CaptureAgent.Config;
using CaptureAgent.Targets.Raw;

namespace CaptureAgent.Cli;

/// <summary>
/// `capture-agent savecore`, on the boot after a crash: extracts the dumps the capture kernel wrote
/// onto raw devices (the config's `target = raw:...` entries, or --device) into dump directories.
/// Exit 0 when nothing was waiting or everything was extracted whole, 3 when a dump was cut short
/// or damaged (saved as vmcore-incomplete, the device left as it was), 1 on errors.
/// </summary>
public static class SavecoreCommand
{
    public const string Usage = """
        usage: capture-agent savecore [--device DEV]... [--config FILE] [--dir DIR] [--keep-header] [--allow-file]
          DIR defaults to the directory of the config's path (/var/crash)
        """;

    public static int Run(string[] args)
    {
        var devices = new List<string>();
        string configPath = AgentConfig.DefaultPath;
        string? dir = null;
        bool keepHeader = false, allowFile = false;
        for (int i = 0; i < args.Length; i++)
        {
            string a = args[i];
            string Next() => ++i < args.Length ? args[i] : throw new ArgumentException($"{a} needs a value");
            try
            {
                switch (a)
                {
                    case "--device": devices.Add(Next()); break;
                    case "--config": configPath = Next(); break;
                    case "--dir": dir = Next(); break;
                    case "--keep-header": keepHeader = true; break;
                    case "--allow-file": allowFile = true; break;
                    default: throw new ArgumentException($"unknown option {a}");
                }
            }
            catch (ArgumentException e)
            {
                Log.Error(e.Message);
                Console.Error.Write(Usage);
                return ExitCodes.Usage;
            }
        }
        var config = File.Exists(configPath) ? AgentConfig.Load(configPath) : new AgentConfig();
        if (devices.Count == 0)
            foreach (var t in config.Targets.Where(t => t.Type == TargetType.Raw))
            {
                // By-name specs (PARTLABEL=...) are found the way the capture kernel finds them.
                try { devices.Add(new Targets.TargetLocator().WaitFor(t.Device!, TimeSpan.Zero, TimeSpan.FromMilliseconds(100)).Node); }
                catch (IOException e) { Log.Warn($"{t}: {e.Message}"); }
            }
        if (devices.Count == 0)
        {
            Log.Info("no raw dump targets configured");
            return ExitCodes.Ok;
        }
        dir ??= ParentOf(config.Path);
        Directory.CreateDirectory(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        int rc = ExitCodes.Ok;
        foreach (var device in devices)
        {
            try
            {
                if (!allowFile && !Native.Libc.IsBlockDevice(device)) throw new IOException($"{device} is not a block device (--allow-file for an image)");
                var r = RawDeviceReader.Extract(device, dir, keepHeader, Log.Info);
                Log.Info(r.Message);
                if (r.Outcome == SavecoreOutcome.Incomplete) rc = Math.Max(rc, ExitCodes.Degraded);
                if (r.Outcome == SavecoreOutcome.Refused) rc = ExitCodes.Failed;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidDataException or Vmcore.VmcoreException)
            {
                Log.Error($"{device}: {e.Message}");
                rc = ExitCodes.Failed;
            }
        }
        return rc;
    }

    /// <summary>The part of the path template before its first placeholder's directory: where dumps sit.</summary>
    private static string ParentOf(string template)
    {
        int brace = template.IndexOf('{');
        string fixedPart = brace < 0 ? template : template[..brace];
        return fixedPart.EndsWith('/') ? fixedPart.TrimEnd('/') : Path.GetDirectoryName(fixedPart) ?? "/var/crash";
    }
}

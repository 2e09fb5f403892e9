using CaptureAgent.Kexec;
using CaptureAgent.Common;
using CaptureAgent.Config;

namespace CaptureAgent.Cli;

/// <summary>`capture-agent load | unload | status`: arming the capture kernel in the first kernel.</summary>
public static class LoadCommand
{
    private const string BootIdPath = "/proc/sys/kernel/random/boot_id";

    public const string Usage = """
        usage: capture-agent load [--kernel VMLINUZ] [--initrd IMAGE] [--append "ARGS"] [--blacklist MOD,...] [--config FILE] [--no-quirk NAME] [--auto | --early] [--root DIR] [--dry-run]
               capture-agent unload
               capture-agent status [--json]
          --kernel   capture kernel (default /boot/vmlinuz-RUNNING_RELEASE)
          --initrd   capture initramfs (default /var/lib/capture-agent/initramfs-RUNNING_RELEASE.img)
          --append   extra capture-kernel parameters, after irqpoll nr_cpus=1 reset_devices
          --config   the configuration whose kernel_cmdline_append and blacklist apply (default /etc/capture-agent.conf)
          --auto     what capture-agent.service runs: the pinned or running kernel and its stored capture
                     initramfs, rebuilt first when stale
          --early    what the host initramfs runs (early_load = yes): the kernel, capture initramfs and
                     config the early hook packed there; the same command line as --auto
          --root     the system's files below DIR (default: $CAPTURE_AGENT_ROOT, else /)
          --dry-run  print the command line and what would be loaded, load nothing
        exit status (load, status): 0 armed, 1 not armed (the reason is printed), 2 usage,
          4 armed, but the dump would not be saved: no target of the chain can be reached by the
            capture kernel (the reason is printed; status --json: "state": "armed_but_would_not_save")
        """;

    public static int Load(string[] args) => CommandLine.Run(Usage, args, Arm);

    private static int Arm(string[] args)
    {
        string release = Environment.OSVersion.Version.ToString();
        try { release = File.ReadAllText("/proc/sys/kernel/osrelease").Trim(); } catch (IOException) { }
        string kernel = $"/boot/vmlinuz-{release}";
        string? initrd = $"/var/lib/capture-agent/initramfs-{release}.img";
        string? append = null;
        var blacklist = new List<string>();
        bool dryRun = false, auto = false, early = false;
        string? configPath = null;
        var host = new Host.HostLayout(Host.HostLayout.DefaultRoot());
        var noQuirks = new List<string>();
        var cli = new ArgReader("load", args);
        while (cli.Next() is { } option)
        {
            switch (option)
            {
                case "--kernel": kernel = cli.Value(); break;
                case "--initrd": initrd = cli.Value(); break;
                case "--no-initrd": initrd = null; break;
                case "--auto": auto = true; break;
                case "--early": early = true; break;
                case "--root": host = new Host.HostLayout(cli.Value()); break;
                case "--append": append = cli.Value(); break;
                case "--blacklist": blacklist.AddRange(cli.List()); break;
                case "--dry-run": dryRun = true; break;
                case "--config": configPath = cli.Value(); break;
                case "--no-quirk": noQuirks.Add(cli.Value()); break;
                default: throw cli.Unknown();
            }
        }
        cli.NoOperands();
        if (auto && early) throw cli.Error("--auto and --early exclude each other");
        configPath ??= host.ConfigPath;
        // --early (the host initramfs): what the early hook packed, where it packed it.
        if (early)
        {
            kernel = host.Under(Host.EarlyHooks.KernelInImage);
            initrd = host.Under(Host.EarlyHooks.InitramfsInImage);
            Log.Info("early arming from the initramfs");
        }
        // --auto (the service): the pinned or running kernel, its capture initramfs rebuilt if stale.
        string? wouldNotSave = null;
        if (auto)
        {
            var choice = Host.CaptureStore.Choose(host, Host.HostLayout.RunningRelease());
            Log.Info(choice.Reason);
            var store = Host.CaptureStore.EnsureCurrent(host, choice.Release, Log.Info);
            if (!store.Usable)
            {
                Log.Error($"no capture initramfs for {choice.Release}: {store.Error}");
                return ExitCodes.Failed;
            }
            kernel = choice.KernelPath;
            initrd = choice.InitramfsPath;
            wouldNotSave = store.WouldNotSave;
        }
        else if (!early && !dryRun && Host.HostLayout.IsValidRelease(release) && File.Exists(configPath))
        {
            // A hand-picked image: the plan of the host's config still says whether its targets can be reached.
            // Not from the host initramfs (--early): its devices are still being probed, and the service's
            // `load --auto` after boot says it with the real ones.
            var verdict = Host.CaptureStore.Inspect(host, release, checkStoredImage: false);
            wouldNotSave = verdict.WouldNotSave;
            foreach (var line in verdict.Skipped) if (wouldNotSave is null) Log.Warn($"target {line}: the capture kernel will pass it over");
        }
        // The config's capture-kernel settings apply to every load (kernel_cmdline_append, blacklist).
        if (File.Exists(configPath))
        {
            var config = Config.AgentConfig.Load(configPath);
            foreach (var e in config.Errors) Log.Warn(e);
            blacklist.AddRange(config.Blacklist.Where(m => !blacklist.Contains(m)));
            if (config.KernelCommandLineAppend is { Length: > 0 } extra) append = append is null ? extra : $"{extra} {append}";
        }
        // Known platform problems (Hyper-V, GPUs, watchdogs...): their arguments and blacklists, with the reason.
        foreach (var q in Platform.PlatformQuirks.Detect())
        {
            if (noQuirks.Contains(q.Name)) { Log.Info($"platform quirk {q.Name} skipped (--no-quirk)"); continue; }
            string effect = q.Effect;
            Log.Info($"platform quirk {q.Name}: {effect}");
            if (effect != q.Reason) Log.Detail($"platform quirk {q.Name}, why: {q.Reason}");
            if (q.KernelArguments.Count > 0) append = append is null ? string.Join(' ', q.KernelArguments) : $"{append} {string.Join(' ', q.KernelArguments)}";
            blacklist.AddRange(q.Blacklist.Where(m => !blacklist.Contains(m)));
        }
        var state = CrashKernelState.Read();
        string? bootId = File.Exists(BootIdPath) ? File.ReadAllText(BootIdPath).Trim() : null;
        string cmdline = CaptureCommandLine.Build(state.CommandLine, append, blacklist, bootId);
        foreach (var (what, path) in new[] { ("capture kernel", kernel), ("capture initramfs", initrd) })
        {
            if (path is not null && !File.Exists(path))
            {
                Log.Error($"{what} {path} does not exist");
                return ExitCodes.Failed;
            }
        }
        Log.Info($"capture kernel: {kernel}");
        Log.Info($"capture initramfs: {initrd ?? "(none)"}");
        Log.Info($"capture command line: {cmdline}");
        if (dryRun)
        {
            Log.Info($"would need about {KexecLoader.NeededBytes(kernel, initrd) >> 20} MiB; reserved: {state.ReservedBytes >> 20} MiB");
            return ExitCodes.Ok;
        }
        try
        {
            if (state.Loaded) KexecLoader.UnloadCrashKernel();   // reload: replace what is there
            KexecLoader.LoadCrashKernel(kernel, initrd, cmdline, state);
        }
        catch (Exception e) when (e is KexecLoader.KexecException or IOException or UnauthorizedAccessException)
        {
            Log.Error($"cannot arm the capture kernel: {e.Message}");
            return ExitCodes.Failed;
        }
        WarnIfEarlyDiffered(cmdline);
        RecordLoaded(kernel, initrd, cmdline, early);
        var armed = CrashKernelState.Read();
        if (armed.Loaded && wouldNotSave is not null)
        {
            Log.Error(armed.Explain(wouldNotSave));
            return ExitCodes.ArmedWontSave;
        }
        Log.Info(armed.Explain());
        return ExitCodes.Ok;
    }

    /// <summary>What `status` reports as in use: the kernel cannot be asked which image it holds.</summary>
    private const string LoadedRecord = "/run/capture-agent/loaded";

    private static void RecordLoaded(string kernel, string? initrd, string cmdline, bool early)
    {
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(LoadedRecord)!, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            File.WriteAllText(LoadedRecord, $"kernel={kernel}\ninitrd={initrd ?? ""}\ncmdline={cmdline}\nloaded_at={DateTimeOffset.UtcNow:yyyy-MM-ddTHH:mm:ssZ}\n" +
                                            (early ? "early=yes\n" : ""));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Log.Warn($"cannot record the loaded capture kernel in {LoadedRecord}: {e.Message}");
        }
    }

    /// <summary>
    /// The service re-arming after an early load: the host initramfs carried a copy of the config,
    /// which may be older than the one on disk. Same boot, same config: the same command line.
    /// </summary>
    private static void WarnIfEarlyDiffered(string cmdline)
    {
        var before = ReadLoaded();
        if (before.GetValueOrDefault("early") == "yes" && before.GetValueOrDefault("cmdline") is { } earlier && earlier != cmdline)
            Log.Warn("the host initramfs armed with another command line (it carries an older /etc/capture-agent.conf): " +
                     "rebuild it (update-initramfs -u, dracut -f or mkinitcpio -P) so a crash during boot is captured the same way");
    }

    private static Dictionary<string, string> ReadLoaded()
    {
        var d = new Dictionary<string, string>();
        try
        {
            if (File.Exists(LoadedRecord))
                foreach (var line in File.ReadAllLines(LoadedRecord))
                    if (line.IndexOf('=') is int eq and > 0) d[line[..eq]] = line[(eq + 1)..];
        }
        catch (IOException) { }
        return d;
    }

    public static int Unload(string[] args) => CommandLine.Run(Usage, args, Disarm);

    private static int Disarm(string[] args)
    {
        var cli = new ArgReader("unload", args);
        if (cli.Next() is not null) throw cli.Unknown();
        cli.NoOperands();
        try
        {
            KexecLoader.UnloadCrashKernel();
        }
        catch (KexecLoader.KexecException e)
        {
            Log.Error(e.Message);
            return ExitCodes.Failed;
        }
        Log.Info(CrashKernelState.Read().Explain());
        return ExitCodes.Ok;
    }

    public static int Status(string[] args) => CommandLine.Run(Usage, args, ShowStatus);

    private static int ShowStatus(string[] args)
    {
        bool json = false;
        var cli = new ArgReader("status", args);
        while (cli.Next() is { } option)
        {
            if (option == "--json") json = true;
            else throw cli.Unknown();
        }
        cli.NoOperands();
        var s = CrashKernelState.Read();
        var loaded = s.Loaded ? ReadLoaded() : new Dictionary<string, string>();
        string dumpDir = Report.DumpFinder.DefaultDirectory();
        var dumps = new List<Report.DumpEntry>();
        try { dumps = Report.DumpCatalog.Scan(dumpDir, limit: 3, readVmcoreLog: false); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        var store = StoreStatus(loaded.GetValueOrDefault("initrd"));
        string? wouldNotSave = store.WouldNotSave;
        if (json)
        {
            JsonOutput.ToStdout(stdout => WriteStatus(stdout, s, wouldNotSave, loaded, store, dumpDir, dumps));
        }
        else
        {
            Console.Out.WriteLine(s.Explain(wouldNotSave));
            if (!s.Loaded && wouldNotSave is not null)
                Console.Out.WriteLine($"even once armed, the dump would not be saved: {wouldNotSave}");
            else if (wouldNotSave is null)
                foreach (var line in store.Skipped) Console.Out.WriteLine($"target {line}: the capture kernel will pass it over");
            if (loaded.Count > 0)
                Console.Out.WriteLine($"capture kernel: {loaded.GetValueOrDefault("kernel")}, initramfs: {loaded.GetValueOrDefault("initrd")}, loaded {loaded.GetValueOrDefault("loaded_at")}");
            if (store.Choice is { } c)
                Console.Out.WriteLine($"load --auto arms {c.Release} ({c.Reason}); its capture initramfs: " +
                                      (store.Changes.Count == 0 ? "current" : "to be built by the next load --auto: " + string.Join(", ", store.Changes)));
            foreach (var e in store.Entries)
                Console.Out.WriteLine($"  stored: {e.Release}{(e.Pinned ? " (pinned)" : "")}  {e.ImageBytes} bytes  built {e.BuiltAt?.UtcDateTime:yyyy-MM-dd HH:mm:ss}Z{(e.KernelPresent ? "" : "  (its kernel is gone)")}");
            Console.Out.WriteLine(dumps.Count == 0 ? $"no dumps in {dumpDir}" : $"last dumps in {dumpDir}:");
            foreach (var d in dumps)
                Console.Out.WriteLine($"  {d.CrashTime?.UtcDateTime:yyyy-MM-dd HH:mm:ss}Z  {d.KernelRelease ?? "?"}  {d.Status.ToString().ToLowerInvariant()}  {d.Directory}");
        }
        return !s.Loaded ? ExitCodes.Failed : wouldNotSave is null ? ExitCodes.Ok : ExitCodes.ArmedWontSave;
    }

    /// <summary>The per-kernel store of the host (or $CAPTURE_AGENT_ROOT): what load --auto would arm, whether that image is stale, every stored image.</summary>
    internal sealed record StoreView(Host.CaptureKernelChoice? Choice, IReadOnlyList<string> Changes, List<Host.StoreEntry> Entries,
        string? WouldNotSave, IReadOnlyList<string> Skipped);

    /// <param name="loadedInitrd">The image armed now (from the load record), if known: the stored image is judged only when it is the one armed.</param>
    private static StoreView StoreStatus(string? loadedInitrd)
    {
        var host = new Host.HostLayout(Host.HostLayout.DefaultRoot());
        try
        {
            var entries = Host.CaptureStore.List(host);
            string running = Host.HostLayout.RunningRelease();
            if (!Host.HostLayout.IsValidRelease(running)) return new StoreView(null, [], entries, null, []);
            var choice = Host.CaptureStore.Choose(host, running);
            bool armedFromStore = loadedInitrd is not { Length: > 0 } || Path.GetFullPath(loadedInitrd) == Path.GetFullPath(choice.InitramfsPath)
                                  || Path.GetFileName(loadedInitrd) == $"initramfs-{choice.Release}.img";
            var verdict = Host.CaptureStore.Inspect(host, choice.Release, armedFromStore);
            return new StoreView(choice, verdict.Changes, entries, verdict.WouldNotSave, verdict.Skipped);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
        {
            Log.Warn($"status: the capture initramfs store cannot be read: {e.Message}");
            return new StoreView(null, [], [], null, []);
        }
    }

    /// <summary>status --json (docs/json-output.md).</summary>
    internal static void WriteStatus(Stream output, CrashKernelState s, string? wouldNotSave, Dictionary<string, string> loaded, StoreView store,
                                     string dumpDir, List<Report.DumpEntry> dumps) => JsonOutput.WriteObject(output, w =>
    {
        w.WriteBoolean("armed", s.Loaded);
        w.WriteString("state", !s.Loaded ? "not_armed" : wouldNotSave is null ? "armed" : "armed_but_would_not_save");
        w.WriteString("would_not_save", wouldNotSave);
        w.StringArray("skipped_targets", store.Skipped);
        w.WriteNumber("reserved_bytes", s.ReservedBytes);
        w.WriteString("crashkernel", s.CrashKernelParameter);
        w.WriteBoolean("kexec_disabled", s.KexecDisabled);
        w.WriteString("lockdown", s.Lockdown);
        w.WriteString("explanation", s.Explain(wouldNotSave));
        w.WriteString("capture_kernel", loaded.GetValueOrDefault("kernel"));
        w.WriteString("capture_initramfs", loaded.GetValueOrDefault("initrd"));
        w.WriteString("capture_cmdline", loaded.GetValueOrDefault("cmdline"));
        w.WriteString("loaded_at", loaded.GetValueOrDefault("loaded_at"));
        w.WriteString("auto_release", store.Choice?.Release);
        w.WriteString("auto_reason", store.Choice?.Reason);
        w.StringArray("auto_rebuild_needed", store.Changes);
        w.WriteStartArray("capture_store");
        foreach (var e in store.Entries)
        {
            w.WriteStartObject();
            w.WriteString("kernel_release", e.Release);
            w.WriteString("image", e.ImagePath);
            w.WriteNumber("image_bytes", e.ImageBytes);
            w.WriteString("built_at", e.BuiltAt is { } t ? JsonOutput.Time(t) : null);
            w.WriteBoolean("pinned", e.Pinned);
            w.WriteBoolean("kernel_present", e.KernelPresent);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteString("dump_directory", dumpDir);
        w.WriteStartArray("last_dumps");
        foreach (var d in dumps) ReportCommand.WriteEntry(w, d);
        w.WriteEndArray();
    });
}

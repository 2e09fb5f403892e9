using CaptureAgent.Config;
using CaptureAgent.Initramfs;
using CaptureAgent.Targets;
using CaptureAgent.Common;

namespace CaptureAgent.Host;

/// <summary>
/// What a build asks for beyond the host's own config: `initramfs build`'s options. The store
/// (kernel hooks, load --auto) uses <see cref="ForHost"/>: the host's config, agent and modules.
/// </summary>
public sealed record ImageRequest
{
    /// <summary>The config carried into the image; null: none.</summary>
    public string? ConfigPath { get; init; }
    /// <summary>The agent carried as /init; null: the host's (<see cref="HostLayout.AgentPath"/>).</summary>
    public string? AgentPath { get; init; }
    /// <summary>Where lib/modules/KVER is; null: the host root.</summary>
    public string? ModulesRoot { get; init; }
    public IReadOnlyList<string> Modules { get; init; } = [];
    public IReadOnlyList<string> Blacklist { get; init; } = [];
    public IReadOnlyList<string> Executables { get; init; } = [];
    public IReadOnlyList<InitramfsFile> Files { get; init; } = [];
    /// <summary>A block device of this machine (vda1) whose driver chain goes in, besides the config's targets.</summary>
    public string? TargetDevice { get; init; }
    /// <summary>Leave this machine's NIC driver out for network targets (the caller names it in <see cref="Modules"/>).</summary>
    public bool NoNic { get; init; }
    /// <summary>The release must have a module tree here (a kernel hook for a kernel not installed is an error).</summary>
    public bool RequireModuleTree { get; init; }
    /// <summary>Build even from a config with errors (tests of how the capture kernel copes with them); never for the store.</summary>
    public bool AllowConfigErrors { get; init; }

    public static ImageRequest ForHost(HostLayout host) => new()
    {
        ConfigPath = File.Exists(host.ConfigPath) ? host.ConfigPath : null,
        RequireModuleTree = true,
    };
}

/// <summary>Whether the capture kernel can reach one target of the chain, and if not, why (one line).</summary>
public sealed record TargetReach(TargetEntry Target, string? Obstacle)
{
    public bool Reachable => Obstacle is null;
}

/// <summary>
/// What the capture initramfs of one kernel release must hold on this host: the sysfs driver chain
/// of each local or raw target as it is attached now, what the config's targets need (NFS client,
/// ssh, hooks), the NIC driver for network targets, the config's extra_modules and blacklist, and
/// what the request adds. `initramfs build` and the store both plan here, so what the rebuild stamp
/// compares is what gets built.
/// </summary>
internal sealed class CaptureImagePlan
{
    public required string Release { get; init; }
    public required string AgentPath { get; init; }
    /// <summary>The config file carried into the image, or null when there is none.</summary>
    public string? ConfigPath { get; init; }
    public byte[] ConfigBytes { get; init; } = [];
    public required string ModulesRoot { get; init; }
    public List<string> Wanted { get; } = new();
    public List<string> Blacklist { get; } = new();
    public List<string> Executables { get; } = new();
    public List<InitramfsFile> Files { get; } = new();
    /// <summary>The modules that will be in the image, dependencies included, in load order.</summary>
    public List<ModuleFile> Resolved { get; } = new();
    /// <summary>"TARGET -> DEVICE (TYPE UUID=...)": which device each local or raw target is on now.</summary>
    public List<string> TargetIdentity { get; } = new();
    /// <summary>The driver chain modules of the targets and the NIC, before dependency resolution.</summary>
    public List<string> ChainModules { get; } = new();
    public List<string> Notes { get; } = new();
    /// <summary>Each configured target, in chain order, with what stops the capture kernel from reaching it.</summary>
    public List<TargetReach> Reach { get; } = new();
    /// <summary>Chain modules that must be loadable files in the image (not built into the release).</summary>
    public List<string> LoadableChainModules { get; } = new();
    /// <summary>The filesystem types of the targets (for what their mounts load beyond the driver).</summary>
    private readonly HashSet<string> _filesystems = new(StringComparer.Ordinal);

    /// <summary>The release's module directory: lib/modules/KVER, or usr/lib/modules/KVER when only that exists (merged /usr unpacked).</summary>
    public string ModuleDirectory => KernelModules.FindDirectory(ModulesRoot, Release) ?? Path.Combine(ModulesRoot, "lib", "modules", Release);

    public static CaptureImagePlan Make(HostLayout host, string release) => Make(host, release, ImageRequest.ForHost(host));

    public static CaptureImagePlan Make(HostLayout host, string release, ImageRequest request)
    {
        HostLayout.CheckRelease(release);
        string? configPath = request.ConfigPath;
        var plan = new CaptureImagePlan
        {
            Release = release,
            AgentPath = request.AgentPath ?? host.AgentPath,
            ConfigPath = configPath,
            ConfigBytes = configPath is null ? [] : InputFile.ReadBytes(configPath, AgentConfig.MaxBytes),
            ModulesRoot = request.ModulesRoot ?? host.Root,
        };
        if (!File.Exists(plan.AgentPath)) throw new IOException($"the agent {plan.AgentPath} does not exist");
        var config = configPath is null ? new AgentConfig() : AgentConfig.Parse(System.Text.Encoding.UTF8.GetString(plan.ConfigBytes), configPath);
        // An image from a config with errors would replace one that works with one that may not:
        // the build stops here, and whatever image there was stays.
        var errors = configPath is not null && config.NoUsableTarget(configPath) is { } none ? [.. config.Errors, none] : config.Errors;
        if (errors.Count > 0 && !request.AllowConfigErrors)
            throw new IOException($"{configPath} has {errors.Count} error{(errors.Count == 1 ? "" : "s")} ({errors[0]}{(errors.Count > 1 ? "; ..." : "")}): " +
                                  $"not built (capture-agent config check {configPath} lists them)");
        plan.Notes.AddRange(config.Errors);
        if (configPath is null && request.RequireModuleTree) plan.Notes.Add($"{host.ConfigPath} does not exist: the image carries no config (capture-agent install writes one)");

        // Even a kernel with every driver built in has a module directory (modules.builtin): without
        // one the release is not installed, or not yet.
        bool haveTree = Directory.Exists(plan.ModuleDirectory);
        if (!haveTree && request.RequireModuleTree) throw new IOException($"no module tree at {plan.ModuleDirectory}: is {release} installed?");
        KernelModules? tree = haveTree ? new KernelModules(plan.ModulesRoot, release) : null;
        // Built in means built into the capture kernel (this release), which need not be the running one.
        string builtinList = Path.Combine(plan.ModuleDirectory, "modules.builtin");
        IReadOnlySet<string>? builtIn = File.Exists(builtinList) ? BlockDeviceModules.ReadModulesBuiltin(builtinList) : null;

        if (request.TargetDevice is not null) plan.AddDeviceChain(host, request.TargetDevice, config.FilesystemType, tree, builtIn);
        plan.AddTargetChains(host, config, tree, builtIn);
        plan.AddFatCharsets(tree);
        string? nicObstacle = null;
        if (config.NeedsNetwork && !request.NoNic) nicObstacle = plan.AddNic(host, config, tree);
        plan.JudgeReach(config, nicObstacle, request.TargetDevice is not null || request.Modules.Count > 0 || config.ExtraModules.Count > 0);

        var needs = ConfigContent.For(config, host.Root);
        plan.Notes.AddRange(needs.Notes);
        foreach (var m in plan.ChainModules.Concat(request.Modules).Concat(needs.Modules).Concat(config.ExtraModules))
            if (!plan.Wanted.Contains(m)) plan.Wanted.Add(m);
        foreach (var x in request.Executables.Concat(needs.Executables))
            if (!plan.Executables.Contains(x)) plan.Executables.Add(x);
        foreach (var f in request.Files.Concat(needs.Files))
            if (!plan.Files.Any(have => have.Destination == f.Destination)) plan.Files.Add(f);
        foreach (var m in request.Blacklist.Concat(config.Blacklist))
            if (!plan.Blacklist.Contains(m)) plan.Blacklist.Add(m);
        plan.AddAgentLibraries();

        if (plan.Wanted.Count > 0)
        {
            if (tree is null)
                throw new IOException($"no module tree at {plan.ModuleDirectory}: the capture initramfs of {release} needs {string.Join(' ', plan.Wanted)}");
            plan.Resolved.AddRange(tree.Resolve(plan.Wanted, plan.Blacklist, plan.Notes));
        }
        return plan;
    }

    /// <summary>A device named on the command line (vda1): its driver chain and filesystem module.</summary>
    private void AddDeviceChain(HostLayout host, string device, string? configFs, KernelModules? tree, IReadOnlySet<string>? builtIn)
    {
        string name = device.StartsWith("/dev/", StringComparison.Ordinal) ? device[5..] : device;
        var volume = SuperblockProbe.ProbePath(Path.Combine(host.DevRoot, name));
        string? fs = configFs ?? (volume.IsKnown ? volume.Type : null);
        if (fs is not null) _filesystems.Add(fs);
        var chain = BlockDeviceModules.Resolve(name, fs, builtIn, host.SysRoot, host.DevRoot, host.ProcRoot);
        TargetIdentity.Add($"{name} ({volume.Describe()}) needs {(chain.Modules.Count == 0 ? "nothing" : string.Join(' ', chain.Modules))}");
        Notes.AddRange(chain.Notes);
        foreach (var refusal in Targets.Lvm.LvmTargetCheck.Problems(name, host.SysRoot, host.DevRoot))
            Notes.Add($"device {name} cannot work as a target: {refusal}");
        AddChainModules(chain.Modules, tree, $"device {name}");
    }

    /// <summary>
    /// The local and raw targets of <paramref name="config"/> that are on this machine now but on a
    /// stack the capture kernel cannot bring up (LUKS, external-metadata md...): `config check`'s
    /// warnings, judged by the same <see cref="StackReach"/> as the plan.
    /// </summary>
    public static IEnumerable<(TargetEntry Target, string Obstacle)> StackObstacles(HostLayout host, AgentConfig config)
    {
        foreach (var t in config.Targets.Where(t => t.Type is TargetType.Local or TargetType.Raw && t.Device is not null))
        {
            string? obstacle;
            try
            {
                var match = Locate(host, t);
                obstacle = match?.Device is null ? null : StackReach.Obstacle(match.Device.Name, host.SysRoot, host.DevRoot);
            }
            catch (IOException) { obstacle = null; }   // unreadable: the plan says so when the image is built
            if (obstacle is not null) yield return (t, obstacle);
        }
    }

    private static TargetMatch? Locate(HostLayout host, TargetEntry t) =>
        new TargetLocator(host.SysRoot, host.DevRoot) { ProbeTimeout = TimeSpan.FromSeconds(10) }.Find(t.Device!, out _);

    /// <summary>The sysfs driver chain of each local or raw target as it is attached now.</summary>
    private void AddTargetChains(HostLayout host, AgentConfig config, KernelModules? tree, IReadOnlySet<string>? builtIn)
    {
        foreach (var t in config.Targets.Where(t => t.Type is TargetType.Local or TargetType.Raw && t.Device is not null))
        {
            // The filesystem driver does not depend on where the disk is attached: the config's
            // fstype, else what the device holds now, else the type fstab gives it.
            string? fs = t.Type == TargetType.Local ? config.FilesystemType : null;
            bool chainAdded = false;
            try
            {
                var match = Locate(host, t);
                if (match?.Device is null && Targets.Lvm.LvmTargetCheck.Locate(t.Device!, host.SysRoot, host.DevRoot) is { } inactive)
                {
                    AddInactiveLv(t, inactive, config, tree, builtIn, host);
                    continue;
                }
                if (match?.Device is null)
                {
                    _obstacles[t] = "its device is not on this machine now";
                    TargetIdentity.Add($"{t.Text} -> not found");
                    Notes.Add($"target {t.Text} is not on this machine now: its disk drivers are not added (the capture kernel finds it only if they are built in, or with extra_modules)");
                }
                else
                {
                    var v = match.Volume;
                    if (t.Type == TargetType.Local) fs ??= v.IsKnown ? v.Type : FstabType(host, t.Device!);
                    if (fs is not null) _filesystems.Add(fs);
                    var chain = BlockDeviceModules.Resolve(match.Device.Name, fs, builtIn, host.SysRoot, host.DevRoot, host.ProcRoot);
                    TargetIdentity.Add($"{t.Text} -> {match.Device.Name} ({v.Type}{(v.Uuid is null ? "" : " UUID=" + v.Uuid)}) needs {(chain.Modules.Count == 0 ? "nothing" : string.Join(' ', chain.Modules))}");
                    Notes.AddRange(chain.Notes);
                    var lvmRefusals = Targets.Lvm.LvmTargetCheck.Problems(match.Device.Name, host.SysRoot, host.DevRoot);
                    foreach (var refusal in lvmRefusals)
                        Notes.Add($"target {t.Text} cannot work: {refusal}");
                    var missing = AddChainModules(chain.Modules, tree, $"target {t.Text}");
                    // An LV the capture kernel refuses to activate is as unreachable as a LUKS volume.
                    string? obstacle = StackReach.Obstacle(match.Device.Name, host.SysRoot, host.DevRoot)
                        ?? lvmRefusals.FirstOrDefault()
                        ?? (missing.Count > 0 ? $"{string.Join(", ", missing)} (needed to reach {match.Device.Name}) {(missing.Count == 1 ? "is" : "are")} not in {Release}'s modules" : null);
                    if (obstacle is not null) _obstacles[t] = obstacle;
                    chainAdded = true;
                }
            }
            catch (IOException e)
            {
                _obstacles[t] = e.Message;
                TargetIdentity.Add($"{t.Text} -> unreadable");
                Notes.Add($"target {t.Text}: {e.Message}; its disk drivers are not added");
            }
            if (t.Type == TargetType.Local && !chainAdded) AddFilesystem(host, t, fs ?? FstabType(host, t.Device!), tree, builtIn);
        }
    }

    /// <summary>
    /// A target in an LV the running system has not activated: the capture kernel activates it, so
    /// the image needs device-mapper, the drivers of the PVs' disks and the filesystem's module.
    /// </summary>
    private void AddInactiveLv(TargetEntry t, Targets.Lvm.InactiveLv lv, AgentConfig config, KernelModules? tree, IReadOnlySet<string>? builtIn, HostLayout host)
    {
        if (lv.Refusal is not null)
        {
            TargetIdentity.Add($"{t.Text} -> LVM {lv.Name} (not active here)");
            Notes.Add($"target {t.Text} cannot work: {lv.Refusal}");
            _obstacles[t] = lv.Refusal;
            return;
        }
        var v = lv.Volume;
        string? fs = t.Type == TargetType.Raw ? null : config.FilesystemType ?? (v.IsKnown ? v.Type : null) ?? FstabType(host, t.Device!);
        var modules = new List<string>();
        foreach (var pv in lv.PvDevices)
        {
            var chain = BlockDeviceModules.Resolve(pv.Name, null, builtIn, host.SysRoot, host.DevRoot, host.ProcRoot);
            Notes.AddRange(chain.Notes.Where(n => !Notes.Contains(n)));
            modules.AddRange(chain.Modules.Where(m => !modules.Contains(m)));
        }
        if (builtIn?.Contains("dm_mod") != true) modules.Add("dm_mod");
        if (fs is not null)
        {
            _filesystems.Add(fs);
            modules.AddRange(BlockDeviceModules.FilesystemModules(fs).Where(m => builtIn?.Contains(m) != true && !modules.Contains(m)));
        }
        TargetIdentity.Add($"{t.Text} -> LVM {lv.Name} on {string.Join('+', lv.PvDevices.Select(d => d.Name))}, not active here ({v.Type}{(v.Uuid is null ? "" : " UUID=" + v.Uuid)}) needs {string.Join(' ', modules)}");
        var missing = AddChainModules(modules, tree, $"target {t.Text}");
        if (missing.Count > 0)
            _obstacles[t] = $"{string.Join(", ", missing)} (needed to reach LVM {lv.Name}) {(missing.Count == 1 ? "is" : "are")} not in {Release}'s modules";
    }

    /// <summary>The filesystem module of a target whose device could not be walked: it is needed wherever the disk turns up.</summary>
    private void AddFilesystem(HostLayout host, TargetEntry t, string? fs, KernelModules? tree, IReadOnlySet<string>? builtIn)
    {
        if (fs is null)
        {
            Notes.Add($"the filesystem type of target {t.Text} is unknown (not on this machine, not in {Path.Combine(host.Root, "etc/fstab")}): set fstype = in the config, or the capture kernel can mount it only if its driver is built in");
            return;
        }
        _filesystems.Add(fs);
        var modules = BlockDeviceModules.FilesystemModules(fs).Where(m => builtIn?.Contains(m) != true).ToList();
        TargetIdentity.Add($"{t.Text} filesystem {fs} needs {(modules.Count == 0 ? "nothing" : string.Join(' ', modules))}");
        AddChainModules(modules, tree, $"target {t.Text} ({fs})");
    }

    /// <summary>
    /// vfat loads two NLS tables at mount: the codepage and the iocharset the kernel was built to
    /// default to (Debian: cp437 and "ascii"; upstream's default iso8859-1). Without modprobe in
    /// the capture kernel a missing one fails the mount ("IO charset ascii not found"), so both go
    /// in, named by the capture kernel's build config.
    /// </summary>
    private void AddFatCharsets(KernelModules? tree)
    {
        if (!_filesystems.Contains("vfat")) return;
        KernelConfig? kconfig = null;
        try { kconfig = KernelConfig.Find(ModulesRoot, Release, ModuleDirectory); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { Notes.Add($"the kernel config of {Release} cannot be read: {e.Message}"); }
        string codepage = kconfig?.Value("CONFIG_FAT_DEFAULT_CODEPAGE") ?? "437";
        string iocharset = kconfig?.Value("CONFIG_FAT_DEFAULT_IOCHARSET") ?? "iso8859-1";
        if (kconfig is null) Notes.Add($"no kernel config for {Release}: vfat's default codepage 437 and iocharset iso8859-1 assumed");
        var tables = new[] { "nls_cp" + codepage, "nls_" + iocharset }.Select(BlockDeviceModules.Normalize).Distinct()
            .Where(m => tree?.IsBuiltin(m) != true).ToList();
        TargetIdentity.Add($"vfat charsets (codepage {codepage}, iocharset {iocharset}) need {(tables.Count == 0 ? "nothing" : string.Join(' ', tables))}");
        AddChainModules(tables, tree, "vfat");
    }

    /// <summary>The type /etc/fstab gives the filesystem a target names (same UUID=, LABEL=, PARTUUID=, PARTLABEL= or path); null when absent or "auto".</summary>
    internal static string? FstabType(HostLayout host, TargetSpec target)
    {
        List<FstabEntry> entries;
        try { entries = Fstab.Load(host.Root); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return null; }
        foreach (var e in entries)
        {
            if (e.Type is "auto" or "swap" || !TargetSpec.TryParse(e.Spec, out var spec, out _)) continue;
            if (spec.Kind == target.Kind && target.ValueMatches(spec.Value)) return e.Type;
        }
        return null;
    }

    /// <returns>Why network targets cannot be reached (no NIC driver), or null.</returns>
    private string? AddNic(HostLayout host, AgentConfig config, KernelModules? tree)
    {
        try
        {
            var nic = Net.NetworkSetup.NicModuleChain(config.NetworkInterface, host.SysRoot);
            Notes.AddRange(nic.Notes);
            TargetIdentity.Add($"network {config.NetworkInterface} needs {(nic.Modules.Count == 0 ? "nothing" : string.Join(' ', nic.Modules))}");
            var missing = AddChainModules(nic.Modules, tree, $"network interface {config.NetworkInterface}");
            return missing.Count > 0 ? $"the network driver {string.Join(", ", missing)} is not in {Release}'s modules" : null;
        }
        catch (IOException e)
        {
            TargetIdentity.Add($"network {config.NetworkInterface} -> not found");
            Notes.Add($"the NIC driver for network targets was not found ({e.Message}); add it with extra_modules");
            return config.ExtraModules.Count > 0 ? null : $"no network interface driver was found ({e.Message})";
        }
    }

    private readonly Dictionary<TargetEntry, string> _obstacles = new(ReferenceEqualityComparer.Instance);

    /// <summary>
    /// One verdict per target. A target whose device is not attached now counts as unreachable
    /// unless the request names devices or modules itself (`initramfs build` for another machine)
    /// or the config's extra_modules does: an admin who lists the drivers of a disk the running
    /// system does not see (not probed at boot, another controller) tells us the capture kernel will.
    /// </summary>
    private void JudgeReach(AgentConfig config, string? nicObstacle, bool buildsForElsewhere)
    {
        foreach (var t in config.Targets)
        {
            string? obstacle = t.NeedsNetwork ? nicObstacle : _obstacles.GetValueOrDefault(t);
            if (buildsForElsewhere && obstacle == "its device is not on this machine now") obstacle = null;
            Reach.Add(new TargetReach(t, obstacle));
        }
    }

    /// <summary>
    /// Why a crash would not be saved with this image: every target has an obstacle (each named,
    /// in chain order), or there is no target. Null when at least one target can be reached.
    /// </summary>
    public string? WouldNotSave()
    {
        if (Reach.Count == 0) return ConfigPath is null ? "the capture initramfs carries no config" : "the config names no target";
        if (Reach.Any(r => r.Reachable)) return null;
        return string.Join("; ", Reach.Select(r => $"{r.Target.Text}: {r.Obstacle}"));
    }

    /// <summary>Targets the chain passes over before the first reachable one ("LABEL=x: reason").</summary>
    public IEnumerable<string> SkippedTargets() =>
        Reach.TakeWhile(r => !r.Reachable).Select(r => $"{r.Target.Text}: {r.Obstacle}");

    /// <summary>sysfs names drivers of the running kernel; one the capture kernel lacks is worth a note, not a failure.</summary>
    /// <returns>The modules that are neither in the tree nor built in (the target cannot be reached without them).</returns>
    private List<string> AddChainModules(IEnumerable<string> modules, KernelModules? tree, string forWhat)
    {
        var missing = new List<string>();
        foreach (var m in modules)
        {
            if (ChainModules.Contains(m)) continue;
            if (tree is not null && (tree.Exists(m) || tree.IsBuiltin(m)))
            {
                ChainModules.Add(m);
                if (!tree.IsBuiltin(m)) LoadableChainModules.Add(m);
            }
            else
            {
                Notes.Add($"module {m} of {forWhat} is not in {Release}'s module tree");
                missing.Add(m);
            }
        }
        return missing;
    }

    /// <summary>
    /// A dynamically linked agent cannot start as /init without its loader and libraries (there is
    /// no libc in the image otherwise): they go in at their own paths. A static agent needs nothing.
    /// </summary>
    private void AddAgentLibraries()
    {
        if (!ElfDependencies.IsDynamic(AgentPath)) return;
        var resolver = new ElfDependencies();
        foreach (var d in resolver.Resolve(AgentPath))
            if (!Files.Any(f => f.Destination == d.Destination)) Files.Add(new InitramfsFile(d.Source, d.Destination, 0x1ed));
        Notes.AddRange(resolver.Notes);
        Notes.Add($"{AgentPath} is dynamically linked: its loader and libraries go into the image (a static build is smaller)");
    }

    public InitramfsSpec ToSpec(ImageCompression compression = ImageCompression.Zstd) => new()
    {
        AgentPath = AgentPath,
        ConfigPath = ConfigPath,
        ModulesRoot = ModulesRoot,
        KernelRelease = Release,
        Modules = new List<string>(Wanted),
        Blacklist = new List<string>(Blacklist),
        Compression = compression,
        Executables = new List<string>(Executables),
        ExtraFiles = new List<InitramfsFile>(Files),
    };
}

using CaptureAgent.Config;
using CaptureAgent.Initramfs;
using CaptureAgent.Targets;

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

    public static ImageRequest ForHost(HostLayout host) => new()
    {
        ConfigPath = File.Exists(host.ConfigPath) ? host.ConfigPath : null,
        RequireModuleTree = true,
    };
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

    public string ModuleDirectory => Path.Combine(ModulesRoot, "lib", "modules", Release);

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
            ConfigBytes = configPath is null ? [] : File.ReadAllBytes(configPath),
            ModulesRoot = request.ModulesRoot ?? host.Root,
        };
        if (!File.Exists(plan.AgentPath)) throw new IOException($"the agent {plan.AgentPath} does not exist");
        var config = configPath is null ? new AgentConfig() : AgentConfig.Parse(System.Text.Encoding.UTF8.GetString(plan.ConfigBytes), configPath);
        plan.Notes.AddRange(config.Errors);
        if (configPath is null && request.RequireModuleTree) plan.Notes.Add($"{host.ConfigPath} does not exist: the image carries no config (capture-agent install writes one)");
        else if (configPath is not null && config.Targets.Count == 0) plan.Notes.Add($"{configPath} names no target: the capture kernel will have nowhere to save the dump");

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
        if (config.NeedsNetwork && !request.NoNic) plan.AddNic(host, config, tree);

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
        var chain = BlockDeviceModules.Resolve(name, configFs ?? (volume.IsKnown ? volume.Type : null), builtIn, host.SysRoot, host.DevRoot, host.ProcRoot);
        TargetIdentity.Add($"{name} ({volume.Describe()}) needs {(chain.Modules.Count == 0 ? "nothing" : string.Join(' ', chain.Modules))}");
        Notes.AddRange(chain.Notes);
        foreach (var refusal in Targets.Lvm.LvmTargetCheck.Problems(name, host.SysRoot, host.DevRoot))
            Notes.Add($"device {name} cannot work as a target: {refusal}");
        AddChainModules(chain.Modules, tree, $"device {name}");
    }

    /// <summary>The sysfs driver chain of each local or raw target as it is attached now.</summary>
    private void AddTargetChains(HostLayout host, AgentConfig config, KernelModules? tree, IReadOnlySet<string>? builtIn)
    {
        foreach (var t in config.Targets.Where(t => t.Type is TargetType.Local or TargetType.Raw && t.Device is not null))
        {
            try
            {
                var locator = new TargetLocator(host.SysRoot, host.DevRoot) { ProbeTimeout = TimeSpan.FromSeconds(10) };
                var match = locator.Find(t.Device!, out _);
                if (match?.Device is null && Targets.Lvm.LvmTargetCheck.Locate(t.Device!, host.SysRoot, host.DevRoot) is { } inactive)
                {
                    AddInactiveLv(t, inactive, config, tree, builtIn, host);
                    continue;
                }
                if (match?.Device is null)
                {
                    TargetIdentity.Add($"{t.Text} -> not found");
                    Notes.Add($"target {t.Text} is not on this machine now: its disk drivers are not added (the capture kernel finds it only if they are built in, or with extra_modules)");
                    // The filesystem driver does not depend on where the disk is: the config's fstype says which.
                    if (t.Type == TargetType.Local && config.FilesystemType is { } fsType)
                        AddChainModules(BlockDeviceModules.FilesystemModules(fsType).Where(m => builtIn?.Contains(m) != true), tree, $"target {t.Text} ({fsType})");
                    continue;
                }
                var v = match.Volume;
                string? fs = t.Type == TargetType.Raw ? null : config.FilesystemType ?? (v.IsKnown ? v.Type : null);
                var chain = BlockDeviceModules.Resolve(match.Device.Name, fs, builtIn, host.SysRoot, host.DevRoot, host.ProcRoot);
                TargetIdentity.Add($"{t.Text} -> {match.Device.Name} ({v.Type}{(v.Uuid is null ? "" : " UUID=" + v.Uuid)}) needs {(chain.Modules.Count == 0 ? "nothing" : string.Join(' ', chain.Modules))}");
                Notes.AddRange(chain.Notes);
                foreach (var refusal in Targets.Lvm.LvmTargetCheck.Problems(match.Device.Name, host.SysRoot, host.DevRoot))
                    Notes.Add($"target {t.Text} cannot work: {refusal}");
                AddChainModules(chain.Modules, tree, $"target {t.Text}");
            }
            catch (IOException e)
            {
                TargetIdentity.Add($"{t.Text} -> unreadable");
                Notes.Add($"target {t.Text}: {e.Message}; its drivers are not added");
            }
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
            return;
        }
        var v = lv.Volume;
        string? fs = t.Type == TargetType.Raw ? null : config.FilesystemType ?? (v.IsKnown ? v.Type : null);
        var modules = new List<string>();
        foreach (var pv in lv.PvDevices)
        {
            var chain = BlockDeviceModules.Resolve(pv.Name, null, builtIn, host.SysRoot, host.DevRoot, host.ProcRoot);
            Notes.AddRange(chain.Notes.Where(n => !Notes.Contains(n)));
            modules.AddRange(chain.Modules.Where(m => !modules.Contains(m)));
        }
        if (builtIn?.Contains("dm_mod") != true) modules.Add("dm_mod");
        if (fs is not null) modules.AddRange(BlockDeviceModules.FilesystemModules(fs).Where(m => builtIn?.Contains(m) != true && !modules.Contains(m)));
        TargetIdentity.Add($"{t.Text} -> LVM {lv.Name} on {string.Join('+', lv.PvDevices.Select(d => d.Name))}, not active here ({v.Type}{(v.Uuid is null ? "" : " UUID=" + v.Uuid)}) needs {string.Join(' ', modules)}");
        AddChainModules(modules, tree, $"target {t.Text}");
    }

    private void AddNic(HostLayout host, AgentConfig config, KernelModules? tree)
    {
        try
        {
            var nic = Net.NetworkSetup.NicModuleChain(config.NetworkInterface, host.SysRoot);
            Notes.AddRange(nic.Notes);
            TargetIdentity.Add($"network {config.NetworkInterface} needs {(nic.Modules.Count == 0 ? "nothing" : string.Join(' ', nic.Modules))}");
            AddChainModules(nic.Modules, tree, $"network interface {config.NetworkInterface}");
        }
        catch (IOException e)
        {
            TargetIdentity.Add($"network {config.NetworkInterface} -> not found");
            Notes.Add($"the NIC driver for network targets was not found ({e.Message}); add it with extra_modules");
        }
    }

    /// <summary>sysfs names drivers of the running kernel; one the capture kernel lacks is worth a note, not a failure.</summary>
    private void AddChainModules(IEnumerable<string> modules, KernelModules? tree, string forWhat)
    {
        foreach (var m in modules)
        {
            if (ChainModules.Contains(m)) continue;
            if (tree is not null && (tree.Exists(m) || tree.IsBuiltin(m))) ChainModules.Add(m);
            else Notes.Add($"module {m} of {forWhat} is not in {Release}'s module tree");
        }
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

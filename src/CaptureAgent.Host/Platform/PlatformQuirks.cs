namespace CaptureAgent.Platform;

/// <summary>
/// A platform's capture-kernel needs: parameters to append and modules to keep out. Blacklist goes
/// both onto the command line (modprobe.blacklist=, for anything that would modprobe) and into the
/// initramfs builder's exclusions (the agent loads modules itself with finit_module).
/// </summary>
public sealed record Quirk(string Name, string Reason, IReadOnlyList<string> KernelArguments, IReadOnlyList<string> Blacklist)
{
    /// <summary>
    /// What the quirk changes, in one short line for the log and the early-arming console (the
    /// reason, a paragraph with its sources, goes to the detailed log); a quirk that changes
    /// nothing is all reason, so that is said.
    /// </summary>
    public string Effect
    {
        get
        {
            var parts = new List<string>(2);
            if (KernelArguments.Count > 0) parts.Add($"adds {string.Join(' ', KernelArguments)}");
            if (Blacklist.Count > 0) parts.Add($"keeps out {string.Join(", ", Blacklist)}");
            return parts.Count > 0 ? string.Join("; ", parts) : Reason;
        }
    }
}

/// <summary>What detection looks at: sysfs and procfs under roots, so tests use fake trees.</summary>
public sealed class PlatformView(string sysRoot, string procRoot)
{
    public string Sys(string rel) => Path.Combine(sysRoot, rel);
    public string Proc(string rel) => Path.Combine(procRoot, rel);

    public string? Text(string path)
    {
        try { return File.Exists(path) ? File.ReadAllText(path).Trim() : null; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return null; }
    }

    public bool Exists(string path) => Directory.Exists(path) || File.Exists(path);

    public string? DmiVendor => Text(Sys("class/dmi/id/sys_vendor"));
    public string? DmiProduct => Text(Sys("class/dmi/id/product_name"));
    public string? HypervisorType => Text(Sys("hypervisor/type"));

    /// <summary>The CPUID "hypervisor" bit, as the first processor's flags show it.</summary>
    public bool CpuHypervisorFlag
    {
        get
        {
            var cpuinfo = Text(Proc("cpuinfo"));
            if (cpuinfo is null) return false;
            foreach (var line in cpuinfo.Split('\n'))
                if (line.StartsWith("flags", StringComparison.Ordinal) && line.Contains(':'))
                    return line[(line.IndexOf(':') + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries).Contains("hypervisor");
            return false;
        }
    }

    public bool Efi => Exists(Sys("firmware/efi"));

    /// <summary>A module is loaded (or built in with parameters): /sys/module/NAME.</summary>
    public bool Module(string name) => Exists(Sys($"module/{name}"));

    /// <summary>A PCI driver has at least one device bound (a link named like 0000:00:01.1).</summary>
    public bool PciDriverBound(string driver)
    {
        string dir = Sys($"bus/pci/drivers/{driver}");
        if (!Directory.Exists(dir)) return false;
        try { return Directory.EnumerateFileSystemEntries(dir).Any(e => Path.GetFileName(e).Count(c => c == ':') == 2); }
        catch (IOException) { return false; }
    }

    /// <summary>Kernel module names of the watchdog drivers in use (/sys/class/watchdog/*/device/driver/module).</summary>
    public IEnumerable<string> WatchdogModules()
    {
        string dir = Sys("class/watchdog");
        if (!Directory.Exists(dir)) yield break;
        foreach (var wd in Directory.EnumerateFileSystemEntries(dir).Order(StringComparer.Ordinal))
        {
            var module = new FileInfo(Path.Combine(wd, "device", "driver", "module"));
            string? target = null;
            try { target = module.LinkTarget ?? (Directory.Exists(module.FullName) ? module.FullName : null); }
            catch (IOException) { }
            if (target is not null) yield return Path.GetFileName(target.TrimEnd('/'));
        }
    }
}

/// <summary>
/// Capture-kernel quirks per platform, in ONE table: each row says how it is detected, what it adds
/// and why, with the source. `capture-agent load` appends KernelArguments and Blacklist of every
/// detected row. Deliberately absent: iommu=off / intel_iommu=off — since Linux 4.2 the kdump kernel
/// copies the old IOMMU translation tables so in-flight DMA keeps landing where the first kernel
/// mapped it; switching translation off would let that DMA hit the capture kernel's memory.
/// </summary>
public static class PlatformQuirks
{
    private sealed record Row(string Name, Func<PlatformView, bool> Applies, Func<PlatformView, Quirk> Make);

    private static Quirk Q(string name, string reason, string[]? args = null, string[]? blacklist = null) =>
        new(name, reason, args ?? [], blacklist ?? []);

    public static readonly string[] HyperVSynthetic = ["hv_vmbus", "hv_storvsc", "hv_utils", "hv_netvsc", "hid_hyperv"];

    private static readonly Row[] Table =
    [
        new("hyperv-gen1", v => IsHyperV(v) && !IsHyperVGen2(v), _ => Q("hyperv-gen1",
            "Hyper-V Generation 1 VM: Hyper-V cannot host two connections of the same synthetic driver, and the capture " +
            "kernel's storvsc/netvsc would open a second one while the crashed kernel's is still open (Microsoft KB 2858695; " +
            "Debian #824525, kdump-tools 1:1.6.0-3). The synthetic drivers are kept out and ata_piix is told not to leave the " +
            "emulated IDE disks to storvsc (prefer_ms_hyperv=0), so the dump goes through the IDE emulation Gen1 has. " +
            "Kernels that unload VMBus on crash (VMBus 3.0+, WS2012 R2+ hosts) do not need it: Debian dropped it in " +
            "kdump-tools 1:1.7 (#1011960) and Microsoft's lis-test applies it only to RHEL <= 6.2 (Kdump_Config.sh). " +
            "Disks on the synthetic SCSI controller (Azure data disks) and netvsc NICs are unreachable with it.",
            ["ata_piix.prefer_ms_hyperv=0"], HyperVSynthetic)),

        new("hyperv-gen2", v => IsHyperV(v) && IsHyperVGen2(v), _ => Q("hyperv-gen2",
            "Hyper-V Generation 2 VM (UEFI, no IDE emulation): storvsc on VMBus is the only way to the disks, so the " +
            "synthetic drivers must stay; the capture kernel reconnects after the crashed kernel unloads VMBus " +
            "(vmbus_initiate_unload on crash, VMBus 3.0+). Only the framebuffer is kept out: lis-test #1098 had kdump fail " +
            "until hyperv_fb was blacklisted, and a Gen2 kdump kernel cannot reserve the framebuffer MMIO so hyperv_fb/" +
            "hyperv_drm collide with pci_hyperv's config window (linux-hyperv, Dexuan Cui, 2026-01).",
            null, ["hyperv_fb", "hyperv_drm"])),

        new("xen-pv", v => v.HypervisorType == "xen" && IsXenPv(v), v => Q("xen-pv",
            "Xen PV domain" + (IsXenDom0(v) ? " (dom0)" : "") + ": the crash kernel has to be loaded through the hypervisor " +
            "(kexec_load with Xen support); kexec-tools never uses kexec_file_load under Xen (do_kexec_file_syscall=0 when " +
            "xen_present(), commit 94fbe64) and `capture-agent load` has only kexec_file_load. RHEL supports Xen only in " +
            "selected configurations (supported-kdump-targets.txt). Capture will not be armed.")),

        new("vm-timer", v => v.CpuHypervisorFlag, _ => Q("vm-timer",
            "Virtual machine: the capture kernel's boot-time check that the timer interrupt comes through the IO-APIC " +
            "panics it (\"IO-APIC + timer doesn't work!\") when a busy host delivers the tick late, before anything is " +
            "saved; seen here under QEMU on a loaded host. no_timer_check skips that test; a VM's timer is emulated and " +
            "not miswired. Cloud images set it for the same reason (OpenStack diskimage-builder adds it by default, " +
            "DIB_NO_TIMER_CHECK).",
            ["no_timer_check"])),

        new("gpu-drivers", v => v.Module("nouveau") || v.Module("amdgpu"), _ => Q("gpu-drivers",
            "nouveau/amdgpu are loaded here: in a capture kernel they add nothing and load firmware that eats the small " +
            "reservation; RHEL omits both from every kdump initramfs (kdump-utils 99-kdump.conf, commit 77a0246, " +
            "RHEL-52304) and kdumpst drops amdgpu.",
            null, ["nouveau", "amdgpu"])),

        new("hpwdt", v => v.Module("hpwdt"), _ => Q("hpwdt",
            "HPE iLO watchdog (hpwdt): its kdumptimeout is meant for the first kernel only; left non-zero in the capture " +
            "kernel it can stop the watchdog from resetting a hung capture (kdump-utils kdump-lib.sh, prepare_cmdline).",
            ["hpwdt.kdumptimeout=0", "hpwdt.pretimeout=0"])),

        new("watchdog-pretimeout", v => v.WatchdogModules().Any(m => m != "hpwdt"), v => Q("watchdog-pretimeout",
            "A hardware watchdog is active: a pretimeout only panics the kernel before the reset, which in the capture " +
            "kernel just risks the reset; kdump-utils sets <driver>.pretimeout=0 for every watchdog driver in use " +
            "(kdump-lib.sh, prepare_cmdline).",
            v.WatchdogModules().Where(m => m != "hpwdt").Distinct().Select(m => $"{m}.pretimeout=0").ToArray())),
    ];

    /// <summary>The quirks that apply to this machine, in table order.</summary>
    public static IReadOnlyList<Quirk> Detect(string sysRoot = "/sys", string procRoot = "/proc")
    {
        var view = new PlatformView(sysRoot, procRoot);
        return Table.Where(r => r.Applies(view)).Select(r => r.Make(view)).ToList();
    }

    /// <summary>The names of every row, for --help and to let users switch one off.</summary>
    public static IReadOnlyList<string> Names => Table.Select(r => r.Name).ToList();

    /// <summary>
    /// Hyper-V (also Azure): the DMI strings Hyper-V sets, or a bound VMBus, or the CPUID hypervisor bit
    /// together with sysfs' hypervisor type (which Linux exposes only for Xen, so "hypervisor" flag plus
    /// VMBus is what distinguishes Hyper-V from KVM/VMware when DMI is unreadable).
    /// </summary>
    public static bool IsHyperV(PlatformView v)
    {
        bool dmi = v.DmiVendor == "Microsoft Corporation" && v.DmiProduct == "Virtual Machine";
        bool vmbus = v.Exists(v.Sys("bus/vmbus/devices")) || v.Module("hv_vmbus");
        if (v.HypervisorType is "xen") return false;
        return dmi || (vmbus && v.CpuHypervisorFlag);
    }

    /// <summary>Generation 2: UEFI firmware and no emulated IDE controller (Gen1 always has the PIIX4 IDE).</summary>
    public static bool IsHyperVGen2(PlatformView v) => v.Efi && !v.PciDriverBound("ata_piix");

    public static bool IsXenDom0(PlatformView v) => v.Text(v.Proc("xen/capabilities"))?.Contains("control_d", StringComparison.Ordinal) == true;

    /// <summary>PV (not HVM/PVH): sysfs guest_type (4.15+), or dom0, which is always PV on x86.</summary>
    public static bool IsXenPv(PlatformView v) => v.Text(v.Sys("hypervisor/guest_type")) is "PV" || IsXenDom0(v);
}

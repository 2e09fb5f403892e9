using CaptureAgent.Platform;
using Xunit;

namespace CaptureAgent.Tests.Host.Platform;

/// <summary>Each quirk detected (or not) from fake /sys and /proc trees shaped like the real platforms.</summary>
public class PlatformQuirksTests
{
    private sealed class Tree : IDisposable
    {
        private readonly TempDir _dir = new();
        public string Sys => Path.Combine(_dir.Path, "sys");
        public string Proc => Path.Combine(_dir.Path, "proc");

        public Tree()
        {
            Directory.CreateDirectory(Sys);
            Directory.CreateDirectory(Proc);
            Cpu(hypervisor: false);
        }

        public Tree File(string rel, string text)
        {
            string path = Path.Combine(_dir.Path, rel);
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            System.IO.File.WriteAllText(path, text);
            return this;
        }

        public Tree Dir(string rel)
        {
            Directory.CreateDirectory(Path.Combine(_dir.Path, rel));
            return this;
        }

        public Tree Link(string rel, string target)
        {
            string path = Path.Combine(_dir.Path, rel);
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            System.IO.File.CreateSymbolicLink(path, target);
            return this;
        }

        public Tree Cpu(bool hypervisor) => File("proc/cpuinfo",
            "processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu vme de pse tsc msr pae" + (hypervisor ? " hypervisor lahf_lm" : " lahf_lm") + "\n\n");

        public Tree HyperV() => Cpu(hypervisor: true)
            .File("sys/class/dmi/id/sys_vendor", "Microsoft Corporation\n")
            .File("sys/class/dmi/id/product_name", "Virtual Machine\n")
            .Dir("sys/bus/vmbus/devices/9be2d0f6-2e65-4a0b-a3c1-6d8b0f9e4a11")
            .Dir("sys/module/hv_vmbus");

        public IReadOnlyList<Quirk> Detect() => PlatformQuirks.Detect(Sys, Proc);
        public void Dispose() => _dir.Dispose();
    }

    /// <summary>Every tree with the CPUID hypervisor bit also gets vm-timer; these tests look at the other rows.</summary>
    private static IEnumerable<Quirk> ApartFromTheVmTimer(IReadOnlyList<Quirk> quirks)
    {
        Assert.Contains(quirks, q => q.Name == "vm-timer");
        return quirks.Where(q => q.Name != "vm-timer");
    }

    [Fact]
    public void BareMetalHasNoQuirksAndKvmOnlyTheTimerCheck()
    {
        using var t = new Tree();
        Assert.Empty(t.Detect());
        t.Cpu(hypervisor: true).File("sys/class/dmi/id/sys_vendor", "QEMU\n").File("sys/class/dmi/id/product_name", "Standard PC (i440FX + PIIX, 1996)\n")
         .Link("sys/bus/pci/drivers/ata_piix/0000:00:01.1", "../../../../devices/pci0000:00/0000:00:01.1");
        var q = Assert.Single(t.Detect());   // KVM with PIIX IDE is not Hyper-V, but it is a VM
        Assert.Equal("vm-timer", q.Name);
        Assert.Equal(["no_timer_check"], q.KernelArguments);
        Assert.Empty(q.Blacklist);
        Assert.Contains("IO-APIC + timer", q.Reason);
        Assert.Equal("adds no_timer_check", q.Effect);   // the log's line; the paragraph goes to the detailed log
    }

    [Fact]
    public void HyperVGeneration1BlacklistsSyntheticDriversAndKeepsIde()
    {
        using var t = new Tree();
        t.HyperV().Link("sys/bus/pci/drivers/ata_piix/0000:00:07.1", "../../../../devices/pci0000:00/0000:00:07.1")
         .File("sys/bus/pci/drivers/ata_piix/new_id", "");
        var q = Assert.Single(ApartFromTheVmTimer(t.Detect()));
        Assert.Equal("hyperv-gen1", q.Name);
        Assert.Equal(["ata_piix.prefer_ms_hyperv=0"], q.KernelArguments);
        Assert.Equal(["hv_vmbus", "hv_storvsc", "hv_utils", "hv_netvsc", "hid_hyperv"], q.Blacklist);
        Assert.Contains("KB 2858695", q.Reason);
        Assert.Contains("#1011960", q.Reason);
        Assert.Equal("adds ata_piix.prefer_ms_hyperv=0; keeps out hv_vmbus, hv_storvsc, hv_utils, hv_netvsc, hid_hyperv", q.Effect);
    }

    [Fact]
    public void HyperVGeneration1WithoutDmiIsFoundThroughVmbusAndCpuid()
    {
        using var t = new Tree();
        t.Cpu(hypervisor: true).Dir("sys/bus/vmbus/devices").Dir("sys/module/hv_vmbus");   // BIOS, no EFI: Gen1
        Assert.Equal("hyperv-gen1", Assert.Single(ApartFromTheVmTimer(t.Detect())).Name);
    }

    [Fact]
    public void HyperVGeneration2KeepsStorvscAndDropsTheFramebuffer()
    {
        using var t = new Tree();
        t.HyperV().Dir("sys/firmware/efi/efivars").Dir("sys/bus/pci/drivers/ata_piix");   // driver registered, no device bound
        var q = Assert.Single(ApartFromTheVmTimer(t.Detect()));
        Assert.Equal("hyperv-gen2", q.Name);
        Assert.Empty(q.KernelArguments);
        Assert.DoesNotContain("hv_storvsc", q.Blacklist);
        Assert.DoesNotContain("hv_vmbus", q.Blacklist);
        Assert.Equal(["hyperv_fb", "hyperv_drm"], q.Blacklist);
        Assert.Contains("lis-test #1098", q.Reason);
    }

    [Fact]
    public void XenPvDom0AndDomUAreFlaggedButHvmIsNot()
    {
        using (var dom0 = new Tree())
        {
            dom0.Cpu(hypervisor: true).File("sys/hypervisor/type", "xen\n").File("proc/xen/capabilities", "control_d\n");
            var q = Assert.Single(ApartFromTheVmTimer(dom0.Detect()));
            Assert.Equal("xen-pv", q.Name);
            Assert.Contains("(dom0)", q.Reason);
            Assert.Contains("kexec_file_load", q.Reason);
            Assert.Equal(q.Reason, q.Effect);   // it changes nothing: the reason is what the log must say
        }
        using (var pv = new Tree())
        {
            pv.File("sys/hypervisor/type", "xen\n").File("sys/hypervisor/guest_type", "PV\n");
            Assert.Equal("xen-pv", Assert.Single(pv.Detect()).Name);
        }
        using (var hvm = new Tree())
        {
            // Xen HVM exposes the hypervisor type too, and its platform PCI device; kexec works as on bare metal.
            hvm.Cpu(hypervisor: true).File("sys/hypervisor/type", "xen\n").File("sys/hypervisor/guest_type", "HVM\n")
               .File("sys/class/dmi/id/sys_vendor", "Xen\n");
            Assert.Equal(["vm-timer"], hvm.Detect().Select(q => q.Name));
        }
    }

    [Fact]
    public void GpuDriversAreKeptOut()
    {
        using var t = new Tree();
        t.Dir("sys/module/amdgpu/parameters");
        var q = Assert.Single(t.Detect());
        Assert.Equal("gpu-drivers", q.Name);
        Assert.Equal(["nouveau", "amdgpu"], q.Blacklist);
        Assert.Contains("77a0246", q.Reason);
    }

    [Fact]
    public void WatchdogsGetTheirPretimeoutCleared()
    {
        using var t = new Tree();
        t.Dir("sys/module/hpwdt").Dir("sys/module/iTCO_wdt")
         .Link("sys/class/watchdog/watchdog0/device/driver/module", "../../../../../module/iTCO_wdt")
         .Link("sys/class/watchdog/watchdog1/device/driver/module", "../../../../../module/hpwdt");
        var quirks = t.Detect();
        Assert.Equal(["hpwdt", "watchdog-pretimeout"], quirks.Select(q => q.Name));
        Assert.Equal(["hpwdt.kdumptimeout=0", "hpwdt.pretimeout=0"], quirks[0].KernelArguments);
        Assert.Equal(["iTCO_wdt.pretimeout=0"], quirks[1].KernelArguments);
    }

    [Fact]
    public void EveryRowHasAReasonWithASource()
    {
        Assert.Equal(["hyperv-gen1", "hyperv-gen2", "xen-pv", "vm-timer", "gpu-drivers", "hpwdt", "watchdog-pretimeout"], PlatformQuirks.Names);
        using var t = new Tree();
        t.HyperV().Dir("sys/module/nouveau").Dir("sys/module/hpwdt");
        var quirks = t.Detect();
        Assert.Equal(["hyperv-gen1", "vm-timer", "gpu-drivers", "hpwdt"], quirks.Select(q => q.Name));
        Assert.All(quirks, q => Assert.Matches(@"(KB \d+|#\d+|commit|kdump-utils|kdump-lib\.sh|diskimage-builder)", q.Reason));
    }
}

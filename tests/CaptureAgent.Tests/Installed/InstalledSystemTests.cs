using System.Globalization;
using CaptureAgent.Tests.Integration;
using Xunit;
using Xunit.Abstractions;

namespace CaptureAgent.Tests.Installed;

/// <summary>
/// capture-agent on a real installed Debian bookworm (systemd, initramfs-tools, lvm2, mdadm; the
/// fixture kernel's package installed by dpkg) per disk layout, by scripts/installed-system:
/// `capture-agent install`, the real capture-agent.service arms (load --auto), `status`,
/// `test --crash --yes`; the capture kernel saves onto the root filesystem; on the next boot the
/// service has re-armed, `verify` exits 0 and `report` shows the panic. Each layout reports which
/// stage failed first and why, with the end of that boot's console.
/// </summary>
[Trait("Category", "Vm")]
[Trait("Category", "Installed")]
[Collection("VirtualMachines")]   // one QEMU boot at a time: two cores shared by everything
public class InstalledSystemTests(ITestOutputHelper log)
{
    [Theory]
    [InlineData("plain-ext4")]    // GPT + ext4 root partition
    [InlineData("lvm-ext4")]      // GPT + PV, VG debian-vg, ext4 root LV (Debian/Ubuntu installer)
    [InlineData("lvm-xfs")]       // GPT + PV, VG rhel, xfs root LV (RHEL's default)
    [InlineData("md-lvm-ext4")]   // md RAID1 (1.2) of two disks as the PV, ext4 root LV
    public void CrashOnTheInstalledSystemIsCapturedAndVerifiedOnTheNextBoot(string layout)
    {
        string repo = Fixtures.RepoRoot;
        string outDir = Path.Combine(repo, "artifacts", "installed", $"{DateTime.UtcNow:yyyyMMdd-HHmmss}-{layout}");
        // The first layout of a fresh cache also makes the root filesystem (mmdebstrap, minutes).
        var r = Fixtures.Exec(Path.Combine(repo, "scripts", "installed-system"), ["--layout", layout, "--out", outDir], timeoutSeconds: 3600);
        log.WriteLine(r.Stdout);
        log.WriteLine(r.Stderr);
        string resultFile = Path.Combine(outDir, layout, "result.env");
        Assert.True(File.Exists(resultFile), $"scripts/installed-system --layout {layout} stopped before judging (exit {r.ExitCode}):\n{Tail(r.Stderr, 40)}");
        var result = ReadEnv(resultFile);

        if (result["verdict"] != "pass")
        {
            string tail = result.TryGetValue("console_tail", out var t) && File.Exists(t) ? File.ReadAllText(t) : "(no console)";
            Assert.Fail($"{layout}: the {result["failed_stage"]} stage failed: {result["reason"]}\n--- console tail ---\n{tail}");
        }
        Assert.Equal(0, r.ExitCode);
        // The figures the harness reports were measured, not left blank.
        Assert.InRange(Number(result, "agent_peak_kib"), 1024, 32 * 1024);
        Assert.InRange(Number(result, "capture_image_bytes"), 512 * 1024, 64L << 20);
        Assert.True(Number(result, "vmcore_bytes") > 1 << 20, "the saved vmcore is implausibly small");
        Assert.True(Number(result, "armed_at_boot_s") > 0, "the service did not arm at boot after the capture");
        string check = Path.Combine(outDir, layout, "check");
        Assert.Contains("sysrq triggered crash", File.ReadAllText(Path.Combine(check, "report.txt")));
        Assert.Equal("1", ReadEnv(Path.Combine(check, "result.env"))["kexec_crash_loaded"]);   // re-armed at boot
    }


    private static Dictionary<string, string> ReadEnv(string path)
    {
        var d = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var line in File.ReadAllLines(path))
        {
            int eq = line.IndexOf('=');
            if (eq > 0) d[line[..eq]] = line[(eq + 1)..];
        }
        return d;
    }

    private static double Number(Dictionary<string, string> result, string key)
    {
        bool found = result.TryGetValue(key, out var v) & double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out double n);
        Assert.True(found, $"the harness reported no {key}");
        return n;
    }

    private static string Tail(string text, int lines) => string.Join('\n', text.Split('\n').TakeLast(lines));
}

using System.Globalization;
using Xunit;
using Xunit.Abstractions;
using CaptureAgent.Tests.Integration;

namespace CaptureAgent.Tests.Installed;

/// <summary>
/// The Debian package on the installed Debian bookworm of scripts/installed-system, by
/// scripts/installed-package (three boots): `dpkg -i` of the .deb scripts/build-deb made from this
/// tree arms under the real systemd; early_load = yes and update-initramfs pack the capture kernel
/// into the host initrd through the package's initramfs-tools hook; a later kernel package's
/// install builds its capture image through the package's /etc/kernel hook; on the next boot the
/// host initrd arms before the root filesystem is mounted (console) and the service arms again;
/// `test --crash --yes` is captured. The first boot then switches the system to Debian's dracut
/// (initramfs-tools removed); the boot after the capture runs the initrd dracut made with the
/// package's dracut module, whose pre-mount hook arms before the root filesystem is mounted
/// (console) and the service after it; that boot finds the dump (savecore service, verify,
/// report); `dpkg --purge` leaves no file, unit, initrd content or armed kernel behind.
/// </summary>
[Trait("Category", "Vm")]
[Trait("Category", "Installed")]
[Collection("VirtualMachines")]   // one QEMU boot at a time: two cores shared by everything
public class InstalledPackageTests(ITestOutputHelper log)
{
    [Fact]
    public void PackageInstallsArmsEarlyCapturesAndPurgesCleanOnInstalledDebian()
    {
        const string layout = "plain-ext4";
        string repo = Fixtures.RepoRoot;
        string outDir = Path.Combine(repo, "artifacts", "installed-package", $"{DateTime.UtcNow:yyyyMMdd-HHmmss}");
        var r = Fixtures.Exec(Path.Combine(repo, "scripts", "installed-package"), ["--layout", layout, "--out", outDir], timeoutSeconds: 14400);
        log.WriteLine(r.Stdout);
        log.WriteLine(r.Stderr);
        string dir = Path.Combine(outDir, layout);
        string resultFile = Path.Combine(dir, "result.env");
        Assert.True(File.Exists(resultFile), $"scripts/installed-package stopped before judging (exit {r.ExitCode}):\n{Tail(r.Stderr, 40)}");
        var result = ReadEnv(resultFile);

        if (result["verdict"] != "pass")
        {
            string tail = result.TryGetValue("console_tail", out var t) && File.Exists(t) ? File.ReadAllText(t) : "(no console)";
            Assert.Fail($"the {result["failed_stage"]} stage failed: {result["reason"]}\n--- console tail ---\n{tail}");
        }
        Assert.Equal(0, r.ExitCode);
        // The early hook's lines came before the root mount, and they say it armed.
        Assert.True(Number(result, "early_console_line") < Number(result, "root_mount_console_line"));
        string early = File.ReadAllText(Path.Combine(dir, "early-console.txt"));
        Assert.Contains("early arming from the initramfs", early);
        Assert.Contains("capture command line:", early);
        Assert.Equal("0", result["early_cmdline_differs"]);   // early and late arming: one command line
        Assert.True(Number(result, "armed_at_boot_s") > 0, "capture-agent.service did not arm at boot");
        // dracut: the package's module packed the capture kernel into the initrd Debian's dracut made,
        // and booted with it, its pre-mount hook armed before the root mount; the service armed after.
        Assert.True(Number(result, "dracut_initrd_agent_files") > 0, "dracut packed no capture-agent file");
        Assert.True(Number(result, "dracut_early_console_line") < Number(result, "dracut_root_mount_console_line"));
        string dracutEarly = File.ReadAllText(Path.Combine(dir, "dracut-early-console.txt"));
        Assert.Contains("early arming from the initramfs", dracutEarly);
        Assert.Contains("capture command line:", dracutEarly);
        Assert.Contains("armed: a capture kernel is loaded", dracutEarly);
        Assert.Equal("1", result["dracut_boot_kexec_crash_loaded"]);
        Assert.Equal("1", result["dracut_boot_status_armed"]);
        Assert.Equal("0", result["dracut_boot_cmdline_differs"]);
        // The figures were measured, not left blank.
        Assert.InRange(Number(result, "deb_bytes"), 512 * 1024, 64L << 20);
        Assert.InRange(Number(result, "capture_image_bytes"), 512 * 1024, 64L << 20);
        Assert.InRange(Number(result, "later_capture_image_bytes"), 512 * 1024, 64L << 20);
        Assert.InRange(Number(result, "agent_peak_kib"), 1024, 32 * 1024);
        Assert.True(Number(result, "vmcore_bytes") > 1 << 20, "the saved vmcore is implausibly small");
        Assert.Contains("sysrq triggered crash", File.ReadAllText(Path.Combine(dir, "check", "report.txt")));
        Assert.Equal("", File.ReadAllText(Path.Combine(dir, "check", "leftovers.txt")).Trim());
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
        Assert.True(found, $"scripts/installed-package reported no {key}");
        return n;
    }

    private static string Tail(string text, int lines) => string.Join('\n', text.Split('\n').TakeLast(lines));
}

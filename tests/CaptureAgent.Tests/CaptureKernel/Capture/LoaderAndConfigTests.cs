using CaptureAgent.Config;
using CaptureAgent.Filtering;
using CaptureAgent.Kexec;
using Xunit;

namespace CaptureAgent.Tests.CaptureKernel.Capture;

public class LoaderAndConfigTests
{
    [Fact]
    public void CaptureCommandLineDropsWhatMustNotCarryOverAndAddsTheKdumpBasics()
    {
        string running = "BOOT_IMAGE=/boot/vmlinuz-6.1.0-21-amd64 root=UUID=1234 ro crashkernel=256M console=ttyS0 " +
                         "initrd=/boot/initrd.img quiet init=/sbin/init hugepages=64 nr_cpus=8 foo=\"a b\" CAPTURE_AGENT_ROLE=measure-guest -- single --init-arg";
        var cmdline = CaptureCommandLine.Build(running, "my.extra=1", ["hv_vmbus", "hv_storvsc"]);
        var tokens = CaptureCommandLine.Tokenize(cmdline);
        // CAPTURE_AGENT_ROLE: a rehearsal VM's first-kernel role; in the capture kernel /init must capture.
        foreach (var gone in new[] { "BOOT_IMAGE", "crashkernel", "initrd", "init", "hugepages", "CAPTURE_AGENT_ROLE" })
            Assert.DoesNotContain(tokens, t => t.Split('=')[0] == gone);
        Assert.Contains("root=UUID=1234", tokens);
        Assert.Contains("console=ttyS0", tokens);
        Assert.Contains("foo=\"a b\"", tokens);
        Assert.Contains("irqpoll", tokens);
        Assert.Contains("reset_devices", tokens);
        Assert.Equal(["nr_cpus=1"], tokens.Where(t => t.StartsWith("nr_cpus")));
        Assert.Contains("modprobe.blacklist=hv_vmbus,hv_storvsc", tokens);
        Assert.Equal("my.extra=1", tokens[^1]);
        Assert.DoesNotContain("--", tokens);
        Assert.DoesNotContain("single", tokens);
    }

    [Fact]
    public void ARepeatedParameterIsKeptOnceAndTheLastValueOfEachNameStillWins()
    {
        // This host's own line has no_timer_check; the vm-timer quirk appends it again.
        var tokens = CaptureCommandLine.Tokenize(CaptureCommandLine.Build("root=/dev/vda1 no_timer_check console=ttyS0", "no_timer_check"));
        Assert.Single(tokens, "no_timer_check");
        Assert.Single(tokens, "root=/dev/vda1");

        // a=1 a=2 a=1: the kernel takes a=1; dropping the later copy would leave a=2.
        Assert.Equal("a=2 a=1 b", CaptureCommandLine.WithoutRepeats("a=1 a=2 a=1 b"));
        Assert.Equal("1", CaptureCommandLine.Value(CaptureCommandLine.WithoutRepeats("a=1 a=2 a=1"), "a"));
        // Words for init after "--" are positional: repeats there stay.
        Assert.Equal("x y -- y y", CaptureCommandLine.WithoutRepeats("x y x y -- y y"));
    }

    [Fact]
    public void StatusExplainsWhyCaptureIsNotArmed()
    {
        using var dir = new TempDir();
        void Write(string rel, string text)
        {
            var p = Path.Combine(dir.Path, rel);
            Directory.CreateDirectory(Path.GetDirectoryName(p)!);
            File.WriteAllText(p, text);
        }
        Write("proc/cmdline", "root=/dev/vda1 console=ttyS0\n");
        Write("sys/kernel/kexec_crash_loaded", "0\n");
        Write("sys/kernel/kexec_crash_size", "0\n");
        Assert.Contains("add crashkernel=", CrashKernelState.Read(dir.Path).Explain());

        Write("proc/cmdline", "root=/dev/vda1 crashkernel=512M\n");
        Assert.Contains("crashkernel=512M is on the command line but the kernel reserved nothing", CrashKernelState.Read(dir.Path).Explain());

        Write("sys/kernel/kexec_crash_size", "268435456\n");
        Assert.Contains("256 MiB are reserved but no capture kernel is loaded", CrashKernelState.Read(dir.Path).Explain());
        Write("proc/sys/kernel/kexec_load_disabled", "1\n");
        Assert.Contains("kexec_load_disabled", CrashKernelState.Read(dir.Path).Explain());

        Write("sys/kernel/kexec_crash_loaded", "1\n");
        var armed = CrashKernelState.Read(dir.Path);
        Assert.True(armed.Loaded);
        Assert.StartsWith("armed", armed.Explain());
    }

    [Fact]
    public void KexecErrorsAreExplainedForPeople()
    {
        var state = new CrashKernelState(false, 96L << 20, "crashkernel=96M", "", false, "integrity");
        Assert.Contains("locked down (integrity", KexecLoader.Explain(1, "/boot/vmlinuz", null, state));
        Assert.Contains("not signed", KexecLoader.Explain(129, "/boot/vmlinuz", null, state));
        Assert.Contains("96 MiB crash reservation is too small", KexecLoader.Explain(12, "/dev/null", null, state));
    }

    [Fact]
    [Trait("Category", "Fixture")]
    public void BzImageInitSizeIsReadFromARealKernel()
    {
        var k = Integration.Fixtures.Kernel("6.1");
        string kernel = Path.Combine(k.Root, "boot", "vmlinuz-" + k.Release);
        Assert.True(File.Exists(kernel), $"{kernel} is missing: run scripts/fixtures.sh 6.1");
        long? initSize = KexecLoader.BzImageInitSize(kernel);
        // Debian 6.1 cloud: about 51.5 MiB (lab notes); it must be larger than the compressed file.
        Assert.NotNull(initSize);
        Assert.InRange(initSize!.Value, new FileInfo(kernel).Length, 256L << 20);
        Assert.Null(KexecLoader.BzImageInitSize("/etc/hostname"));
    }

    [Fact]
    public void ConfigParsesEveryKeyAndNamesTheLineOfEachMistake()
    {
        var c = AgentConfig.Parse("""
            # capture settings
            target = LABEL=dumps
            fstype = ext4
            path = /var/crash   # where
            dump_level = 17
            compression = zlib
            final_action = poweroff
            failure_action = shell
            device_timeout = 20
            extra_modules = nvme, xfs
            blacklist = hv_vmbus
            kernel_cmdline_append = "foo=bar"
            dump_level = 99
            nonsense
            colour = blue
            path = ../etc
            final_action = 3
            """, "test.conf");
        Assert.Equal("LABEL=dumps", c.Target);
        Assert.Equal("ext4", c.FilesystemType);
        Assert.Equal("/var/crash/{host}-{date}", c.Path);
        Assert.Equal((DumpLevel)17, c.DumpLevel);                 // the bad later line keeps the good value
        Assert.Equal(CaptureAgent.Compression.PageCodec.Zlib, c.Compression);
        Assert.Equal(FinalAction.Poweroff, c.FinalAction);
        Assert.Equal(FinalAction.Shell, c.FailureAction);
        Assert.Equal(TimeSpan.FromSeconds(20), c.DeviceTimeout);
        Assert.Equal(["nvme", "xfs"], c.ExtraModules);
        Assert.Equal(["hv_vmbus"], c.Blacklist);
        Assert.Equal("foo=bar", c.KernelCommandLineAppend);
        Assert.Equal(5, c.Errors.Count);
        Assert.StartsWith("test.conf:13: dump_level must be 0-31", c.Errors[0]);
        Assert.StartsWith("test.conf:14: expected key = value", c.Errors[1]);
        Assert.StartsWith("test.conf:15: unknown key 'colour'", c.Errors[2]);
        Assert.StartsWith("test.conf:16: path must be absolute", c.Errors[3]);
        Assert.StartsWith("test.conf:17: final_action must be", c.Errors[4]);
    }
}

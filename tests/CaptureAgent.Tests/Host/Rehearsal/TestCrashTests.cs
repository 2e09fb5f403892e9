using CaptureAgent.Cli;
using CaptureAgent.Kexec;
using CaptureAgent.Rehearsal;
using Xunit;
using CaptureAgent.Common;

namespace CaptureAgent.Tests.Host.Rehearsal;

/// <summary>`test --crash`: it crashes only an armed machine, and only after the answer CRASH (or --yes).</summary>
public class TestCrashTests
{
    private static CrashKernelState Armed(bool loaded) => new(loaded, 256L << 20, "crashkernel=256M", "root=/dev/vda1 crashkernel=256M", false, null);

    private static (int Rc, int Crashes, string Output) Run(string[] args, string input, bool loaded)
    {
        int crashes = 0;
        var output = new StringWriter();
        int rc = SelfTestCommand.Test(args, new StringReader(input), output, Armed(loaded), () => crashes++);
        return (rc, crashes, output.ToString());
    }

    [Fact]
    public void TheAnswerCrashIsTheOnlyYes()
    {
        var (rc, crashes, output) = Run(["--crash"], "CRASH\n", loaded: true);
        Assert.Equal(1, crashes);
        Assert.Contains("Type CRASH to go on", output);
        Assert.Contains("armed: a capture kernel is loaded in a 256 MiB reservation", output);
        Assert.Equal(ExitCodes.Failed, rc);   // returning at all means the kernel survived the trigger

        foreach (var answer in new[] { "", "y\n", "yes\n", "crash\n", "CRASH NOW\n" })
        {
            (rc, crashes, output) = Run(["--crash"], answer, loaded: true);
            Assert.Equal(0, crashes);
            Assert.Equal(ExitCodes.Failed, rc);
            Assert.Contains("not confirmed; nothing done", output);
        }
    }

    [Fact]
    public void YesSkipsTheQuestion()
    {
        var (_, crashes, output) = Run(["--crash", "--yes"], "", loaded: true);
        Assert.Equal(1, crashes);
        Assert.DoesNotContain("Type CRASH", output);
    }

    [Fact]
    public void AnUnarmedMachineIsNeverCrashed()
    {
        var (rc, crashes, _) = Run(["--crash", "--yes"], "CRASH\n", loaded: false);
        Assert.Equal((ExitCodes.Failed, 0), (rc, crashes));
        // Without --crash nothing happens either: `test` alone is a usage error.
        (rc, crashes, _) = Run([], "CRASH\n", loaded: true);
        Assert.Equal((ExitCodes.Usage, 0), (rc, crashes));
    }

    [Fact]
    public void TheTriggerWritesSysrqC()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("sysrq-trigger"), "");
        CrashTrigger.Trigger(dir.Path);
        Assert.Equal("c", File.ReadAllText(dir.File("sysrq-trigger")));
    }
}

using CaptureAgent.Boot;
using Xunit;

namespace CaptureAgent.Tests.CaptureKernel.Boot;

public class BootEnvironmentTests
{
    /// <summary>The capture kernel's watermark boost is set to 0 where the kernel has the knob, and nothing is made where it has not.</summary>
    [Fact]
    public void TheWatermarkBoostIsTurnedOffWhereTheKernelHasIt()
    {
        using var dir = new TempDir();
        string vm = Path.Combine(dir.Path, "sys", "vm");
        Directory.CreateDirectory(vm);
        string knob = Path.Combine(vm, "watermark_boost_factor");
        File.WriteAllText(knob, "15000\n");
        BootEnvironment.DisableWatermarkBoost(dir.Path);
        Assert.Equal("0", File.ReadAllText(knob).Trim());

        File.Delete(knob);
        BootEnvironment.DisableWatermarkBoost(dir.Path);
        Assert.False(File.Exists(knob));
    }
}

using CaptureAgent.Rehearsal;
using CaptureAgent.Tests.Integration;
using Xunit;

namespace CaptureAgent.Tests.Host.Rehearsal;

public class CrashVmTests
{
    /// <summary>A dynamically linked agent (the published one) brings its loader and libraries into the first kernel's initramfs.</summary>
    [Fact]
    [Trait("Category", "Binary")]
    public void ADynamicAgentCarriesItsLoaderAndTheLoadSettings()
    {
        using var dir = new TempDir();
        string kernel = dir.File("k"), initrd = dir.File("i"), first = dir.File("first.cpio");
        File.WriteAllBytes(kernel, new byte[2000]);
        File.WriteAllBytes(initrd, new byte[3000]);
        CrashVm.WriteFirstInitramfs(first, Fixtures.Binary, kernel, initrd, "nokaslr", ["hv_vmbus", "hv_storvsc"]);
        var listing = Fixtures.Exec("/usr/bin/cpio", ["-t", "--quiet", "-F", first]).Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Contains("init", listing);
        Assert.Contains("lib64/ld-linux-x86-64.so.2", listing);
        Assert.Contains(listing, l => l.EndsWith("/libc.so.6", StringComparison.Ordinal));
        Assert.Contains("lib64", listing);   // parents before their files: the kernel's unpacker does not make them
        Assert.True(Array.IndexOf(listing, "lib64") < Array.IndexOf(listing, "lib64/ld-linux-x86-64.so.2"));
        string extract = dir.File("x");
        Directory.CreateDirectory(extract);
        Fixtures.Exec("/bin/sh", ["-c", $"cd '{extract}' && cpio -id --quiet < '{first}'"]);
        Assert.Equal("nokaslr\nhv_vmbus,hv_storvsc\n", File.ReadAllText(Path.Combine(extract, "boot/capture.append")));
    }
}

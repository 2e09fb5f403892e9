using Xunit;
using Xunit.Abstractions;

namespace CaptureAgent.Tests.Integration;

/// <summary>
/// A LUKS2 container as a dump target in a real capture kernel (scripts/e2e, E2E_SCENARIO=luks):
/// named as the mapping an installed system opens (/dev/mapper/luks-UUID) and by the container's
/// own UUID=, it is skipped each time with the reason and what to do, and the next target, an ext4
/// disk, takes the dump.
/// </summary>
[Trait("Category", TestCategory.Vm)]
[Collection("VirtualMachines")]
public class LuksEndToEndTests(ITestOutputHelper log)
{
    [Fact]
    public void AnEncryptedTargetIsSkippedWithItsReasonAndTheNextOneTakesTheDump()
    {
        using var dir = new TempDir();
        var (stdout, outDir) = E2e.Run(log, "luks", dir);
        string uuid = File.ReadAllText(Path.Combine(outDir, "luks-uuid.txt")).Trim();
        var lines = File.ReadAllLines(Path.Combine(outDir, "console.log")).Select(l => l.TrimEnd('\r')).ToList();
        const string advice = "the capture kernel cannot unlock it; put the dump target outside the encrypted volume, or use a network target (nfs:, ssh:)";

        string mapping = Assert.Single(lines, l => l.StartsWith($"capture-agent: /dev/mapper/luks-{uuid} failed: ", StringComparison.Ordinal));
        Assert.Contains("vda is an encrypted volume (LUKS): if the target is inside, " + advice, mapping);
        string container = Assert.Single(lines, l => l.StartsWith($"capture-agent: UUID={uuid} failed: ", StringComparison.Ordinal));
        Assert.EndsWith("/dev/vda is an encrypted volume (LUKS2): " + advice, container);
        Assert.Contains(lines, l => l.StartsWith("capture-agent: LABEL=crashdump: complete dump saved in ", StringComparison.Ordinal));
        Assert.True(lines.FindIndex(l => l == mapping) < lines.FindIndex(l => l == container), stdout);
        E2e.AssertCompleteDump(outDir);
    }
}

using CaptureAgent.Targets;
using Xunit;

namespace CaptureAgent.Tests.CaptureKernel.Targets;

public class TargetSpecTests
{
    [Theory]
    [InlineData("/dev/vda1", TargetKind.Path, "/dev/vda1")]
    [InlineData("  /dev/nvme0n1p2 ", TargetKind.Path, "/dev/nvme0n1p2")]
    [InlineData("/dev/mapper/vg-crash", TargetKind.Path, "/dev/mapper/vg-crash")]
    [InlineData("UUID=3f1c2a9e-5b7d-4e21-9c0a-7d5e1b2c3a4f", TargetKind.Uuid, "3f1c2a9e-5b7d-4e21-9c0a-7d5e1b2c3a4f")]
    [InlineData("uuid=\"1234-ABCD\"", TargetKind.Uuid, "1234-ABCD")]
    [InlineData("LABEL=crash dumps", TargetKind.Label, "crash dumps")]
    [InlineData("LABEL='x=y'", TargetKind.Label, "x=y")]
    [InlineData("PARTUUID=deadbeef-05", TargetKind.PartUuid, "deadbeef-05")]
    [InlineData("PARTLABEL=\"crash dumps\"", TargetKind.PartLabel, "crash dumps")]
    [InlineData("/dev/disk/by-uuid/3f1c2a9e-5b7d-4e21-9c0a-7d5e1b2c3a4f", TargetKind.Uuid, "3f1c2a9e-5b7d-4e21-9c0a-7d5e1b2c3a4f")]
    [InlineData("/dev/disk/by-label/crash\\x20dumps", TargetKind.Label, "crash dumps")]
    [InlineData("/dev/disk/by-label/d\\xc3\\xbcmp", TargetKind.Label, "dümp")]
    [InlineData("/dev/disk/by-partuuid/deadbeef-01", TargetKind.PartUuid, "deadbeef-01")]
    [InlineData("/dev/disk/by-partlabel/esp", TargetKind.PartLabel, "esp")]
    public void Parses(string text, TargetKind kind, string value)
    {
        var spec = TargetSpec.Parse(text);
        Assert.Equal(kind, spec.Kind);
        Assert.Equal(value, spec.Value);
    }

    [Theory]
    [InlineData("")]
    [InlineData("vda1")]
    [InlineData("UUID=")]
    [InlineData("LABEL=\"\"")]
    [InlineData("SERIAL=123")]
    [InlineData("/dev/")]
    [InlineData("/dev/../etc/passwd")]
    [InlineData("/etc/passwd")]
    [InlineData(null)]
    public void RejectsWithAReason(string? text)
    {
        Assert.False(TargetSpec.TryParse(text, out _, out string? error));
        Assert.False(string.IsNullOrEmpty(error));
        if (text is not null) Assert.Throws<FormatException>(() => TargetSpec.Parse(text));
    }

    [Fact]
    public void PrintsAsWrittenAndMatchesUuidsWithoutCase()
    {
        Assert.Equal("UUID=abc", TargetSpec.Parse("uuid=abc").ToString());
        Assert.Equal("LABEL=a b", TargetSpec.Parse("LABEL=\"a b\"").ToString());
        Assert.Equal("PARTUUID=x", TargetSpec.Parse("PARTUUID=x").ToString());
        Assert.Equal("PARTLABEL=x", TargetSpec.Parse("PARTLABEL=x").ToString());
        Assert.Equal("/dev/vda", TargetSpec.Parse("/dev/vda").ToString());
        Assert.True(TargetSpec.Parse("UUID=1234-abcd").ValueMatches("1234-ABCD"));
        Assert.True(TargetSpec.Parse("PARTUUID=DEADBEEF-01").ValueMatches("deadbeef-01"));
        Assert.False(TargetSpec.Parse("LABEL=Dump").ValueMatches("dump"));
        Assert.False(TargetSpec.Parse("LABEL=Dump").ValueMatches(null));
        Assert.Equal("mapper/vg-crash", TargetSpec.Parse("/dev/mapper/vg-crash").DevRelativeName);
        Assert.Null(TargetSpec.Parse("LABEL=x").DevRelativeName);
    }
}

using CaptureAgent.Formats;
using Xunit;

namespace CaptureAgent.Tests.Engine.Formats;

/// <summary>One reader of manifest.json, two modes: verify's strict reading and report's lenient one.</summary>
public class ManifestReaderTests
{
    private const string EarlyAgent = """
        {"version": 1, "complete": true, "incompleteReason": null, "host": "web1", "kernelRelease": "6.1.0-21-amd64",
         "crashTime": "2026-03-01T10:00:07Z", "files": [{"name": "vmcore", "size": 65536, "crc64": "0123456789abcdef"},
         {"name": "../etc/passwd", "size": 1}, {"name": "dmesg.txt"}]}
        """;

    [Fact]
    public void LenientTakesWhatFits()
    {
        var m = ManifestReader.Parse(EarlyAgent, ManifestReading.Lenient);
        Assert.True(m.Complete);
        Assert.Equal(("web1", "6.1.0-21-amd64", "unknown", 1), (m.Host, m.KernelRelease, m.AgentVersion, m.Schema));
        Assert.Equal(new DateTimeOffset(2026, 3, 1, 10, 0, 7, TimeSpan.Zero), m.CrashTime);
        Assert.Equal([new ManifestFile("vmcore", 65536, "0123456789abcdef"), new ManifestFile("dmesg.txt", -1, "")], m.Files);
        var odd = ManifestReader.Parse("""{"complete": "yes", "host": 7, "crash_time": "soon", "files": 3}""", ManifestReading.Lenient);
        Assert.Equal((false, "", DateTimeOffset.MinValue, 0), (odd.Complete, odd.Host, odd.CrashTime, odd.Files.Count));
    }

    [Theory]
    [InlineData("""{"complete": true}""", "no \"files\"")]
    [InlineData("""{"files": []}""", "no \"complete\"")]
    [InlineData("""{"complete": "yes", "files": []}""", "\"complete\" is not true or false")]
    [InlineData("""{"complete": true, "host": 7, "files": []}""", "\"host\" is not a string")]
    [InlineData("""{"complete": true, "files": [{"name": "../x", "size": 1}]}""", "file name '../x' is not a plain name")]
    [InlineData("""{"complete": true, "files": [{"name": "vmcore"}]}""", "no \"size\"")]
    [InlineData("""{"complete": true, "dump_level": 99999999999, "files": []}""", "\"dump_level\" is not a small integer")]
    [InlineData("""[1]""", "not a JSON object")]
    public void StrictNamesWhatIsWrong(string json, string why)
    {
        var e = Assert.Throws<InvalidDataException>(() => ManifestReader.Parse(json, ManifestReading.Strict));
        Assert.Equal($"manifest.json is not a valid manifest: {why}", e.Message);
    }

    [Fact]
    public void StrictReadsWhatTheAgentWrites()
    {
        var written = new DumpManifest { Complete = true, Host = "web1", DumpLevel = 31, DumpablePages = null,
            Files = [new ManifestFile("vmcore.flat", 10, "")] };
        var back = DumpManifest.Parse(written.ToJson());
        Assert.Equal((true, "web1", 31, (ulong?)null), (back.Complete, back.Host, back.DumpLevel, back.DumpablePages));
        Assert.Equal(written.Files, back.Files);   // a null crc64 reads back as ""
    }
}

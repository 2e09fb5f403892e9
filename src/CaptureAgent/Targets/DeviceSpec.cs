namespace CaptureAgent.Targets;

/// <summary>
/// A dump target device as the config names it: /dev/NAME, UUID=..., LABEL=...; resolved by
/// probing superblocks because the capture kernel has no udev to make /dev/disk/by-* links.
/// </summary>
public sealed class DeviceSpec
{
    public string Text { get; }
    private readonly string? _path, _uuid, _label;

    public DeviceSpec(string text)
    {
        Text = text.Trim();
        if (Text.StartsWith("UUID=", StringComparison.OrdinalIgnoreCase)) _uuid = Text[5..].Trim('"').ToLowerInvariant();
        else if (Text.StartsWith("LABEL=", StringComparison.OrdinalIgnoreCase)) _label = Text[6..].Trim('"');
        else if (Text.StartsWith('/')) _path = Text;
        else throw new ArgumentException($"target '{text}' is neither a /dev path nor UUID=... nor LABEL=...");
    }

    public sealed record Match(string Node, FilesystemInfo? Filesystem);

    /// <summary>One look: the matching device, or null; <paramref name="seen"/> describes what was there.</summary>
    public Match? Find(string sysRoot, string devRoot, out string seen)
    {
        var parts = new List<string>();
        Match? found = null;
        foreach (var d in BlockDevices.List(sysRoot, devRoot))
        {
            var fs = File.Exists(d.Node) || _path is null ? FilesystemProbe.Probe(d.Node) : null;
            parts.Add(fs is null ? $"{d.Name} (unknown)" : $"{d.Name} ({fs.Type}{(fs.Label is null ? "" : " LABEL=" + fs.Label)})");
            if (found is not null) continue;
            bool hit = _path is not null ? d.Node == _path
                : _uuid is not null ? fs?.Uuid == _uuid
                : fs?.Label == _label;
            if (hit) found = new Match(d.Node, fs ?? FilesystemProbe.Probe(d.Node));
        }
        // A path may name something sysfs does not list (a symlink the admin made); take it as is.
        if (found is null && _path is not null && File.Exists(_path)) found = new Match(_path, FilesystemProbe.Probe(_path));
        seen = parts.Count == 0 ? "no block devices" : string.Join(", ", parts);
        return found;
    }

    /// <summary>Polls until the device shows up (drivers probe asynchronously) or the timeout passes.</summary>
    public Match WaitFor(TimeSpan timeout, string sysRoot = "/sys", string devRoot = "/dev",
        Func<TimeSpan>? elapsed = null, Action<TimeSpan>? sleep = null)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        elapsed ??= () => clock.Elapsed;
        sleep ??= Thread.Sleep;
        while (true)
        {
            var m = Find(sysRoot, devRoot, out string seen);
            if (m is not null) return m;
            if (elapsed() >= timeout)
                throw new IOException($"no block device matching {Text} after {timeout.TotalSeconds:0} s; seen: {seen}");
            sleep(TimeSpan.FromMilliseconds(250));
        }
    }
}

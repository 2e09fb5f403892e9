namespace CaptureAgent.Common;

/// <summary>Memory figures of this process and of the kernel it runs on, for logs and the capture report.</summary>
public static class ProcessMemory
{
    /// <summary>MemTotal and MemAvailable of the capture kernel: what the reservation left for us.</summary>
    public static string MemorySummary()
    {
        try
        {
            var lines = File.ReadLines("/proc/meminfo").Where(l => l.StartsWith("MemTotal:") || l.StartsWith("MemAvailable:"));
            return string.Join(", ", lines.Select(l => System.Text.RegularExpressions.Regex.Replace(l, @"\s+", " ")));
        }
        catch (IOException)
        {
            return "meminfo unavailable";
        }
    }

    /// <summary>Peak resident memory of this process so far, in KiB (VmHWM).</summary>
    public static long PeakRssKiB() => StatusKiB("VmHWM:");

    /// <summary>
    /// "R KiB resident (anon A, file F, shmem S)": in the capture kernel the binary's own pages are
    /// shmem (the initramfs lives in the page cache whether they are mapped or not); the anonymous
    /// part is what the agent takes from the reservation on top of that.
    /// </summary>
    public static string MemoryNow() =>
        $"{StatusKiB("VmRSS:")} KiB resident (anon {StatusKiB("RssAnon:")}, file {StatusKiB("RssFile:")}, shmem {StatusKiB("RssShmem:")})";

    /// <summary>A "Key:   N kB" line of /proc/self/status, or -1.</summary>
    private static long StatusKiB(string key)
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/status"))
                if (line.StartsWith(key, StringComparison.Ordinal))
                    return long.TryParse(line[key.Length..].Trim().Split(' ')[0], out long kib) ? kib : -1;
        }
        catch (IOException) { }
        return -1;
    }
}

using System.Text;
using CaptureAgent.Tests.Integration;

namespace CaptureAgent.Tests.CaptureKernel.Targets;

/// <summary>The oracles: util-linux blkid and the mkfs tools, run on image files.</summary>
public static class Blkid
{
    public const string Path = "/usr/sbin/blkid";

    /// <summary>`blkid -p -o export IMAGE` as a dictionary (empty when blkid finds nothing), values unescaped.</summary>
    public static Dictionary<string, string> Export(string image)
    {
        var r = Fixtures.Exec(Path, ["-p", "-o", "export", image]);
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        if (r.ExitCode != 0) return values;
        foreach (var line in r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            int eq = line.IndexOf('=');
            if (eq > 0) values[line[..eq]] = Unescape(line[(eq + 1)..]);
        }
        return values;
    }

    /// <summary>One tag, raw: `blkid -p -o value -s TAG IMAGE` (export would escape non-ASCII bytes).</summary>
    public static string? Value(string image, string tag)
    {
        var r = Fixtures.Exec(Path, ["-p", "-o", "value", "-s", tag, image]);
        return r.ExitCode != 0 || r.Stdout.Length == 0 ? null : r.Stdout.TrimEnd('\n');
    }

    /// <summary>export output escapes shell-special characters with a backslash.</summary>
    private static string Unescape(string v)
    {
        var s = new StringBuilder();
        for (int i = 0; i < v.Length; i++)
        {
            if (v[i] == '\\' && i + 1 < v.Length) i++;
            s.Append(v[i]);
        }
        return s.ToString();
    }

    /// <summary>A sparse image file of <paramref name="megabytes"/> MiB.</summary>
    public static string Image(TempDir dir, string name, int megabytes) => Image(dir.File(name), megabytes);

    public static string Image(string path, int megabytes)
    {
        using (var f = File.Create(path)) f.SetLength((long)megabytes << 20);
        return path;
    }

    /// <summary>Runs a tool and fails the test with its stderr if it fails.</summary>
    public static void Run(string tool, IEnumerable<string> args, string? stdin = null)
    {
        if (!File.Exists(tool)) throw new InvalidOperationException($"{tool} missing: apt-get install e2fsprogs xfsprogs btrfs-progs dosfstools fdisk");
        var r = Fixtures.Exec(tool, args, stdin);
        if (r.ExitCode != 0) throw new InvalidOperationException($"{tool} {string.Join(' ', args)} failed: {r.Stderr}{r.Stdout}");
    }
}

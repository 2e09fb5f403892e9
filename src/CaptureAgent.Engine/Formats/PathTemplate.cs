using System.Globalization;
using System.Text;

namespace CaptureAgent.Formats;

/// <summary>What a dump path template can name about the crash.</summary>
public sealed record CrashFacts(string Host, DateTimeOffset CrashTime, string KernelRelease, string? BootId);

/// <summary>
/// The dump directory template of the config's <c>path</c>: <c>{host}</c>, <c>{date}</c>, <c>{kver}</c>,
/// <c>{boot_id}</c>. A path without any placeholder is a parent directory and gets
/// <c>/{host}-{date}</c> appended, which is what RHEL's and Debian's <c>path</c> mean.
/// </summary>
public static class PathTemplate
{
    public const string DefaultLeaf = "{host}-{date}";
    private static readonly string[] Names = ["host", "date", "kver", "boot_id"];

    /// <summary>Checks a template; returns the error to report, or null.</summary>
    public static string? Validate(string template)
    {
        if (!template.StartsWith('/')) return $"path must be absolute, got '{template}'";
        foreach (var part in template.Split('/'))
            if (part is "." or "..") return $"path must not contain '{part}', got '{template}'";
        int i = 0;
        while ((i = template.IndexOf('{', i)) >= 0)
        {
            int end = template.IndexOf('}', i);
            if (end < 0) return $"path has an unclosed '{{' in '{template}'";
            string name = template[(i + 1)..end];
            if (!Names.Contains(name)) return $"path placeholder '{{{name}}}' is not one of {{host}}, {{date}}, {{kver}}, {{boot_id}}";
            i = end + 1;
        }
        if (template.IndexOf('}') >= 0 && template.Count(c => c == '}') != template.Count(c => c == '{'))
            return $"path has an unmatched '}}' in '{template}'";
        return null;
    }

    /// <summary>The template with the default leaf added when it names nothing about the crash.</summary>
    public static string Normalize(string template) =>
        template.Contains('{') ? template : template.TrimEnd('/') + "/" + DefaultLeaf;

    /// <summary>
    /// The relative directory (no leading '/') for this crash. Every substituted value is kept to
    /// file-name-safe characters, so nothing from the crashed kernel can add a '/' or '..'.
    /// </summary>
    public static string Expand(string template, CrashFacts facts)
    {
        var sb = new StringBuilder();
        string t = Normalize(template);
        for (int i = 0; i < t.Length; i++)
        {
            if (t[i] != '{') { sb.Append(t[i]); continue; }
            int end = t.IndexOf('}', i);
            string name = t[(i + 1)..end];
            sb.Append(Safe(name switch
            {
                "host" => facts.Host,
                "date" => facts.CrashTime.UtcDateTime.ToString("yyyy-MM-dd-HH:mm:ss", CultureInfo.InvariantCulture),
                "kver" => facts.KernelRelease,
                "boot_id" => facts.BootId ?? "unknown-boot",
                _ => throw new FormatException($"unknown placeholder {{{name}}}"),
            }));
            i = end;
        }
        return string.Join('/', sb.ToString().Split('/', StringSplitOptions.RemoveEmptyEntries));
    }

    private static string Safe(string value)
    {
        var s = new string(value.Select(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '.' or '_' or ':' or '+' ? c : '_').ToArray());
        return s.Trim('.').Length == 0 ? "unknown" : s;
    }
}

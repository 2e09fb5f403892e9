using CaptureAgent.Common;
using CaptureAgent.Config;

namespace CaptureAgent.Report;

/// <summary>
/// Finds the dump directories under a directory: down to three levels (path = /var/crash/{host}/{date}
/// puts them two below), never through a symbolic link.
/// </summary>
public static class DumpFinder
{
    private const int MaxDepth = 3;

    /// <summary>
    /// Where dumps are by default: the config's path up to its first placeholder
    /// ("/var/crash/{host}-{date}" → /var/crash), else /var/crash.
    /// </summary>
    public static string DefaultDirectory(string configPath = AgentConfig.DefaultPath)
    {
        try
        {
            var template = AgentConfig.Load(configPath).Path;
            var parts = template.Split('/', StringSplitOptions.RemoveEmptyEntries).TakeWhile(p => !p.Contains('{'));
            return "/" + string.Join('/', parts);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return "/var/crash";
        }
    }

    /// <summary><paramref name="root"/> itself when it is a dump directory, else the dump directories below it, by name.</summary>
    public static List<string> Find(string root)
    {
        var dirs = new List<string>();
        if (IsDumpDirectory(root)) dirs.Add(root);
        else Collect(root, 0, dirs);
        return dirs;
    }

    /// <summary>Whether a directory holds a dump, a manifest or a crashed kernel's log.</summary>
    public static bool IsDumpDirectory(string dir)
    {
        try
        {
            return new DirectoryInfo(dir).EnumerateFiles().Any(f => DumpLayout.IsDumpDirectoryFile(f.Name));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    private static void Collect(string dir, int depth, List<string> found)
    {
        List<DirectoryInfo> children;
        try
        {
            children = new DirectoryInfo(dir).EnumerateDirectories().ToList();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Only the directory asked for is worth an error; an unreadable one below is passed over.
            if (depth == 0) throw new IOException($"cannot read {dir}: {ErrorText.Of(e)}", e);
            return;
        }
        foreach (var child in children.OrderBy(c => c.Name, StringComparer.Ordinal))
        {
            if (child.LinkTarget is not null) continue;
            if (IsDumpDirectory(child.FullName)) found.Add(child.FullName);
            else if (depth + 1 < MaxDepth) Collect(child.FullName, depth + 1, found);
        }
    }
}

namespace CaptureAgent.Targets;

/// <summary>
/// Symbolic links resolved one component at a time, the way the kernel does, with a cap on how
/// many are followed. Lexical tricks ("a/link/..") cannot escape, loops end, and the caller can
/// demand that the result stay inside a root (a /dev path must end up in /dev, a sysfs link in
/// /sys).
/// </summary>
internal static class LinkSafePath
{
    private const int MaxLinks = 40;   // the kernel's own limit (ELOOP)

    /// <summary>The path with every symbolic link replaced by its target, or null (with why) if that fails.</summary>
    public static string? Resolve(string path, out string? problem)
    {
        problem = null;
        string full;
        try { full = Path.GetFullPath(path); }
        catch (Exception e) when (e is ArgumentException or NotSupportedException or PathTooLongException)
        {
            problem = $"'{path}': {e.Message}";
            return null;
        }
        var pending = new Stack<string>();
        foreach (var part in full.Split('/', StringSplitOptions.RemoveEmptyEntries).Reverse()) pending.Push(part);
        string current = "/";
        int links = 0;
        while (pending.Count > 0)
        {
            string part = pending.Pop();
            if (part == ".") continue;
            if (part == "..")
            {
                current = Path.GetDirectoryName(current) ?? "/";
                continue;
            }
            string next = current == "/" ? "/" + part : current + "/" + part;
            string? target;
            try { target = new FileInfo(next).LinkTarget; }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                problem = $"{next}: {e.Message}";
                return null;
            }
            if (target is null)
            {
                current = next;
                continue;
            }
            if (++links > MaxLinks)
            {
                problem = $"{path}: more than {MaxLinks} symbolic links";
                return null;
            }
            foreach (var t in target.Split('/', StringSplitOptions.RemoveEmptyEntries).Reverse()) pending.Push(t);
            if (target.StartsWith('/')) current = "/";
        }
        return current;
    }

    /// <summary>True when <paramref name="path"/> is <paramref name="root"/> or below it (both already resolved).</summary>
    public static bool IsInside(string path, string root)
    {
        root = root.TrimEnd('/');
        return root.Length == 0 || path == root || path.StartsWith(root + "/", StringComparison.Ordinal);
    }
}

using CaptureAgent.Common;

namespace CaptureAgent.Cli;

/// <summary>makedumpfile's rule for its output (dump, --dump-dmesg, -R): a file already there is kept unless -f.</summary>
public static class ExistingOutput
{
    /// <summary>
    /// True (and said why) when something is at <paramref name="path"/> and -f was not given:
    /// checked before the input is read, so nothing is written. The writers open with O_EXCL
    /// without -f too, for a file that appears in between.
    /// </summary>
    public static bool Refused(string path, bool force)
    {
        if (force || !Exists(path)) return false;
        Log.Error($"{path} exists: not overwritten (-f overwrites it)");
        return true;
    }

    /// <summary>A file, a directory or a symbolic link, dangling or not.</summary>
    private static bool Exists(string path) =>
        File.Exists(path) || Directory.Exists(path) || new FileInfo(path).LinkTarget is not null;
}

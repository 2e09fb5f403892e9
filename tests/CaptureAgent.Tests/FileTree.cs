using System.IO.Enumeration;

namespace CaptureAgent.Tests;

/// <summary>Walks a directory tree the way find(1) -P does.</summary>
public static class FileTree
{
    /// <summary>
    /// Every entry below <paramref name="root"/>, symbolic links listed but never descended into:
    /// Directory.EnumerateFileSystemEntries follows a link to a directory, and a chroot's absolute
    /// /var/run -> /run leads into the host's /run, whose contents other tests change meanwhile.
    /// </summary>
    public static IEnumerable<string> Entries(string root) =>
        new FileSystemEnumerable<string>(root, (ref FileSystemEntry e) => e.ToFullPath(),
                                         new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0 })
        {
            ShouldRecursePredicate = (ref FileSystemEntry e) => (e.Attributes & FileAttributes.ReparsePoint) == 0,
        };
}

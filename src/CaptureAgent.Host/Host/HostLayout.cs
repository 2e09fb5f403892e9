using CaptureAgent.Native;

namespace CaptureAgent.Host;

/// <summary>
/// Where the installed system keeps what capture-agent needs, below a root directory: "/" on a
/// real host, a scratch directory in tests and image builds (like dpkg --root, systemctl --root).
/// Every path the host integration touches comes from here.
/// </summary>
public sealed class HostLayout
{
    public const string AgentBinary = "/usr/sbin/capture-agent";
    public const string ConfigFile = "/etc/capture-agent.conf";
    public const string StoreDirectory = "/var/lib/capture-agent";
    public const string PinFile = StoreDirectory + "/pinned";
    public const string ImageName = "initramfs.img";
    public const string StampName = "stamp.json";
    /// <summary>The default root for every command when --root is not given (hook scripts pass it through).</summary>
    public const string RootVariable = "CAPTURE_AGENT_ROOT";

    public HostLayout(string root = "/")
    {
        if (string.IsNullOrEmpty(root)) root = "/";
        Root = root == "/" ? "/" : Path.GetFullPath(root).TrimEnd('/');
        if (Root.Length == 0) Root = "/";
    }

    public string Root { get; }
    public bool IsLiveRoot => Root == "/";

    /// <summary>An absolute path of the host as seen below <see cref="Root"/>.</summary>
    public string Under(string absolute) => IsLiveRoot ? absolute : Root + "/" + absolute.TrimStart('/');

    public string ConfigPath => Under(ConfigFile);
    public string Store => Under(StoreDirectory);
    public string Pin => Under(PinFile);
    public string SysRoot => Under("/sys");
    public string DevRoot => Under("/dev");
    /// <summary>Only a live root's /proc tells which filesystems the running kernel has built in.</summary>
    public string? ProcRoot => IsLiveRoot ? null : Under("/proc");

    /// <summary>The agent carried as /init: set by tests; otherwise the installed one, else this very program.</summary>
    public string? AgentOverride { get; init; }

    public string AgentPath
    {
        get
        {
            if (AgentOverride is not null) return AgentOverride;
            string installed = Under(AgentBinary);
            if (File.Exists(installed)) return installed;
            return Environment.ProcessPath ?? installed;
        }
    }

    public string EntryDirectory(string release) => Path.Combine(Store, CheckRelease(release));
    public string ImagePath(string release) => Path.Combine(EntryDirectory(release), ImageName);
    public string StampPath(string release) => Path.Combine(EntryDirectory(release), StampName);
    /// <summary>/lib/modules/KVER, or /usr/lib/modules/KVER when only that exists (merged /usr without the /lib link).</summary>
    public string ModuleDirectory(string release) =>
        Initramfs.KernelModules.FindDirectory(Under("/"), CheckRelease(release)) ?? Under("/lib/modules/" + release);

    /// <summary>
    /// Where the kernel image of a release is: Debian's /boot/vmlinuz-KVER, else the copy that
    /// kernel-install systems (Fedora, Arch, systemd-boot) keep beside the modules. Null when none exists.
    /// </summary>
    public string? KernelImage(string release)
    {
        foreach (var p in KernelImageCandidates(release))
            if (File.Exists(p)) return p;
        return null;
    }

    public IEnumerable<string> KernelImageCandidates(string release)
    {
        CheckRelease(release);
        yield return Under("/boot/vmlinuz-" + release);
        yield return Under("/usr/lib/modules/" + release + "/vmlinuz");
        yield return Under("/lib/modules/" + release + "/vmlinuz");
    }

    /// <summary>--root DIR, else $CAPTURE_AGENT_ROOT, else "/".</summary>
    public static string DefaultRoot() =>
        Environment.GetEnvironmentVariable(RootVariable) is { Length: > 0 } r ? r : "/";

    /// <summary>uname -r of the running kernel ("" if /proc is not there).</summary>
    public static string RunningRelease()
    {
        try { return File.ReadAllText("/proc/sys/kernel/osrelease").Trim(); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return ""; }
    }

    /// <summary>
    /// A kernel release becomes a directory name: one path component of the characters kernel
    /// versions use, so "../etc" or "a/b" from a hook argument can never point elsewhere.
    /// </summary>
    public static bool IsValidRelease(string? release) =>
        release is { Length: > 0 and <= 128 } && release[0] is not ('.' or '-')
        && release.All(c => c is >= 'a' and <= 'z' or >= 'A' and <= 'Z' or >= '0' and <= '9' or '.' or '_' or '-' or '+' or '~');

    public static string CheckRelease(string release) =>
        IsValidRelease(release) ? release : throw new ArgumentException($"'{release}' is not a kernel release (like 6.1.0-13-amd64)");
}

/// <summary>File operations of the host integration: atomic replacement, explicit modes, no planted links followed.</summary>
internal static class HostFiles
{
    public const UnixFileMode Mode0755 = (UnixFileMode)0x1ed, Mode0644 = (UnixFileMode)0x1a4,
        Mode0600 = (UnixFileMode)0x180, Mode0700 = (UnixFileMode)0x1c0;

    /// <summary>
    /// Creates a directory whose missing parents get 0755 (system directories) and which itself gets
    /// <paramref name="mode"/>. A private directory that already exists as a symbolic link is refused:
    /// someone could have pointed it anywhere.
    /// </summary>
    public static void MakeDirectory(string path, UnixFileMode mode, bool refuseLink)
    {
        var info = new DirectoryInfo(path);
        if (info.LinkTarget is not null)
        {
            if (refuseLink) throw new IOException($"{path} is a symbolic link: refusing to use it");
            return;
        }
        if (info.Exists) return;
        if (File.Exists(path)) throw new IOException($"{path} exists and is not a directory");
        string? parent = Path.GetDirectoryName(path);
        if (parent is not null && !Directory.Exists(parent)) MakeDirectory(parent, Mode0755, refuseLink: false);
        Directory.CreateDirectory(path, mode);
        File.SetUnixFileMode(path, mode);   // the umask must not decide
    }

    /// <summary>
    /// Writes through a temporary file in the same directory, fsyncs it and renames it over the
    /// destination: a reader sees the old or the new file, never half of one, and a symbolic link
    /// planted at the destination is replaced, not followed.
    /// </summary>
    public static void WriteAtomic(string path, UnixFileMode mode, Action<Stream> write)
    {
        string tmp = $"{path}.tmp-{Environment.ProcessId}";
        try
        {
            var handle = Libc.OpenFile(tmp, Libc.O_WRONLY | Libc.O_CREAT | Libc.O_TRUNC | Libc.O_NOFOLLOW, (uint)mode);
            File.SetUnixFileMode(handle, mode);
            using (var f = new FileStream(handle, FileAccess.Write))
            {
                write(f);
                f.Flush(flushToDisk: true);
            }
            File.Move(tmp, path, overwrite: true);
            tmp = "";
            Libc.FsyncDirectory(Path.GetDirectoryName(path)!);
        }
        finally
        {
            if (tmp.Length > 0)
                try { File.Delete(tmp); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }

    public static void WriteAtomic(string path, UnixFileMode mode, string text) =>
        WriteAtomic(path, mode, s => s.Write(System.Text.Encoding.UTF8.GetBytes(text)));

    /// <summary>Size and modification time (100 ns ticks) of a file, through links: what a rebuild depends on.</summary>
    public static (long Size, long MtimeTicks)? Stat(string path)
    {
        try
        {
            FileSystemInfo info = new FileInfo(path);
            if (info.LinkTarget is not null) info = info.ResolveLinkTarget(returnFinalTarget: true) ?? info;
            if (info is not FileInfo { Exists: true } f) return null;
            return (f.Length, f.LastWriteTimeUtc.Ticks);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return null; }
    }

    /// <summary>Removes a file or a link (never what a link points to); true when something was removed.</summary>
    public static bool Remove(string path)
    {
        var info = new FileInfo(path);
        if (info.LinkTarget is null && !info.Exists) return false;
        if (info.LinkTarget is null && Directory.Exists(path)) throw new IOException($"{path} is a directory");
        File.Delete(path);
        return true;
    }

    /// <summary>Removes a directory tree; a link in place of the directory is removed as a link.</summary>
    public static bool RemoveTree(string path)
    {
        var info = new DirectoryInfo(path);
        if (info.LinkTarget is not null) { File.Delete(path); return true; }
        if (!info.Exists) return false;
        Directory.Delete(path, recursive: true);   // .NET removes links inside as links
        return true;
    }
}

using CaptureAgent.Tests.Integration;

namespace CaptureAgent.Tests.Host.Initramfs;

/// <summary>
/// The Debian kernel module trees scripts/fixtures.sh unpacks into the cache (dpkg -x: no
/// modules.dep of their own). Tests never change them: what they need changed is done on a
/// hard-linked copy.
/// </summary>
public static class ModuleTrees
{
    /// <summary>The release of the kernel scripts/kernels selected for a series (e.g. "6.1").</summary>
    public static string Release(string series) => Fixtures.Kernel(series).Release;

    public static string Debian61 => Release("6.1");     // plain .ko
    public static string Debian612 => Release("6.12");   // .ko.xz, virtio core built in

    /// <summary>The root (the directory holding lib/modules) of a cached kernel, or a failure saying how to get it.</summary>
    public static string Root(string release)
    {
        TestCategory.Require(TestCategory.Fixture);
        string root = Path.Combine(Fixtures.Cache, "kernels", release, "root");
        if (!Directory.Exists(ModuleDir(root, release)))
            throw new InvalidOperationException($"kernel module tree {ModuleDir(root, release)} is missing: run scripts/fixtures.sh first");
        return root;
    }

    public static string ModuleDir(string root, string release) => Path.Combine(root, "lib", "modules", release);

    /// <summary>
    /// A copy of the cached tree under <paramref name="into"/> as dpkg -x leaves it: the module files
    /// (hard links when the file system allows, so it is cheap), modules.builtin and modules.order,
    /// and no depmod output even if someone ran depmod on the cache.
    /// </summary>
    public static string CopyWithoutDepmod(string release, string into)
    {
        string src = ModuleDir(Root(release), release);
        string dst = ModuleDir(into, release);
        Directory.CreateDirectory(dst);
        Fixtures.Sh($"cp -al '{src}/kernel' '{dst}/' 2>/dev/null || cp -r '{src}/kernel' '{dst}/'");
        foreach (var f in new[] { "modules.builtin", "modules.builtin.modinfo", "modules.order" })
            if (File.Exists(Path.Combine(src, f))) File.Copy(Path.Combine(src, f), Path.Combine(dst, f));
        return into;
    }

    /// <summary>Runs the real depmod on a copy made by <see cref="CopyWithoutDepmod"/>.</summary>
    public static void Depmod(string root, string release)
    {
        string depmod = File.Exists("/usr/sbin/depmod") ? "/usr/sbin/depmod" : "/sbin/depmod";
        if (!File.Exists(depmod)) throw new InvalidOperationException("depmod is missing: apt-get install kmod");
        Fixtures.Sh($"{depmod} -b '{root}' '{release}'");
    }
}

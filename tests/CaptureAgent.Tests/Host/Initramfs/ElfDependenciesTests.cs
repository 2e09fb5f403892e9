using System.Buffers.Binary;
using System.Text;
using System.Text.RegularExpressions;
using CaptureAgent.Initramfs;
using CaptureAgent.Tests.Integration;
using Xunit;

namespace CaptureAgent.Tests.Host.Initramfs;

public class ElfDependenciesTests
{
    /// <summary>ldd's answer for a program: every library path and the loader, as ld.so resolved them.</summary>
    private static HashSet<string> Ldd(string program)
    {
        var set = new HashSet<string>();
        foreach (var line in Fixtures.Sh($"ldd {program}").Split('\n'))
        {
            var m = Regex.Match(line, @"=>\s+(/\S+)\s+\(");
            if (m.Success) set.Add(m.Groups[1].Value);
            else if (Regex.Match(line, @"^\s*(/\S+)\s+\(") is { Success: true } l) set.Add(l.Groups[1].Value);
        }
        return set;
    }

    [Theory]
    [InlineData("/usr/bin/ssh")]
    [InlineData("/usr/bin/cpio")]
    public void ClosureOfARealProgramIsWhatLddPrints(string program)
    {
        var deps = new ElfDependencies().Resolve(program);
        Assert.Equal(Ldd(program).Order(), deps.Select(d => d.Source).Order());
        Assert.Equal("/lib64/ld-linux-x86-64.so.2", deps[0].Source);   // PT_INTERP first, kept at its own path
        Assert.All(deps, d => Assert.Equal(d.Source, d.Destination));
        // libc asks for ld-linux-x86-64.so.2 by name: that is the loader already loaded, not a second copy.
        Assert.DoesNotContain(deps, d => d.Source == "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2");
    }

    [Fact]
    public void ReadsInterpreterNeededAndSonameOfRealFiles()
    {
        var ssh = ElfDependencies.Read("/usr/bin/ssh");
        Assert.True(ssh.Is64);
        Assert.Equal(62, ssh.Machine);
        Assert.Equal("/lib64/ld-linux-x86-64.so.2", ssh.Interpreter);
        Assert.Contains("libc.so.6", ssh.Needed);
        var libc = ElfDependencies.Read("/lib/x86_64-linux-gnu/libc.so.6");
        Assert.Equal("libc.so.6", libc.Soname);
        Assert.Equal(["ld-linux-x86-64.so.2"], libc.Needed);
    }

    private static readonly byte[] Magic = [0x7f, (byte)'E', (byte)'L', (byte)'F'];

    /// <summary>A minimal ELF64 x86_64 object: one PT_LOAD over the file, PT_INTERP, PT_DYNAMIC and its string table.</summary>
    internal static void WriteElf(string path, string[] needed, string? interp = null, string? soname = null,
                                  string? rpath = null, string? runpath = null, byte elfClass = 2)
    {
        if (elfClass != 2)
        {
            var h32 = new byte[52];
            Magic.CopyTo(h32, 0);
            h32[4] = 1; h32[5] = 1; h32[6] = 1;
            BinaryPrimitives.WriteUInt16LittleEndian(h32.AsSpan(18), 3);   // i386, no program headers
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            File.WriteAllBytes(path, h32);
            return;
        }
        var strtab = new MemoryStream();
        strtab.WriteByte(0);
        int Str(string s)
        {
            int at = (int)strtab.Length;
            strtab.Write(Encoding.UTF8.GetBytes(s + "\0"));
            return at;
        }
        var dyn = new List<(long Tag, long Val)>();
        foreach (var n in needed) dyn.Add((1, Str(n)));
        if (soname is not null) dyn.Add((14, Str(soname)));
        if (rpath is not null) dyn.Add((15, Str(rpath)));
        if (runpath is not null) dyn.Add((29, Str(runpath)));
        int phnum = interp is null ? 2 : 3;
        int interpAt = 64 + phnum * 56;
        byte[] interpBytes = interp is null ? [] : Encoding.UTF8.GetBytes(interp + "\0");
        int strAt = interpAt + interpBytes.Length;
        int dynAt = (strAt + (int)strtab.Length + 7) & ~7;
        dyn.Add((5, strAt));
        dyn.Add((10, strtab.Length));
        dyn.Add((0, 0));
        var f = new byte[dynAt + dyn.Count * 16];
        Magic.CopyTo(f, 0);
        f[4] = 2; f[5] = 1; f[6] = 1;
        BinaryPrimitives.WriteUInt16LittleEndian(f.AsSpan(16), 3);    // ET_DYN
        BinaryPrimitives.WriteUInt16LittleEndian(f.AsSpan(18), 62);   // x86_64
        BinaryPrimitives.WriteUInt64LittleEndian(f.AsSpan(32), 64);   // e_phoff
        BinaryPrimitives.WriteUInt16LittleEndian(f.AsSpan(54), 56);
        BinaryPrimitives.WriteUInt16LittleEndian(f.AsSpan(56), (ushort)phnum);
        void Ph(int i, uint type, long off, long size)
        {
            var e = f.AsSpan(64 + i * 56);
            BinaryPrimitives.WriteUInt32LittleEndian(e, type);
            BinaryPrimitives.WriteUInt64LittleEndian(e[8..], (ulong)off);
            BinaryPrimitives.WriteUInt64LittleEndian(e[16..], (ulong)off);   // vaddr = offset
            BinaryPrimitives.WriteUInt64LittleEndian(e[32..], (ulong)size);
            BinaryPrimitives.WriteUInt64LittleEndian(e[40..], (ulong)size);
        }
        Ph(0, 1, 0, f.Length);
        Ph(1, 2, dynAt, dyn.Count * 16);
        if (interp is not null) Ph(2, 3, interpAt, interpBytes.Length);
        interpBytes.CopyTo(f, interpAt);
        strtab.ToArray().CopyTo(f, strAt);
        for (int i = 0; i < dyn.Count; i++)
        {
            BinaryPrimitives.WriteInt64LittleEndian(f.AsSpan(dynAt + i * 16), dyn[i].Tag);
            BinaryPrimitives.WriteInt64LittleEndian(f.AsSpan(dynAt + i * 16 + 8), dyn[i].Val);
        }
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllBytes(path, f);
    }

    private static (TempDir Dir, ElfDependencies Resolver) Tree()
    {
        var dir = new TempDir();
        WriteElf(dir.File("ld/ld.so"), [], soname: "ld-test.so.1");
        Directory.CreateDirectory(dir.File("sys"));
        Directory.CreateDirectory(dir.File("conf.d"));
        File.WriteAllText(dir.File("ld.so.conf"), "# comment\ninclude conf.d/*.conf\n");
        return (dir, new ElfDependencies { LdSoConf = dir.File("ld.so.conf"), DefaultDirectories = [dir.File("sys")] });
    }

    [Fact]
    public void RunpathWithOriginWinsOverConfAndSystemAndRpathIsIgnoredBesideIt()
    {
        var (dir, r) = Tree();
        using var _ = dir;
        File.WriteAllText(dir.File("conf.d/a.conf"), dir.File("confdir") + "\n");
        WriteElf(dir.File("app/bin/prog"), ["liba.so.1"], interp: dir.File("ld/ld.so"), runpath: "$ORIGIN/../lib", rpath: dir.File("rp"));
        WriteElf(dir.File("app/lib/liba.so.1"), ["libb.so.2"], soname: "liba.so.1");
        WriteElf(dir.File("rp/liba.so.1"), []);
        WriteElf(dir.File("confdir/liba.so.1"), []);
        // liba has no RUNPATH of its own: libb comes from the conf directory, before the system one.
        WriteElf(dir.File("confdir/libb.so.2"), ["ld-test.so.1"]);
        WriteElf(dir.File("sys/libb.so.2"), []);
        var deps = r.Resolve(dir.File("app/bin/prog"));
        Assert.Equal([dir.File("ld/ld.so"), dir.File("app/bin/../lib/liba.so.1"), dir.File("confdir/libb.so.2")],
            deps.Select(d => d.Source));
        // The image has no ld.so.cache: a library only a conf directory holds moves to a searched directory.
        Assert.Equal(Path.Combine(dir.File("sys"), "libb.so.2"), deps[2].Destination);
        Assert.Contains(r.Notes, n => n.Contains("libb.so.2"));
    }

    [Fact]
    public void RpathOfTheLoaderChainIsSearchedAndWrongClassIsSkipped()
    {
        var (dir, r) = Tree();
        using var _ = dir;
        WriteElf(dir.File("bin/prog"), ["liba.so"], interp: dir.File("ld/ld.so"), rpath: dir.File("one") + ":" + dir.File("two"));
        WriteElf(dir.File("sys/liba.so"), ["libc.so"]);
        WriteElf(dir.File("one/libc.so"), [], elfClass: 1);   // 32-bit: ld.so passes over it
        WriteElf(dir.File("two/libc.so"), []);
        WriteElf(dir.File("sys/libc.so"), []);
        var deps = r.Resolve(dir.File("bin/prog"));
        Assert.Equal([dir.File("ld/ld.so"), dir.File("sys/liba.so"), dir.File("two/libc.so")], deps.Select(d => d.Source));
    }

    [Fact]
    public void AMissingLibraryNamesWhoNeedsIt()
    {
        var (dir, r) = Tree();
        using var _ = dir;
        WriteElf(dir.File("bin/prog"), ["libgone.so.9"], interp: dir.File("ld/ld.so"));
        var e = Assert.Throws<IOException>(() => r.Resolve(dir.File("bin/prog")));
        Assert.Contains("needs libgone.so.9", e.Message);
        Assert.Contains(dir.File("bin/prog"), e.Message);
    }

    [Fact]
    public void NotAnElfFileIsOneClearError()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("script"), "#!/bin/sh\necho hi\n");
        var e = Assert.Throws<InvalidDataException>(() => new ElfDependencies().Resolve(dir.File("script")));
        Assert.Contains("is not an ELF file", e.Message);
    }

    [Fact]
    public void LdSoConfIncludesAreFollowedInOrder()
    {
        using var dir = new TempDir();
        Directory.CreateDirectory(dir.File("d"));
        File.WriteAllText(dir.File("d/b.conf"), "/b1 /b2\n");
        File.WriteAllText(dir.File("d/a.conf"), "/a1,/a2/\nhwcap 0 nosegneg\n");
        File.WriteAllText(dir.File("d/skip.txt"), "/nope\n");
        File.WriteAllText(dir.File("main.conf"), "/first\ninclude " + dir.File("d/*.conf") + "\n/last # tail\n");
        Assert.Equal(["/first", "/a1", "/a2", "/b1", "/b2", "/last"], ElfDependencies.LdSoConfDirectories(dir.File("main.conf")));
    }

    /// <summary>An uncompressed capture image carrying ssh, unpacked by GNU cpio into a fresh directory.</summary>
    internal static InitramfsReport BuildAndUnpackSshImage(TempDir dir, string root, List<InitramfsFile>? extra = null)
    {
        File.WriteAllBytes(dir.File("agent"), [0x7f, (byte)'E', (byte)'L', (byte)'F']);
        InitramfsReport report;
        using (var f = File.Create(dir.File("img")))
            report = InitramfsBuilder.Build(new InitramfsSpec
            {
                AgentPath = dir.File("agent"), KernelRelease = "6.1.0-test", Compression = ImageCompression.None,
                Executables = ["/usr/bin/ssh"], ExtraFiles = extra ?? [],
            }, f);
        Directory.CreateDirectory(root);
        Fixtures.Sh($"cd {root} && cpio -idm --quiet < {dir.File("img")}");
        return report;
    }

    [Fact]
    public void ImageWithSshRunsItInAChroot()
    {
        using var dir = new TempDir();
        string root = dir.File("root");
        var report = BuildAndUnpackSshImage(dir, root);

        // Everything ldd names is in the image as a regular file, the /lib64 loader path included.
        foreach (var lib in Ldd("/usr/bin/ssh"))
        {
            var info = new FileInfo(root + lib);
            Assert.True(info.Exists && info.LinkTarget is null, $"{lib} missing or a symlink in the image");
            Assert.True(File.ReadAllBytes(lib).AsSpan().SequenceEqual(File.ReadAllBytes(info.FullName)), $"{lib} differs in the image");
        }
        Assert.Equal("root:x:0:0:root:/root:/bin/sh\n", File.ReadAllText(Path.Combine(root, "etc/passwd")));
        Assert.Equal("root:x:0:\n", File.ReadAllText(Path.Combine(root, "etc/group")));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(Path.Combine(root, "root")));
        Assert.Contains(report.Notes, n => n.StartsWith("/usr/bin/ssh: with /lib64/ld-linux-x86-64.so.2", StringComparison.Ordinal));
        Assert.Matches(@"(?m)^crw-rw-rw- +1 0 +0 +1, +3 .* dev/null$", Fixtures.Sh($"cpio -t -v --quiet --numeric-uid-gid < {dir.File("img")}"));

        // The proof that the closure is complete: the image's own loader runs the image's ssh.
        var run = Fixtures.Exec("/usr/sbin/chroot", [root, "/usr/bin/ssh", "-V"]);
        Assert.Equal(0, run.ExitCode);
        Assert.StartsWith("OpenSSH_", run.Stderr);
        Assert.Equal(Fixtures.Exec("/usr/bin/ssh", ["-V"]).Stderr, run.Stderr);
    }

    [Fact]
    public void ExtraFilesGoInWithTheirModeAndDuplicatesAreRefused()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("key"), "secret");
        string root = dir.File("root");
        BuildAndUnpackSshImage(dir, root, [InitramfsFile.Parse(dir.File("key") + ":/etc/capture-agent/ssh_key"),
                                           InitramfsFile.Parse(dir.File("key") + ":/etc/hosts:644")]);
        Assert.Equal("secret", File.ReadAllText(Path.Combine(root, "etc/capture-agent/ssh_key")));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(root, "etc/capture-agent/ssh_key")));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead,
                     File.GetUnixFileMode(Path.Combine(root, "etc/hosts")));

        using var dir2 = new TempDir();
        File.WriteAllBytes(dir2.File("agent"), [1]);
        var e = Assert.Throws<IOException>(() => InitramfsBuilder.Build(new InitramfsSpec
        {
            AgentPath = dir2.File("agent"), KernelRelease = "x", Compression = ImageCompression.None,
            ExtraFiles = [new InitramfsFile(dir2.File("agent"), "/init", 0x1ed)],
        }, Stream.Null));
        Assert.Contains("/init would be written twice", e.Message);
        Assert.Throws<ArgumentException>(() => InitramfsFile.Parse("relative:dest"));
        Assert.Throws<ArgumentException>(() => InitramfsFile.Parse("/a:/b:999"));
    }
}

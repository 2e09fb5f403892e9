using CaptureAgent.Cli;
using CaptureAgent.Targets.Ssh;
using CaptureAgent.Tests.Integration;
using Xunit;
using CaptureAgent.Common;
using CaptureAgent.Host;

namespace CaptureAgent.Tests.CaptureKernel.Targets.Ssh;

/// <summary>
/// `capture-agent propagate` against a real sshd on 127.0.0.1 whose sessions see a scratch
/// directory as /root (its ~/.ssh/authorized_keys is where the key goes): the administrator logs in
/// with the server's client key, as ssh-copy-id users log in with a password.
/// </summary>
[Trait("Category", "Root")]
public class PropagateTests
{
    private sealed class Setup : IDisposable
    {
        public readonly TempDir Home = new(), Local = new();
        public readonly SshServer Server;
        public string Key => Local.File("keys/capture_key");
        public string Known => Local.File("etc/known_hosts");
        public string Config => Local.File("capture-agent.conf");
        public string Authorized => Home.File(".ssh/authorized_keys");

        public Setup(string path = "/root/dumps/{host}-{date}")
        {
            Server = new SshServer(Home.Path);
            File.WriteAllText(Config, $"target = ssh:root@127.0.0.1:{Server.Port}\nssh_key = {Key}\nssh_known_hosts = {Known}\npath = {path}\n");
        }

        public int Propagate(params string[] extra) =>
            PropagateCommand.Run(["--config", Config, "-o", $"IdentityFile={Server.ClientKey}", .. extra]);

        public void Dispose()
        {
            Server.Dispose();
            Home.Dispose();
            Local.Dispose();
        }
    }

    private static string HostKey(SshServer s) => string.Join(' ', File.ReadAllText(s.HostKeyPublic).Split(' ')[..2]);

    [Fact]
    public void MakesTheKeyPinsTheHostKeyInstallsTheKeyAndChecksTheDirectoryOnce()
    {
        using var s = new Setup();
        Assert.Equal(ExitCodes.Ok, s.Propagate("--yes"));

        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(s.Key));
        string pub = File.ReadAllText(s.Key + ".pub").Trim();
        Assert.StartsWith("ssh-ed25519 ", pub);
        Assert.Contains($"[127.0.0.1]:{s.Server.Port} {HostKey(s.Server)}\n", File.ReadAllText(s.Known));
        Assert.Equal([pub], File.ReadAllLines(s.Authorized));
        Assert.True(Directory.Exists(s.Home.File("dumps")));
        Assert.Empty(Directory.EnumerateFileSystemEntries(s.Home.File("dumps")));   // the probe file is gone

        // What the capture kernel does: this key alone, BatchMode, the pinned host key, strictly.
        var login = Fixtures.Exec("/usr/bin/ssh", SshTarget.Arguments(SshDestination.Parse($"root@127.0.0.1:{s.Server.Port}", s.Key, s.Known), "echo in"));
        Assert.True(login.ExitCode == 0 && login.Stdout == "in\n", login.Stderr);

        // Again: nothing is added twice, nothing made anew.
        string known = File.ReadAllText(s.Known), key = File.ReadAllText(s.Key);
        Assert.Equal(ExitCodes.Ok, s.Propagate("--yes"));
        Assert.Equal(known, File.ReadAllText(s.Known));
        Assert.Equal(key, File.ReadAllText(s.Key));
        Assert.Equal([pub], File.ReadAllLines(s.Authorized));
    }

    [Fact]
    public void AnUnconfirmedOrChangedHostKeyIsRefused()
    {
        using var s = new Setup();
        // Not a terminal and no --yes: the fingerprint cannot be confirmed, nothing is trusted or installed.
        Assert.Equal(ExitCodes.Failed, s.Propagate());
        Assert.False(File.Exists(s.Known));
        Assert.False(File.Exists(s.Authorized));

        // Another key already pinned for this collector: a changed host key is refused, known_hosts untouched.
        Directory.CreateDirectory(Path.GetDirectoryName(s.Known)!);
        Fixtures.Sh($"ssh-keygen -q -t ed25519 -N '' -f {s.Local.File("other")}");
        string other = string.Join(' ', File.ReadAllText(s.Local.File("other.pub")).Split(' ')[..2]);
        File.WriteAllText(s.Known, $"[127.0.0.1]:{s.Server.Port} {other}\n");
        Assert.Equal(ExitCodes.Failed, s.Propagate("--yes"));
        Assert.Equal($"[127.0.0.1]:{s.Server.Port} {other}\n", File.ReadAllText(s.Known));
        Assert.False(File.Exists(s.Authorized));
    }

    [Fact]
    public void ADumpDirectoryThatCannotBeWrittenFails()
    {
        using var s = new Setup("/proc/capture-agent-cannot/{host}");
        Assert.Equal(ExitCodes.Failed, s.Propagate("--yes"));
        // The steps before it were done: the key logs in, so the next run only has the directory to fix.
        Assert.True(File.Exists(s.Authorized));
        Assert.Equal("/proc/capture-agent-cannot", Propagate.StaticPrefix("/proc/capture-agent-cannot/{host}"));
        Assert.Equal("/var/crash", Propagate.StaticPrefix("/var/crash"));
        Assert.Equal("/", Propagate.StaticPrefix("/{host}-{date}"));
    }
}

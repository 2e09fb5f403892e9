using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using CaptureAgent.Targets.Ssh;
using CaptureAgent.Tests.Integration;

namespace CaptureAgent.Tests.CaptureKernel.Targets.Ssh;

/// <summary>
/// A real OpenSSH server on 127.0.0.1 (package openssh-server): its own ed25519 host key, one
/// authorized client key, no PAM; started as a child with -D -e in a pid namespace, killed (with its
/// sessions) at dispose.
/// </summary>
public sealed class SshServer : IDisposable
{
    public const string Sshd = "/usr/sbin/sshd";
    private readonly TempDir _dir = new();
    private Process? _sshd;

    public int Port { get; }
    public string ClientKey => _dir.File("client_key");
    public string KnownHosts => _dir.File("known_hosts");
    public string HostKeyPublic => _dir.File("host_key.pub");
    public string Log => _dir.File("sshd.log");

    /// <summary>A directory standing in for root's home (~/.ssh/authorized_keys is read there too), or null.</summary>
    private readonly string? _rootHome;

    /// <param name="rootHome">Sessions see this directory as /root (a private mount namespace), and sshd also
    /// reads keys from its .ssh/authorized_keys: what `propagate` writes, without touching this machine's /root.</param>
    public SshServer(string? rootHome = null)
    {
        _rootHome = rootHome;
        TestCategory.Require(TestCategory.Root);
        if (!File.Exists(Sshd)) throw new InvalidOperationException($"{Sshd} is missing: apt-get install openssh-server");
        // sshd insists on its privilege separation directory, which the package's tmpfiles make at boot.
        Directory.CreateDirectory("/run/sshd");
        Fixtures.Sh($"ssh-keygen -q -t ed25519 -N '' -C host -f {_dir.File("host_key")}");
        Fixtures.Sh($"ssh-keygen -q -t ed25519 -N '' -C client -f {ClientKey}");
        File.Copy(ClientKey + ".pub", _dir.File("authorized_keys"));
        Port = FreePort();
        File.WriteAllText(KnownHosts, $"[127.0.0.1]:{Port} {string.Join(' ', File.ReadAllText(HostKeyPublic).Split(' ')[..2])}\n");
        File.WriteAllText(_dir.File("sshd_config"), $"""
            Port {Port}
            ListenAddress 127.0.0.1
            HostKey {_dir.File("host_key")}
            AuthorizedKeysFile {_dir.File("authorized_keys")}{(rootHome is null ? "" : " %h/.ssh/authorized_keys")}
            PidFile {_dir.File("sshd.pid")}
            UsePAM no
            StrictModes no
            PermitRootLogin prohibit-password
            PasswordAuthentication no
            KbdInteractiveAuthentication no
            MaxStartups 100
            """);
        Start();
    }

    /// <summary>
    /// The new mount namespace starts with a copy of every mount of this machine, those of tests
    /// running beside it included: a filesystem on a loop device another test has just unmounted
    /// would live on in it for as long as sshd runs. It drops its copies of whatever is mounted
    /// below the temporary directory, where every test mounts (never the system's own mounts).
    /// </summary>
    private static string DropTestMounts =>
        $"awk -v t='{Path.TrimEndingDirectorySeparator(Path.GetTempPath())}/' 'index($2, t) == 1 {{print $2}}' /proc/self/mounts | sort -r | while read -r m; do umount -l \"$m\" 2>/dev/null; done; ";

    public void Start()
    {
        // In its own pid namespace: killing it takes every session with it, and nothing is left
        // for this machine's init to reap (sshd, as the namespace's init, reaps its orphans).
        var psi = new ProcessStartInfo("/usr/bin/unshare") { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
        string[] sshd = [Sshd, "-D", "-e", "-f", _dir.File("sshd_config")];
        string[] args = _rootHome is null
            ? ["--pid", "--fork", "--kill-child", .. sshd]
            : ["--pid", "--fork", "--kill-child", "--mount", "--propagation", "private", "/bin/sh", "-c", DropTestMounts + "mount --bind \"$0\" /root && exec \"$@\"", _rootHome, .. sshd];
        foreach (var a in args) psi.ArgumentList.Add(a);
        _sshd = Process.Start(psi)!;
        var log = new StreamWriter(Log, append: true) { AutoFlush = true };
        _sshd.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (log) log.WriteLine(e.Data); };
        _sshd.BeginErrorReadLine();
        var clock = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                using var c = new TcpClient();
                c.Connect(IPAddress.Loopback, Port);
                return;
            }
            catch (SocketException) when (clock.Elapsed < TimeSpan.FromSeconds(15) && !_sshd.HasExited)
            {
                Thread.Sleep(50);
            }
            catch (SocketException)
            {
                throw new InvalidOperationException($"sshd did not come up on port {Port}: {File.ReadAllText(Log)}");
            }
        }
    }

    /// <summary>The listener and every session it forked: the collector dies mid-transfer.</summary>
    public void KillAll()
    {
        if (_sshd is null) return;
        // sshd (the namespace's init) first: the namespace goes with it and unshare, still alive,
        // reaps it. Killing unshare first would leave sshd to this machine's init, which may not reap.
        foreach (var child in Children(_sshd.Id))
            try { using var c = Process.GetProcessById(child); c.Kill(); } catch (ArgumentException) { } catch (InvalidOperationException) { }
        if (!_sshd.WaitForExit(TimeSpan.FromSeconds(10))) _sshd.Kill();
        _sshd.WaitForExit();
        _sshd.Dispose();
        _sshd = null;
    }

    private static List<int> Children(int pid)
    {
        var list = new List<int>();
        foreach (var task in Directory.GetDirectories($"/proc/{pid}/task"))
            try { list.AddRange(File.ReadAllText(Path.Combine(task, "children")).Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(int.Parse)); }
            catch (IOException) { }
        return list;
    }

    public SshDestination Destination(int retries = 0, TimeSpan? pause = null, string? knownHosts = null) =>
        SshDestination.Parse($"root@127.0.0.1:{Port}", ClientKey, knownHosts ?? KnownHosts, TimeSpan.FromSeconds(5), retries)
            with { RetryPause = pause ?? TimeSpan.FromMilliseconds(200) };

    public static int FreePort()
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        int port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }

    public void Dispose()
    {
        KillAll();
        _dir.Dispose();
    }
}

using System.Diagnostics;
using System.Globalization;
using CaptureAgent.Host;
using CaptureAgent.Formats;
using CaptureAgent.Targets.Ssh;

namespace CaptureAgent.Host;

/// <summary>What `propagate` needs besides the target: the paths of the config, how to ask, extra ssh options.</summary>
/// <param name="DumpDirectory">The directory on the collector that must be writable (the path up to its first placeholder).</param>
/// <param name="Confirm">Asked before a host key is trusted (shows the fingerprints); null when --yes was given.</param>
/// <param name="LoginOptions">ssh -o options for the run that installs the key (how the administrator logs in).</param>
public sealed record PropagateOptions(string KeyPath, string KnownHostsPath, string DumpDirectory, Func<string, bool>? Confirm,
    IReadOnlyList<string> LoginOptions, bool Interactive)
{
    public string SshKeygen { get; init; } = "/usr/bin/ssh-keygen";
    public string SshKeyscan { get; init; } = "/usr/bin/ssh-keyscan";
    public string Ssh { get; init; } = "/usr/bin/ssh";
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(20);
}

/// <summary>
/// `capture-agent propagate` for one ssh: target, as kdumpctl propagate and ssh-copy-id do it: the
/// key pair (made when missing), the collector's host key pinned in known_hosts after its
/// fingerprint was shown (a different key already pinned is refused), the public key appended to
/// the collector's authorized_keys unless the key already logs in, and a check with the key alone
/// that the dump directory can be written. Every step says what it did; a failed step throws
/// <see cref="IOException"/> with the reason.
/// </summary>
public static class Propagate
{
    public static void Run(SshDestination dest, PropagateOptions o, Action<string> report)
    {
        string publicKey = EnsureKey(o, report);
        PinHostKey(dest, o, report);
        if (KeyLogsIn(dest, o)) report($"{dest}: the key {o.KeyPath} already logs in");
        else
        {
            InstallKey(dest, o, publicKey);
            if (!KeyLogsIn(dest, o))
                throw new IOException($"{dest}: the key was added to ~/.ssh/authorized_keys but does not log in (does sshd read that file? AuthorizedKeysFile in sshd_config)");
            report($"{dest}: installed {o.KeyPath}.pub in ~{dest.User}/.ssh/authorized_keys; it logs in");
        }
        CheckWritable(dest, o);
        report($"{dest}: {o.DumpDirectory} can be created and written with the key alone");
    }

    /// <summary>The static part of a dump path template: the directories before the first placeholder.</summary>
    public static string StaticPrefix(string template)
    {
        var kept = new List<string>();
        foreach (var part in Formats.PathTemplate.Normalize(template).Split('/', StringSplitOptions.RemoveEmptyEntries))
        {
            if (part.Contains('{')) break;
            kept.Add(part);
        }
        return "/" + string.Join('/', kept);
    }

    /// <summary>The host's name in known_hosts: "host", or "[host]:port" off port 22.</summary>
    public static string KnownHostsName(SshDestination d) => d.Port == 22 ? d.Host : $"[{d.Host}]:{d.Port}";

    // ----- the key pair -----

    private static string EnsureKey(PropagateOptions o, Action<string> report)
    {
        if (!File.Exists(o.KeyPath))
        {
            string dir = Path.GetDirectoryName(o.KeyPath)!;
            if (!Directory.Exists(dir)) HostFiles.MakeDirectory(dir, HostFiles.Mode0700, refuseLink: false);
            string comment = $"capture-agent@{Environment.MachineName}";
            Tool(o.SshKeygen, ["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", o.KeyPath], o.Timeout);
            report($"made the key pair {o.KeyPath} (ed25519, no passphrase: the capture kernel has nobody to type one)");
        }
        else report($"using the existing key {o.KeyPath}");
        string pub = o.KeyPath + ".pub";
        if (!File.Exists(pub))
        {
            string derived = Tool(o.SshKeygen, ["-y", "-f", o.KeyPath], o.Timeout).Trim();
            HostFiles.WriteAtomic(pub, HostFiles.Mode0644, derived + "\n");
            report($"wrote {pub} from the private key");
        }
        string line = File.ReadAllText(pub).Trim();
        if (line.Split(' ').Length < 2 || line.Contains('\n')) throw new IOException($"{pub} is not one public key line");
        return line;
    }

    // ----- the collector's host key -----

    private static void PinHostKey(SshDestination dest, PropagateOptions o, Action<string> report)
    {
        string name = KnownHostsName(dest);
        string scanned = Tool(o.SshKeyscan, ["-p", dest.Port.ToString(CultureInfo.InvariantCulture), "-T", "10", "-t", "ed25519,ecdsa,rsa", dest.Host], o.Timeout,
            tolerateFailure: true);
        var keys = HostKeys(scanned);
        if (keys.Count == 0) throw new IOException($"{dest}: ssh-keyscan got no host key from {dest.Host} port {dest.Port} (is sshd running there, is the port open?)");
        var lines = keys.Select(k => $"{name} {k}").ToList();
        foreach (var fp in Fingerprints(lines, o)) report($"{dest}: host key {fp}");

        var known = KnownKeys(name, o);
        if (known.Count > 0)
        {
            if (keys.Any(known.Contains))
            {
                report($"{dest}: its host key is already in {o.KnownHostsPath}");
                return;
            }
            throw new IOException($"{dest}: the host key it presents is not the one {o.KnownHostsPath} holds for {name}: " +
                                  $"if the collector was reinstalled, remove the old one (ssh-keygen -R '{name}' -f {o.KnownHostsPath}) and run propagate again");
        }
        if (o.Confirm is not null && !o.Confirm($"trust these host keys of {name} (compare the fingerprints with `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on the collector)?"))
            throw new IOException($"{dest}: host key not accepted; nothing written");
        string dir = Path.GetDirectoryName(o.KnownHostsPath)!;
        if (!Directory.Exists(dir)) HostFiles.MakeDirectory(dir, HostFiles.Mode0755, refuseLink: false);
        string before = File.Exists(o.KnownHostsPath) ? File.ReadAllText(o.KnownHostsPath) : "";
        if (before.Length > 0 && !before.EndsWith('\n')) before += "\n";
        HostFiles.WriteAtomic(o.KnownHostsPath, HostFiles.Mode0644, before + string.Join("\n", lines) + "\n");
        report($"{dest}: added {lines.Count} host key{(lines.Count == 1 ? "" : "s")} to {o.KnownHostsPath}");
    }

    /// <summary>"TYPE BASE64" of each key line ssh-keyscan printed (its comments skipped).</summary>
    private static List<string> HostKeys(string keyscanOutput) =>
        keyscanOutput.Split('\n')
            .Select(l => l.Trim())
            .Where(l => l.Length > 0 && l[0] != '#')
            .Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Where(f => f.Length >= 3 && (f[1].StartsWith("ssh-", StringComparison.Ordinal) || f[1].StartsWith("ecdsa-", StringComparison.Ordinal)))
            .Select(f => f[1] + " " + f[2])
            .Distinct()
            .ToList();

    /// <summary>The keys known_hosts holds for the name ("TYPE BASE64"), hashed entries included (ssh-keygen -F finds them).</summary>
    private static HashSet<string> KnownKeys(string name, PropagateOptions o)
    {
        if (!File.Exists(o.KnownHostsPath)) return [];
        string found = Tool(o.SshKeygen, ["-F", name, "-f", o.KnownHostsPath], o.Timeout, tolerateFailure: true);
        return found.Split('\n').Select(l => l.Trim()).Where(l => l.Length > 0 && l[0] != '#')
            .Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries)).Where(f => f.Length >= 3)
            .Select(f => f[1] + " " + f[2]).ToHashSet(StringComparer.Ordinal);
    }

    private static IEnumerable<string> Fingerprints(List<string> lines, PropagateOptions o)
    {
        string tmp = Path.Combine(Path.GetTempPath(), $"capture-agent-hostkeys-{Environment.ProcessId}");
        try
        {
            File.WriteAllText(tmp, string.Join("\n", lines) + "\n");
            return Tool(o.SshKeygen, ["-l", "-f", tmp], o.Timeout).Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Trim()).ToList();
        }
        finally { File.Delete(tmp); }
    }

    // ----- the public key on the collector -----

    /// <summary>The collector's side of ssh's options: our known_hosts only, strictly; none of ~/.ssh/config.</summary>
    private static List<string> HostKeyOptions(SshDestination d, PropagateOptions o) =>
    [
        "-F", "none",
        "-o", "StrictHostKeyChecking=yes",
        "-o", $"UserKnownHostsFile={o.KnownHostsPath}",
        "-o", "GlobalKnownHostsFile=none",
        "-o", $"ConnectTimeout={(int)Math.Ceiling(o.Timeout.TotalSeconds)}",
        "-p", d.Port.ToString(CultureInfo.InvariantCulture),
        "-l", d.User,
    ];

    /// <summary>Does the key alone log in? (What the capture kernel will do: BatchMode, this identity only.)</summary>
    private static bool KeyLogsIn(SshDestination d, PropagateOptions o)
    {
        var args = HostKeyOptions(d, o);
        args.AddRange(["-i", o.KeyPath, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-T", "--", d.Host, "true"]);
        return Run(o.Ssh, args, o.Timeout * 2, interactive: false).ExitCode == 0;
    }

    // $1: the public key line. Appended only when no line equals it; ~/.ssh made private as sshd wants it.
    internal const string InstallKeyScript = """
        umask 077
        mkdir -p "$HOME/.ssh" || exit 1
        f="$HOME/.ssh/authorized_keys"
        if [ -f "$f" ] && grep -qxF -- "$1" "$f"; then exit 0; fi
        if [ -s "$f" ] && [ -n "$(tail -c 1 "$f")" ]; then echo >> "$f"; fi
        printf '%s\n' "$1" >> "$f"
        """;

    private static void InstallKey(SshDestination d, PropagateOptions o, string publicKey)
    {
        var args = HostKeyOptions(d, o);
        foreach (var opt in o.LoginOptions) args.AddRange(["-o", opt]);
        if (!o.Interactive) args.AddRange(["-o", "BatchMode=yes"]);
        args.AddRange(["-T", "--", d.Host, "sh -c " + SshTarget.Quote(InstallKeyScript) + " sh " + SshTarget.Quote(publicKey)]);
        // On a terminal ssh asks for the password (or the agent's key) itself: stdin and the terminal are passed through.
        var r = Run(o.Ssh, args, TimeSpan.FromMinutes(5), interactive: o.Interactive);
        if (r.ExitCode != 0)
            throw new IOException($"{d}: could not add the key to ~/.ssh/authorized_keys (ssh exit {r.ExitCode}{(r.Stderr.Length > 0 ? ": " + r.Stderr.Trim() : "")})" +
                                  (o.Interactive ? "" : "; run propagate on a terminal to log in with a password, or give -o IdentityFile=KEY"));
    }

    // $1: the directory. A file made and removed in it proves the dump user can write there.
    internal const string WritableScript = """
        umask 077
        mkdir -p -- "$1" || exit 1
        t="$1/.capture-agent-propagate.$$"
        : > "$t" || exit 1
        rm -f -- "$t"
        """;

    private static void CheckWritable(SshDestination d, PropagateOptions o)
    {
        var args = HostKeyOptions(d, o);
        args.AddRange(["-i", o.KeyPath, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-T", "--", d.Host,
            "sh -c " + SshTarget.Quote(WritableScript) + " sh " + SshTarget.Quote(o.DumpDirectory)]);
        var r = Run(o.Ssh, args, o.Timeout * 2, interactive: false);
        if (r.ExitCode != 0)
            throw new IOException($"{d}: {o.DumpDirectory} cannot be created or written by {d.User}{(r.Stderr.Length > 0 ? ": " + r.Stderr.Trim() : "")}");
    }

    // ----- running the OpenSSH tools -----

    private sealed record ToolRun(int ExitCode, string Stdout, string Stderr);

    private static string Tool(string program, IEnumerable<string> args, TimeSpan timeout, bool tolerateFailure = false)
    {
        var r = Run(program, args, timeout, interactive: false);
        if (r.ExitCode != 0 && !tolerateFailure)
            throw new IOException($"{Path.GetFileName(program)} failed (exit {r.ExitCode}){(r.Stderr.Length > 0 ? ": " + r.Stderr.Trim() : "")}");
        return r.Stdout;
    }

    private static ToolRun Run(string program, IEnumerable<string> args, TimeSpan timeout, bool interactive)
    {
        if (!File.Exists(program)) throw new IOException($"{program} is missing (apt-get install openssh-client)");
        var psi = new ProcessStartInfo(program) { UseShellExecute = false, RedirectStandardOutput = !interactive, RedirectStandardError = !interactive, RedirectStandardInput = !interactive };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi) ?? throw new IOException($"{program} did not start");
        Task<string> stdout = Task.FromResult(""), stderr = Task.FromResult("");
        if (!interactive)
        {
            p.StandardInput.Close();
            stdout = p.StandardOutput.ReadToEndAsync();
            stderr = p.StandardError.ReadToEndAsync();
        }
        if (!p.WaitForExit(timeout))
        {
            try { p.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            p.WaitForExit();
            throw new IOException($"{Path.GetFileName(program)} did not finish within {(int)timeout.TotalSeconds} s");
        }
        p.WaitForExit();
        return new ToolRun(p.ExitCode, stdout.Result, stderr.Result);
    }
}

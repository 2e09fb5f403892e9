using CaptureAgent.Config;
using CaptureAgent.Targets;

namespace CaptureAgent.Initramfs;

/// <summary>What the configured targets and hooks need in the capture initramfs, besides the agent.</summary>
public sealed record ConfigNeeds(List<string> Modules, List<string> Executables, List<InitramfsFile> Files, List<string> Notes);

/// <summary>
/// Reads the config the image will carry and lists what its targets need there: the kernel NFS
/// client for nfs targets, the OpenSSH client with the key and known_hosts for ssh targets, the
/// hook programs. The NIC driver is the caller's to add (it depends on the machine, not the config).
/// </summary>
public static class ConfigContent
{
    public const string SshClient = "/usr/bin/ssh";

    /// <param name="hostRoot">Where the host's files are read from (tests use a fake root).</param>
    public static ConfigNeeds For(AgentConfig config, string hostRoot = "/")
    {
        var needs = new ConfigNeeds([], [], [], []);
        if (config.Targets.Any(t => t.Type == TargetType.Nfs))
        {
            // nfsv4 for the default; nfsv3 so a v3-only server still works (the agent tries 4.2..3).
            needs.Modules.AddRange(["nfsv4", "nfsv3"]);
        }
        if (config.Targets.Any(t => t.Type == TargetType.Ssh))
        {
            needs.Executables.Add(SshClient);
            foreach (var (path, what) in new[] { (config.SshKey, "ssh_key"), (config.SshKnownHosts, "ssh_known_hosts") })
            {
                string host = Path.Combine(hostRoot, path.TrimStart('/'));
                if (File.Exists(host)) needs.Files.Add(new InitramfsFile(host, path, 0x180 /* 0600 */));
                else needs.Notes.Add($"{what} {path} does not exist: the ssh target cannot log in (create it, e.g. ssh-keygen -t ed25519 -N '' -f {path})");
            }
        }
        foreach (var hook in config.PreHooks.Concat(config.PostHooks).Distinct())
        {
            string host = Path.Combine(hostRoot, hook.TrimStart('/'));
            if (!File.Exists(host))
            {
                needs.Notes.Add($"hook {hook} does not exist; it is left out of the image");
                continue;
            }
            needs.Files.Add(new InitramfsFile(host, hook, 0x1c0 /* 0700 */));
            // The image has no shell of its own: a script runs only if its interpreter is added.
            if (Capture.Hooks.KindOf(host) != Capture.Hooks.FileKind.Elf)
                needs.Notes.Add($"hook {hook} is a script: it runs only if its interpreter is in the image (--executable /bin/sh)");
        }
        return needs;
    }
}

using System.Diagnostics;

namespace CaptureAgent.Capture;

/// <summary>
/// pre_hook / post_hook commands. The capture initramfs normally has no shell: a script runs only
/// when its interpreter is in the image, an ELF program always. A hook that fails or hangs is
/// reported and the capture goes on: a hook must never cost the dump.
/// </summary>
public static class Hooks
{
    public static readonly TimeSpan Timeout = TimeSpan.FromMinutes(2);

    /// <summary>Runs each hook in order with the environment given; returns how many succeeded.</summary>
    public static int Run(string stage, IEnumerable<string> hooks, IReadOnlyDictionary<string, string> environment, Action<string> report,
        TimeSpan? timeout = null)
    {
        var limit = timeout ?? Timeout;
        int ok = 0;
        foreach (var hook in hooks)
        {
            string? why = Runnable(hook);
            if (why is not null)
            {
                report($"capture-agent: {stage} hook {hook} skipped: {why}");
                continue;
            }
            // execve() cannot run a script without a #! line: hand those to the shell.
            var psi = KindOf(hook) != FileKind.Plain ? new ProcessStartInfo(hook) : new ProcessStartInfo("/bin/sh") { ArgumentList = { hook } };
            psi.UseShellExecute = false;
            foreach (var (k, v) in environment) psi.Environment[k] = v;
            psi.Environment["CAPTURE_AGENT_STAGE"] = stage;
            try
            {
                using var p = Process.Start(psi) ?? throw new IOException("not started");
                if (!p.WaitForExit(limit))
                {
                    p.Kill(entireProcessTree: true);
                    p.WaitForExit();
                    report($"capture-agent: {stage} hook {hook} killed after {limit.TotalSeconds:0} s");
                    continue;
                }
                if (p.ExitCode == 0) ok++;
                report($"capture-agent: {stage} hook {hook} exited with {p.ExitCode}");
            }
            catch (Exception e) when (e is System.ComponentModel.Win32Exception or IOException or InvalidOperationException)
            {
                report($"capture-agent: {stage} hook {hook} could not run: {e.Message}");
            }
        }
        return ok;
    }

    /// <summary>What a hook file starts with: an ELF program, a #! script, or neither (a bare shell script).</summary>
    public enum FileKind { Elf, Shebang, Plain }

    public static FileKind KindOf(string path)
    {
        var head = new byte[4];
        using var f = File.OpenRead(path);
        int n = f.Read(head);
        if (n == 4 && head.AsSpan().SequenceEqual("\u007fELF"u8)) return FileKind.Elf;
        return n >= 2 && head[0] == (byte)'#' && head[1] == (byte)'!' ? FileKind.Shebang : FileKind.Plain;
    }

    /// <summary>Null when the hook can run here, else why not.</summary>
    public static string? Runnable(string path)
    {
        if (!File.Exists(path)) return "not in the image";
        var kind = KindOf(path);
        if (kind == FileKind.Elf) return null;
        if (kind == FileKind.Shebang)
        {
            string line = File.ReadLines(path).First()[2..].Trim();
            string interpreter = line.Split(' ', StringSplitOptions.RemoveEmptyEntries).FirstOrDefault() ?? "";
            return File.Exists(interpreter) ? null : $"its interpreter {interpreter} is not in the image";
        }
        return File.Exists("/bin/sh") ? null : "no #! line and no /bin/sh in the image";
    }
}

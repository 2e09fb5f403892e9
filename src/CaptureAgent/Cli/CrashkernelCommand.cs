using System.Diagnostics;
using CaptureAgent.Sizing;
using CaptureAgent.Common;

namespace CaptureAgent.Cli;

/// <summary>`capture-agent crashkernel`: show, and with --apply write, crashkernel= into the boot loader configuration.</summary>
public static class CrashkernelCommand
{
    public const string Usage = """
        usage: capture-agent crashkernel [--size SIZE|auto] [--apply] [--root DIR] [--kernel K] [--initrd I]
          --size    a crashkernel= value (128M, 1G-4G:192M,4G-:256M, ...) or auto (default): `capture-agent estimate`'s recommendation
          --apply   write the files (atomically, keeping their modes); without it only the diff is shown
          --root    edit the boot configuration of the system mounted at DIR (default /)
        Files: /etc/default/grub.d/capture-agent.cfg (or GRUB_CMDLINE_LINUX in /etc/default/grub without grub.d),
        every /boot/loader/entries/*.conf (also /efi, /boot/efi), /etc/kernel/cmdline. The new size takes effect after a reboot.
        """;

    public static int Run(string[] args) => CommandLine.Run(Usage, args, Configure);

    private static int Configure(string[] args)
    {
        string size = "auto", root = "/";
        bool apply = false;
        string? kernel = null, initrd = null;
        var cli = new ArgReader("crashkernel", args);
        while (cli.Next() is { } option)
        {
            switch (option)
            {
                case "--size": size = cli.Value(); break;
                case "--root": root = cli.Value(); break;
                case "--kernel": kernel = cli.Value(); break;
                case "--initrd": initrd = cli.Value(); break;
                case "--apply": apply = true; break;
                default: throw cli.Unknown();
            }
        }
        cli.NoOperands();
        if (!Directory.Exists(root)) throw cli.Error($"--root {root} is not a directory");
        if (size == "auto")
        {
            if (Auto(root, kernel, initrd) is not string computed) return ExitCodes.Failed;
            size = computed;
        }
        if (!BootloaderConfig.IsValidSize(size)) throw cli.Error($"'{size}' is not a crashkernel size (e.g. 128M, 1G, 1G-4G:192M,4G-:256M)");
        BootloaderPlan plan;
        try { plan = BootloaderConfig.Plan(root, size); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
        {
            Log.Error($"crashkernel: {e.Message}");
            return ExitCodes.Failed;
        }
        foreach (var c in plan.Changes)
        {
            string shown = Display(root, c.Path);
            if (c.Changed) Console.Out.Write(BootloaderConfig.Diff(c, shown));
            else Console.Out.WriteLine($"{shown}: already crashkernel={size} ({c.What})");
        }
        foreach (var n in plan.Notes) Console.Out.WriteLine($"note: {n}");
        if (!plan.AnyChange)
        {
            Console.Out.WriteLine(plan.Changes.Count == 0 ? "nothing to change" : $"nothing to change: crashkernel={size} is already configured");
            return plan.Changes.Count == 0 ? ExitCodes.Failed : ExitCodes.Ok;
        }
        if (!apply)
        {
            Console.Out.WriteLine("dry run: nothing written; add --apply to write these changes");
            return ExitCodes.Ok;
        }
        foreach (var c in plan.Changes.Where(c => c.Changed))
        {
            try { BootloaderConfig.Apply(c); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                Log.Error($"crashkernel: writing {c.Path} failed: {e.Message}");
                return ExitCodes.Failed;
            }
            Console.Out.WriteLine($"wrote {Display(root, c.Path)}");
        }
        if (plan.GrubSnippet && plan.Changes.Any(c => c.Changed && c.What.StartsWith("GRUB", StringComparison.Ordinal)))
        {
            string updateGrub = Path.Combine(root, "usr/sbin/update-grub");
            if (Path.GetFullPath(root) == "/" && File.Exists(updateGrub)) RunUpdateGrub(updateGrub);
            else Console.Out.WriteLine("run update-grub (in the target system) so grub.cfg picks up the snippet");
        }
        Console.Out.WriteLine($"crashkernel={size} takes effect at the next boot");
        return ExitCodes.Ok;
    }

    private static string? Auto(string root, string? kernel, string? initrd)
    {
        string release = "unknown";
        try { release = File.ReadAllText("/proc/sys/kernel/osrelease").Trim(); } catch (IOException) { }
        kernel ??= Path.Combine(root, $"boot/vmlinuz-{release}");
        initrd ??= Path.Combine(root, $"var/lib/capture-agent/initramfs-{release}.img");
        if (!File.Exists(kernel))
        {
            Log.Error($"crashkernel: --size auto needs the capture kernel, {kernel} does not exist (give --kernel or --size)");
            return null;
        }
        if (!File.Exists(initrd))
        {
            Log.Warn($"{initrd} does not exist: the auto size leaves out the capture initramfs");
            initrd = null;
        }
        var (ram, ranges) = CrashkernelEstimate.SystemRam();
        var est = CrashkernelEstimate.Compute(kernel, initrd, ram, ranges);
        Console.Out.WriteLine($"auto: crashkernel={est.Reserve} (capture-agent estimate: floor {est.Recommended}, the larger of the boot and capture phases, + max(16 MiB, 20%))");
        return est.Reserve;
    }

    private static string Display(string root, string path) =>
        Path.GetFullPath(root) == "/" ? path : "/" + Path.GetRelativePath(root, path);

    private static void RunUpdateGrub(string path)
    {
        try
        {
            using var p = Process.Start(new ProcessStartInfo(path) { UseShellExecute = false });
            p?.WaitForExit();
            if (p is { ExitCode: not 0 }) Log.Warn($"update-grub exited with {p.ExitCode}; run it again by hand");
            else Console.Out.WriteLine("update-grub: done");
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or IOException)
        {
            Log.Warn($"cannot run update-grub ({e.Message}); run it by hand");
        }
    }
}

using System.Buffers.Binary;
using CaptureAgent.Native;

namespace CaptureAgent.Kexec;

/// <summary>Arms and disarms the capture kernel with kexec_file_load(2): no kexec-tools.</summary>
public static class KexecLoader
{
    public sealed class KexecException(string message, int errno) : Exception(message)
    {
        public int Errno { get; } = errno;
    }

    /// <summary>Loads kernel + initramfs into the crash reservation; throws with a message for people.</summary>
    public static void LoadCrashKernel(string kernel, string? initramfs, string cmdline, CrashKernelState state)
    {
        if (state.ReservedBytes == 0) throw new KexecException(state.Explain(), Libc.ENOMEM);
        using var k = Libc.OpenFile(kernel, Libc.O_RDONLY, 0);
        using var i = initramfs is null ? null : Libc.OpenFile(initramfs, Libc.O_RDONLY, 0);
        uint flags = Libc.KEXEC_FILE_ON_CRASH | (i is null ? Libc.KEXEC_FILE_NO_INITRAMFS : 0);
        int errno = Libc.KexecFileLoad((int)k.DangerousGetHandle(), i is null ? -1 : (int)i.DangerousGetHandle(), cmdline, flags);
        if (errno != 0) throw new KexecException(Explain(errno, kernel, initramfs, state), errno);
    }

    public static void UnloadCrashKernel()
    {
        int errno = Libc.KexecFileLoad(-1, -1, null, Libc.KEXEC_FILE_UNLOAD | Libc.KEXEC_FILE_ON_CRASH);
        if (errno != 0) throw new KexecException($"unloading the capture kernel failed: {Libc.LastError().Message} (errno {errno})", errno);
    }

    /// <summary>Turns kexec_file_load's errno into what to do about it.</summary>
    public static string Explain(int errno, string kernel, string? initramfs, CrashKernelState state) => errno switch
    {
        Libc.EPERM when state.KexecDisabled => "kexec is disabled (kernel.kexec_load_disabled=1) until reboot",
        Libc.EPERM when state.Lockdown is not null => $"the kernel is locked down ({state.Lockdown}, e.g. Secure Boot) and refused the capture kernel: it must be signed by a key the kernel trusts",
        Libc.EPERM => "permission denied: loading a capture kernel needs root (CAP_SYS_BOOT)",
        Libc.EKEYREJECTED => $"{kernel} is not signed by a key the running kernel trusts (lockdown or kexec signature enforcement)",
        Libc.ENOEXEC => $"{kernel} is not a kernel image kexec_file_load accepts (x86_64 bzImage expected)",
        Libc.ENOMEM or EADDRNOTAVAIL =>
            $"the {state.ReservedBytes >> 20} MiB crash reservation is too small for this capture kernel and initramfs: " +
            $"they need about {NeededBytes(kernel, initramfs) >> 20} MiB to load and more to boot; raise crashkernel= (capture-agent estimate)",
        Libc.EBUSY => "a kexec operation is in progress or the capture kernel is in use; try again",
        Libc.ENOSYS => "this kernel has no kexec_file_load (CONFIG_KEXEC_FILE is off)",
        Libc.EINVAL => "the kernel rejected the arguments (no crash reservation, or an unsupported image)",
        _ => $"kexec_file_load failed: errno {errno}",
    };

    private const int EADDRNOTAVAIL = 99;

    /// <summary>
    /// What loading takes: the decompressed kernel's init_size from the bzImage setup header (what it
    /// occupies while booting) plus the initramfs, rounded up to a MiB.
    /// </summary>
    public static long NeededBytes(string kernel, string? initramfs)
    {
        long initSize = BzImageInitSize(kernel) ?? new FileInfo(kernel).Length * 4;
        long total = initSize + (initramfs is null ? 0 : new FileInfo(initramfs).Length);
        return (total + (1 << 20) - 1) & ~((1L << 20) - 1);
    }

    /// <summary>setup_header.init_size (offset 0x260), present since boot protocol 2.10.</summary>
    public static long? BzImageInitSize(string kernel)
    {
        try
        {
            using var f = File.OpenRead(kernel);
            var h = new byte[0x270];
            if (f.Read(h) < h.Length) return null;
            if (BinaryPrimitives.ReadUInt32LittleEndian(h.AsSpan(0x202)) != 0x53726448) return null;   // "HdrS"
            if (BinaryPrimitives.ReadUInt16LittleEndian(h.AsSpan(0x206)) < 0x020a) return null;
            return BinaryPrimitives.ReadUInt32LittleEndian(h.AsSpan(0x260));
        }
        catch (IOException)
        {
            return null;
        }
    }
}

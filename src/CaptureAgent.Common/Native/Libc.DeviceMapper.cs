using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace CaptureAgent.Native;

/// <summary>
/// device-mapper without libdevmapper: the ioctls of /dev/mapper/control (include/uapi/linux/dm-ioctl.h,
/// interface version 4) and mknod for the /dev/mapper node no udev makes. Every request is one
/// buffer: struct dm_ioctl (312 bytes on every Linux ABI: fixed-size fields, 8-byte aligned),
/// then its data (dm_target_spec + parameter string for each target of a table).
/// </summary>
internal static partial class Libc
{
    /// <summary>struct dm_ioctl's size and field offsets.</summary>
    public static class DmIoctl
    {
        public const int Size = 312;
        public const int Version = 0, DataSize = 12, DataStart = 16, TargetCount = 20, OpenCount = 24, Flags = 28,
            EventNr = 32, Dev = 40, Name = 48, Uuid = 176;
        public const int NameLength = 128, UuidLength = 129;
        /// <summary>struct dm_target_spec: sector_start, length, status, next, target_type[16]; the parameters follow.</summary>
        public const int SpecSize = 40, SpecStart = 0, SpecLength = 8, SpecStatus = 16, SpecNext = 20, SpecType = 24, TypeLength = 16;
        public const uint InterfaceMajor = 4;
        /// <summary>The errno of a lookup of a device that does not exist.</summary>
        public const int ENXIO = 6;

        public const uint ReadOnlyFlag = 1 << 0, SuspendFlag = 1 << 1, StatusTableFlag = 1 << 4,
            ActivePresentFlag = 1 << 5, InactivePresentFlag = 1 << 6, BufferFullFlag = 1 << 8;

        // _IOWR(0xfd, nr, struct dm_ioctl): direction 3 << 30, size 312 << 16, type 0xfd << 8, nr.
        private const uint Base = (3u << 30) | ((uint)Size << 16) | (0xfdu << 8);
        public const uint VersionCmd = Base | 0, CreateCmd = Base | 3, RemoveCmd = Base | 4, SuspendCmd = Base | 6,
            StatusCmd = Base | 7, TableLoadCmd = Base | 9, TableStatusCmd = Base | 12;
    }

    [LibraryImport("libc", EntryPoint = "mknod", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int MknodRaw(string path, uint mode, ulong dev);

    /// <summary>One device-mapper ioctl on the control node; the kernel writes its answer into <paramref name="buffer"/>. Returns 0 or the errno.</summary>
    public static int DeviceMapperIoctl(SafeFileHandle control, uint command, Span<byte> buffer)
    {
        bool added = false;
        control.DangerousAddRef(ref added);
        try
        {
            unsafe
            {
                fixed (byte* p = buffer)
                    return IoctlRaw((int)control.DangerousGetHandle(), command, p) < 0 ? Marshal.GetLastPInvokeError() : 0;
            }
        }
        finally
        {
            if (added) control.DangerousRelease();
        }
    }

    /// <summary>A block device node, mode 0600 (dumps hold secrets); returns 0 or the errno.</summary>
    public static int MakeBlockNode(string path, int major, int minor)
    {
        const uint S_IFBLK = 0x6000;
        return MknodRaw(path, S_IFBLK | 0x180, MakeDev(major, minor)) == 0 ? 0 : Marshal.GetLastPInvokeError();
    }

    /// <summary>A character device node (the control node when devtmpfs did not make it), mode 0600.</summary>
    public static int MakeCharNode(string path, int major, int minor)
    {
        const uint S_IFCHR = 0x2000;
        return MknodRaw(path, S_IFCHR | 0x180, MakeDev(major, minor)) == 0 ? 0 : Marshal.GetLastPInvokeError();
    }

    /// <summary>glibc's makedev: the 64-bit dev_t splits major and minor into high and low parts.</summary>
    private static ulong MakeDev(int major, int minor)
    {
        ulong ma = (uint)major, mi = (uint)minor;
        return ((ma & 0xfffff000) << 32) | ((ma & 0xfff) << 8) | ((mi & 0xffffff00) << 12) | (mi & 0xff);
    }
}

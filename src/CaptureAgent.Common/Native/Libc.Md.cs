using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace CaptureAgent.Native;

/// <summary>
/// The md driver's ioctls (include/uapi/linux/raid/md_u.h): assembling an array the way mdadm does
/// on a kernel without udev (its node made with MakeBlockNode). Every call returns 0 or the errno.
/// </summary>
internal static partial class Libc
{
    public const int MdMajor = 9;
    private const int MduArrayInfoSize = 18 * 4;   // mdu_array_info_t: 18 ints
    private const int MduDiskInfoSize = 5 * 4;     // mdu_disk_info_t: number, major, minor, raid_disk, state
    private const int MduParamSize = 3 * 4;        // mdu_param_t: personality, chunk_size, max_fault

    // _IOW(MD_MAJOR, nr, type) = 1<<30 | sizeof(type)<<16 | 9<<8 | nr; _IO = 9<<8 | nr.
    private const uint SET_ARRAY_INFO = 0x40000000u | (MduArrayInfoSize << 16) | (MdMajor << 8) | 0x23;
    private const uint ADD_NEW_DISK = 0x40000000u | (MduDiskInfoSize << 16) | (MdMajor << 8) | 0x21;
    private const uint RUN_ARRAY = 0x40000000u | (MduParamSize << 16) | (MdMajor << 8) | 0x30;
    private const uint STOP_ARRAY = (MdMajor << 8) | 0x32;

    /// <summary>SET_ARRAY_INFO with only the superblock version: the kernel then reads each member's own superblock.</summary>
    public static int MdSetArrayVersion(SafeFileHandle md, int majorVersion, int minorVersion)
    {
        Span<byte> info = stackalloc byte[MduArrayInfoSize];
        info.Clear();
        BinaryPrimitives.WriteInt32LittleEndian(info, majorVersion);
        BinaryPrimitives.WriteInt32LittleEndian(info[4..], minorVersion);
        return MdIoctl(md, SET_ARRAY_INFO, info);
    }

    /// <summary>ADD_NEW_DISK of a member by device number, before the array runs (its role comes from its superblock).</summary>
    public static int MdAddDisk(SafeFileHandle md, int major, int minor)
    {
        Span<byte> disk = stackalloc byte[MduDiskInfoSize];
        disk.Clear();
        BinaryPrimitives.WriteInt32LittleEndian(disk[4..], major);
        BinaryPrimitives.WriteInt32LittleEndian(disk[8..], minor);
        return MdIoctl(md, ADD_NEW_DISK, disk);
    }

    /// <summary>RUN_ARRAY: the kernel checks the members' superblocks against each other and starts the personality.</summary>
    public static int MdRunArray(SafeFileHandle md)
    {
        Span<byte> param = stackalloc byte[MduParamSize];
        param.Clear();
        return MdIoctl(md, RUN_ARRAY, param);
    }

    /// <summary>STOP_ARRAY: undoes a half-made array (members released).</summary>
    public static int MdStopArray(SafeFileHandle md) => MdIoctl(md, STOP_ARRAY, Span<byte>.Empty);

    private static unsafe int MdIoctl(SafeFileHandle md, uint request, Span<byte> arg)
    {
        bool added = false;
        md.DangerousAddRef(ref added);
        try
        {
            fixed (byte* p = arg)
                return IoctlRaw((int)md.DangerousGetHandle(), request, arg.IsEmpty ? null : p) == 0 ? 0 : Marshal.GetLastPInvokeError();
        }
        finally
        {
            if (added) md.DangerousRelease();
        }
    }
}

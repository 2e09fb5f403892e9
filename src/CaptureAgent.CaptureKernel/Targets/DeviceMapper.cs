using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using CaptureAgent.Native;
using Microsoft.Win32.SafeHandles;
using Dm = CaptureAgent.Native.Libc.DmIoctl;

namespace CaptureAgent.Targets;

/// <summary>One line of a dm table: sectors [Start, Start + Length) go to a target type with its parameters.</summary>
public sealed record DmTarget(long Start, long Length, string Type, string Parameters)
{
    /// <summary>Same mapping, whatever the spacing of the parameters.</summary>
    public bool SameAs(DmTarget other) =>
        Start == other.Start && Length == other.Length && Type == other.Type
        && Parameters.Split(' ', StringSplitOptions.RemoveEmptyEntries).SequenceEqual(other.Parameters.Split(' ', StringSplitOptions.RemoveEmptyEntries));

    public override string ToString() => $"{Start} {Length} {Type} {Parameters}";
}

/// <summary>A device-mapper device as DM_DEV_STATUS reports it.</summary>
public sealed record DmDeviceInfo(string Name, string Uuid, int Major, int Minor, uint Flags, int TargetCount)
{
    public bool Suspended => (Flags & Dm.SuspendFlag) != 0;
    public bool HasLiveTable => (Flags & Dm.ActivePresentFlag) != 0;
    public string DeviceNumber => $"{Major}:{Minor}";
}

/// <summary>What activation needs of device-mapper; tests hand in a fake one.</summary>
public interface IDeviceMapper
{
    /// <summary>The device named <paramref name="name"/>, or null when there is none.</summary>
    DmDeviceInfo? Find(string name);

    /// <summary>The device with dm uuid <paramref name="uuid"/>, or null.</summary>
    DmDeviceInfo? FindByUuid(string uuid);

    /// <summary>The live table of a device.</summary>
    IReadOnlyList<DmTarget> Table(string name);

    /// <summary>
    /// Creates the device, loads <paramref name="table"/>, resumes it and makes /dev/mapper/NAME;
    /// when a step fails, removes the device it created (and only that) and throws IOException.
    /// </summary>
    DmDeviceInfo Create(string name, string uuid, IReadOnlyList<DmTarget> table);
}

/// <summary>
/// device-mapper through the ioctls of /dev/mapper/control, as libdevmapper does it but in
/// process: DM_VERSION, DM_DEV_STATUS, DM_TABLE_STATUS, DM_DEV_CREATE, DM_TABLE_LOAD,
/// DM_DEV_SUSPEND (resume) and, only to undo its own half-made device, DM_DEV_REMOVE. There is
/// no udev in the capture kernel: the /dev/mapper node is made here with mknod.
/// </summary>
public sealed class DeviceMapper : IDeviceMapper, IDisposable
{
    private const int MaxTableBuffer = 1 << 20;
    private readonly SafeFileHandle _control;
    private readonly string _devRoot;

    /// <summary>The kernel's ioctl interface version ("4.48.0").</summary>
    public string KernelVersion { get; }

    private DeviceMapper(SafeFileHandle control, string devRoot, string version)
    {
        _control = control;
        _devRoot = devRoot;
        KernelVersion = version;
    }

    /// <summary>Opens /dev/mapper/control (making the node from sysfs when devtmpfs has not) and checks the interface version.</summary>
    public static DeviceMapper Open(string devRoot = "/dev", string sysRoot = "/sys")
    {
        string control = Path.Combine(devRoot, "mapper", "control");
        if (!File.Exists(control)) MakeControlNode(control, sysRoot);
        var handle = Libc.OpenFile(control, Libc.O_RDWR, 0);
        try
        {
            var buffer = Request(null, null, 0);
            int errno = Libc.DeviceMapperIoctl(handle, Dm.VersionCmd, buffer);
            if (errno != 0) throw new IOException($"device-mapper: {control} does not answer DM_VERSION: {Libc.ErrnoName(errno)}");
            uint major = BinaryPrimitives.ReadUInt32LittleEndian(buffer);
            if (major != Dm.InterfaceMajor) throw new IOException($"device-mapper: interface version {major}, not {Dm.InterfaceMajor}");
            string version = string.Join('.', Enumerable.Range(0, 3).Select(i => BinaryPrimitives.ReadUInt32LittleEndian(buffer.AsSpan(i * 4)).ToString(CultureInfo.InvariantCulture)));
            return new DeviceMapper(handle, devRoot, version);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    private static void MakeControlNode(string control, string sysRoot)
    {
        string? dev = SysfsAttribute.Read(Path.Combine(sysRoot, "class", "misc", "device-mapper"), "dev");
        var parts = dev?.Split(':');
        if (parts is not { Length: 2 } || !int.TryParse(parts[0], out int major) || !int.TryParse(parts[1], out int minor))
            throw new IOException("device-mapper is not in this kernel (dm_mod not loaded?)");
        Directory.CreateDirectory(Path.GetDirectoryName(control)!);
        int errno = Libc.MakeCharNode(control, major, minor);
        if (errno != 0 && !File.Exists(control)) throw new IOException($"device-mapper: cannot make {control}: {Libc.ErrnoName(errno)}");
    }

    public DmDeviceInfo? Find(string name) => Status(name, null);

    public DmDeviceInfo? FindByUuid(string uuid) => Status(null, uuid);

    private DmDeviceInfo? Status(string? name, string? uuid)
    {
        var buffer = Request(name, uuid, 0);
        int errno = Libc.DeviceMapperIoctl(_control, Dm.StatusCmd, buffer);
        if (errno == Dm.ENXIO) return null;
        if (errno != 0) throw new IOException($"device-mapper: status of {name ?? uuid}: {Libc.ErrnoName(errno)}");
        return Info(buffer);
    }

    public IReadOnlyList<DmTarget> Table(string name)
    {
        for (int size = 16 * 1024; ; size *= 4)
        {
            var buffer = Request(name, null, size);
            BinaryPrimitives.WriteUInt32LittleEndian(buffer.AsSpan(Dm.Flags), Dm.StatusTableFlag);
            int errno = Libc.DeviceMapperIoctl(_control, Dm.TableStatusCmd, buffer);
            if (errno != 0) throw new IOException($"device-mapper: table of {name}: {Libc.ErrnoName(errno)}");
            uint flags = BinaryPrimitives.ReadUInt32LittleEndian(buffer.AsSpan(Dm.Flags));
            if ((flags & Dm.BufferFullFlag) == 0) return ParseTable(buffer);
            if (size * 4 > MaxTableBuffer) throw new IOException($"device-mapper: the table of {name} is larger than {MaxTableBuffer >> 20} MiB");
        }
    }

    public DmDeviceInfo Create(string name, string uuid, IReadOnlyList<DmTarget> table)
    {
        var buffer = Request(name, uuid, 0);
        int errno = Libc.DeviceMapperIoctl(_control, Dm.CreateCmd, buffer);
        if (errno != 0) throw new IOException($"device-mapper: creating {name}: {Libc.ErrnoName(errno)}");
        try
        {
            errno = Libc.DeviceMapperIoctl(_control, Dm.TableLoadCmd, TableRequest(name, table));
            if (errno != 0) throw new IOException($"device-mapper: loading the table of {name} ({table.Count} targets): {Libc.ErrnoName(errno)}");
            var resume = Request(name, null, 0);
            errno = Libc.DeviceMapperIoctl(_control, Dm.SuspendCmd, resume);   // no DM_SUSPEND_FLAG: resume
            if (errno != 0) throw new IOException($"device-mapper: resuming {name}: {Libc.ErrnoName(errno)}");
            var info = Info(resume);
            MakeNode(name, info);
            return info;
        }
        catch (IOException)
        {
            // Ours, half made: nothing else may have opened it yet.
            Libc.DeviceMapperIoctl(_control, Dm.RemoveCmd, Request(name, null, 0));
            throw;
        }
    }

    /// <summary>/dev/mapper/NAME, as udev would make it; one already there (a link from a running system's udev) is left alone.</summary>
    private void MakeNode(string name, DmDeviceInfo info)
    {
        string node = Path.Combine(_devRoot, "mapper", name);
        if (File.Exists(node) || new FileInfo(node).LinkTarget is not null) return;
        int errno = Libc.MakeBlockNode(node, info.Major, info.Minor);
        if (errno != 0) throw new IOException($"device-mapper: cannot make {node}: {Libc.ErrnoName(errno)}");
    }

    /// <summary>A request buffer: struct dm_ioctl with interface version 4.0.0, the name and uuid, room for <paramref name="dataBytes"/>.</summary>
    internal static byte[] Request(string? name, string? uuid, int dataBytes)
    {
        int size = Dm.Size + (dataBytes + 7) / 8 * 8;
        var b = new byte[size];
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(Dm.Version), Dm.InterfaceMajor);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(Dm.DataSize), (uint)size);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(Dm.DataStart), Dm.Size);
        if (name is not null) PutString(b.AsSpan(Dm.Name, Dm.NameLength), name, "name");
        if (uuid is not null) PutString(b.AsSpan(Dm.Uuid, Dm.UuidLength), uuid, "uuid");
        return b;
    }

    /// <summary>DM_TABLE_LOAD's buffer: each dm_target_spec followed by its NUL-terminated parameters, padded to 8 bytes.</summary>
    internal static byte[] TableRequest(string name, IReadOnlyList<DmTarget> table)
    {
        var parameters = table.Select(t => Encoding.ASCII.GetBytes(t.Parameters)).ToList();
        int data = parameters.Sum(p => SpecBytes(p.Length));
        if (data > MaxTableBuffer) throw new IOException($"device-mapper: the table of {name} would exceed {MaxTableBuffer >> 20} MiB");
        var b = Request(name, null, data);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(Dm.TargetCount), (uint)table.Count);
        int at = Dm.Size;
        for (int i = 0; i < table.Count; i++)
        {
            var spec = b.AsSpan(at);
            int bytes = SpecBytes(parameters[i].Length);
            BinaryPrimitives.WriteUInt64LittleEndian(spec[Dm.SpecStart..], (ulong)table[i].Start);
            BinaryPrimitives.WriteUInt64LittleEndian(spec[Dm.SpecLength..], (ulong)table[i].Length);
            BinaryPrimitives.WriteUInt32LittleEndian(spec[Dm.SpecNext..], (uint)bytes);   // on load: from this spec to the next
            PutString(spec.Slice(Dm.SpecType, Dm.TypeLength), table[i].Type, "target type");
            parameters[i].CopyTo(spec[Dm.SpecSize..]);
            at += bytes;
        }
        return b;
    }

    private static int SpecBytes(int parameterLength) => (Dm.SpecSize + parameterLength + 1 + 7) / 8 * 8;

    /// <summary>DM_TABLE_STATUS's answer: target_count specs from data_start, each next counted from the first spec.</summary>
    internal static List<DmTarget> ParseTable(byte[] b)
    {
        uint count = BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(Dm.TargetCount));
        uint start = BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(Dm.DataStart));
        uint end = Math.Min(BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(Dm.DataSize)), (uint)b.Length);
        var targets = new List<DmTarget>();
        long at = start;
        for (uint i = 0; i < count; i++)
        {
            if (at < start || at + Dm.SpecSize >= end) throw new IOException("device-mapper: table answer runs past its buffer");
            var spec = b.AsSpan((int)at);
            int paramStart = (int)at + Dm.SpecSize;
            int nul = Array.IndexOf(b, (byte)0, paramStart, (int)end - paramStart);
            if (nul < 0) throw new IOException("device-mapper: table answer has an unterminated target");
            targets.Add(new DmTarget(
                (long)BinaryPrimitives.ReadUInt64LittleEndian(spec[Dm.SpecStart..]),
                (long)BinaryPrimitives.ReadUInt64LittleEndian(spec[Dm.SpecLength..]),
                CString(spec.Slice(Dm.SpecType, Dm.TypeLength)),
                Encoding.ASCII.GetString(b, paramStart, nul - paramStart)));
            at = start + BinaryPrimitives.ReadUInt32LittleEndian(spec[Dm.SpecNext..]);
        }
        return targets;
    }

    internal static DmDeviceInfo Info(byte[] b)
    {
        ulong dev = BinaryPrimitives.ReadUInt64LittleEndian(b.AsSpan(Dm.Dev));
        // The kernel's huge_encode_dev: minor's low byte, then major, then the rest of minor.
        int major = (int)((dev >> 8) & 0xfff), minor = (int)((dev & 0xff) | ((dev >> 12) & 0xfff00));
        return new DmDeviceInfo(CString(b.AsSpan(Dm.Name, Dm.NameLength)), CString(b.AsSpan(Dm.Uuid, Dm.UuidLength)), major, minor,
            BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(Dm.Flags)), (int)BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(Dm.TargetCount)));
    }

    private static void PutString(Span<byte> field, string value, string what)
    {
        int n = Encoding.ASCII.GetByteCount(value);
        if (n >= field.Length || value.Contains('\0')) throw new IOException($"device-mapper: {what} '{value}' is longer than {field.Length - 1} bytes");
        Encoding.ASCII.GetBytes(value, field);
    }

    private static string CString(ReadOnlySpan<byte> field)
    {
        int nul = field.IndexOf((byte)0);
        return Encoding.ASCII.GetString(nul < 0 ? field : field[..nul]);
    }

    public void Dispose() => _control.Dispose();
}

using System.Text.RegularExpressions;
using CaptureAgent.Config;
using CaptureAgent.Targets;

namespace CaptureAgent.Rehearsal;

/// <summary>How the scratch disk reaches the VM: the controller whose driver the capture initramfs has.</summary>
public enum DiskController { Virtio, Nvme, VirtioScsi, Ahci }

/// <summary>
/// What the scratch disk must look like for the capture initramfs to take it for the real target:
/// the same filesystem type and the identity the config names it by (LABEL=, UUID=, PARTUUID=,
/// PARTLABEL=, or /dev/vda[N]), on a controller whose driver is in the image.
/// </summary>
public sealed record ScratchDiskPlan(TargetEntry Target, string FilesystemType, string? Label, string? Uuid,
                                     string? PartUuid, string? PartLabel, bool Partitioned, DiskController Controller)
{
    /// <summary>Where the filesystem starts in the image (a GPT leaves the first MiB to the table).</summary>
    public long FilesystemOffset => Partitioned ? 1L << 20 : 0;
}

/// <summary>
/// Makes the scratch disk of a self-test: a sparse image file with a fresh filesystem of the
/// target's type (mkfs of this host: e2fsprogs, xfsprogs, btrfs-progs, dosfstools), under the
/// target's LABEL or UUID, inside a GPT partition when the config names a partition. Nothing of
/// the host's real disks is touched.
/// </summary>
public static partial class ScratchDisk
{
    public static readonly string[] SupportedTypes = ["ext2", "ext3", "ext4", "xfs", "btrfs", "vfat"];

    /// <summary>
    /// The plan for <paramref name="target"/>. <paramref name="realVolume"/> is what the real target
    /// holds now (its type when the config does not say); <paramref name="hostController"/> is the
    /// controller the real target is on (<see cref="HostController"/>): the scratch disk goes
    /// there, so a driver the image lacks fails the rehearsal as it would fail the real capture.
    /// Without it (the target is not on this machine, or on a controller QEMU does not emulate),
    /// <paramref name="imageModules"/> and <paramref name="builtIn"/> tell which controllers the
    /// capture kernel can drive, and one of those is used.
    /// </summary>
    public static ScratchDiskPlan Plan(TargetEntry target, string? configFsType, VolumeIdentity? realVolume,
                                       IReadOnlyCollection<string> imageModules, IReadOnlySet<string>? builtIn, List<string> notes,
                                       DiskController? hostController = null)
    {
        if (target.Type != TargetType.Local || target.Device is null)
            throw new ArgumentException($"target {target.Text} is not a local filesystem: only local targets are rehearsed on a scratch disk");
        string fs = configFsType ?? (realVolume is { IsKnown: true } v ? v.Type : null) ?? "ext4";
        if (configFsType is null && realVolume is not { IsKnown: true })
            notes.Add($"the filesystem type of {target.Text} is not in the config and the device is not on this machine now: ext4 assumed");
        if (fs == "ext4dev") fs = "ext4";
        if (!SupportedTypes.Contains(fs))
            throw new ArgumentException($"a scratch {fs} filesystem cannot be made here (selftest knows {string.Join(", ", SupportedTypes)})");
        var spec = target.Device;
        string? label = null, uuid = null, partUuid = null, partLabel = null;
        bool partitioned = false;
        switch (spec.Kind)
        {
            case TargetKind.Label: label = spec.Value; break;
            case TargetKind.Uuid: uuid = spec.Value; break;
            case TargetKind.PartUuid:
                if (!Guid.TryParse(spec.Value, out _))
                    throw new ArgumentException($"PARTUUID={spec.Value} is not a GPT GUID: an MBR disk signature cannot be rehearsed");
                partUuid = spec.Value; partitioned = true; break;
            case TargetKind.PartLabel: partLabel = spec.Value; partitioned = true; break;
            case TargetKind.Path:
                // Without udev the kernel's own name is all there is: only the first virtio disk is predictable.
                var m = VdaName().Match(spec.Value);
                if (!m.Success)
                    throw new ArgumentException($"target {spec.Value} names a kernel device the VM cannot reproduce: name it by UUID= or LABEL= (what `install` writes)");
                if (m.Groups[1].Value is { Length: > 0 } n && n != "1")
                    throw new ArgumentException($"target {spec.Value}: only /dev/vda and /dev/vda1 can be reproduced");
                partitioned = m.Groups[1].Value.Length > 0;
                break;
        }
        // The real volume's identity fills in what the config leaves open (a UUID= target keeps its label too).
        if (realVolume is { IsKnown: true })
        {
            label ??= spec.Kind == TargetKind.Uuid ? realVolume.Label : null;
            uuid ??= spec.Kind == TargetKind.Label ? realVolume.Uuid : null;
        }
        var controller = hostController ?? ChooseController(imageModules, builtIn, spec.Kind == TargetKind.Path, notes);
        if (hostController is { } hc && !DriverModules(hc).All(m => imageModules.Contains(m) || builtIn?.Contains(m) == true))
            notes.Add($"the capture initramfs lacks the driver of the target's {hc} controller ({string.Join(' ', DriverModules(hc))}): the rehearsal shows what a real crash would do without it");
        if (spec.Kind == TargetKind.Path && controller != DiskController.Virtio)
            throw new ArgumentException($"target {spec.Value} needs virtio_blk in the capture initramfs");
        return new ScratchDiskPlan(target, fs, label, uuid, partUuid, partLabel, partitioned, controller);
    }

    [GeneratedRegex("^/dev/vda([0-9]*)$")]
    private static partial Regex VdaName();

    /// <summary>The module names an initramfs carries (lib/modules/.../virtio_blk.ko.xz -> virtio_blk).</summary>
    public static HashSet<string> ImageModules(Sizing.InitramfsFacts facts) =>
        facts.Modules.Select(m => Path.GetFileName(m.Path)).Select(n => BlockDeviceModules.Normalize(n.IndexOf(".ko", StringComparison.Ordinal) is int ko and > 0 ? n[..ko] : n))
            .ToHashSet(StringComparer.Ordinal);

    /// <summary>The host's own disk driver where the image has it, so the same driver chain is exercised.</summary>
    public static DiskController ChooseController(IReadOnlyCollection<string> imageModules, IReadOnlySet<string>? builtIn, bool virtioOnly, List<string> notes)
    {
        bool Has(string m) => imageModules.Contains(m) || builtIn?.Contains(m) == true;
        if (Has("virtio_blk")) return DiskController.Virtio;
        if (!virtioOnly)
        {
            if (Has("nvme")) return DiskController.Nvme;
            if (Has("virtio_scsi") && Has("sd_mod")) return DiskController.VirtioScsi;
            if (Has("ahci") && Has("sd_mod")) return DiskController.Ahci;
        }
        notes.Add($"the capture initramfs has no disk driver QEMU emulates (virtio_blk, nvme, virtio_scsi, ahci; it has {(imageModules.Count == 0 ? "no modules" : string.Join(' ', imageModules))}): " +
                  "a virtio disk is attached, and the capture kernel finds it only if virtio_blk is built in");
        return DiskController.Virtio;
    }

    /// <summary>The modules the capture kernel needs to see a disk on the controller (their own dependencies aside).</summary>
    public static IReadOnlyList<string> DriverModules(DiskController c) => c switch
    {
        DiskController.Nvme => ["nvme"],
        DiskController.VirtioScsi => ["virtio_scsi", "sd_mod"],
        DiskController.Ahci => ["ahci", "sd_mod"],
        _ => ["virtio_blk"],
    };

    /// <summary>
    /// The controller QEMU emulates for the lowest driver of a device's chain that has one
    /// (virtio_blk, nvme, virtio_scsi, ahci; a dm or md device's first member decides), or null
    /// with the driver QEMU has no match for (xen-blkfront, hv_storvsc, megaraid_sas...).
    /// </summary>
    public static DiskController? HostController(IEnumerable<DriverLevel> levels, out string? unmatched)
    {
        unmatched = null;
        foreach (var level in levels)
        {
            DiskController? c = level.Driver switch
            {
                "virtio_blk" => DiskController.Virtio,
                "nvme" => DiskController.Nvme,
                "virtio_scsi" => DiskController.VirtioScsi,
                "ahci" => DiskController.Ahci,
                _ => null,
            };
            if (c is not null) return c;
            // The disk's own upper drivers (sd, scsi hosts) say nothing; the first bus-level one that is not emulated is named.
            if (level.Driver is not ("sd" or "virtio-pci" or "pcieport")) unmatched ??= level.Driver;
        }
        return null;
    }

    /// <summary>The mkfs call for the plan's filesystem with its identity; null when the tool is not installed.</summary>
    public static (string Tool, List<string> Args) MkfsCommand(ScratchDiskPlan p, string device)
    {
        var args = new List<string>();
        string tool;
        switch (p.FilesystemType)
        {
            case "ext2" or "ext3" or "ext4":
                tool = "mkfs." + p.FilesystemType;
                args.AddRange(["-F", "-q"]);
                if (p.Label is not null) args.AddRange(["-L", p.Label]);
                if (p.Uuid is not null) args.AddRange(["-U", p.Uuid]);
                break;
            case "xfs":
                tool = "mkfs.xfs";
                args.AddRange(["-f", "-q"]);
                if (p.Label is not null) args.AddRange(["-L", p.Label]);
                if (p.Uuid is not null) args.AddRange(["-m", "uuid=" + p.Uuid]);
                break;
            case "btrfs":
                tool = "mkfs.btrfs";
                args.AddRange(["-f", "-q"]);
                if (p.Label is not null) args.AddRange(["-L", p.Label]);
                if (p.Uuid is not null) args.AddRange(["-U", p.Uuid]);
                break;
            default:   // vfat: the "UUID" is the volume serial, XXXX-XXXX
                tool = "mkfs.vfat";
                if (p.Label is not null) args.AddRange(["-n", p.Label]);
                if (p.Uuid is not null) args.AddRange(["-i", p.Uuid.Replace("-", "")]);
                break;
        }
        args.Add(device);
        return (tool, args);
    }

    /// <summary>QEMU arguments attaching <paramref name="image"/> on the plan's controller.</summary>
    public static List<string> QemuArguments(ScratchDiskPlan p, string image)
    {
        string drive = $"file={image},format=raw";
        return p.Controller switch
        {
            DiskController.Nvme => ["-drive", drive + ",if=none,id=scratch", "-device", "nvme,drive=scratch,serial=capture-selftest"],
            DiskController.VirtioScsi => ["-device", "virtio-scsi-pci,id=scsi", "-drive", drive + ",if=none,id=scratch", "-device", "scsi-hd,drive=scratch,bus=scsi.0"],
            DiskController.Ahci => ["-device", "ahci,id=ahci", "-drive", drive + ",if=none,id=scratch", "-device", "ide-hd,drive=scratch,bus=ahci.0"],
            _ => ["-drive", drive + ",if=virtio"],
        };
    }

    /// <summary>Writes the sparse image: the filesystem made in a file of its own, then placed behind a GPT when partitioned.</summary>
    public static void Create(ScratchDiskPlan p, string image, long size, Action<string> log)
    {
        string fsImage = p.Partitioned ? image + ".part" : image;
        long fsSize = p.Partitioned ? size - (2L << 20) : size;
        using (var f = new FileStream(fsImage, FileMode.Create, FileAccess.Write)) f.SetLength(fsSize);
        var (tool, args) = MkfsCommand(p, fsImage);
        string exe = CrashVm.FindOnPath(tool) ?? throw new IOException($"{tool} is not installed: it makes the scratch {p.FilesystemType} filesystem");
        var (rc, output) = CrashVm.RunTool(exe, args, 300);
        if (rc != 0) throw new IOException($"{tool} failed: {output.Trim()}");
        log($"selftest: scratch {p.FilesystemType} filesystem{(p.Label is null ? "" : " LABEL=" + p.Label)}{(p.Uuid is null ? "" : " UUID=" + p.Uuid)} ({size >> 20} MiB, sparse)");
        if (!p.Partitioned) return;

        using (var f = new FileStream(image, FileMode.Create, FileAccess.Write)) f.SetLength(size);
        string sfdisk = CrashVm.FindOnPath("sfdisk") ?? throw new IOException("sfdisk is not installed: it writes the scratch disk's partition table");
        var line = $"start=2048, size={fsSize / 512}, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4";
        if (p.PartUuid is not null) line += $", uuid={p.PartUuid}";
        if (p.PartLabel is not null) line += $", name=\"{p.PartLabel.Replace("\"", "")}\"";
        string script = Path.Combine(Path.GetDirectoryName(image)!, "sfdisk.script");
        File.WriteAllText(script, "label: gpt\n" + line + "\n");
        var (rc2, out2) = CrashVm.RunTool("/bin/sh", ["-c", $"exec \"$0\" --no-reread --no-tell-kernel -q \"$1\" < \"$2\"", sfdisk, image, script], 120);
        if (rc2 != 0) throw new IOException($"sfdisk failed: {out2.Trim()}");
        CopySparse(fsImage, 0, image, p.FilesystemOffset);
        File.Delete(fsImage);
        log($"selftest: GPT partition 1{(p.PartUuid is null ? "" : " PARTUUID=" + p.PartUuid)}{(p.PartLabel is null ? "" : " PARTLABEL=" + p.PartLabel)}");
    }

    /// <summary>The filesystem of a partitioned image as a file of its own (sparse), for tools that take no offset.</summary>
    public static void Extract(string image, long offset, string to)
    {
        using (var f = new FileStream(to, FileMode.Create, FileAccess.Write)) f.SetLength(new FileInfo(image).Length - offset);
        CopySparse(image, offset, to, 0);
    }

    /// <summary>Copies <paramref name="from"/> (from <paramref name="fromOffset"/> on) into <paramref name="to"/> at <paramref name="toOffset"/>, skipping zero blocks so both stay sparse.</summary>
    private static void CopySparse(string from, long fromOffset, string to, long toOffset)
    {
        using var src = File.OpenRead(from);
        src.Position = fromOffset;
        using var dst = new FileStream(to, FileMode.Open, FileAccess.Write);
        var buf = new byte[1 << 20];
        long pos = 0;
        int n;
        while ((n = src.ReadAtLeast(buf, buf.Length, throwOnEndOfStream: false)) > 0)
        {
            if (buf.AsSpan(0, n).ContainsAnyExcept((byte)0))
            {
                dst.Position = toOffset + pos;
                dst.Write(buf, 0, n);
            }
            pos += n;
        }
    }
}

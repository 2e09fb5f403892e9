using System.Text;

namespace CaptureAgent.Targets.Lvm;

/// <summary>
/// The names LVM gives its volumes: VG and LV names (letters, digits and "+_.-"), the
/// device-mapper name "VG-LV" with every '-' inside a name doubled (vg-a/lv-b is "vg--a-lv--b"),
/// and the dm uuid "LVM-" + VG id + LV id without their dashes.
/// </summary>
public static class LvmNames
{
    public const int MaxNameLength = 127;

    /// <summary>What lvm accepts as a VG or LV name (lib/misc/lvm-string.c): no leading '-', not "." or "..".</summary>
    public static bool IsValidName(string? name)
    {
        if (string.IsNullOrEmpty(name) || name.Length > MaxNameLength || name[0] == '-' || name is "." or "..") return false;
        foreach (char c in name)
            if (!(char.IsAsciiLetterOrDigit(c) || c is '+' or '_' or '.' or '-')) return false;
        return true;
    }

    /// <summary>"vg-a", "lv-b" → "vg--a-lv--b".</summary>
    public static string DmName(string vg, string lv) => vg.Replace("-", "--") + "-" + lv.Replace("-", "--");

    /// <summary>The dm uuid LVM gives an active LV: "LVM-" + the 32 characters of each id.</summary>
    public static string DmUuid(string vgId, string lvId) => "LVM-" + vgId.Replace("-", "") + lvId.Replace("-", "");

    /// <summary>"vg--a-lv--b" → ("vg-a", "lv-b"); null when the name is not one LVM would make.</summary>
    public static (string Vg, string Lv)? SplitDmName(string dmName)
    {
        var vg = new StringBuilder();
        for (int i = 0; i < dmName.Length; i++)
        {
            if (dmName[i] != '-') { vg.Append(dmName[i]); continue; }
            if (i + 1 < dmName.Length && dmName[i + 1] == '-') { vg.Append('-'); i++; continue; }
            string? lv = UndoubleDashes(dmName[(i + 1)..]);
            string v = vg.ToString();
            return lv is not null && IsValidName(v) && IsValidName(lv) ? (v, lv) : null;
        }
        return null;
    }

    /// <summary>The VG and LV a /dev path below /dev names: "mapper/vg-lv" or "vg/lv"; null for anything else.</summary>
    public static (string Vg, string Lv)? VolumeOfPath(string devRelative)
    {
        var parts = devRelative.Split('/');
        if (parts.Length != 2) return null;
        if (parts[0] == "mapper") return SplitDmName(parts[1]);
        // /dev/disk/..., /dev/md/... and the like are not volume groups.
        if (NotVolumeGroups.Contains(parts[0]) || !IsValidName(parts[0]) || !IsValidName(parts[1])) return null;
        return (parts[0], parts[1]);
    }

    /// <summary>The dm name a /dev path stands for: "mapper/NAME" is NAME, "vg/lv" is "vg-lv"; otherwise null.</summary>
    public static string? DmNameOfPath(string devRelative)
    {
        if (devRelative.StartsWith("mapper/", StringComparison.Ordinal) && devRelative.Length > 7 && devRelative.IndexOf('/', 7) < 0)
            return devRelative[7..];
        return VolumeOfPath(devRelative) is { } v ? DmName(v.Vg, v.Lv) : null;
    }

    private static readonly HashSet<string> NotVolumeGroups = new(StringComparer.Ordinal)
    {
        "disk", "mapper", "md", "block", "char", "bus", "input", "snd", "pts", "shm", "net", "cpu", "dri", "fd",
        "hugepages", "mqueue", "vfio", "usb", "serial", "v4l", "hidraw",
    };

    private static string? UndoubleDashes(string s)
    {
        var b = new StringBuilder(s.Length);
        for (int i = 0; i < s.Length; i++)
        {
            if (s[i] != '-') { b.Append(s[i]); continue; }
            if (i + 1 >= s.Length || s[i + 1] != '-') return null;   // a single '-' after the split: a layer suffix, not an LV
            b.Append('-');
            i++;
        }
        return b.ToString();
    }
}

namespace CaptureAgent.Tests.CaptureKernel.Targets;

/// <summary>
/// A scratch /sys and /dev laid out like the kernel's: devices under sys/devices, class/block and
/// driver links as relative symbolic links, partitions nested in their disk's directory, drivers
/// under sys/bus/BUS/drivers with a module link into sys/module.
/// </summary>
public sealed class FakeSysfs : IDisposable
{
    private readonly TempDir _dir = new();

    public string Sys { get; }
    public string Dev { get; }

    public FakeSysfs()
    {
        Sys = Directory.CreateDirectory(_dir.File("sys")).FullName;
        Dev = Directory.CreateDirectory(_dir.File("dev")).FullName;
        Directory.CreateDirectory(Path.Combine(Sys, "class", "block"));
    }

    public string Scratch(string name) => _dir.File(name);

    /// <summary>A hardware device directory, e.g. "pci0000:00/0000:00:02.0/virtio1".</summary>
    public string Device(string devicePath) => Directory.CreateDirectory(Path.Combine(Sys, "devices", devicePath)).FullName;

    /// <summary>A disk below a hardware device (or a virtual one when <paramref name="devicePath"/> is null).</summary>
    public string AddDisk(string? devicePath, string name, string majorMinor, long sectors, bool removable = false, bool readOnly = false, string? devName = null)
    {
        string parent = devicePath is null ? Path.Combine(Sys, "devices", "virtual") : Device(devicePath);
        string dir = Directory.CreateDirectory(Path.Combine(parent, "block", name)).FullName;
        WriteAttributes(dir, majorMinor, sectors, readOnly, devName ?? name.Replace('!', '/'), extraUevent: "DEVTYPE=disk");
        File.WriteAllText(Path.Combine(dir, "removable"), removable ? "1\n" : "0\n");
        Directory.CreateDirectory(Path.Combine(dir, "holders"));
        Directory.CreateDirectory(Path.Combine(dir, "slaves"));
        if (devicePath is not null) Link(Path.Combine(dir, "device"), parent);
        Link(Path.Combine(Sys, "class", "block", name), dir);
        return dir;
    }

    public string AddPartition(string disk, string name, int number, string majorMinor, long sectors, string? partName = null)
    {
        string diskDir = ResolveClass(disk);
        string dir = Directory.CreateDirectory(Path.Combine(diskDir, name)).FullName;
        WriteAttributes(dir, majorMinor, sectors, false, name, "DEVTYPE=partition\nPARTN=" + number + (partName is null ? "" : "\nPARTNAME=" + partName));
        File.WriteAllText(Path.Combine(dir, "partition"), number + "\n");
        Directory.CreateDirectory(Path.Combine(dir, "holders"));
        Link(Path.Combine(Sys, "class", "block", name), dir);
        return dir;
    }

    /// <summary>Binds <paramref name="driver"/> of <paramref name="bus"/> to a device; a null module means built in.</summary>
    public void BindDriver(string devicePath, string bus, string driver, string? module, bool moduleIsBuiltIn = false)
    {
        string drv = Directory.CreateDirectory(Path.Combine(Sys, "bus", bus, "drivers", driver)).FullName;
        string dev = Device(devicePath);
        if (!File.Exists(Path.Combine(dev, "driver")) && !Directory.Exists(Path.Combine(dev, "driver"))) Link(Path.Combine(dev, "driver"), drv);
        if (module is null) return;
        string mod = Directory.CreateDirectory(Path.Combine(Sys, "module", module)).FullName;
        if (!moduleIsBuiltIn) File.WriteAllText(Path.Combine(mod, "initstate"), "live\n");
        string link = Path.Combine(drv, "module");
        if (!File.Exists(link) && !Directory.Exists(link)) Link(link, mod);
    }

    /// <summary>Stacks <paramref name="holder"/> on <paramref name="member"/> (dm/md slaves and holders links).</summary>
    public void Stack(string holder, string member)
    {
        string h = ResolveClass(holder), m = ResolveClass(member);
        Directory.CreateDirectory(Path.Combine(h, "slaves"));
        Directory.CreateDirectory(Path.Combine(m, "holders"));
        Link(Path.Combine(h, "slaves", member), m);
        Link(Path.Combine(m, "holders", holder), h);
    }

    public void Attribute(string device, string relativePath, string value)
    {
        string path = Path.Combine(ResolveClass(device), relativePath);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, value + "\n");
    }

    /// <summary>The device node: a copy of an image, or bytes.</summary>
    public string Node(string devName, byte[] content)
    {
        string path = Path.Combine(Dev, devName);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllBytes(path, content);
        return path;
    }

    public string NodeFromImage(string devName, string image)
    {
        string path = Path.Combine(Dev, devName);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.Copy(image, path, overwrite: true);
        return path;
    }

    private string ResolveClass(string name) =>
        new DirectoryInfo(Path.Combine(Sys, "class", "block", name)).ResolveLinkTarget(returnFinalTarget: true)!.FullName;

    private static void WriteAttributes(string dir, string majorMinor, long sectors, bool readOnly, string devName, string extraUevent)
    {
        File.WriteAllText(Path.Combine(dir, "dev"), majorMinor + "\n");
        File.WriteAllText(Path.Combine(dir, "size"), sectors + "\n");
        File.WriteAllText(Path.Combine(dir, "ro"), readOnly ? "1\n" : "0\n");
        var mm = majorMinor.Split(':');
        File.WriteAllText(Path.Combine(dir, "uevent"), $"MAJOR={mm[0]}\nMINOR={mm[1]}\nDEVNAME={devName}\n{extraUevent}\n");
    }

    private static void Link(string link, string target) =>
        File.CreateSymbolicLink(link, Path.GetRelativePath(Path.GetDirectoryName(link)!, target));

    public void Dispose() => _dir.Dispose();
}

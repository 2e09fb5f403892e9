using System.Globalization;
using System.Text.Json;
using CaptureAgent.Targets;
using CaptureAgent.Targets.Lvm;
using CaptureAgent.Tests.Integration;
using Xunit;
using Xunit.Abstractions;

namespace CaptureAgent.Tests.CaptureKernel.Targets.Lvm;

/// <summary>
/// The reader against the real lvm2: PVs, VGs and LVs made by `lvm` on loop devices without
/// device-mapper (--driverloaded n: the LVs are never activated, the host needs no dm), then read
/// back by the scan and compared with lvm's own report. Needs root, loop devices and lvm2.
/// </summary>
[Trait("Category", TestCategory.Root)]
public sealed class RealLvmTests(ITestOutputHelper output)
{
    private const string Lvm = "/usr/sbin/lvm";

    /// <summary>Image files on loop devices, and lvm run on those devices only (other PVs on this host are not seen or touched).</summary>
    private sealed class Lab : IDisposable
    {
        private readonly TempDir _dir = new();
        private readonly List<string> _loops = [];
        public string Vg { get; } = "catest" + Environment.ProcessId.ToString(CultureInfo.InvariantCulture) + "x" + Random.Shared.Next(100000).ToString(CultureInfo.InvariantCulture);
        public IReadOnlyList<string> Loops => _loops;
        public string Dev => Directory.CreateDirectory(_dir.File("dev")).FullName;

        public Lab(int disks, int megabytes)
        {
            TestCategory.Require(TestCategory.Root);
            if (!File.Exists(Lvm)) throw new InvalidOperationException($"{Lvm} missing: apt-get install lvm2");
            for (int i = 0; i < disks; i++)
            {
                string image = Blkid.Image(_dir, $"pv{i}.img", megabytes);
                var r = Fixtures.Exec("/usr/sbin/losetup", ["--show", "-f", image]);
                if (r.ExitCode != 0) throw new InvalidOperationException($"losetup failed (root and loop devices are needed): {r.Stderr}");
                _loops.Add(r.Stdout.Trim());
            }
        }

        /// <summary>Two PVs in one VG (4 MiB extents) holding "lin" (24 MiB linear, on the first PV) and "str" (32 MiB striped over both), not activated.</summary>
        public static Lab WithLinearAndStripedLvs()
        {
            var lab = new Lab(2, 64);
            try
            {
                string a = lab.Loops[0], b = lab.Loops[1];
                lab.Run("pvcreate", "-qq", a, b);
                lab.Run("vgcreate", "-qq", "-s", "4m", lab.Vg, a, b);
                lab.Run("lvcreate", "-qq", "-an", "-Zn", "-Wn", "-y", "-n", "lin", "-L", "24m", lab.Vg, a);
                lab.Run("lvcreate", "-qq", "-an", "-Zn", "-Wn", "-y", "-i", "2", "-I", "64k", "-n", "str", "-L", "32m", lab.Vg);
                return lab;
            }
            catch
            {
                lab.Dispose();   // the loop devices and the VG go with it
                throw;
            }
        }

        public string Run(params string[] args)
        {
            string[] common = ["--driverloaded", "n", "--devices", string.Join(',', _loops), "--config", "backup { backup = 0 archive = 0 }"];
            var r = Fixtures.Exec("/usr/bin/env", ["LVM_SUPPRESS_FD_WARNINGS=1", Lvm, args[0], .. common, .. args[1..]]);
            if (r.ExitCode != 0) throw new InvalidOperationException($"lvm {string.Join(' ', args)} failed: {r.Stderr}");
            return r.Stdout;
        }

        /// <summary>lvm's JSON report rows ("lvs", "vgs", "pvs", "seg" for --segments).</summary>
        public List<Dictionary<string, string>> Report(string command, string section, params string[] args)
        {
            using var doc = JsonDocument.Parse(Run([command, "--reportformat", "json", "--units", "s", "--nosuffix", .. args]));
            return doc.RootElement.GetProperty("report")[0].GetProperty(section).EnumerateArray()
                .Select(row => row.EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString() ?? "")).ToList();
        }

        public List<SysfsBlockDevice> Devices() =>
            SysfsBlockDevices.List().Where(d => _loops.Contains(d.Node)).ToList();

        public void Dispose()
        {
            foreach (var l in _loops) Fixtures.Exec("/usr/sbin/losetup", ["-d", l]);
            _dir.Dispose();
        }
    }

    /// <summary>Records what would be created; nothing reaches the host's device-mapper (it may have none).</summary>
    private sealed class RecordingDm : IDeviceMapper
    {
        public List<(string Name, string Uuid, IReadOnlyList<DmTarget> Table)> Created { get; } = [];
        public DmDeviceInfo? Find(string name) => null;
        public DmDeviceInfo? FindByUuid(string uuid) => null;
        public IReadOnlyList<DmTarget> Table(string name) => throw new InvalidOperationException("no device was there");

        public DmDeviceInfo Create(string name, string uuid, IReadOnlyList<DmTarget> table)
        {
            Created.Add((name, uuid, table));
            return new DmDeviceInfo(name, uuid, 253, Created.Count - 1, Native.Libc.DmIoctl.ActivePresentFlag, table.Count);
        }
    }

    [Fact]
    public void ScanAndLvMapsAgreeWithLvmsReport()
    {
        using var lab = Lab.WithLinearAndStripedLvs();
        string a = lab.Loops[0], b = lab.Loops[1];
        lab.Run("lvcreate", "-qq", "-an", "-Zn", "-Wn", "-y", "-n", "span-lv", "-L", "8m", lab.Vg, a);
        lab.Run("lvextend", "-qq", "-L", "+12m", $"{lab.Vg}/span-lv", b);

        var vgRow = Assert.Single(lab.Report("vgs", "vg", "-o", "vg_name,vg_uuid,vg_seqno,vg_extent_size", lab.Vg));
        var pvRows = lab.Report("pvs", "pv", "-o", "pv_name,pv_uuid,pe_start");
        var segRows = lab.Report("lvs", "seg", "--segments", "-o", "lv_name,lv_uuid,segtype,seg_start,seg_size,stripes,stripe_size,seg_pe_ranges", lab.Vg);
        var devices = lab.Devices();
        using var readers = new DeviceReaders();
        var scan = LvmScan.Run(devices, readers.Open);
        foreach (var p in scan.Problems) output.WriteLine(p);
        Assert.Empty(scan.Problems);
        var found = Assert.Single(scan.Vgs);
        var vg = found.Metadata;
        Assert.Equal((vgRow["vg_name"], vgRow["vg_uuid"].Replace("-", ""), long.Parse(vgRow["vg_seqno"]), long.Parse(vgRow["vg_extent_size"])),
            (vg.Name, vg.Id, vg.Seqno, vg.ExtentSize));
        Assert.True(found.Complete);
        foreach (var pv in pvRows)
            Assert.Contains(found.Devices.Values, d => d.Device.Node == pv["pv_name"] && d.PvId == pv["pv_uuid"].Replace("-", ""));

        long peStart(string node) => long.Parse(pvRows.Single(p => p["pv_name"] == node)["pe_start"]);
        var byDevice = devices.ToDictionary(d => d.Node);
        foreach (var lvName in new[] { "lin", "str", "span-lv" })
        {
            var layout = LogicalVolumeLayout.Map(vg, vg.Lv(lvName)!, found.Devices);
            var rows = segRows.Where(r => r["lv_name"] == lvName).ToList();
            Assert.Equal(rows.Count, layout.Segments.Count);
            for (int i = 0; i < rows.Count; i++)
            {
                var (row, seg) = (rows[i], layout.Segments[i]);
                Assert.Equal(long.Parse(row["seg_start"]), seg.Start);
                Assert.Equal(long.Parse(row["seg_size"]), seg.Length);
                Assert.Equal(row["segtype"], seg.TargetType);
                Assert.Equal(long.Parse(row["stripe_size"]), seg.ChunkSectors);
                // "/dev/loop16:6-9 /dev/loop17:0-3": each stripe's device and first extent.
                var ranges = row["seg_pe_ranges"].Split(' ', StringSplitOptions.RemoveEmptyEntries);
                Assert.Equal(ranges.Length, seg.Stripes.Count);
                for (int s = 0; s < ranges.Length; s++)
                {
                    string node = ranges[s][..ranges[s].LastIndexOf(':')];
                    long firstPe = long.Parse(ranges[s][(ranges[s].LastIndexOf(':') + 1)..].Split('-')[0]);
                    Assert.Equal(byDevice[node].DeviceNumber, seg.Stripes[s].Pv.Device.DeviceNumber);
                    Assert.Equal(peStart(node) + firstPe * vg.ExtentSize, seg.Stripes[s].StartSector);
                }
            }
            output.WriteLine($"{lvName}: {string.Join(" | ", layout.Segments.Select(s => $"{s.Start} {s.Length} {s.TargetType} {s.Parameters}"))}");
        }
    }

    [Fact]
    public void FilesystemsInsideUnactivatedLvsAreFoundAndOnlyTheirLvIsCreated()
    {
        using var lab = Lab.WithLinearAndStripedLvs();
        var segRows = lab.Report("lvs", "seg", "--segments", "-o", "lv_name,seg_start,seg_size,stripes,stripe_size,seg_pe_ranges", lab.Vg);
        var pvRows = lab.Report("pvs", "pv", "-o", "pv_name,pe_start");
        long extent = long.Parse(Assert.Single(lab.Report("vgs", "vg", "-o", "vg_extent_size", lab.Vg))["vg_extent_size"]);

        // Filesystems made as files, written into the LVs where lvm's report says their extents are.
        using var dir = new TempDir();
        const string strUuid = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
        string linFs = Blkid.Image(dir, "lin.fs", 24), strFs = Blkid.Image(dir, "str.fs", 32);
        Blkid.Run("/usr/sbin/mkfs.ext4", ["-q", "-F", "-L", "lvm-linear", linFs]);
        Blkid.Run("/usr/sbin/mkfs.ext4", ["-q", "-F", "-U", strUuid, strFs]);
        Place(File.ReadAllBytes(linFs), segRows.Where(r => r["lv_name"] == "lin"), pvRows, extent);
        Place(File.ReadAllBytes(strFs), segRows.Where(r => r["lv_name"] == "str"), pvRows, extent);

        var devices = lab.Devices();
        var dm = new RecordingDm();
        var activator = new LvmActivator("/sys", lab.Dev, () => dm);
        var step = activator.Activate(TargetSpec.Parse("UUID=" + strUuid), devices);
        output.WriteLine(string.Join("\n", step.Activated.Concat(step.Problems)));
        var created = Assert.Single(dm.Created);
        Assert.Equal(LvmNames.DmName(lab.Vg, "str"), created.Name);
        var (_, stripes, chunk, places) = StripedRow(segRows.Single(r => r["lv_name"] == "str"));
        Assert.Equal(2, stripes);
        string expected = $"0 {32L << 11} striped 2 {chunk} " + string.Join(' ', places.Select(p =>
            $"{devices.Single(d => d.Node == p.Node).DeviceNumber} {long.Parse(pvRows.Single(r => r["pv_name"] == p.Node)["pe_start"]) + p.Pe * extent}"));
        Assert.Equal(expected, Assert.Single(created.Table).ToString());

        step = activator.Activate(TargetSpec.Parse("LABEL=lvm-linear"), devices);
        Assert.Equal(2, dm.Created.Count);
        Assert.Equal(LvmNames.DmName(lab.Vg, "lin"), dm.Created[1].Name);
        Assert.Contains(step.Activated, s => s.StartsWith($"{lab.Vg}/lin activated as /dev/mapper/", StringComparison.Ordinal));
        Assert.Equal(Path.Combine("..", "mapper", LvmNames.DmName(lab.Vg, "lin")), new FileInfo(Path.Combine(lab.Dev, lab.Vg, "lin")).LinkTarget);
    }

    private static (long Start, int Stripes, long Chunk, List<(string Node, long Pe)> Places) StripedRow(Dictionary<string, string> row)
    {
        var places = row["seg_pe_ranges"].Split(' ', StringSplitOptions.RemoveEmptyEntries)
            .Select(r => (r[..r.LastIndexOf(':')], long.Parse(r[(r.LastIndexOf(':') + 1)..].Split('-')[0]))).ToList();
        return (long.Parse(row["seg_start"]), int.Parse(row["stripes"]), long.Parse(row["stripe_size"]), places);
    }

    /// <summary>Writes an LV's content onto the loop devices: linear runs, or stripe chunks in turn.</summary>
    private static void Place(byte[] content, IEnumerable<Dictionary<string, string>> rows, List<Dictionary<string, string>> pvRows, long extent)
    {
        foreach (var row in rows)
        {
            var (start, stripes, chunk, places) = StripedRow(row);
            long bytes = long.Parse(row["seg_size"]) * 512, chunkBytes = stripes == 1 ? bytes : chunk * 512;
            for (long k = 0; k * chunkBytes < bytes; k++)
            {
                var (node, pe) = places[(int)(k % stripes)];
                long to = (long.Parse(pvRows.Single(p => p["pv_name"] == node)["pe_start"]) + pe * extent) * 512 + k / stripes * chunkBytes;
                using var f = new FileStream(node, FileMode.Open, FileAccess.Write);
                f.Position = to;
                f.Write(content, (int)(start * 512 + k * chunkBytes), (int)chunkBytes);
            }
        }
    }

    [Fact]
    public void MetadataThatHasWrappedAroundItsAreaIsTheOneLvmReads()
    {
        using var lab = new Lab(1, 64);
        string a = lab.Loops[0];
        // A 60 KiB metadata area: a few dozen changes take the circular buffer past its end.
        lab.Run("pvcreate", "-qq", "--dataalignment", "64k", "--metadatasize", "24k", a);
        lab.Run("vgcreate", "-qq", "-s", "1m", lab.Vg, a);
        bool wrapped = false;
        int changes = 0;
        for (; changes < 120 && !wrapped; changes++)
        {
            if (changes % 3 == 2) lab.Run("lvremove", "-qq", "-y", $"{lab.Vg}/lv{changes - 1}");
            else lab.Run("lvcreate", "-qq", "-an", "-Zn", "-Wn", "-y", "-n", $"lv{changes}", "-L", "1m", lab.Vg);
            wrapped = CurrentCopy(lab)!.Wrapped;
        }
        output.WriteLine($"the metadata wrapped after {changes} changes");
        Assert.True(wrapped, "lvm's metadata never wrapped around the 60 KiB area in 120 changes");
        var vgRow = Assert.Single(lab.Report("vgs", "vg", "-o", "vg_seqno", lab.Vg));
        var lvNames = lab.Report("lvs", "lv", "-o", "lv_name", lab.Vg).Select(r => r["lv_name"]).Order().ToList();
        using var readers = new DeviceReaders();
        var vg = Assert.Single(LvmScan.Run(lab.Devices(), readers.Open).Vgs).Metadata;
        Assert.Equal(long.Parse(vgRow["vg_seqno"]), vg.Seqno);
        Assert.Equal(lvNames, vg.Lvs.Select(l => l.Name).Order().ToList());
    }

    private static MetadataCopy? CurrentCopy(Lab lab)
    {
        var device = Assert.Single(lab.Devices());
        using var readers = new DeviceReaders();
        var source = readers.Open(device);
        var label = PhysicalVolumeLabel.Parse(source.Read(0, 2048), out _)!;
        return MetadataArea.Read(source, Assert.Single(label.MetadataAreas), out _);
    }

    [Fact]
    public void ThinVolumesRestoredByLvmAreRefusedNamingTheirType()
    {
        using var lab = new Lab(1, 64);
        string a = lab.Loops[0];
        lab.Run("pvcreate", "-qq", a);
        lab.Run("vgcreate", "-qq", "-s", "4m", lab.Vg, a);
        lab.Run("lvcreate", "-qq", "-an", "-Zn", "-Wn", "-y", "-n", "plain", "-L", "8m", lab.Vg);
        // lvm cannot create a thin pool without device-mapper; vgcfgrestore writes one from text.
        using var dir = new TempDir();
        string backup = dir.File("vg.txt");
        lab.Run("vgcfgbackup", "-f", backup, lab.Vg);
        File.WriteAllText(backup, AddThinVolumes(File.ReadAllText(backup)));
        lab.Run("vgcfgrestore", "--force", "-f", backup, lab.Vg);
        var types = lab.Report("lvs", "lv", "-a", "-o", "lv_name,segtype", lab.Vg).ToDictionary(r => r["lv_name"].Trim('[', ']'), r => r["segtype"]);
        Assert.Equal("thin", types["thin1"]);

        var dm = new RecordingDm();
        var step = new LvmActivator("/sys", lab.Dev, () => dm).Activate(TargetSpec.Parse($"/dev/{lab.Vg}/thin1"), lab.Devices());
        Assert.Equal($"{lab.Vg}/thin1 is a thin volume: the capture kernel activates only linear and striped LVs", step.Refusal);
        step = new LvmActivator("/sys", lab.Dev, () => dm).Activate(TargetSpec.Parse($"/dev/{lab.Vg}/pool"), lab.Devices());
        Assert.Equal($"{lab.Vg}/pool is a thin-pool volume: the capture kernel activates only linear and striped LVs", step.Refusal);
        Assert.Empty(dm.Created);
    }

    /// <summary>A thin pool (data and metadata sub-LVs on extents after "plain") and a thin LV in it, in lvm's text format.</summary>
    private static string AddThinVolumes(string text)
    {
        const string lvs = """
                    pool {
                        id = "Pool00-0000-0000-0000-0000-0000-000000"
                        status = ["READ", "WRITE", "VISIBLE"]
                        flags = []
                        segment_count = 1
                        segment1 {
                            start_extent = 0
                            extent_count = 2
                            type = "thin-pool"
                            metadata = "pool_tmeta"
                            pool = "pool_tdata"
                            transaction_id = 1
                            chunk_size = 128
                            discards = "passdown"
                            zero_new_blocks = 1
                        }
                    }
                    thin1 {
                        id = "Thin01-0000-0000-0000-0000-0000-000000"
                        status = ["READ", "WRITE", "VISIBLE"]
                        flags = []
                        segment_count = 1
                        segment1 {
                            start_extent = 0
                            extent_count = 4
                            type = "thin"
                            thin_pool = "pool"
                            transaction_id = 0
                            device_id = 1
                        }
                    }
                    pool_tmeta {
                        id = "Tmeta0-0000-0000-0000-0000-0000-000000"
                        status = ["READ", "WRITE"]
                        flags = []
                        segment_count = 1
                        segment1 {
                            start_extent = 0
                            extent_count = 1
                            type = "striped"
                            stripe_count = 1
                            stripes = ["pv0", 2]
                        }
                    }
                    pool_tdata {
                        id = "Tdata0-0000-0000-0000-0000-0000-000000"
                        status = ["READ", "WRITE"]
                        flags = []
                        segment_count = 1
                        segment1 {
                            start_extent = 0
                            extent_count = 2
                            type = "striped"
                            stripe_count = 1
                            stripes = ["pv0", 3]
                        }
                    }
            """;
        int at = text.IndexOf("logical_volumes {", StringComparison.Ordinal);
        if (at < 0) throw new InvalidOperationException("vgcfgbackup wrote no logical_volumes section");
        at = text.IndexOf('\n', at) + 1;
        return text[..at] + lvs + "\n" + text[at..];
    }
}

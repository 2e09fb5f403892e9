using CaptureAgent.Capture;
using CaptureAgent.Report;
using CaptureAgent.Tests.Integration;
using Xunit;

namespace CaptureAgent.Tests.Host.Report;

/// <summary>
/// The fixtures' real sysrq crashes (Debian 6.1 and 6.12 kernels under QEMU), their logs read
/// from the vmcores, and dump trees made by the tools that make them: makedumpfile and
/// vmcore-dmesg as RHEL's and Debian's kdump scripts call them, and the agent's own capture.
/// </summary>
[Trait("Category", "Fixture")]
public class RealCrashReportTests
{
    private static PanicReport Log(string fixture) =>
        PanicAnalysis.Analyze(DumpAnalyzer.ReadVmcoreLog(Fixtures.Vmcore(fixture)))!;

    [Theory]
    [InlineData("6.1-1024")]
    [InlineData("6.1-2048")]
    [InlineData("6.12-1024")]
    public void SysrqCrash(string fixture)
    {
        string release = Fixtures.Release(fixture);
        var r = Log(fixture);
        Assert.Equal(CrashKind.Panic, r.Kind);
        Assert.Equal("Kernel panic - not syncing: sysrq triggered crash", r.PanicLine);
        Assert.Equal("sysrq triggered crash", r.PanicMessage);
        Assert.Equal(release, r.KernelRelease);
        Assert.Null(r.Rip);   // the only RIP is the user-mode write(2) caller
        Assert.Contains(r.CallTrace, f => f.Function == "sysrq_handle_crash");
        Assert.DoesNotContain(r.CallTrace, f => f.Function is "_printk" or "handle_mm_fault");   // "?" frames
        // Newer stable kernels (6.12.118+) print vpanic under panic.
        Assert.Equal("sysrq_handle_crash", r.CallTrace.SkipWhile(f => f.Function is "dump_stack_lvl" or "panic" or "vpanic").First().Function);
        Assert.Equal("entry_SYSCALL_64_after_hwframe", r.CallTrace[^1].Function);
        Assert.Equal("", r.Tainted);
        Assert.StartsWith("QEMU Standard PC (i440FX + PIIX, 1996), BIOS ", r.Hardware);   // the BIOS version is the host QEMU's
        Assert.Equal(("init", 1), (r.Comm, r.Pid!.Value));
    }

    [Fact]
    public void TheSameSysrqCrashHasOneSignatureAcrossMachinesAndKernels()
    {
        var a = CrashSignature.From(Log("6.1-1024"));
        var b = CrashSignature.From(Log("6.1-2048"));
        var c = CrashSignature.From(Log("6.12-1024"));
        // 1 GiB vs 2 GiB guests, the crash on CPU 0 vs CPU 1, different "?" frames: one signature.
        Assert.Equal(a.Id, b.Id);
        Assert.Equal("panic | sysrq triggered crash | - | sysrq_handle_crash < __handle_sysrq < write_sysrq_trigger < proc_reg_write < vfs_write", a.Describe());
        // 6.12 lost dump_stack_lvl and __handle_sysrq.cold: still the same crash.
        Assert.Equal(a.Id, c.Id);
        Assert.NotEqual(a.Id, CrashSignature.From(PanicAnalysis.Analyze(KernelLogSamples.NullDereference61)!).Id);
    }

    [Fact]
    public void RhelAndDebianTreesMadeByTheirTools()
    {
        using var t = new TempDir();
        // RHEL kdump: core_collector makedumpfile -l -d 31, then vmcore-dmesg, in <ip>-<date>/.
        string rhel = Directory.CreateDirectory(t.File("var/crash/192.168.122.15-2026-11-23-03:45:19")).FullName;
        Fixtures.Sh($"/usr/bin/makedumpfile -l -d 31 --message-level 0 '{Fixtures.Vmcore("6.1-1024")}' '{rhel}/vmcore-incomplete' && mv '{rhel}/vmcore-incomplete' '{rhel}/vmcore'");
        Fixtures.Sh($"/usr/sbin/vmcore-dmesg '{Fixtures.Vmcore("6.1-1024")}' > '{rhel}/vmcore-dmesg.txt'");
        // Debian kdump-tools: makedumpfile -c -d 31 to dump.<stamp>, --dump-dmesg to dmesg.<stamp>, in <stamp>/.
        string debian = Directory.CreateDirectory(t.File("var/crash/202611230346")).FullName;
        Fixtures.Sh($"/usr/bin/makedumpfile -c -d 31 --message-level 0 '{Fixtures.Vmcore("6.1-2048")}' '{debian}/dump.202611230346'");
        Fixtures.Sh($"/usr/bin/makedumpfile --dump-dmesg --message-level 0 '{Fixtures.Vmcore("6.1-2048")}' '{debian}/dmesg.202611230346'");
        // RHEL's ssh target: the flattened stream piped to the collector as vmcore.flat.
        string flat = Directory.CreateDirectory(t.File("var/crash/192.168.122.16-2026-11-23-03:47:00")).FullName;
        Fixtures.Sh($"/usr/bin/makedumpfile -F -l -d 31 --message-level 0 '{Fixtures.Vmcore("6.1-1024")}' > '{flat}/vmcore.flat'");
        File.WriteAllText(t.File("var/crash/kexec_cmd"), "kexec -p --command-line=\"...\"\n");   // kdump-tools' files beside the dumps

        var all = DumpCatalog.Scan(t.File("var/crash"));
        Assert.Equal(3, all.Count);
        var f = all.Single(e => e.Directory == flat);
        Assert.Equal(("kdump", "vmcore.flat", "flattened", DumpStatus.Unverified), (f.Layout, f.DumpFile, f.DumpFormat, f.Status));
        Assert.Equal((Fixtures.Release("6.1-1024"), "vmcoreinfo"), (f.KernelRelease, f.CrashTimeSource));
        Assert.Null(f.Panic);   // no log beside it, and a flattened stream is not read for one
        all.Remove(f);
        var r = all.Single(e => e.Directory == rhel);
        var d = all.Single(e => e.Directory == debian);
        Assert.Equal(("rhel", "vmcore", "kdump-compressed", "vmcore-dmesg.txt"), (r.Layout, r.DumpFile, r.DumpFormat, r.DmesgFile));
        Assert.Equal(("debian", "dump.202611230346", "kdump-compressed", "dmesg.202611230346"), (d.Layout, d.DumpFile, d.DumpFormat, d.DmesgFile));
        foreach (var e in all)
        {
            Assert.Equal(DumpStatus.Unverified, e.Status);
            Assert.Equal(Fixtures.Release("6.1-2048"), e.KernelRelease);   // makedumpfile's utsname (both 6.1 fixtures share the kernel)
            Assert.Equal("vmcoreinfo", e.CrashTimeSource);
            Assert.Equal("sysrq triggered crash", e.Panic!.PanicMessage);
            Assert.Contains(e.Panic.CallTrace, f => f.Function == "sysrq_handle_crash");
            Assert.Empty(e.Problems);
        }
        Assert.Equal("192.168.122.15", r.Host);   // the nodename is "(none)": the directory names the machine
        Assert.Null(d.Host);
        Assert.Equal(r.Signature!.Id, d.Signature!.Id);
        // The crash times come from the kernels' CRASHTIME, which differ between the two fixtures.
        Assert.True(r.CrashTime!.Value.Year >= 2025 && d.CrashTime!.Value.Year >= 2025);
    }

    [Fact]
    public void TheAgentsOwnCaptureAndAVmcoreWithoutItsLog()
    {
        using var t = new TempDir();
        string target = Directory.CreateDirectory(t.File("target")).FullName;
        var result = CaptureJob.Run(Fixtures.Vmcore("6.12-1024"), target, new CaptureSettings { PathTemplate = "/var/crash", MinFreeBytes = 0 });
        Assert.NotNull(result.DmesgPath);

        var e = Assert.Single(DumpCatalog.Scan(Path.Combine(target, "var", "crash")));
        Assert.Equal(result.Directory, e.Directory);
        Assert.Equal(("capture-agent", DumpStatus.Complete), (e.Layout, e.Status));
        Assert.Equal(Fixtures.Release("6.12-1024"), e.KernelRelease);
        Assert.Equal("manifest", e.CrashTimeSource);
        Assert.Equal("dmesg.txt", e.LogSource);
        Assert.Equal("sysrq triggered crash", e.Panic!.PanicMessage);

        // Only the vmcore kept (the log was lost): the panic is read from the dump's printk buffer.
        string bare = Directory.CreateDirectory(t.File("bare/host-2026-11-23-03:49:00")).FullName;
        File.Copy(result.VmcorePath!, Path.Combine(bare, "vmcore"));
        var b = Assert.Single(DumpCatalog.Scan(t.File("bare")));
        Assert.Equal(DumpStatus.Unverified, b.Status);
        Assert.Equal("vmcore", b.LogSource);
        Assert.Equal("Kernel panic - not syncing: sysrq triggered crash", b.Panic!.PanicLine);
        Assert.Equal(e.Signature!.Id, b.Signature!.Id);
        Assert.Equal(e.CrashTime, b.CrashTime);   // the manifest's time is the kernel's CRASHTIME
        Assert.Equal("vmcoreinfo", b.CrashTimeSource);
        Assert.Equal(e.Panic.CallTrace, b.Panic.CallTrace);

        // Cut short: what was written before the cut still tells the crash; a stub does not.
        long size = new FileInfo(result.VmcorePath!).Length;
        string cut = Directory.CreateDirectory(t.File("cut/host-2026-11-23-03:49:00")).FullName;
        string stub = Directory.CreateDirectory(t.File("cut/host-2026-11-23-03:50:00")).FullName;
        CopyPrefix(result.VmcorePath!, Path.Combine(cut, "vmcore-incomplete"), size - 4096);
        CopyPrefix(result.VmcorePath!, Path.Combine(stub, "vmcore-incomplete"), 1 << 20);
        var cuts = DumpCatalog.Scan(t.File("cut"));
        var c = cuts.Single(x => x.Directory == cut);
        var s = cuts.Single(x => x.Directory == stub);
        Assert.All(cuts, x => Assert.Equal(DumpStatus.Incomplete, x.Status));
        Assert.Equal(e.Signature.Id, c.Signature!.Id);
        Assert.Null(s.Signature);
        Assert.StartsWith("kernel log not readable from vmcore-incomplete: ", Assert.Single(s.Problems));
    }

    private static void CopyPrefix(string from, string to, long bytes)
    {
        using var input = File.OpenRead(from);
        using var output = File.Create(to);
        var buf = new byte[1 << 20];
        while (bytes > 0)
        {
            int n = input.Read(buf, 0, (int)Math.Min(buf.Length, bytes));
            if (n == 0) break;
            output.Write(buf, 0, n);
            bytes -= n;
        }
    }
}

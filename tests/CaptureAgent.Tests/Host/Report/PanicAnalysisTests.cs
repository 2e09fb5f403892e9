using CaptureAgent.Report;
using Xunit;

namespace CaptureAgent.Tests.Host.Report;

public class PanicAnalysisTests
{
    private static string[] Frames(PanicReport r) => r.CallTrace.Select(f => f.ToString()).ToArray();

    [Fact]
    public void NullDereferenceOopsWithoutAPanicLine()
    {
        var r = PanicAnalysis.Analyze(KernelLogSamples.NullDereference61)!;
        Assert.Equal(CrashKind.Oops, r.Kind);
        Assert.Null(r.PanicLine);
        Assert.Equal("BUG: kernel NULL pointer dereference, address: 0000000000000010", r.Headline);
        Assert.Equal("nullmod_read_config+0x1d/0x60 [nullmod]", r.Rip);
        Assert.Equal("nullmod_read_config", r.RipFunction);
        // "? 0xffffffffc0b42000" and "? syscall_exit_to_user_mode" are not frames.
        Assert.Equal(["nullmod_probe+0x45/0x90 [nullmod]", "nullmod_init+0x2e/0x1000 [nullmod]", "do_one_initcall+0x56/0x220",
            "do_init_module+0x4a/0x1f0", "__do_sys_finit_module+0xac/0x120", "do_syscall_64+0x58/0xc0",
            "entry_SYSCALL_64_after_hwframe+0x64/0xce"], Frames(r));
        Assert.Equal("GOE", r.Tainted);
        Assert.Equal("Dell Inc. PowerEdge R640/0H28RR, BIOS 2.19.1 06/04/2023", r.Hardware);
        Assert.Equal("6.1.0-18-amd64", r.KernelRelease);
        Assert.Equal((2, 2231, "insmod"), (r.Cpu!.Value, r.Pid!.Value, r.Comm));
        Assert.Equal(312.120013, r.Uptime!.Value, 6);
    }

    [Fact]
    public void Kernel612OopsDropsTheExceptionFramesAndBuildIds()
    {
        var r = PanicAnalysis.Analyze(KernelLogSamples.NullDereference612)!;
        Assert.Equal(CrashKind.Oops, r.Kind);
        Assert.Equal("nullmod_read_config+0x21/0x70 [nullmod]", r.Rip);
        Assert.Equal("nullmod_probe+0x49/0xa0 [nullmod]", Frames(r)[0]);
        Assert.Equal("nullmod_init+0x2e/0xff0 [nullmod]", Frames(r)[1]);
        Assert.DoesNotContain(r.CallTrace, f => f.Function.Contains("die") || f.Function.StartsWith("asm_exc"));
        Assert.Equal((11, 877, "modprobe"), (r.Cpu!.Value, r.Pid!.Value, r.Comm));
        Assert.Equal("6.12.117+deb12-amd64", r.KernelRelease);
        Assert.Equal("HPE ProLiant DL360 Gen10/ProLiant DL360 Gen10, BIOS U32 10/26/2023", r.Hardware);
    }

    [Fact]
    public void BugOnFollowedByFatalException()
    {
        var r = PanicAnalysis.Analyze(KernelLogSamples.BugOn)!;
        Assert.Equal(CrashKind.Bug, r.Kind);
        Assert.Equal("Kernel panic - not syncing: Fatal exception", r.PanicLine);
        Assert.Equal("Fatal exception", r.PanicMessage);
        Assert.Equal("kernel BUG at fs/ext4/inode.c:3698!", r.Headline);
        Assert.Equal("ext4_writepages+0x10a7/0x1110 [ext4]", r.Rip);
        Assert.Equal(["do_writepages+0xd1/0x1b0", "__writeback_single_inode+0x3d/0x360", "writeback_sb_inodes+0x1ed/0x4a0",
            "__writeback_inodes_wb+0x4c/0xf0", "wb_writeback+0x298/0x310", "wb_workfn+0x35b/0x4f0", "process_one_work+0x1c7/0x380",
            "worker_thread+0x4d/0x380", "kthread+0xda/0x100", "ret_from_fork+0x22/0x30"], Frames(r));
        Assert.Equal("", r.Tainted);   // "Not tainted"
        Assert.Equal("kworker/u64:3", r.Comm);
        Assert.Equal("6.1.0-21-amd64", r.KernelRelease);
    }

    [Fact]
    public void SoftLockupPanicFromInterruptContextIgnoresAnotherCpusLine()
    {
        var r = PanicAnalysis.Analyze(KernelLogSamples.SoftLockup)!;
        Assert.Equal(CrashKind.SoftLockup, r.Kind);
        Assert.Equal("Kernel panic - not syncing: softlockup: hung tasks", r.PanicLine);
        Assert.Equal("watchdog: BUG: soft lockup - CPU#3 stuck for 26s! [spinner:4107]", r.Headline);
        Assert.Equal("spinmod_busy_loop+0x15/0x30 [spinmod]", r.Rip);
        // The [T88] virtio_net line inside the [C3] trace neither ends it nor becomes a frame.
        Assert.Equal(["spinmod_write+0x3c/0x70 [spinmod]", "full_proxy_write+0x57/0x80", "vfs_write+0xf8/0x450",
            "ksys_write+0x6f/0xf0", "do_syscall_64+0x82/0x190", "entry_SYSCALL_64_after_hwframe+0x76/0x7e"], Frames(r));
        Assert.Equal("GOEL", r.Tainted);   // from the panicking CPU's line, after the lockup tainted the kernel
        Assert.Equal("QEMU Standard PC (Q35 + ICH9, 2009), BIOS 1.16.3-debian-1.16.3-2 04/01/2014", r.Hardware);
        Assert.Equal((3, 4107, "spinner"), (r.Cpu!.Value, r.Pid!.Value, r.Comm));
    }

    [Fact]
    public void OutOfMemoryPanicShowsTheAllocation()
    {
        var r = PanicAnalysis.Analyze(KernelLogSamples.OutOfMemory)!;
        Assert.Equal(CrashKind.OutOfMemory, r.Kind);
        Assert.Equal("Out of memory: system-wide panic_on_oom is enabled", r.PanicMessage);
        Assert.StartsWith("stress-ng-vm invoked oom-killer: gfp_mask=0x140dca", r.Headline);
        Assert.Null(r.Rip);   // only a user-mode RIP in the report
        Assert.Equal("dump_stack_lvl+0x44/0x5c", Frames(r)[0]);
        Assert.Equal("__alloc_pages_slowpath.constprop.0+0xc6c/0xde0", Frames(r)[3]);
        Assert.Equal(12, r.CallTrace.Count);
        Assert.Equal("stress-ng-vm", r.Comm);
    }

    [Fact]
    public void HungTaskPanicNamesTheFirstBlockedTask()
    {
        var r = PanicAnalysis.Analyze(KernelLogSamples.HungTask)!;
        Assert.Equal(CrashKind.HungTask, r.Kind);
        Assert.Equal("hung_task: blocked tasks", r.PanicMessage);
        Assert.Equal("INFO: task jbd2/dm-0-8:611 blocked for more than 120 seconds.", r.Headline);
        Assert.Equal(("jbd2/dm-0-8", 611), (r.Comm, r.Pid!.Value));
        Assert.Null(r.Cpu);
        Assert.Equal(["__schedule+0x34d/0x9e0", "schedule+0x5a/0xd0", "io_schedule+0x42/0x70", "bit_wait_io+0xd/0x60",
            "__wait_on_bit+0x4b/0x140", "out_of_line_wait_on_bit+0x91/0xb0", "jbd2_journal_commit_transaction+0x1590/0x1a90 [jbd2]",
            "kjournald2+0xab/0x270 [jbd2]", "kthread+0xda/0x100", "ret_from_fork+0x22/0x30"], Frames(r));
        Assert.StartsWith("VMware, Inc. VMware7,1", r.Hardware);
        Assert.Equal("", r.Tainted);
    }

    [Fact]
    public void WarnWithPanicOnWarnPicksTheWarningThatPanicked()
    {
        var r = PanicAnalysis.Analyze(KernelLogSamples.WarnPanicOnWarn)!;
        Assert.Equal(CrashKind.Warning, r.Kind);
        Assert.Equal("kernel: panic_on_warn set ...", r.PanicMessage);
        Assert.Equal("WARNING: CPU: 0 PID: 1873 at lib/refcount.c:28 refcount_warn_saturate+0xba/0x110", r.Headline);
        Assert.Equal("refcount_warn_saturate+0xba/0x110", r.Rip);
        Assert.Equal(["foo_conn_put+0x4e/0x60 [foomod]", "foo_release_work+0x2b/0x80 [foomod]", "process_one_work+0x177/0x330",
            "worker_thread+0x252/0x390", "kthread+0xd2/0x100", "ret_from_fork+0x34/0x50", "ret_from_fork_asm+0x1a/0x30"], Frames(r));
        Assert.Equal("GWO", r.Tainted);
        Assert.Equal("kworker/0:3", r.Comm);
        Assert.Equal(77.901268, r.Uptime!.Value, 6);
    }

    [Fact]
    public void ALogWithoutACrashHasNoReport()
    {
        Assert.Null(PanicAnalysis.Analyze("[    0.000000] Linux version 6.1.0-18-amd64 (x) #1\n[    1.000000] systemd[1]: started\n"));
        Assert.Null(PanicAnalysis.Analyze(""));
    }

    [Fact]
    public void PlainLogsWithoutTimestampsOrCallersWork()
    {
        string plain = string.Join('\n', KernelLogSamples.BugOn.Split('\n').Select(l => PanicAnalysis.Strip(l).Text));
        var r = PanicAnalysis.Analyze(plain)!;
        Assert.Equal("kernel BUG at fs/ext4/inode.c:3698!", r.Headline);
        Assert.Equal("ext4_writepages+0x10a7/0x1110 [ext4]", r.Rip);
        Assert.Equal(10, r.CallTrace.Count);
        Assert.Null(r.Uptime);
    }

    [Fact]
    public void RcuStallAndHardLockupPanics()
    {
        var rcu = PanicAnalysis.Analyze(KernelLogSamples.RcuStall)!;
        Assert.Equal(CrashKind.RcuStall, rcu.Kind);
        Assert.Equal("RCU Stall", rcu.PanicMessage);
        Assert.Equal("rcu: INFO: rcu_preempt self-detected stall on CPU", rcu.Headline);
        Assert.Equal("loopmod_walk_list+0x1c/0x40 [loopmod]", rcu.Rip);
        Assert.Equal(["loopmod_ioctl+0x5a/0x90 [loopmod]", "__x64_sys_ioctl+0x8d/0xd0", "do_syscall_64+0x58/0xc0",
            "entry_SYSCALL_64_after_hwframe+0x64/0xce"], Frames(rcu));
        Assert.Equal("GO", rcu.Tainted);
        Assert.Equal("6.1.0-21-amd64", rcu.KernelRelease);   // no "Linux version" line in this tail: from the CPU: line
        var rs = CrashSignature.From(rcu);
        Assert.Equal("rcu-stall | rcu: INFO: rcu_preempt self-detected stall on CPU | loopmod_walk_list | loopmod_ioctl", rs.Describe());

        var hard = PanicAnalysis.Analyze(KernelLogSamples.HardLockup)!;
        Assert.Equal(CrashKind.HardLockup, hard.Kind);
        Assert.Equal("NMI watchdog: Watchdog detected hard LOCKUP on cpu 2", hard.Headline);
        Assert.Equal("native_queued_spin_lock_slowpath+0x5b/0x2c0", hard.Rip);
        // The register lines of the interrupted idle task inside the trace do not end it.
        Assert.Equal(14, hard.CallTrace.Count);
        Assert.Equal("secondary_startup_64_no_verify+0xe5/0xeb", Frames(hard)[^1]);
        var hs = CrashSignature.From(hard);
        Assert.Equal("NMI watchdog: Watchdog detected hard LOCKUP on cpu N", hs.Reason);
        Assert.Equal(["_raw_spin_lock_irqsave", "foo_timer_fn", "call_timer_fn", "__run_timers", "run_timer_softirq"], hs.Frames);
        Assert.Equal(("swapper/2", 0, 2), (hard.Comm, hard.Pid!.Value, hard.Cpu!.Value));
    }
}

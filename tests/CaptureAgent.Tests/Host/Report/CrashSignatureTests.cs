using CaptureAgent.Report;
using Xunit;

namespace CaptureAgent.Tests.Host.Report;

public class CrashSignatureTests
{
    private static CrashSignature Sig(string log) => CrashSignature.From(PanicAnalysis.Analyze(log)!);

    [Fact]
    public void SameBugOnAnotherMachineAndKernelBuildHasTheSameSignature()
    {
        var a = Sig(KernelLogSamples.NullDereference61);
        var b = Sig(KernelLogSamples.NullDereference612);
        Assert.Matches("^sig:[0-9a-f]{16}$", a.Id);
        Assert.Equal("BUG: kernel NULL pointer dereference, address: X", a.Reason);
        Assert.Equal("nullmod_read_config", a.RipFunction);
        // 6.1 calls __do_sys_finit_module, 6.12 goes through idempotent_init_module: only the top 5 count.
        Assert.Equal(["nullmod_probe", "nullmod_init", "do_one_initcall", "do_init_module", "__do_sys_finit_module"], a.Frames);
        Assert.Equal(["nullmod_probe", "nullmod_init", "do_one_initcall", "do_init_module", "init_module_from_file"], b.Frames);
        Assert.NotEqual(a.Id, b.Id);

        // The same 6.1 log from another host: other pid, CPU, comm, times, addresses and offsets.
        string other = KernelLogSamples.NullDereference61
            .Replace("T2231", "T9041").Replace("PID: 2231 Comm: insmod", "PID: 9041 Comm: modprobe").Replace("CPU: 2 ", "CPU: 37 ")
            .Replace("[  312.", "[ 7312.").Replace("nullmod_probe+0x45/0x90", "nullmod_probe+0x47/0x98")
            .Replace("ffffb4c1c0e7fc68", "ffffa00c01337c68").Replace("Dell Inc. PowerEdge R640", "Lenovo ThinkSystem SR650");
        var c = Sig(other);
        Assert.Equal(a.Id, c.Id);
        Assert.Equal(a.Describe(), c.Describe());
    }

    [Fact]
    public void DifferentBugsHaveDifferentSignatures()
    {
        string[] logs = [KernelLogSamples.NullDereference61, KernelLogSamples.BugOn, KernelLogSamples.SoftLockup,
            KernelLogSamples.OutOfMemory, KernelLogSamples.HungTask, KernelLogSamples.WarnPanicOnWarn];
        var ids = logs.Select(l => Sig(l).Id).ToList();
        Assert.Equal(ids.Count, ids.Distinct().Count());

        // The same BUG_ON reached from a different caller is a different signature.
        var other = Sig(KernelLogSamples.BugOn.Replace("do_writepages+0xd1/0x1b0", "ext4_do_writepages+0x1a/0x40 [ext4]"));
        Assert.NotEqual(Sig(KernelLogSamples.BugOn).Id, other.Id);
    }

    [Fact]
    public void ComponentsAreNormalised()
    {
        var bug = Sig(KernelLogSamples.BugOn);
        Assert.Equal(CrashKind.Bug, bug.Kind);
        Assert.Equal("kernel BUG at fs/ext4/inode.c:N!", bug.Reason);
        Assert.Equal("ext4_writepages", bug.RipFunction);
        Assert.Equal(["do_writepages", "__writeback_single_inode", "writeback_sb_inodes", "__writeback_inodes_wb", "wb_writeback"], bug.Frames);

        var lockup = Sig(KernelLogSamples.SoftLockup);
        Assert.Equal("watchdog: BUG: soft lockup - CPU#N stuck for Ns!", lockup.Reason);
        Assert.Equal("spinmod_busy_loop", lockup.RipFunction);
        Assert.Equal(["spinmod_write", "full_proxy_write", "vfs_write", "ksys_write"], lockup.Frames);

        var hung = Sig(KernelLogSamples.HungTask);
        Assert.Equal("INFO: task blocked for more than N seconds.", hung.Reason);
        Assert.Null(hung.RipFunction);
        Assert.Equal(["bit_wait_io", "__wait_on_bit", "out_of_line_wait_on_bit", "jbd2_journal_commit_transaction", "kjournald2"], hung.Frames);

        var warn = Sig(KernelLogSamples.WarnPanicOnWarn);
        Assert.Equal("WARNING: at lib/refcount.c:N refcount_warn_saturate", warn.Reason);
        Assert.Equal(["foo_conn_put", "foo_release_work", "process_one_work", "worker_thread"], warn.Frames);
        Assert.Equal($"warning | WARNING: at lib/refcount.c:N refcount_warn_saturate | refcount_warn_saturate | foo_conn_put < foo_release_work < process_one_work < worker_thread", warn.Describe());
    }

    [Fact]
    public void OutOfMemoryIgnoresWhoHappenedToAllocate()
    {
        var a = Sig(KernelLogSamples.OutOfMemory);
        Assert.Equal("Out of memory: system-wide panic_on_oom is enabled", a.Reason);
        Assert.Empty(a.Frames);
        var b = Sig(KernelLogSamples.OutOfMemory.Replace("stress-ng-vm", "postgres").Replace("vma_alloc_folio+0x8f/0x360", "filemap_alloc_folio+0x2c/0x90"));
        Assert.Equal(a.Id, b.Id);
    }

    [Fact]
    public void ReasonNormalisationStripsWhatVaries()
    {
        Assert.Equal("Attempted to kill init! exitcode=X", CrashSignature.NormalizeReason("Kernel panic - not syncing: Attempted to kill init! exitcode=0x0000000b", CrashKind.Panic));
        Assert.Equal("BUG: unable to handle page fault for address: X", CrashSignature.NormalizeReason("BUG: unable to handle page fault for address: ffffc90000a3f000", CrashKind.Oops));
        Assert.Equal("BUG: scheduling while atomic", CrashSignature.NormalizeReason("BUG: scheduling while atomic: kworker/3:1/8812/0x00000002", CrashKind.Bug));
        // The die line's oops count and build flags (PTI depends on the CPU) are not the bug.
        Assert.Equal("Oops: general protection fault, probably for non-canonical address X: N",
            CrashSignature.NormalizeReason("Oops: general protection fault, probably for non-canonical address 0xdead000000000122: 0000 [#1] PREEMPT SMP PTI", CrashKind.Oops));
        Assert.Equal("Oops: general protection fault, probably for non-canonical address X: N",
            CrashSignature.NormalizeReason("general protection fault, probably for non-canonical address 0xdead000000000100: 0000 [#3] SMP NOPTI", CrashKind.Oops));
        Assert.Equal("stack-protector: Kernel stack is corrupted in: ext4_fill_super [ext4]",
            CrashSignature.NormalizeReason("Kernel panic - not syncing: stack-protector: Kernel stack is corrupted in: ext4_fill_super+0x2a1c/0x2a70 [ext4 0f3b5c7d9e1a2b4c6d8e0f1a3b5c7d9e1f2a4b6c]", CrashKind.Panic));
        Assert.Equal("rcu: INFO: rcu_preempt self-detected stall on CPU", CrashSignature.NormalizeReason("rcu: INFO: rcu_preempt self-detected stall on CPU", CrashKind.RcuStall));
        Assert.Equal("__handle_sysrq", CrashSignature.BaseName("__handle_sysrq.cold"));
        Assert.Equal("__alloc_pages_slowpath", CrashSignature.BaseName("__alloc_pages_slowpath.constprop.0"));
        Assert.True(CrashSignature.IsGeneric("entry_SYSCALL_64_after_hwframe"));
        Assert.True(CrashSignature.IsGeneric("asm_exc_page_fault"));
        Assert.False(CrashSignature.IsGeneric("sysrq_handle_crash"));
    }
}

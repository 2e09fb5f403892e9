namespace CaptureAgent.Tests.Host.Report;

/// <summary>
/// Kernel logs of crashes, written in the 6.x printk format as makedumpfile --dump-dmesg and
/// vmcore-dmesg save them: "[seconds.micros] [caller] text", the caller "T&lt;pid&gt;" in task context
/// and "C&lt;cpu&gt;" in interrupt context, continuation lines indented.
/// </summary>
public static class KernelLogSamples
{
    private const string Boot = """
        [    0.000000] [      T0] Linux version 6.1.0-18-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)
        [    0.000000] [      T0] Command line: BOOT_IMAGE=/boot/vmlinuz-6.1.0-18-amd64 root=UUID=0b7a3c1e ro quiet crashkernel=256M
        [    2.114102] [      T1] systemd[1]: Detected architecture x86-64.

        """;

    /// <summary>
    /// A NULL dereference in an out-of-tree module, 6.1 style (the trace starts at the faulting
    /// function's caller). panic_on_oops kexecs from oops_end: no "Kernel panic" line follows.
    /// </summary>
    public const string NullDereference61 = Boot + """
        [  312.118204] [   T2231] nullmod: loading out-of-tree module taints kernel.
        [  312.118267] [   T2231] nullmod: module verification failed: signature and/or required key missing - tainting kernel
        [  312.120013] [   T2231] BUG: kernel NULL pointer dereference, address: 0000000000000010
        [  312.120095] [   T2231] #PF: supervisor read access in kernel mode
        [  312.120141] [   T2231] #PF: error_code(0x0000) - not-present page
        [  312.120180] [   T2231] PGD 0 P4D 0 
        [  312.120224] [   T2231] Oops: 0000 [#1] PREEMPT SMP NOPTI
        [  312.120268] [   T2231] CPU: 2 PID: 2231 Comm: insmod Kdump: loaded Tainted: G           OE      6.1.0-18-amd64 #1  Debian 6.1.76-1
        [  312.120335] [   T2231] Hardware name: Dell Inc. PowerEdge R640/0H28RR, BIOS 2.19.1 06/04/2023
        [  312.120381] [   T2231] RIP: 0010:nullmod_read_config+0x1d/0x60 [nullmod]
        [  312.120436] [   T2231] Code: 00 00 00 00 0f 1f 44 00 00 55 48 89 fd 53 48 8b 5f 08 <48> 8b 43 10 48 85 c0 74 1f 8b 50 04 89 55 20 5b 5d c3 cc cc cc cc
        [  312.120520] [   T2231] RSP: 0018:ffffb4c1c0e7fc68 EFLAGS: 00010246
        [  312.120560] [   T2231] RAX: 0000000000000000 RBX: 0000000000000000 RCX: 0000000000000000
        [  312.120598] [   T2231] RDX: ffff9a0b4c2e1000 RSI: 0000000000000246 RDI: ffff9a0b4c2e1000
        [  312.120634] [   T2231] RBP: ffff9a0b4c2e1000 R08: 0000000000000000 R09: ffffb4c1c0e7fb00
        [  312.120671] [   T2231] R10: 0000000000000003 R11: ffffffffb2f4c9a8 R12: ffffffffc0b3e040
        [  312.120708] [   T2231] R13: 0000000000000000 R14: ffff9a0b41a2d5c0 R15: 0000000000000000
        [  312.120786] [   T2231] FS:  00007f3f4b9f8740(0000) GS:ffff9a1a7fc80000(0000) knlGS:0000000000000000
        [  312.120834] [   T2231] CS:  0010 DS: 0000 ES: 0000 CR0: 0000000080050033
        [  312.120871] [   T2231] CR2: 0000000000000010 CR3: 000000010d2f4004 CR4: 00000000007706e0
        [  312.120910] [   T2231] PKRU: 55555554
        [  312.120931] [   T2231] Call Trace:
        [  312.120951] [   T2231]  <TASK>
        [  312.121148] [   T2231]  nullmod_probe+0x45/0x90 [nullmod]
        [  312.121183] [   T2231]  nullmod_init+0x2e/0x1000 [nullmod]
        [  312.121210] [   T2231]  ? 0xffffffffc0b42000
        [  312.121252] [   T2231]  do_one_initcall+0x56/0x220
        [  312.121288] [   T2231]  do_init_module+0x4a/0x1f0
        [  312.121322] [   T2231]  __do_sys_finit_module+0xac/0x120
        [  312.121357] [   T2231]  do_syscall_64+0x58/0xc0
        [  312.121391] [   T2231]  ? syscall_exit_to_user_mode+0x27/0x40
        [  312.121427] [   T2231]  entry_SYSCALL_64_after_hwframe+0x64/0xce
        [  312.121462] [   T2231] RIP: 0033:0x7f3f4bb1a559
        [  312.121494] [   T2231] Code: 08 89 e8 5b 5d c3 66 2e 0f 1f 84 00 00 00 00 00 90 48 89 f8 48 89 f7 48 89 d6 48 89 ca 4d 89 c2 4d 89 c8 4c 8b 4c 24 08 0f 05 <48> 3d 01 f0 ff ff 73 01 c3 48 8b 0d 8f c8 0d 00 f7 d8 64 89 01 48
        [  312.121570] [   T2231] RSP: 002b:00007ffd1d6b1fa8 EFLAGS: 00000246 ORIG_RAX: 0000000000000139
        [  312.121612] [   T2231] RAX: ffffffffffffffda RBX: 000055b1c4f1e7a0 RCX: 00007f3f4bb1a559
        [  312.121650] [   T2231] RDX: 0000000000000000 RSI: 000055b1c3a0b260 RDI: 0000000000000003
        [  312.121688] [   T2231] RBP: 0000000000000000 R08: 0000000000000000 R09: 00007f3f4bbf8be0
        [  312.121724] [   T2231] R10: 0000000000000003 R11: 0000000000000246 R12: 000055b1c3a0b260
        [  312.121742] [   T2231] R13: 0000000000000000 R14: 000055b1c4f1e750 R15: 0000000000000000
        [  312.121760] [   T2231]  </TASK>
        [  312.121780] [   T2231] Modules linked in: nullmod(OE+) nft_chain_nat xt_MASQUERADE nf_nat bridge stp llc intel_rapl_msr ext4 crc16 mbcache jbd2 ahci libahci megaraid_sas tg3
        [  312.121900] [   T2231] CR2: 0000000000000010
        """;

    /// <summary>
    /// The same bug on another machine with a 6.12 build: other pid, CPU, addresses, offsets, a
    /// module build id, and 6.12's trace that shows the exception path as "?" frames.
    /// </summary>
    public const string NullDereference612 = """
        [    0.000000] [      T0] Linux version 6.12.117+deb12-amd64 (debian-kernel@lists.debian.org) (x86_64-linux-gnu-gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC Debian 6.12.117-1~deb12u1 (2025-02-21)
        [ 1911.400117] [    T877] BUG: kernel NULL pointer dereference, address: 0000000000000010
        [ 1911.400190] [    T877] #PF: supervisor read access in kernel mode
        [ 1911.400232] [    T877] #PF: error_code(0x0000) - not-present page
        [ 1911.400270] [    T877] PGD 0 P4D 0 
        [ 1911.400311] [    T877] Oops: Oops: 0000 [#1] PREEMPT SMP PTI
        [ 1911.400360] [    T877] CPU: 11 UID: 0 PID: 877 Comm: modprobe Kdump: loaded Tainted: G           OE      6.12.117+deb12-amd64 #1  Debian 6.12.117-1~deb12u1
        [ 1911.400388] [    T877] Tainted: [O]=OOT_MODULE, [E]=UNSIGNED_MODULE
        [ 1911.400420] [    T877] Hardware name: HPE ProLiant DL360 Gen10/ProLiant DL360 Gen10, BIOS U32 10/26/2023
        [ 1911.400461] [    T877] RIP: 0010:nullmod_read_config+0x21/0x70 [nullmod 3f1c9e0a7b52d4e8a1f06c2b9d3e7a5f40c8b1d2]
        [ 1911.400510] [    T877] Code: 90 90 90 90 90 90 90 90 f3 0f 1e fa 0f 1f 44 00 00 55 53 48 8b 5f 08 <48> 8b 43 10 48 85 c0 74 1f 8b 50 04 89 57 20 5b 5d e9 6a 21 4f d9
        [ 1911.400580] [    T877] RSP: 0018:ffffc2f1c45bfc30 EFLAGS: 00010246
        [ 1911.400620] [    T877] RAX: 0000000000000000 RBX: 0000000000000000 RCX: 0000000000000000
        [ 1911.400660] [    T877] RDX: ffff8e2a9a7c3800 RSI: 0000000000000282 RDI: ffff8e2a9a7c3800
        [ 1911.400700] [    T877] RBP: ffff8e2a9a7c3800 R08: 0000000000000000 R09: ffffc2f1c45bfaf0
        [ 1911.400740] [    T877] R10: 0000000000000003 R11: ffffffffa8d4c6e8 R12: ffffffffc1a7d040
        [ 1911.400780] [    T877] R13: 0000000000000000 R14: ffff8e2a83b1e9c0 R15: 0000000000000000
        [ 1911.400820] [    T877] FS:  00007f0d2c1b3740(0000) GS:ffff8e39dfac0000(0000) knlGS:0000000000000000
        [ 1911.400860] [    T877] CS:  0010 DS: 0000 ES: 0000 CR0: 0000000080050033
        [ 1911.400900] [    T877] CR2: 0000000000000010 CR3: 0000000124e2a006 CR4: 00000000007726f0
        [ 1911.400940] [    T877] PKRU: 55555554
        [ 1911.400960] [    T877] Call Trace:
        [ 1911.400980] [    T877]  <TASK>
        [ 1911.401000] [    T877]  ? __die_body.cold+0x19/0x27
        [ 1911.401030] [    T877]  ? page_fault_oops+0x15a/0x2d0
        [ 1911.401060] [    T877]  ? exc_page_fault+0x7e/0x180
        [ 1911.401090] [    T877]  ? asm_exc_page_fault+0x26/0x30
        [ 1911.401120] [    T877]  ? nullmod_read_config+0x21/0x70 [nullmod 3f1c9e0a7b52d4e8a1f06c2b9d3e7a5f40c8b1d2]
        [ 1911.401150] [    T877]  nullmod_probe+0x49/0xa0 [nullmod 3f1c9e0a7b52d4e8a1f06c2b9d3e7a5f40c8b1d2]
        [ 1911.401180] [    T877]  ? __pfx_nullmod_init+0x10/0x10 [nullmod 3f1c9e0a7b52d4e8a1f06c2b9d3e7a5f40c8b1d2]
        [ 1911.401210] [    T877]  nullmod_init+0x2e/0xff0 [nullmod 3f1c9e0a7b52d4e8a1f06c2b9d3e7a5f40c8b1d2]
        [ 1911.401240] [    T877]  do_one_initcall+0x5b/0x320
        [ 1911.401270] [    T877]  do_init_module+0x60/0x240
        [ 1911.401300] [    T877]  init_module_from_file+0x89/0xe0
        [ 1911.401330] [    T877]  idempotent_init_module+0x11e/0x310
        [ 1911.401360] [    T877]  __x64_sys_finit_module+0x5e/0xb0
        [ 1911.401390] [    T877]  do_syscall_64+0x82/0x190
        [ 1911.401420] [    T877]  entry_SYSCALL_64_after_hwframe+0x76/0x7e
        [ 1911.401450] [    T877] RIP: 0033:0x7f0d2c2d0779
        [ 1911.401480] [    T877] RSP: 002b:00007ffe6a3c0d18 EFLAGS: 00000246 ORIG_RAX: 0000000000000139
        [ 1911.401510] [    T877]  </TASK>
        [ 1911.401540] [    T877] Modules linked in: nullmod(OE+) xfs nvme nvme_core i40e
        [ 1911.401580] [    T877] CR2: 0000000000000010
        """;

    /// <summary>BUG_ON in ext4 from a writeback worker; crash_kexec_post_notifiers, so the panic line is there.</summary>
    public const string BugOn = """
        [    0.000000] Linux version 6.1.0-21-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC Debian 6.1.90-1 (2024-05-03)
        [ 8841.402211] [  T10422] ------------[ cut here ]------------
        [ 8841.402219] [  T10422] kernel BUG at fs/ext4/inode.c:3698!
        [ 8841.402297] [  T10422] invalid opcode: 0000 [#1] PREEMPT SMP NOPTI
        [ 8841.402331] [  T10422] CPU: 7 PID: 10422 Comm: kworker/u64:3 Not tainted 6.1.0-21-amd64 #1  Debian 6.1.90-1
        [ 8841.402372] [  T10422] Hardware name: Supermicro SYS-1029P-WTR/X11DDW-L, BIOS 3.4 11/08/2021
        [ 8841.402398] [  T10422] Workqueue: writeback wb_workfn (flush-253:0)
        [ 8841.402425] [  T10422] RIP: 0010:ext4_writepages+0x10a7/0x1110 [ext4]
        [ 8841.402460] [  T10422] Code: ff 48 8b 44 24 38 48 8b 40 08 e9 07 fc ff ff 0f 0b 0f 0b 48 8b 44 24 20 48 8b 78 18 e8 c3 5a 02 00 e9 99 fb ff ff <0f> 0b 0f 0b e8 25 3a 4b dc 66 66 2e 0f 1f 84 00 00 00 00 00 66 90
        [ 8841.402520] [  T10422] RSP: 0018:ffffa6d2c8d2bb88 EFLAGS: 00010246
        [ 8841.402560] [  T10422] RAX: 0000000000000000 RBX: 0000000000000001 RCX: 0000000000000000
        [ 8841.402600] [  T10422] RDX: 0000000000000000 RSI: 0000000000000000 RDI: ffff93b1c33a2e80
        [ 8841.402640] [  T10422] RBP: ffffa6d2c8d2bd40 R08: 0000000000000000 R09: 0000000000000000
        [ 8841.402680] [  T10422] R10: 0000000000000000 R11: 0000000000000000 R12: ffff93b1c33a2e80
        [ 8841.402700] [  T10422] R13: 0000000000000000 R14: ffff93b205a1a000 R15: ffffa6d2c8d2bc70
        [ 8841.402720] [  T10422] FS:  0000000000000000(0000) GS:ffff93c07fdc0000(0000) knlGS:0000000000000000
        [ 8841.402730] [  T10422] CS:  0010 DS: 0000 ES: 0000 CR0: 0000000080050033
        [ 8841.402740] [  T10422] CR2: 00007f26d8e1f000 CR3: 000000019c810006 CR4: 00000000007706e0
        [ 8841.402750] [  T10422] PKRU: 55555554
        [ 8841.402756] [  T10422] Call Trace:
        [ 8841.402771] [  T10422]  <TASK>
        [ 8841.402800] [  T10422]  do_writepages+0xd1/0x1b0
        [ 8841.402829] [  T10422]  ? __wb_calc_thresh+0x3a/0x120
        [ 8841.402850] [  T10422]  __writeback_single_inode+0x3d/0x360
        [ 8841.402880] [  T10422]  writeback_sb_inodes+0x1ed/0x4a0
        [ 8841.402910] [  T10422]  __writeback_inodes_wb+0x4c/0xf0
        [ 8841.402940] [  T10422]  wb_writeback+0x298/0x310
        [ 8841.402970] [  T10422]  wb_workfn+0x35b/0x4f0
        [ 8841.403000] [  T10422]  ? __schedule+0x3aa/0xa30
        [ 8841.403050] [  T10422]  process_one_work+0x1c7/0x380
        [ 8841.403121] [  T10422]  worker_thread+0x4d/0x380
        [ 8841.403140] [  T10422]  ? rescuer_thread+0x3a0/0x3a0
        [ 8841.403158] [  T10422]  kthread+0xda/0x100
        [ 8841.403176] [  T10422]  ? kthread_complete_and_exit+0x20/0x20
        [ 8841.403194] [  T10422]  ret_from_fork+0x22/0x30
        [ 8841.403212] [  T10422]  </TASK>
        [ 8841.403224] [  T10422] Modules linked in: dm_crypt nft_ct ext4 crc16 mbcache jbd2 dm_mod i40e ahci libahci
        [ 8841.403420] [  T10422] ---[ end trace 0000000000000000 ]---
        [ 8841.403441] [  T10422] RIP: 0010:ext4_writepages+0x10a7/0x1110 [ext4]
        [ 8841.403470] [  T10422] Code: ff 48 8b 44 24 38 48 8b 40 08 e9 07 fc ff ff 0f 0b 0f 0b 48 8b 44 24 20 48 8b 78 18 e8 c3 5a 02 00 e9 99 fb ff ff <0f> 0b 0f 0b e8 25 3a 4b dc 66 66 2e 0f 1f 84 00 00 00 00 00 66 90
        [ 8841.403500] [  T10422] RSP: 0018:ffffa6d2c8d2bb88 EFLAGS: 00010246
        [ 8841.403690] [  T10422] Kernel panic - not syncing: Fatal exception
        [ 8841.403750] [  T10422] Kernel Offset: 0x1a600000 from 0xffffffff81000000 (relocation range: 0xffffffff80000000-0xffffffffbfffffff)
        """;

    /// <summary>
    /// softlockup_panic=1 on 6.12: the report and the panic come from the timer interrupt (caller
    /// C3); a line from another CPU lands inside the trace.
    /// </summary>
    public const string SoftLockup = """
        [    0.000000] [      T0] Linux version 6.12.117+deb12-cloud-amd64 (debian-kernel@lists.debian.org) (x86_64-linux-gnu-gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC Debian 6.12.117-1~deb12u1 (2025-02-21)
        [ 1024.557012] [     C3] watchdog: BUG: soft lockup - CPU#3 stuck for 26s! [spinner:4107]
        [ 1024.557040] [     C3] Modules linked in: spinmod(OE) binfmt_misc ext4 crc16 mbcache jbd2 virtio_net virtio_blk
        [ 1024.557190] [     C3] CPU: 3 UID: 0 PID: 4107 Comm: spinner Tainted: G           OE      6.12.117+deb12-cloud-amd64 #1  Debian 6.12.117-1~deb12u1
        [ 1024.557221] [     C3] Tainted: [O]=OOT_MODULE, [E]=UNSIGNED_MODULE
        [ 1024.557250] [     C3] Hardware name: QEMU Standard PC (Q35 + ICH9, 2009), BIOS 1.16.3-debian-1.16.3-2 04/01/2014
        [ 1024.557276] [     C3] RIP: 0010:spinmod_busy_loop+0x15/0x30 [spinmod]
        [ 1024.557301] [     C3] Code: 90 90 90 90 90 90 90 90 90 90 f3 0f 1e fa 0f 1f 44 00 00 8b 05 f2 2f 00 00 85 c0 74 08 <f3> 90 8b 05 e6 2f 00 00 eb f2 c3 cc cc cc cc 66 0f 1f 44 00 00 90
        [ 1024.557370] [     C3] RSP: 0018:ffffbd31c3a3fd90 EFLAGS: 00000246
        [ 1024.557400] [     C3] RAX: 0000000000000001 RBX: 000055d3f1a0c2a0 RCX: 0000000000000000
        [ 1024.557430] [     C3] RDX: 0000000000000000 RSI: 000055d3f1a0c2a0 RDI: ffff9f0e4a1b7600
        [ 1024.557460] [     C3] RBP: ffff9f0e4a1b7600 R08: 0000000000000000 R09: 0000000000000000
        [ 1024.557490] [     C3] R10: 0000000000000000 R11: 0000000000000000 R12: 0000000000000002
        [ 1024.557520] [     C3] R13: ffffbd31c3a3fe08 R14: 0000000000000002 R15: 000055d3f1a0c2a0
        [ 1024.557550] [     C3] FS:  00007f5e2d61f740(0000) GS:ffff9f0f7bd80000(0000) knlGS:0000000000000000
        [ 1024.557570] [     C3] CS:  0010 DS: 0000 ES: 0000 CR0: 0000000080050033
        [ 1024.557585] [     C3] CR2: 000055d3f1a0d000 CR3: 000000010a4be000 CR4: 0000000000750ef0
        [ 1024.557592] [     C3] PKRU: 55555554
        [ 1024.557598] [     C3] Call Trace:
        [ 1024.557611] [     C3]  <IRQ>
        [ 1024.557623] [     C3]  ? watchdog_timer_fn+0x1e4/0x260
        [ 1024.557651] [     C3]  ? __pfx_watchdog_timer_fn+0x10/0x10
        [ 1024.557675] [     C3]  ? __hrtimer_run_queues+0x112/0x2a0
        [ 1024.557700] [     C3]  ? hrtimer_interrupt+0xff/0x240
        [ 1024.557724] [     C3]  ? __sysvec_apic_timer_interrupt+0x55/0x110
        [ 1024.557748] [     C3]  ? sysvec_apic_timer_interrupt+0x6c/0x90
        [ 1024.557771] [     C3]  </IRQ>
        [ 1024.557782] [     C3]  <TASK>
        [ 1024.557794] [     C3]  ? asm_sysvec_apic_timer_interrupt+0x1a/0x20
        [ 1024.557818] [     C3]  ? spinmod_busy_loop+0x15/0x30 [spinmod]
        [ 1024.557843] [     C3]  spinmod_write+0x3c/0x70 [spinmod]
        [ 1024.557860] [     T88] virtio_net virtio0 enp1s0: TX timeout on queue: 0, sq: output.0, vq: 0x1, name: output.0, 5120 usecs ago
        [ 1024.557867] [     C3]  full_proxy_write+0x57/0x80
        [ 1024.557891] [     C3]  vfs_write+0xf8/0x450
        [ 1024.557914] [     C3]  ksys_write+0x6f/0xf0
        [ 1024.557937] [     C3]  do_syscall_64+0x82/0x190
        [ 1024.557960] [     C3]  entry_SYSCALL_64_after_hwframe+0x76/0x7e
        [ 1024.557984] [     C3] RIP: 0033:0x7f5e2d71c574
        [ 1024.558010] [     C3] RSP: 002b:00007ffc8e3b7a58 EFLAGS: 00000202 ORIG_RAX: 0000000000000001
        [ 1024.558040] [     C3] RAX: ffffffffffffffda RBX: 0000000000000002 RCX: 00007f5e2d71c574
        [ 1024.558170] [     C3]  </TASK>
        [ 1024.558182] [     C3] Kernel panic - not syncing: softlockup: hung tasks
        [ 1024.558205] [     C3] CPU: 3 UID: 0 PID: 4107 Comm: spinner Tainted: G           OEL     6.12.117+deb12-cloud-amd64 #1  Debian 6.12.117-1~deb12u1
        [ 1024.558233] [     C3] Tainted: [O]=OOT_MODULE, [E]=UNSIGNED_MODULE, [L]=SOFTLOCKUP
        [ 1024.558256] [     C3] Hardware name: QEMU Standard PC (Q35 + ICH9, 2009), BIOS 1.16.3-debian-1.16.3-2 04/01/2014
        [ 1024.558281] [     C3] Call Trace:
        [ 1024.558293] [     C3]  <IRQ>
        [ 1024.558304] [     C3]  panic+0x344/0x3a0
        [ 1024.558326] [     C3]  watchdog_timer_fn+0x232/0x260
        [ 1024.558349] [     C3]  ? __pfx_watchdog_timer_fn+0x10/0x10
        [ 1024.558372] [     C3]  __hrtimer_run_queues+0x112/0x2a0
        [ 1024.558395] [     C3]  hrtimer_interrupt+0xff/0x240
        [ 1024.558418] [     C3]  __sysvec_apic_timer_interrupt+0x55/0x110
        [ 1024.558441] [     C3]  sysvec_apic_timer_interrupt+0x6c/0x90
        [ 1024.558464] [     C3]  </IRQ>
        [ 1024.558475] [     C3]  <TASK>
        [ 1024.558487] [     C3]  asm_sysvec_apic_timer_interrupt+0x1a/0x20
        [ 1024.558510] [     C3] RIP: 0010:spinmod_busy_loop+0x15/0x30 [spinmod]
        [ 1024.558560] [     C3]  spinmod_write+0x3c/0x70 [spinmod]
        [ 1024.558583] [     C3]  full_proxy_write+0x57/0x80
        [ 1024.558606] [     C3]  vfs_write+0xf8/0x450
        [ 1024.558629] [     C3]  ksys_write+0x6f/0xf0
        [ 1024.558652] [     C3]  do_syscall_64+0x82/0x190
        [ 1024.558675] [     C3]  entry_SYSCALL_64_after_hwframe+0x76/0x7e
        [ 1024.558698] [     C3]  </TASK>
        """;

    /// <summary>vm.panic_on_oom=1: the OOM report (dump_header) and then the panic, in the allocating task.</summary>
    public const string OutOfMemory = """
        [    0.000000] Linux version 6.1.0-26-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC Debian 6.1.112-1 (2024-09-30)
        [ 2231.771420] [   T6612] stress-ng-vm invoked oom-killer: gfp_mask=0x140dca(GFP_HIGHUSER_MOVABLE|__GFP_COMP|__GFP_ZERO), order=0, oom_score_adj=1000
        [ 2231.771460] [   T6612] CPU: 1 PID: 6612 Comm: stress-ng-vm Not tainted 6.1.0-26-amd64 #1  Debian 6.1.112-1
        [ 2231.771487] [   T6612] Hardware name: Red Hat KVM/RHEL, BIOS 1.16.1-1.el9 04/01/2014
        [ 2231.771510] [   T6612] Call Trace:
        [ 2231.771521] [   T6612]  <TASK>
        [ 2231.771532] [   T6612]  dump_stack_lvl+0x44/0x5c
        [ 2231.771553] [   T6612]  dump_header+0x4a/0x211
        [ 2231.771573] [   T6612]  out_of_memory.cold+0xa/0x7e
        [ 2231.771594] [   T6612]  __alloc_pages_slowpath.constprop.0+0xc6c/0xde0
        [ 2231.771618] [   T6612]  __alloc_pages+0x30a/0x330
        [ 2231.771639] [   T6612]  __folio_alloc+0x16/0x50
        [ 2231.771659] [   T6612]  vma_alloc_folio+0x8f/0x360
        [ 2231.771679] [   T6612]  __handle_mm_fault+0x8d5/0xfa0
        [ 2231.771700] [   T6612]  handle_mm_fault+0xdb/0x2d0
        [ 2231.771720] [   T6612]  do_user_addr_fault+0x191/0x570
        [ 2231.771741] [   T6612]  exc_page_fault+0x70/0x170
        [ 2231.771761] [   T6612]  asm_exc_page_fault+0x22/0x30
        [ 2231.771782] [   T6612] RIP: 0033:0x5633c4e0b0d5
        [ 2231.771802] [   T6612] Code: Unable to access opcode bytes at 0x5633c4e0b0ab.
        [ 2231.771826] [   T6612] RSP: 002b:00007ffe0b2f6a70 EFLAGS: 00010206
        [ 2231.771850] [   T6612] RAX: 00007f1c0a9ff010 RBX: 0000000000000000 RCX: 00007f1c8b1f2a8b
        [ 2231.771968] [   T6612]  </TASK>
        [ 2231.771980] [   T6612] Mem-Info:
        [ 2231.772001] [   T6612] active_anon:2003 inactive_anon:1950331 isolated_anon:0
                                   active_file:13 inactive_file:21 isolated_file:0
                                   unevictable:0 dirty:0 writeback:0
                                   slab_reclaimable:5360 slab_unreclaimable:10544
        [ 2231.772300] [   T6612] Node 0 DMA free:14336kB boost:0kB min:132kB low:164kB high:196kB reserved_highatomic:0KB active_anon:0kB inactive_anon:0kB
        [ 2231.772600] [   T6612] Tasks state (memory values in pages):
        [ 2231.772620] [   T6612] [  pid  ]   uid  tgid total_vm      rss pgtables_bytes swapents oom_score_adj name
        [ 2231.772650] [   T6612] [    412]     0   412    12349      298   102400        0          -250 systemd-journal
        [ 2231.772690] [   T6612] [   6612]     0  6612  2099266  1948221 15687680        0          1000 stress-ng-vm
        [ 2231.772730] [   T6612] Kernel panic - not syncing: Out of memory: system-wide panic_on_oom is enabled
        [ 2231.772760] [   T6612] CPU: 1 PID: 6612 Comm: stress-ng-vm Not tainted 6.1.0-26-amd64 #1  Debian 6.1.112-1
        [ 2231.772786] [   T6612] Hardware name: Red Hat KVM/RHEL, BIOS 1.16.1-1.el9 04/01/2014
        [ 2231.772808] [   T6612] Call Trace:
        [ 2231.772819] [   T6612]  <TASK>
        [ 2231.772830] [   T6612]  dump_stack_lvl+0x44/0x5c
        [ 2231.772850] [   T6612]  panic+0x118/0x2f4
        [ 2231.772870] [   T6612]  out_of_memory.cold+0x67/0x7e
        [ 2231.772890] [   T6612]  __alloc_pages_slowpath.constprop.0+0xc6c/0xde0
        [ 2231.772910] [   T6612]  __alloc_pages+0x30a/0x330
        [ 2231.772930] [   T6612]  </TASK>
        """;

    /// <summary>kernel.hung_task_panic=1: two blocked tasks reported in one khungtaskd scan, then the panic.</summary>
    public const string HungTask = """
        [    0.000000] Linux version 6.1.0-21-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC Debian 6.1.90-1 (2024-05-03)
        [ 4800.120044] [  T20345] nfs: server filer01 not responding, still trying
        [ 4921.338104] [     T63] INFO: task jbd2/dm-0-8:611 blocked for more than 120 seconds.
        [ 4921.338160] [     T63]       Not tainted 6.1.0-21-amd64 #1 Debian 6.1.90-1
        [ 4921.338184] [     T63] "echo 0 > /proc/sys/kernel/hung_task_timeout_secs" disables this message.
        [ 4921.338210] [     T63] task:jbd2/dm-0-8     state:D stack:0     pid:611   ppid:2      flags:0x00004000
        [ 4921.338239] [     T63] Call Trace:
        [ 4921.338251] [     T63]  <TASK>
        [ 4921.338263] [     T63]  __schedule+0x34d/0x9e0
        [ 4921.338290] [     T63]  schedule+0x5a/0xd0
        [ 4921.338311] [     T63]  io_schedule+0x42/0x70
        [ 4921.338331] [     T63]  bit_wait_io+0xd/0x60
        [ 4921.338351] [     T63]  __wait_on_bit+0x4b/0x140
        [ 4921.338371] [     T63]  ? bit_wait+0x60/0x60
        [ 4921.338390] [     T63]  out_of_line_wait_on_bit+0x91/0xb0
        [ 4921.338411] [     T63]  ? sugov_init+0x350/0x350
        [ 4921.338431] [     T63]  jbd2_journal_commit_transaction+0x1590/0x1a90 [jbd2]
        [ 4921.338481] [     T63]  kjournald2+0xab/0x270 [jbd2]
        [ 4921.338503] [     T63]  ? cpuusage_read+0x10/0x10
        [ 4921.338524] [     T63]  ? jbd2_fc_wait_bufs+0x70/0x70 [jbd2]
        [ 4921.338546] [     T63]  kthread+0xda/0x100
        [ 4921.338566] [     T63]  ? kthread_complete_and_exit+0x20/0x20
        [ 4921.338586] [     T63]  ret_from_fork+0x22/0x30
        [ 4921.338606] [     T63]  </TASK>
        [ 4921.338620] [     T63] INFO: task kworker/u16:2:20345 blocked for more than 120 seconds.
        [ 4921.338650] [     T63]       Not tainted 6.1.0-21-amd64 #1 Debian 6.1.90-1
        [ 4921.338670] [     T63] "echo 0 > /proc/sys/kernel/hung_task_timeout_secs" disables this message.
        [ 4921.338690] [     T63] task:kworker/u16:2   state:D stack:0     pid:20345 ppid:2      flags:0x00004000
        [ 4921.338710] [     T63] Workqueue: writeback wb_workfn (flush-253:0)
        [ 4921.338730] [     T63] Call Trace:
        [ 4921.338750] [     T63]  <TASK>
        [ 4921.338770] [     T63]  __schedule+0x34d/0x9e0
        [ 4921.338790] [     T63]  schedule+0x5a/0xd0
        [ 4921.338810] [     T63]  wait_transaction_locked+0x8a/0xd0 [jbd2]
        [ 4921.338830] [     T63]  add_transaction_credits+0xd9/0x2d0 [jbd2]
        [ 4921.338850] [     T63]  start_this_handle+0xfb/0x520 [jbd2]
        [ 4921.338870] [     T63]  jbd2__journal_start+0xfb/0x1e0 [jbd2]
        [ 4921.338890] [     T63]  </TASK>
        [ 4921.339400] [     T63] Kernel panic - not syncing: hung_task: blocked tasks
        [ 4921.339431] [     T63] CPU: 2 PID: 63 Comm: khungtaskd Not tainted 6.1.0-21-amd64 #1  Debian 6.1.90-1
        [ 4921.339459] [     T63] Hardware name: VMware, Inc. VMware7,1/440BX Desktop Reference Platform, BIOS VMW71.00V.21100432.B64.2301110304 01/11/2023
        [ 4921.339480] [     T63] Call Trace:
        [ 4921.339491] [     T63]  <TASK>
        [ 4921.339502] [     T63]  dump_stack_lvl+0x44/0x5c
        [ 4921.339521] [     T63]  panic+0x118/0x2f4
        [ 4921.339540] [     T63]  watchdog.cold+0x118/0x118
        [ 4921.339560] [     T63]  ? proc_dohung_task_timeout_secs+0x30/0x30
        [ 4921.339580] [     T63]  kthread+0xda/0x100
        [ 4921.339599] [     T63]  ? kthread_complete_and_exit+0x20/0x20
        [ 4921.339618] [     T63]  ret_from_fork+0x22/0x30
        [ 4921.339637] [     T63]  </TASK>
        """;

    /// <summary>A refcount underflow WARN in a workqueue with panic_on_warn=1 (6.12).</summary>
    public const string WarnPanicOnWarn = """
        [    0.000000] [      T0] Linux version 6.12.117+deb12-cloud-amd64 (debian-kernel@lists.debian.org) (x86_64-linux-gnu-gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC Debian 6.12.117-1~deb12u1 (2025-02-21)
        [   12.004411] [    T412] ------------[ cut here ]------------
        [   12.004420] [    T412] WARNING: CPU: 1 PID: 412 at drivers/gpu/drm/drm_vblank.c:1307 drm_wait_one_vblank+0x1c4/0x1e0
        [   12.004470] [    T412] ---[ end trace 0000000000000000 ]---
        [   77.901233] [   T1873] ------------[ cut here ]------------
        [   77.901250] [   T1873] refcount_t: underflow; use-after-free.
        [   77.901268] [   T1873] WARNING: CPU: 0 PID: 1873 at lib/refcount.c:28 refcount_warn_saturate+0xba/0x110
        [   77.901301] [   T1873] Modules linked in: foomod(O) ena ptp pps_core nvme nvme_core
        [   77.901420] [   T1873] CPU: 0 UID: 0 PID: 1873 Comm: kworker/0:3 Tainted: G        W  O       6.12.117+deb12-cloud-amd64 #1  Debian 6.12.117-1~deb12u1
        [   77.901440] [   T1873] Tainted: [W]=WARN, [O]=OOT_MODULE
        [   77.901452] [   T1873] Hardware name: Amazon EC2 m5.large/, BIOS 1.0 10/16/2017
        [   77.901474] [   T1873] Workqueue: events foo_release_work [foomod]
        [   77.901498] [   T1873] RIP: 0010:refcount_warn_saturate+0xba/0x110
        [   77.901520] [   T1873] Code: 01 01 e8 27 d4 a7 ff 0f 0b c3 cc cc cc cc 80 3d 2e 4b 9f 01 00 75 81 48 c7 c7 c8 49 a3 9f c6 05 1e 4b 9f 01 01 e8 04 d4 a7 ff <0f> 0b c3 cc cc cc cc 80 3d 09 4b 9f 01 00 0f 85 5a ff ff ff 48 c7
        [   77.901590] [   T1873] RSP: 0018:ffffa8c240b1fe08 EFLAGS: 00010286
        [   77.901620] [   T1873] RAX: 0000000000000000 RBX: ffff8f1b04d2a300 RCX: 0000000000000027
        [   77.901800] [   T1873] Call Trace:
        [   77.901812] [   T1873]  <TASK>
        [   77.901823] [   T1873]  ? __warn+0x89/0x130
        [   77.901846] [   T1873]  ? refcount_warn_saturate+0xba/0x110
        [   77.901868] [   T1873]  ? report_bug+0x164/0x190
        [   77.901889] [   T1873]  ? handle_bug+0x58/0x90
        [   77.901909] [   T1873]  ? exc_invalid_op+0x17/0x70
        [   77.901929] [   T1873]  ? asm_exc_invalid_op+0x1a/0x20
        [   77.901950] [   T1873]  ? refcount_warn_saturate+0xba/0x110
        [   77.901971] [   T1873]  foo_conn_put+0x4e/0x60 [foomod]
        [   77.901994] [   T1873]  foo_release_work+0x2b/0x80 [foomod]
        [   77.902016] [   T1873]  process_one_work+0x177/0x330
        [   77.902037] [   T1873]  worker_thread+0x252/0x390
        [   77.902057] [   T1873]  ? __pfx_worker_thread+0x10/0x10
        [   77.902078] [   T1873]  kthread+0xd2/0x100
        [   77.902098] [   T1873]  ? __pfx_kthread+0x10/0x10
        [   77.902118] [   T1873]  ret_from_fork+0x34/0x50
        [   77.902138] [   T1873]  ? __pfx_kthread+0x10/0x10
        [   77.902158] [   T1873]  ret_from_fork_asm+0x1a/0x30
        [   77.902178] [   T1873]  </TASK>
        [   77.902190] [   T1873] Kernel panic - not syncing: kernel: panic_on_warn set ...
        [   77.902214] [   T1873] CPU: 0 UID: 0 PID: 1873 Comm: kworker/0:3 Tainted: G        W  O       6.12.117+deb12-cloud-amd64 #1  Debian 6.12.117-1~deb12u1
        [   77.902230] [   T1873] Tainted: [W]=WARN, [O]=OOT_MODULE
        [   77.902240] [   T1873] Hardware name: Amazon EC2 m5.large/, BIOS 1.0 10/16/2017
        [   77.902260] [   T1873] Workqueue: events foo_release_work [foomod]
        [   77.902281] [   T1873] Call Trace:
        [   77.902292] [   T1873]  <TASK>
        [   77.902303] [   T1873]  panic+0x344/0x3a0
        [   77.902324] [   T1873]  check_panic_on_warn+0x44/0x60
        [   77.902345] [   T1873]  __warn+0x95/0x130
        [   77.902365] [   T1873]  ? refcount_warn_saturate+0xba/0x110
        [   77.902386] [   T1873]  report_bug+0x164/0x190
        [   77.902406] [   T1873]  handle_bug+0x58/0x90
        [   77.902426] [   T1873]  exc_invalid_op+0x17/0x70
        [   77.902446] [   T1873]  asm_exc_invalid_op+0x1a/0x20
        [   77.902467] [   T1873] RIP: 0010:refcount_warn_saturate+0xba/0x110
        [   77.902500] [   T1873] RSP: 0018:ffffa8c240b1fe08 EFLAGS: 00010286
        [   77.902700] [   T1873]  foo_conn_put+0x4e/0x60 [foomod]
        [   77.902720] [   T1873]  foo_release_work+0x2b/0x80 [foomod]
        [   77.902740] [   T1873]  process_one_work+0x177/0x330
        [   77.902760] [   T1873]  </TASK>
        """;

    /// <summary>panic_on_rcu_stall=1, a self-detected stall (6.1): the stalled code's regs and trace, then the panic from the tick.</summary>
    public const string RcuStall = """
        [ 6120.004123] [     C5] rcu: INFO: rcu_preempt self-detected stall on CPU
        [ 6120.004150] [     C5] rcu: 	5-....: (5249 ticks this GP) idle=9e4c/1/0x4000000000000000 softirq=211031/211031 fqs=2406
        [ 6120.004175] [     C5] 	(t=5250 jiffies g=1840457 q=11312 ncpus=8)
        [ 6120.004190] [     C5] CPU: 5 PID: 3301 Comm: loopd Tainted: G           O       6.1.0-21-amd64 #1  Debian 6.1.90-1
        [ 6120.004210] [     C5] Hardware name: Lenovo ThinkSystem SR630/7X02CTO1WW, BIOS IVE186M-3.22 09/13/2023
        [ 6120.004230] [     C5] RIP: 0010:loopmod_walk_list+0x1c/0x40 [loopmod]
        [ 6120.004250] [     C5] Code: 48 8b 07 48 39 c7 74 11 0f 1f 44 00 00 48 8b 00 48 39 c7 75 f8 <c3> cc cc cc cc 31 c0 c3 cc cc cc cc 66 0f 1f 44 00 00 0f 1f 44 00
        [ 6120.004270] [     C5] RSP: 0018:ffffb0e6c7b8fd98 EFLAGS: 00000246
        [ 6120.004290] [     C5] RAX: ffff8b6e41d2c000 RBX: ffff8b6e41d2c000 RCX: 0000000000000000
        [ 6120.004400] [     C5] Call Trace:
        [ 6120.004410] [     C5]  <TASK>
        [ 6120.004420] [     C5]  loopmod_ioctl+0x5a/0x90 [loopmod]
        [ 6120.004430] [     C5]  __x64_sys_ioctl+0x8d/0xd0
        [ 6120.004440] [     C5]  do_syscall_64+0x58/0xc0
        [ 6120.004445] [     C5]  ? exit_to_user_mode_prepare+0x40/0x1e0
        [ 6120.004450] [     C5]  entry_SYSCALL_64_after_hwframe+0x64/0xce
        [ 6120.004460] [     C5] RIP: 0033:0x7fb1d2e1bb1b
        [ 6120.004500] [     C5]  </TASK>
        [ 6120.004510] [     C5] Kernel panic - not syncing: RCU Stall
        [ 6120.004520] [     C5] CPU: 5 PID: 3301 Comm: loopd Tainted: G           O       6.1.0-21-amd64 #1  Debian 6.1.90-1
        [ 6120.004530] [     C5] Hardware name: Lenovo ThinkSystem SR630/7X02CTO1WW, BIOS IVE186M-3.22 09/13/2023
        [ 6120.004540] [     C5] Call Trace:
        [ 6120.004550] [     C5]  <IRQ>
        [ 6120.004560] [     C5]  dump_stack_lvl+0x44/0x5c
        [ 6120.004570] [     C5]  panic+0x118/0x2f4
        [ 6120.004580] [     C5]  rcu_sched_clock_irq.cold+0x2ab/0x2ab
        [ 6120.004590] [     C5]  update_process_times+0x8c/0xc0
        [ 6120.004600] [     C5]  </IRQ>
        """;

    /// <summary>hardlockup_panic=1 (6.1): the NMI watchdog's report from the locked CPU, then nmi_panic.</summary>
    public const string HardLockup = """
        [ 9001.120210] [     C2] NMI watchdog: Watchdog detected hard LOCKUP on cpu 2
        [ 9001.120215] [     C2] Modules linked in: foomod(O) ext4 crc16 mbcache jbd2
        [ 9001.120230] [     C2] CPU: 2 PID: 0 Comm: swapper/2 Tainted: G           O       6.1.0-21-amd64 #1  Debian 6.1.90-1
        [ 9001.120240] [     C2] Hardware name: Lenovo ThinkSystem SR630/7X02CTO1WW, BIOS IVE186M-3.22 09/13/2023
        [ 9001.120250] [     C2] RIP: 0010:native_queued_spin_lock_slowpath+0x5b/0x2c0
        [ 9001.120260] [     C2] RSP: 0018:ffffb0e6c0184e98 EFLAGS: 00000002
        [ 9001.120300] [     C2] Call Trace:
        [ 9001.120305] [     C2]  <IRQ>
        [ 9001.120310] [     C2]  _raw_spin_lock_irqsave+0x39/0x50
        [ 9001.120315] [     C2]  foo_timer_fn+0x2a/0xc0 [foomod]
        [ 9001.120320] [     C2]  call_timer_fn+0x24/0x130
        [ 9001.120325] [     C2]  __run_timers.part.0+0x1e8/0x270
        [ 9001.120330] [     C2]  run_timer_softirq+0x26/0x50
        [ 9001.120335] [     C2]  __do_softirq+0xc5/0x2c8
        [ 9001.120340] [     C2]  __irq_exit_rcu+0xa8/0xd0
        [ 9001.120345] [     C2]  sysvec_apic_timer_interrupt+0x72/0x90
        [ 9001.120350] [     C2]  </IRQ>
        [ 9001.120355] [     C2]  <TASK>
        [ 9001.120360] [     C2]  asm_sysvec_apic_timer_interrupt+0x16/0x20
        [ 9001.120365] [     C2] RIP: 0010:default_idle+0xf/0x20
        [ 9001.120367] [     C2] RSP: 0018:ffffb0e6c00c3ea0 EFLAGS: 00000246
        [ 9001.120370] [     C2]  default_idle_call+0x2d/0xe0
        [ 9001.120375] [     C2]  do_idle+0x211/0x2b0
        [ 9001.120380] [     C2]  cpu_startup_entry+0x19/0x20
        [ 9001.120385] [     C2]  start_secondary+0x11c/0x140
        [ 9001.120390] [     C2]  secondary_startup_64_no_verify+0xe5/0xeb
        [ 9001.120395] [     C2]  </TASK>
        [ 9001.120400] [     C2] Kernel panic - not syncing: Hard LOCKUP
        [ 9001.120410] [     C2] CPU: 2 PID: 0 Comm: swapper/2 Tainted: G           O       6.1.0-21-amd64 #1  Debian 6.1.90-1
        """;
}

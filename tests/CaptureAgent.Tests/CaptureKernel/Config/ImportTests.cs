using CaptureAgent.Compression;
using CaptureAgent.Config;
using CaptureAgent.Filtering;
using CaptureAgent.Targets;
using Xunit;

namespace CaptureAgent.Tests.CaptureKernel.Config;

public class ImportTests
{
    /// <summary>A fake root with /etc/fstab (and more), imported as `config import --root` would.</summary>
    private static (ConfigImport Import, string Text, AgentConfig Parsed) Rhel(string? kdumpConf, string? sysconfig, string fstab,
        Action<TempDir>? setup = null)
    {
        using var root = new TempDir();
        Directory.CreateDirectory(root.File("etc"));
        File.WriteAllText(root.File("etc/fstab"), fstab);
        setup?.Invoke(root);
        var import = new ConfigImport();
        KdumpConfImporter.Import(import,
            kdumpConf is null ? null : new ImportFile("/etc/kdump.conf", kdumpConf),
            sysconfig is null ? null : new ImportFile("/etc/sysconfig/kdump", sysconfig), root.Path);
        return Finish(import);
    }

    private static (ConfigImport Import, string Text, AgentConfig Parsed) Debian(string defaults, string fstab)
    {
        using var root = new TempDir();
        Directory.CreateDirectory(root.File("etc"));
        File.WriteAllText(root.File("etc/fstab"), fstab);
        var import = new ConfigImport();
        KdumpToolsImporter.Import(import, new ImportFile("/etc/default/kdump-tools", defaults), root.Path);
        return Finish(import);
    }

    private static (ConfigImport, string, AgentConfig) Finish(ConfigImport import)
    {
        string text = import.Render();
        var parsed = AgentConfig.Parse(text, "imported");
        Assert.True(parsed.Errors.Count == 0, "the output does not parse:\n" + string.Join("\n", parsed.Errors) + "\n" + text);
        return (import, text, parsed);
    }

    /// <summary>The "not imported" section of the output names this setting as a comment line, with its reason under it.</summary>
    private static void AssertNotImported(string text, ConfigImport import, string settingFragment, string? whyFragment = null)
    {
        var note = import.NotImported.FirstOrDefault(n => n.Origin.Text.Contains(settingFragment, StringComparison.Ordinal));
        Assert.True(note is not null, $"'{settingFragment}' is not listed as not imported:\n{text}");
        if (whyFragment is not null) Assert.Contains(whyFragment, note!.Why);
        var lines = text.Split('\n');
        int at = Array.FindIndex(lines, l => l.StartsWith("# ", StringComparison.Ordinal) && l.Contains(note!.Origin.Where + ": " + note.Origin.Text, StringComparison.Ordinal));
        Assert.True(at >= 0, $"'{settingFragment}' is not a comment of the output:\n{text}");
        Assert.StartsWith("#     " + note!.Why, lines[at + 1]);
    }

    private static string Line(string text, string key) =>
        text.Split('\n').First(l => l.StartsWith(key + " = ", StringComparison.Ordinal));

    [Fact]
    public void Rhel9DefaultInstallSavesOnTheRootVolumeWithLzoAsItsCollectorSays()
    {
        var (import, text, c) = Rhel(Samples.Rhel9KdumpConf, Samples.Rhel9Sysconfig, Samples.Rhel9Fstab);

        // No target in kdump.conf: the filesystem holding /var/crash, the LVM root here.
        var t = Assert.Single(c.Targets);
        Assert.Equal(TargetType.Local, t.Type);
        Assert.Equal(new TargetSpec(TargetKind.Path, "/dev/mapper/rhel-root"), t.Device);
        Assert.Equal("xfs", c.FilesystemType);
        Assert.Equal("/var/crash/{host}-{date}", c.Path);
        Assert.Equal(DumpLevel.All, c.DumpLevel);
        Assert.Equal(PageCodec.Lzo, c.Compression);
        Assert.Contains("compression = lzo", text);

        // The append: what the loader adds is left out, dracut/udev parameters are noted, the rest kept in order.
        Assert.Equal("rootflags=nofail acpi_no_memhotplug nokaslr hest_disable novmcoredd", c.KernelCommandLineAppend);
        AssertNotImported(text, import, "[udev.children-max=2]", "udev");
        Assert.Contains(import.Notes, n => n.Contains("irqpoll nr_cpus=1 reset_devices") && n.Contains("adds them itself"));
        AssertNotImported(text, import, "KDUMP_COMMANDLINE_REMOVE", "quiet log_buf_len swiotlb ignition.firstboot");

        AssertNotImported(text, import, "auto_reset_crashkernel yes", "crashkernel=");
        AssertNotImported(text, import, "[--message-level 7]");
        AssertNotImported(text, import, "KEXEC_ARGS=\"-s\"", "kexec_file_load");
        AssertNotImported(text, import, "KDUMP_IMG=\"vmlinuz\"", "--kernel");
        // Empty settings are unset for kdumpctl: nothing to keep.
        Assert.DoesNotContain(import.NotImported, n => n.Origin.Text.StartsWith("KDUMP_KERNELVER", StringComparison.Ordinal));
        Assert.Contains("imported by `capture-agent config import` from /etc/kdump.conf, /etc/sysconfig/kdump", text);
    }

    [Fact]
    public void EveryKdumpConfDirectiveIsImportedOrListedWithItsReason()
    {
        var (import, text, c) = Rhel(Samples.RhelEverythingKdumpConf, null, Samples.RhelEverythingFstab, root =>
        {
            Directory.CreateDirectory(root.File("etc/kdump/pre.d"));
            Directory.CreateDirectory(root.File("etc/kdump/post.d"));
            File.WriteAllText(root.File("etc/kdump/pre.d/20-second"), "#!/bin/sh\n");
            File.WriteAllText(root.File("etc/kdump/pre.d/10-first"), "#!/bin/sh\n");
            File.WriteAllText(root.File("etc/kdump/pre.d/README"), "not a hook\n");
            File.SetUnixFileMode(root.File("etc/kdump/pre.d/20-second"), (UnixFileMode)0b111_101_101);
            File.SetUnixFileMode(root.File("etc/kdump/pre.d/10-first"), (UnixFileMode)0b111_101_101);
            File.SetUnixFileMode(root.File("etc/kdump/pre.d/README"), (UnixFileMode)0b110_100_100);
            File.WriteAllText(root.File("etc/kdump/post.d/50-notify"), "#!/bin/sh\n");
            File.SetUnixFileMode(root.File("etc/kdump/post.d/50-notify"), (UnixFileMode)0b111_101_101);
        });

        // The xfs disk, then the root filesystem for dump_to_rootfs.
        Assert.Equal(["UUID=8e3b1f0c-2d47-4c1e-9a55-0f7d3e2b6c11", "UUID=0d4c3b2a-1f0e-4d9c-8b7a-6f5e4d3c2b1a"], c.Targets.Select(t => t.Text));
        Assert.Null(c.FilesystemType);   // xfs and ext4: each superblock says
        Assert.Contains(import.Warnings, w => w.Contains("xfs, ext4"));
        Assert.Equal("/crash/{host}-{date}", c.Path);
        Assert.Equal((DumpLevel)17, c.DumpLevel);
        Assert.Equal(DumpLevel.All, c.FallbackDumpLevel);
        Assert.Equal(PageCodec.Zlib, c.Compression);
        Assert.Equal(FinalAction.Poweroff, c.FinalAction);
        Assert.Equal(FinalAction.Poweroff, c.FailureAction);   // after dump_to_rootfs kdump did the final action
        Assert.Equal(["/usr/local/sbin/kdump-pre.sh", "/etc/kdump/pre.d/10-first", "/etc/kdump/pre.d/20-second"], c.PreHooks);
        Assert.Equal(["/etc/kdump/post.d/50-notify", "/usr/local/sbin/kdump-post.sh"], c.PostHooks);
        Assert.Equal(["gfs2", "mlx5_core", "ext2", "ext3"], c.ExtraModules);
        Assert.Equal(["cfg80211", "snd", "nouveau", "amdgpu"], c.Blacklist);
        Assert.Equal(TimeSpan.FromSeconds(90), c.DeviceTimeout);
        Assert.Equal("loop.max_loop=1", c.KernelCommandLineAppend);

        AssertNotImported(text, import, "[--num-threads 4]", "one thread");
        AssertNotImported(text, import, "[--message-level 7]");
        AssertNotImported(text, import, "sshkey /root/.ssh/kdump_id_rsa", "no ssh target");
        AssertNotImported(text, import, "kdump_emergency", "emergency");
        AssertNotImported(text, import, "extra_bins /usr/bin/lftp /usr/bin/curl", "--executable");
        AssertNotImported(text, import, "force_rebuild", "kernel-hook add KVER --force");
        AssertNotImported(text, import, "force_no_rebuild 0");
        AssertNotImported(text, import, "[--omit plymouth]", "dracut");
        AssertNotImported(text, import, "fence_kdump_args -p 7410 -f auto -c 0 -i 10", "fence_kdump_send");
        AssertNotImported(text, import, "fence_kdump_nodes node1 node2");
        AssertNotImported(text, import, "auto_reset_crashkernel no");
        AssertNotImported(text, import, "link_delay 20");
        AssertNotImported(text, import, "debug_mem_level 2");
        AssertNotImported(text, import, "mystery_directive 42", "not a kdump.conf directive");
        AssertNotImported(text, import, "README", "not executable");
        // Where each setting came from.
        Assert.EndsWith("# /etc/kdump.conf:2", Line(text, "target").TrimEnd());
        Assert.EndsWith("# /etc/kdump.conf:19", Line(text, "device_timeout").TrimEnd());
    }

    [Fact]
    public void NfsOverIpv6TakesFstabsMountOptionsAndFlattenedIsImplicit()
    {
        var (import, text, c) = Rhel(Samples.RhelNfsKdumpConf, null, Samples.RhelNfsFstab);
        var t = Assert.Single(c.Targets);
        Assert.Equal(TargetType.Nfs, t.Type);
        Assert.Equal(("[2001:db8::1:2:3:4]", "/export/tmp"), (t.Server, t.Export));
        Assert.Equal("vers=4.2,soft,timeo=100", c.NfsOptions);
        Assert.Equal("/kdump/{host}-{date}", c.Path);
        Assert.Equal(FinalAction.Shell, c.FailureAction);
        Assert.Equal(PageCodec.Lzo, c.Compression);   // the collector's -l
        Assert.Contains(import.Remarks, r => r.Contains("-F") && r.Contains("flattened"));
        Assert.Null(c.FilesystemType);
        Assert.Contains(import.Warnings, w => w.Contains("DHCP"));
    }

    [Fact]
    public void SshToABareIpv6AddressGetsBracketsKdumpsKeyAndACopyCollectorKeepsEveryPage()
    {
        var (import, text, c) = Rhel(Samples.RhelSshRawKdumpConf, null, "/dev/vda1 / ext4 defaults 0 1\n");
        Assert.Equal(["ssh:kdump@[2001:db8::5]", "raw:/dev/disk/by-partlabel/kdumpraw"], c.Targets.Select(t => t.Text));
        Assert.Equal(new TargetSpec(TargetKind.PartLabel, "kdumpraw"), c.Targets[1].Device);
        Assert.Equal(KdumpConfImporter.DefaultSshKey, c.SshKey);
        Assert.Equal("/root/.ssh/known_hosts", c.SshKnownHosts);
        Assert.Equal(DumpLevel.None, c.DumpLevel);
        Assert.Equal(PageCodec.None, c.Compression);
        Assert.Contains("save_raw_copy = yes", text);   // suggested in the remark, not set
        Assert.False(c.SaveRawCopy);
        Assert.Equal(FinalAction.Halt, c.FailureAction);
        Assert.Contains(import.Notes, n => n.Contains("'default' is the old name"));
        Assert.Contains(import.Notes, n => n.Contains("tries these targets in order"));
    }

    [Fact]
    public void FedoraBtrfsRootPutsThePathInsideTheSubvolume()
    {
        var (import, text, c) = Rhel(Samples.FedoraKdumpConf, Samples.FedoraSysconfig, Samples.FedoraFstab);
        var t = Assert.Single(c.Targets);
        Assert.Equal(new TargetSpec(TargetKind.Uuid, "2f0b6d1e-3c4a-4b5d-9e8f-7a6b5c4d3e2f"), t.Device);
        Assert.Equal("btrfs", c.FilesystemType);
        Assert.Equal("/root/var/crash/{host}-{date}", c.Path);
        Assert.Contains("inside btrfs subvolume root", text);
        // rd.driver.blacklist becomes blacklist; other dracut parameters are noted.
        Assert.Equal(["nouveau"], c.Blacklist);
        AssertNotImported(text, import, "[rd.memdebug=2]", "dracut");
        Assert.Equal("acpi_no_memhotplug nokaslr hest_disable novmcoredd", c.KernelCommandLineAppend);
    }

    [Fact]
    public void APathOnASeparateFilesystemIsRelativeToIt()
    {
        var (_, _, c) = Rhel("path /var/crash\n", null, "LABEL=root / ext4 defaults 0 1\nLABEL=var /var xfs defaults 0 2\n");
        Assert.Equal("LABEL=var", Assert.Single(c.Targets).Text);
        Assert.Equal("/crash/{host}-{date}", c.Path);
        Assert.Equal("xfs", c.FilesystemType);
    }

    [Fact]
    public void NoFstabMeansNoTargetAndAWarningNotAGuess()
    {
        using var root = new TempDir();
        var import = new ConfigImport();
        KdumpConfImporter.Import(import, new ImportFile("/etc/kdump.conf", "path /var/crash\n"), null, root.Path);
        var (_, text, c) = Finish(import);
        Assert.Empty(c.Targets);
        Assert.Contains(import.Warnings, w => w.StartsWith("no target", StringComparison.Ordinal));
        Assert.Contains("# WARNING: no target", text);
    }

    [Fact]
    public void ValuesCaptureAgentRefusesBecomeNotesWithTheParsersReason()
    {
        var (import, text, c) = Rhel("""
            ext4 /dev/vdb1
            minix /dev/vdc1
            path var/crash
            kdump_pre relative/script.sh
            final_action explode
            core_collector makedumpfile -d 99 -c
            extra_modules bad#name
            """, null, "/dev/vda1 / ext4 defaults 0 1\n");
        Assert.Equal("/dev/vdb1", Assert.Single(c.Targets).Text);
        Assert.Equal("/var/crash/{host}-{date}", c.Path);
        AssertNotImported(text, import, "minix /dev/vdc1", "cannot write to minix");
        Assert.Contains(import.Warnings, w => w.StartsWith("the dump target minix /dev/vdc1 (/etc/kdump.conf:2) is not imported", StringComparison.Ordinal));
        AssertNotImported(text, import, "path var/crash", "absolute");
        AssertNotImported(text, import, "kdump_pre relative/script.sh", "absolute path");
        AssertNotImported(text, import, "final_action explode", "reboot, halt or poweroff");
        AssertNotImported(text, import, "[-d 99]", "0-31");
        Assert.Equal(PageCodec.Zlib, c.Compression);
        // kdump itself reads "bad#name" as "bad" and a comment.
        Assert.Equal(["bad"], c.ExtraModules);
    }

    [Fact]
    public void Debian12DefaultSavesOnTheRootFilesystemWithZlibLevel31()
    {
        var (import, text, c) = Debian(Samples.Debian12KdumpTools, Samples.Debian12Fstab);
        var t = Assert.Single(c.Targets);
        Assert.Equal(new TargetSpec(TargetKind.Uuid, "4b1f6a0e-7d9c-4e2b-a1f3-5c6d7e8f9a0b"), t.Device);
        Assert.Equal("ext4", c.FilesystemType);
        Assert.Equal("/var/crash/{host}-{date}", c.Path);
        Assert.Equal(DumpLevel.All, c.DumpLevel);
        Assert.Equal(PageCodec.Zlib, c.Compression);   // kdump-tools' default -c
        Assert.Equal(FinalAction.Reboot, c.FailureAction);
        AssertNotImported(text, import, "KDUMP_KERNEL=/var/lib/kdump/vmlinuz", "--kernel");
        AssertNotImported(text, import, "KDUMP_INITRD=/var/lib/kdump/initrd.img", "/var/lib/capture-agent");
        AssertNotImported(text, import, "KDUMP_SYSCTL=\"kernel.panic_on_oops=1\"", "sysctl.d");
        Assert.Contains(import.Notes, n => n.Contains("USE_KDUMP=1"));
        Assert.Null(c.KernelCommandLineAppend);
    }

    [Fact]
    public void UbuntuSshSettingsQuotingAndSecrets()
    {
        var (import, text, c) = Debian(Samples.UbuntuSshKdumpTools, Samples.Debian12Fstab);
        Assert.Equal("ssh:ubuntu@crash-collector.example.com", Assert.Single(c.Targets).Text);
        Assert.Equal("/srv/crash/{host}-{date}", c.Path);
        Assert.Equal("/root/.ssh/kdump_ed25519", c.SshKey);
        Assert.Equal("/root/.ssh/known_hosts", c.SshKnownHosts);
        Assert.Equal(5, c.KeepDumps);
        Assert.Equal(DumpLevel.All, c.DumpLevel);
        Assert.Equal(PageCodec.Zstd, c.Compression);
        Assert.Equal(FinalAction.Shell, c.FailureAction);
        Assert.Equal("usbcore.nousb", c.KernelCommandLineAppend);
        Assert.Equal(["nouveau"], c.Blacklist);
        AssertNotImported(text, import, "[--num-threads 2]", "one thread");
        AssertNotImported(text, import, "KDUMP_DUMP_DMESG=0", "dmesg.txt");
        AssertNotImported(text, import, "[systemd.unit=kdump-tools-dump.service]", "systemd");
        AssertNotImported(text, import, "HOSTTAG=ip", "{host}");
        AssertNotImported(text, import, "KDUMP_COMPRESSION=xz", "whole-file");
        AssertNotImported(text, import, "FTP_PASSWORD=(not copied)", "FTP");
        AssertNotImported(text, import, "if [ -f /etc/default/kdump-local ]", "shell code");
        Assert.DoesNotContain("s3cret", text);
        Assert.DoesNotContain(import.NotImported, n => n.Origin.Text.Contains("s3cret"));
        // Emptied settings take kdump-tools' default: nothing to keep.
        Assert.DoesNotContain(import.NotImported, n => n.Origin.Text.StartsWith("KDUMP_CMDLINE=", StringComparison.Ordinal));
    }

    [Fact]
    public void DebianNfsSavesAtTheTopOfTheExportWithItsTimeouts()
    {
        var (import, text, c) = Debian(Samples.DebianNfsKdumpTools, Samples.Debian12Fstab);
        var t = Assert.Single(c.Targets);
        Assert.Equal(("10.0.0.2", "/srv/crash"), (t.Server, t.Export));
        Assert.Equal("/{host}-{date}", c.Path);
        Assert.Equal("soft,timeo=300,retrans=3", c.NfsOptions);
        Assert.Equal((DumpLevel)1, c.DumpLevel);
        Assert.Equal(PageCodec.Zlib, c.Compression);
        Assert.Equal(FinalAction.Reboot, c.FailureAction);
        // The continued line was all parameters the loader adds by itself.
        Assert.Null(c.KernelCommandLineAppend);
        Assert.Contains(import.Notes, n => n.Contains("nr_cpus=1 irqpoll reset_devices"));
        AssertNotImported(text, import, "SERVER=10.0.0.2", "not a kdump-tools setting");
        Assert.DoesNotContain(import.Warnings, w => w.Contains("is a name"));
    }

    [Fact]
    public void UbuntuOnBtrfsSavesInsideSubvolumeAt()
    {
        var (_, _, c) = Debian("USE_KDUMP=1\n", Samples.UbuntuBtrfsFstab);
        Assert.Equal("UUID=77aa88bb-99cc-4dde-8eff-001122334455", Assert.Single(c.Targets).Text);
        Assert.Equal("/@/var/crash/{host}-{date}", c.Path);
    }

    [Fact]
    public void KdumpToolsFailCommandsMapToActionsOrNotes()
    {
        var (_, _, halt) = Debian("KDUMP_FAIL_CMD=\"halt -f\"\n", Samples.Debian12Fstab);
        Assert.Equal(FinalAction.Halt, halt.FailureAction);
        var (import, text, odd) = Debian("KDUMP_FAIL_CMD=\"/usr/local/bin/page-oncall; reboot -f\"\n", Samples.Debian12Fstab);
        Assert.Equal(FinalAction.Reboot, odd.FailureAction);
        AssertNotImported(text, import, "[/usr/local/bin/page-oncall]", "post_hook");
    }

    [Fact]
    public void UseKdumpZeroIsAWarningAndANote()
    {
        var (import, text, _) = Debian("USE_KDUMP=0\n", Samples.Debian12Fstab);
        Assert.Contains(import.Warnings, w => w.Contains("USE_KDUMP=0"));
        AssertNotImported(text, import, "USE_KDUMP=0", "systemctl disable capture-agent");
    }

    [Fact]
    public void DumpToRootfsWhenTheRootIsAlreadyTheTargetAddsNothingTwice()
    {
        var (import, _, c) = Rhel("failure_action dump_to_rootfs\nfinal_action halt\n", null, Samples.FedoraFstab);
        Assert.Equal("UUID=2f0b6d1e-3c4a-4b5d-9e8f-7a6b5c4d3e2f", Assert.Single(c.Targets).Text);
        Assert.Equal(FinalAction.Halt, c.FailureAction);
        Assert.Contains(import.Notes, n => n.Contains("already the target"));
        Assert.DoesNotContain(import.Warnings, w => w.Contains("subvolume"));
    }

    [Fact]
    public void Ext3TargetsAreMountedAsExt4()
    {
        var (_, text, c) = Rhel("ext3 LABEL=/boot\n", null, "LABEL=/boot /boot ext3 defaults 1 2\n");
        Assert.Equal(new TargetSpec(TargetKind.Label, "/boot"), Assert.Single(c.Targets).Device);
        Assert.Equal("ext4", c.FilesystemType);
        Assert.Contains("# ext3 is mounted with the ext4 driver", text);
    }

    [Fact]
    public void ABadSshDestinationFallsBackToTheRootFilesystem()
    {
        var (import, text, c) = Debian("SSH=\"-oProxyCommand=evil@host\"\n", Samples.Debian12Fstab);
        Assert.Equal(TargetType.Local, Assert.Single(c.Targets).Type);
        AssertNotImported(text, import, "SSH=", "the filesystem holding KDUMP_COREDIR is the target instead");
        Assert.Contains(import.Warnings, w => w.StartsWith("the dump target SSH=", StringComparison.Ordinal));
    }

    /// <summary>What the not-imported notes say about capture-agent is what it does (issue 14: these were untrue).</summary>
    [Fact]
    public void NotesDescribeWhatCaptureAgentDoes()
    {
        var (import, text, _) = Rhel("""
            xfs /dev/vdb1
            auto_reset_crashkernel yes
            core_collector makedumpfile -l --message-level 7 -d 31
            extra_bins /usr/bin/curl
            """, "KDUMP_STDLOGLVL=3\nKDUMP_KERNELVER=6.1.0-9-amd64\n", "/dev/vda1 / ext4 defaults 0 1\n");
        // crashkernel= is written by `crashkernel --apply` when asked, never on its own.
        AssertNotImported(text, import, "auto_reset_crashkernel yes", "capture-agent crashkernel --size auto --apply");
        Assert.DoesNotContain("never edits", text);
        // `dump --message-level` exists: the note says the capture kernel's console has no level setting, and names it.
        AssertNotImported(text, import, "[--message-level 7]", "capture-agent dump --message-level N");
        AssertNotImported(text, import, "KDUMP_STDLOGLVL=3", "--message-level");
        Assert.DoesNotContain("messages have no level setting", text);
        // The automatic images come from the config (load --auto, kernel hooks); --executable is for a hand-built image.
        AssertNotImported(text, import, "extra_bins /usr/bin/curl", "load --initrd IMAGE");
        AssertNotImported(text, import, "KDUMP_KERNELVER=6.1.0-9-amd64", "capture-agent pin KVER");
        Assert.Contains("systemctl restart capture-agent", text);

        // kdump-tools' retry counts: what capture-agent does instead, with its real numbers.
        var (deb, debText, _) = Debian("SSH=u@collector\nSSH_KDUMP_RETRY=4\nNFS_MOUNT_RETRY=2\nKDUMP_INITRD=/x\n", Samples.Debian12Fstab);
        AssertNotImported(debText, deb, "SSH_KDUMP_RETRY=4", $"{CaptureAgent.Targets.Ssh.SshDestination.DefaultRetries} times");
        AssertNotImported(debText, deb, "NFS_MOUNT_RETRY=2", "mounts once per NFS version");
    }

    [Fact]
    public void DroppedTargetsAreWarningsAndNoTargetLeftIsSaid()
    {
        var (import, text, c) = Rhel("virtiofs myfs\n", null, "/dev/vda1 / ext4 defaults 0 1\n");
        Assert.Empty(c.Targets);
        AssertNotImported(text, import, "virtiofs myfs", "cannot write to virtiofs");
        Assert.Contains(import.Warnings, w => w.StartsWith("the dump target virtiofs myfs (/etc/kdump.conf:1) is not imported", StringComparison.Ordinal));
        Assert.Contains(import.Warnings, w => w.StartsWith("no dump target is left", StringComparison.Ordinal));
        Assert.Contains("# WARNING: the dump target virtiofs myfs", text);

        var (dracut, dracutText, _) = Rhel("ext4 /dev/vdb1\ndracut_args --mount \"host:/x /mnt cifs\"\n", null, "/dev/vda1 / ext4 defaults 0 1\n");
        Assert.Contains(dracut.Warnings, w => w.Contains("is not imported: capture-agent cannot write to cifs", StringComparison.Ordinal));
        Assert.DoesNotContain(dracut.Warnings, w => w.StartsWith("no dump target is left", StringComparison.Ordinal));

        // kdump-tools with FTP: the dump goes to the local filesystem instead, and the import says so.
        var (ftp, ftpText, fc) = Debian("USE_KDUMP=1\nFTP=ftp.example.com\nFTP_USER=dump\n", Samples.Debian12Fstab);
        Assert.StartsWith("UUID=", Assert.Single(fc.Targets).Text);
        Assert.Contains(ftp.Warnings, w => w.StartsWith("the dump target FTP=ftp.example.com", StringComparison.Ordinal) && w.Contains("KDUMP_COREDIR is the target instead"));
        AssertNotImported(ftpText, ftp, "FTP_USER=dump", "FTP");
    }

    /// <summary>The commented `# key = value` lines of the config `install` writes are the defaults the parser applies.</summary>
    [Fact]
    public void CommentedDefaultsOfTheInstalledConfigAreTheRealDefaults()
    {
        using var h = new Host.Host.FakeHost();
        string text = CaptureAgent.Host.Installer.DefaultConfig(h.Layout, out _);
        var effective = CaptureAgent.Cli.ConfigCommand.Effective(AgentConfig.Parse("")).ToList();
        var commented = text.Split('\n').Where(l => System.Text.RegularExpressions.Regex.IsMatch(l, @"^# [a-z_]+ = ")).ToList();
        Assert.True(commented.Count >= 5, text);
        foreach (var line in commented)
        {
            string setting = line[2..].Split('#')[0].Trim();
            string key = setting.Split(" = ")[0];
            Assert.True(effective.Contains(setting), $"'{line}' in the default config, but an empty config means: {effective.FirstOrDefault(e => e.StartsWith(key + " = ", StringComparison.Ordinal)) ?? "(no such key)"}");
        }
        Assert.Contains("# keep_dumps = 0 ", text);
        Assert.Contains("# early_load = no ", text);
    }

    /// <summary>The key table is the parser's list: every key's example parses, its default is what `config check` prints.</summary>
    [Fact]
    public void EveryKeyOfTheTableParsesAndItsDefaultIsTheEffectiveOne()
    {
        var effective = CaptureAgent.Cli.ConfigCommand.Effective(AgentConfig.Parse("")).ToList();
        foreach (var key in ConfigKeys.All)
        {
            var c = AgentConfig.Parse($"{key.Name} = {key.Example}\n");
            Assert.True(c.Errors.Count == 0, $"{key.Name} = {key.Example}: {string.Join("; ", c.Errors)}");
            if (key.Default is not null) Assert.Contains($"{key.Name} = {key.Default}", effective);
            Assert.Contains(effective, e => e.StartsWith(key.Name + " = ", StringComparison.Ordinal) || e.StartsWith("# " + key.Name + ":", StringComparison.Ordinal)
                                            || key.Repeatable);
        }
        Assert.Equal(["unknown key 'no_such_key'"], AgentConfig.Parse("no_such_key = 1\n", "x").Errors.Select(e => e[(e.IndexOf(": ", StringComparison.Ordinal) + 2)..]));
        Assert.True(AgentConfig.Parse("early_load = yes\n").EarlyLoad);
        Assert.False(AgentConfig.Parse("").EarlyLoad);
    }
}

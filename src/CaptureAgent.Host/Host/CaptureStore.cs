using CaptureAgent.Initramfs;

namespace CaptureAgent.Host;

/// <summary>Which capture kernel `load --auto` arms, and why.</summary>
/// <param name="Release">The kernel release chosen.</param>
/// <param name="KernelPath">Its kernel image (the first candidate when none exists: the loader then names it as missing).</param>
/// <param name="InitramfsPath">Its capture initramfs in the store (may not be built yet: <see cref="CaptureStore.EnsureCurrent(string, string, Action{string})"/>).</param>
/// <param name="Reason">One line for the log: "pinned", "the running kernel", or why a pin was not honoured.</param>
/// <param name="Pinned">True when the pinned release was taken.</param>
/// <param name="PinnedRelease">What the pin file names, taken or not.</param>
public sealed record CaptureKernelChoice(string Release, string KernelPath, string InitramfsPath, string Reason, bool Pinned, string? PinnedRelease)
{
    public bool KernelExists => File.Exists(KernelPath);
    public bool InitramfsExists => File.Exists(InitramfsPath);
}

/// <summary>What <see cref="CaptureStore.EnsureCurrent(string, string, Action{string})"/> did.</summary>
/// <param name="Rebuilt">The image was (re)built now.</param>
/// <param name="Changes">Why it was rebuilt, or would have been ("config changed", "agent updated"...); empty when current.</param>
/// <param name="Error">Set when the build failed; the previous image, if any, is still there (<see cref="Usable"/>).</param>
public sealed record StoreResult(string Release, string ImagePath, bool Rebuilt, IReadOnlyList<string> Changes, string? Error)
{
    public bool Usable => File.Exists(ImagePath);
    /// <summary>Why a crash would not be saved with this image (every target out of reach), or null (<see cref="CaptureImagePlan.WouldNotSave"/>).</summary>
    public string? WouldNotSave { get; init; }
    /// <summary>Targets the capture chain will pass over, each with its reason.</summary>
    public IReadOnlyList<string> Skipped { get; init; } = [];
}

/// <summary>What `status` learns from the store about one release: is its image stale, and would it save a dump.</summary>
public sealed record StoreVerdict(IReadOnlyList<string> Changes, string? WouldNotSave, IReadOnlyList<string> Skipped);

/// <summary>One stored capture initramfs.</summary>
public sealed record StoreEntry(string Release, string ImagePath, long ImageBytes, DateTimeOffset? BuiltAt, bool Pinned, bool KernelPresent);

/// <summary>
/// The per-kernel capture initramfs store: /var/lib/capture-agent/KVER/initramfs.img (0600) with
/// stamp.json saying what it was built from, a pin (/var/lib/capture-agent/pinned) naming the
/// release to arm instead of the running one, and the choice `load --auto` makes from them.
/// Directories are 0700 and a symbolic link planted in their place is refused; images and stamps
/// are replaced atomically, so a failed build leaves the previous image as it was.
/// </summary>
public static class CaptureStore
{
    // ----- choice -----

    /// <summary>
    /// The pinned release when its kernel image and stored capture initramfs both exist, otherwise
    /// the running release (with the reason the pin was passed over).
    /// </summary>
    public static CaptureKernelChoice Choose(string root, string runningRelease) => Choose(new HostLayout(root), runningRelease);

    public static CaptureKernelChoice Choose(HostLayout host, string runningRelease)
    {
        HostLayout.CheckRelease(runningRelease);
        string? pinned = ReadPin(host, out string? pinProblem);
        string reason = "the running kernel";
        if (pinProblem is not null) reason = $"{pinProblem}; using the running kernel {runningRelease}";
        else if (pinned is not null)
        {
            string? kernel = host.KernelImage(pinned);
            string image = host.ImagePath(pinned);
            if (kernel is not null && File.Exists(image))
                return new CaptureKernelChoice(pinned, kernel, image, pinned == runningRelease ? "pinned (also the running kernel)" : "pinned", true, pinned);
            string missing = kernel is null
                ? $"its kernel image {host.KernelImageCandidates(pinned).First()} does not exist"
                : $"its capture initramfs {image} has not been built (capture-agent kernel-hook add {pinned})";
            reason = $"{pinned} is pinned but {missing}; using the running kernel {runningRelease}";
        }
        return new CaptureKernelChoice(runningRelease, host.KernelImage(runningRelease) ?? host.KernelImageCandidates(runningRelease).First(),
            host.ImagePath(runningRelease), reason, false, pinned);
    }

    // ----- pin -----

    /// <summary>The pinned release, or null; <paramref name="problem"/> says why a pin file was ignored.</summary>
    public static string? ReadPin(HostLayout host, out string? problem)
    {
        problem = null;
        string text;
        try
        {
            if (!File.Exists(host.Pin)) return null;
            text = File.ReadAllText(host.Pin).Trim();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            problem = $"the pin {host.Pin} cannot be read ({e.Message})";
            return null;
        }
        if (text.Length == 0) return null;
        if (!HostLayout.IsValidRelease(text))
        {
            problem = $"the pin {host.Pin} holds '{text}', which is not a kernel release";
            return null;
        }
        return text;
    }

    public static void Pin(HostLayout host, string release)
    {
        HostLayout.CheckRelease(release);
        HostFiles.MakeDirectory(host.Store, HostFiles.Mode0700, refuseLink: true);
        HostFiles.WriteAtomic(host.Pin, HostFiles.Mode0600, release + "\n");
    }

    /// <summary>Removes the pin; true when there was one.</summary>
    public static bool Unpin(HostLayout host) => HostFiles.Remove(host.Pin);

    // ----- build -----

    /// <summary>Builds the capture initramfs of <paramref name="release"/> unless the stored one was made from the same inputs.</summary>
    public static StoreResult EnsureCurrent(string root, string release, Action<string> report) =>
        EnsureCurrent(new HostLayout(root), release, report);

    public static StoreResult EnsureCurrent(HostLayout host, string release, Action<string>? report, bool force = false)
    {
        report ??= _ => { };
        HostLayout.CheckRelease(release);
        string image = host.ImagePath(release);
        CaptureImagePlan plan;
        RebuildStamp current;
        List<string> changes;
        try
        {
            plan = CaptureImagePlan.Make(host, release);
            current = RebuildStamp.From(plan);
            changes = Changes(host, release, current);
        }
        catch (Exception e) when (IsBuildFailure(e))
        {
            return Failed(host, release, [], e.Message, report);
        }
        foreach (var note in plan.Notes) report(note);
        string? wouldNotSave = plan.WouldNotSave();
        var skipped = plan.SkippedTargets().ToList();
        if (wouldNotSave is not null) report($"the dump would not be saved: {wouldNotSave}");
        else foreach (var line in skipped) report($"target {line}: the capture kernel will pass it over");
        if (changes.Count == 0 && !force)
        {
            report($"capture initramfs of {release} is current ({image})");
            return new StoreResult(release, image, false, changes, null) { WouldNotSave = wouldNotSave, Skipped = skipped };
        }
        if (changes.Count == 0) changes.Add("rebuild requested");
        report($"building the capture initramfs of {release}: {string.Join(", ", changes)}");
        try
        {
            HostFiles.MakeDirectory(host.Store, HostFiles.Mode0700, refuseLink: true);
            HostFiles.MakeDirectory(host.EntryDirectory(release), HostFiles.Mode0700, refuseLink: true);
            InitramfsReport? built = null;
            HostFiles.WriteAtomic(image, HostFiles.Mode0600, s => built = InitramfsBuilder.Build(plan.ToSpec(), s));
            foreach (var n in built!.Notes) report(n);
            // The stamp goes last: an image without its stamp only costs one more rebuild.
            new RebuildStamp { Release = release, Parts = current.Parts, BuiltAt = DateTimeOffset.UtcNow, ImageBytes = built.CompressedBytes }
                .Write(host.StampPath(release));
            LinkForPlainLoad(host, release, report);
            report($"{image}: {built.CompressedBytes} bytes, modules: {(built.Modules.Count == 0 ? "none" : string.Join(' ', built.Modules.Select(m => m.Name)))}");
            return new StoreResult(release, image, true, changes, null) { WouldNotSave = wouldNotSave, Skipped = skipped };
        }
        catch (Exception e) when (IsBuildFailure(e))
        {
            return Failed(host, release, changes, e.Message, report) with { WouldNotSave = wouldNotSave, Skipped = skipped };
        }
    }

    private static bool IsBuildFailure(Exception e) =>
        e is IOException or UnauthorizedAccessException or InvalidDataException or ArgumentException;

    private static StoreResult Failed(HostLayout host, string release, List<string> changes, string message, Action<string> report)
    {
        string image = host.ImagePath(release);
        bool keep = File.Exists(image);
        report($"building the capture initramfs of {release} failed: {message}" +
               (keep ? $"; the previous image {image} stays in use" : ""));
        return new StoreResult(release, image, false, changes, message);
    }

    /// <summary>What would make <see cref="EnsureCurrent(HostLayout, string, Action{string}?, bool)"/> rebuild (for `status`); empty when current.</summary>
    public static IReadOnlyList<string> Check(HostLayout host, string release)
    {
        try { return Changes(host, release, RebuildStamp.From(CaptureImagePlan.Make(host, release))); }
        catch (Exception e) when (IsBuildFailure(e)) { return [$"cannot be built: {e.Message}"]; }
    }

    /// <summary>
    /// `status`'s view of a release: what would make it rebuild, and whether the image now stored
    /// would save a dump: a target reachable by the plan, and the driver modules that reach it in
    /// the stored image (one built before the target moved onto md may lack them).
    /// </summary>
    /// <param name="checkStoredImage">False when the image armed is not the stored one (`load --initrd`): only the plan is judged.</param>
    public static StoreVerdict Inspect(HostLayout host, string release, bool checkStoredImage = true)
    {
        CaptureImagePlan plan;
        try { plan = CaptureImagePlan.Make(host, release); }
        catch (Exception e) when (IsBuildFailure(e))
        {
            // Not knowing is not a verdict: the image armed may well reach its target.
            return new StoreVerdict([$"cannot be built: {e.Message}"], null, []);
        }
        var changes = Changes(host, release, RebuildStamp.From(plan));
        string? why = plan.WouldNotSave();
        if (why is null && checkStoredImage && RebuildStamp.Read(host.StampPath(release), out _) is { } stored
            && stored.Parts.TryGetValue(RebuildStamp.ModuleSet, out var set))
        {
            var inImage = set.Items.Select(i => i.Split(' ')[0]).ToHashSet(StringComparer.Ordinal);
            var lacking = plan.LoadableChainModules.Where(m => !inImage.Contains(m)).ToList();
            if (lacking.Count > 0)
                why = $"the stored capture initramfs of {release} lacks {string.Join(", ", lacking)} (built before the targets' devices changed; capture-agent load --auto rebuilds it)";
        }
        return new StoreVerdict(changes, why, plan.SkippedTargets().ToList());
    }

    private static List<string> Changes(HostLayout host, string release, RebuildStamp current)
    {
        if (!File.Exists(host.ImagePath(release))) return ["no capture initramfs yet"];
        var stored = RebuildStamp.Read(host.StampPath(release), out string? problem);
        return stored is null ? [problem!] : stored.Differences(current);
    }

    /// <summary>
    /// /var/lib/capture-agent/initramfs-KVER.img, where plain `load` and the early-boot hooks look,
    /// as a link into the store. A regular file there was made by hand and is left alone.
    /// </summary>
    private static void LinkForPlainLoad(HostLayout host, string release, Action<string> report)
    {
        string link = Path.Combine(host.Store, $"initramfs-{release}.img");
        var info = new FileInfo(link);
        if (info.LinkTarget is null && info.Exists)
        {
            report($"{link} is a file of its own (built by hand?): left as it is");
            return;
        }
        if (info.LinkTarget == $"{release}/{HostLayout.ImageName}") return;
        string tmp = $"{link}.tmp-{Environment.ProcessId}";
        File.Delete(tmp);
        File.CreateSymbolicLink(tmp, $"{release}/{HostLayout.ImageName}");
        File.Move(tmp, link, overwrite: true);
    }

    // ----- removal and listing -----

    /// <summary>Deletes a release's entry (and its pin: the kernel is gone); true when there was one.</summary>
    public static bool Remove(HostLayout host, string release, Action<string>? report = null)
    {
        report ??= _ => { };
        HostLayout.CheckRelease(release);
        bool removed = HostFiles.RemoveTree(host.EntryDirectory(release));
        string link = Path.Combine(host.Store, $"initramfs-{release}.img");
        if (new FileInfo(link).LinkTarget is not null) File.Delete(link);
        report(removed ? $"removed the capture initramfs of {release}" : $"no capture initramfs of {release} was stored");
        if (ReadPin(host, out _) == release && Unpin(host))
            report($"{release} was pinned: the pin is dropped, the running kernel is armed from now on");
        return removed;
    }

    public static List<StoreEntry> List(HostLayout host)
    {
        var entries = new List<StoreEntry>();
        if (!Directory.Exists(host.Store)) return entries;
        string? pinned = ReadPin(host, out _);
        foreach (var dir in Directory.EnumerateDirectories(host.Store).Order(StringComparer.Ordinal))
        {
            string release = Path.GetFileName(dir);
            if (!HostLayout.IsValidRelease(release) || new DirectoryInfo(dir).LinkTarget is not null) continue;
            string image = host.ImagePath(release);
            var stamp = RebuildStamp.Read(host.StampPath(release), out _);
            entries.Add(new StoreEntry(release, image, HostFiles.Stat(image)?.Size ?? -1, stamp?.BuiltAt,
                release == pinned, host.KernelImage(release) is not null));
        }
        return entries;
    }

    /// <summary>
    /// The kernels installed below the root: a module tree (/lib/modules or /usr/lib/modules) with
    /// its kernel image beside it or in /boot. What the package's postinst and install build for.
    /// </summary>
    public static List<string> InstalledReleases(HostLayout host)
    {
        var releases = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var modules in new[] { host.Under("/lib/modules"), host.Under("/usr/lib/modules") })
        {
            if (!Directory.Exists(modules)) continue;
            foreach (var dir in Directory.EnumerateDirectories(modules))
            {
                string release = Path.GetFileName(dir);
                if (HostLayout.IsValidRelease(release) && host.KernelImage(release) is not null) releases.Add(release);
            }
        }
        return releases.ToList();
    }
}

using CaptureAgent.Filtering;
using Microsoft.Win32.SafeHandles;
using CaptureAgent.Common;
using CaptureAgent.Vmcore;

namespace CaptureAgent.Formats;

/// <summary>
/// An existing kdump-compressed dump as the input of another dump (makedumpfile's re-filtering):
/// its pages through <see cref="KdumpFile"/>, its bitmaps as what filtering starts from (the
/// 1st bitmap: pages that exist; the 2nd: pages it holds, the most a new dump can keep).
/// </summary>
public sealed class KdumpImage : IVmcoreImage, IPageMap
{
    private readonly KdumpFile _dump;
    private readonly SafeFileHandle _file;

    public string Path { get; }
    public byte[] NoteBlob => _dump.NoteBlob;
    public int VmcoreInfoOffset { get; } = -1;
    public int VmcoreInfoSize { get; }
    public int CpuCount => _dump.Header.NrCpus;
    public VmcoreInfo? Info => _dump.Info;
    public int PageSize => _dump.PageSize;
    public ulong MaxPfn => _dump.MaxPfn;
    public KdumpFile Dump => _dump;

    /// <summary>The dump level the input was made with: a new dump keeps it as its minimum.</summary>
    public DumpLevel Level => (DumpLevel)(_dump.Header.DumpLevel & (int)DumpLevel.All);

    public KdumpImage(string path)
    {
        Path = path;
        _dump = new KdumpFile(path);
        try
        {
            _file = InputFile.OpenRegular(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            _dump.Dispose();
            throw new VmcoreException(ErrorText.Of(e));
        }
        foreach (var n in ElfNotes.Parse(NoteBlob))
        {
            if (n.Name != "VMCOREINFO") continue;
            VmcoreInfoOffset = n.DescOffset;
            VmcoreInfoSize = n.DescSize;
            break;
        }
    }

    public bool TryRead(ulong paddr, Span<byte> buffer) => _dump.TryRead(paddr, buffer);

    public bool IsPresent(ulong pfn) => _dump.IsPresent(pfn);

    public void FillPresent(PfnBitmap bitmap) => ReadBitmap(_dump.Bitmap1Offset, bitmap);

    /// <summary>
    /// The 2nd bitmap, less what the 1st says does not exist: a damaged input whose 2nd bitmap
    /// claims absent pages must not give a dump that stores pages its own 1st bitmap denies.
    /// </summary>
    public void FillStored(PfnBitmap bitmap)
    {
        ReadBitmap(_dump.Bitmap2Offset, bitmap);
        if (bitmap.Start >= MaxPfn || bitmap.Start % 8 != 0) return;
        int bytes = (int)((Math.Min(bitmap.End, MaxPfn) - bitmap.Start + 7) / 8);
        Span<byte> present = stackalloc byte[4096];
        for (int at = 0; at < bytes; at += present.Length)
        {
            var chunk = present[..Math.Min(present.Length, bytes - at)];
            int got = RandomAccess.Read(_file, chunk, _dump.Bitmap1Offset + (long)(bitmap.Start / 8) + at);
            chunk[Math.Max(got, 0)..].Clear();
            var stored = bitmap.Bytes.AsSpan(at, chunk.Length);
            for (int i = 0; i < chunk.Length; i++) stored[i] &= chunk[i];
        }
    }

    /// <summary>The window's part of a bitmap of the file; bits past max_mapnr (or a short file) stay clear.</summary>
    private void ReadBitmap(long offset, PfnBitmap bitmap)
    {
        if (bitmap.Start >= MaxPfn || bitmap.Start % 8 != 0) return;
        ulong end = Math.Min(bitmap.End, MaxPfn);
        int bytes = (int)((end - bitmap.Start + 7) / 8);
        var dst = bitmap.Bytes.AsSpan(0, bytes);
        int got = RandomAccess.Read(_file, dst, offset + (long)(bitmap.Start / 8));
        dst[Math.Max(got, 0)..].Clear();
        int tailBits = (int)((end - bitmap.Start) % 8);
        if (tailBits != 0) dst[^1] &= (byte)((1 << tailBits) - 1);
    }

    public void Dispose()
    {
        _file.Dispose();
        _dump.Dispose();
    }
}

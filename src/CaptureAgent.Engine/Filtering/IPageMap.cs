namespace CaptureAgent.Filtering;

/// <summary>Which pages a memory image has, window by window: what filtering starts from.</summary>
public interface IPageMap
{
    /// <summary>Sets the window's pages that exist in the crashed machine (the 1st bitmap).</summary>
    void FillPresent(PfnBitmap bitmap);

    /// <summary>Sets the window's pages whose content the image holds (all present ones for a vmcore).</summary>
    void FillStored(PfnBitmap bitmap);

    bool IsPresent(ulong pfn);
}

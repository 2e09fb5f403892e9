namespace CaptureAgent.Compression.Xz;

/// <summary>
/// The decoder's failures: <see cref="InvalidDataException"/>, as GZipStream throws, with an
/// "xz:" message that says whether the input is cut short, damaged or uses something left out.
/// </summary>
internal static class XzErrors
{
    public static InvalidDataException Truncated(string where) => new($"xz: the input ends inside the {where} (truncated file?)");

    public static InvalidDataException Corrupt(string what) => new($"xz: corrupt data: {what}");

    public static InvalidDataException Refused(string what) => new($"xz: {what}");
}

namespace CaptureAgent.Compression.Xz;

/// <summary>
/// The input is not a well-formed xz stream, or uses a feature this decoder leaves out. An
/// <see cref="InvalidDataException"/> like the one GZipStream throws, with a message that says which.
/// </summary>
public sealed class XzException(string message) : InvalidDataException("xz: " + message)
{
    internal static XzException Truncated(string where) => new($"the input ends inside the {where} (truncated file?)");

    internal static XzException Corrupt(string what) => new($"corrupt data: {what}");
}

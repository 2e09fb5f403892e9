using System.Runtime.InteropServices;
using System.Text.RegularExpressions;

namespace CaptureAgent.Common;

/// <summary>
/// What went wrong, in words. The binary is built with UseSystemResourceKeys, so the runtime's own
/// exceptions carry resource keys ("IO_FileNotFound_FileName, /x") instead of messages: those are
/// turned into words here from the exception's type and errno. Messages the agent wrote itself
/// pass through unchanged. Nothing a user reads names an exception type.
/// </summary>
public static partial class ErrorText
{
    /// <summary>The heap the agent runs in (System.GC.HeapHardLimit in the project file).</summary>
    public const int HeapLimitMiB = 32;

    // A resource key: "Arg_OverflowException", "IO_FileNotFound_FileName, /nonexistent".
    [GeneratedRegex(@"^[A-Za-z][A-Za-z0-9]*_[A-Za-z0-9_]+(?:, (?<arg>.*))?$", RegexOptions.Singleline)]
    private static partial Regex ResourceKey();

    // The same keys inside a longer text: CamelCase segments joined by '_' (kernel names such as
    // PG_head_mask or SECTION_SIZE_BITS have lower-case or all-capital segments and never match).
    [GeneratedRegex(@"\b(?=[A-Za-z0-9_]*[a-z])[A-Z][A-Za-z0-9]*(?:_[A-Z][A-Za-z0-9]*)+\b(?:, (?<arg>[^\n]*))?")]
    private static partial Regex EmbeddedKey();

    // An exception type named in a text ("OverflowException: ...").
    [GeneratedRegex(@"\b(?:System\.)?(?<type>[A-Z][A-Za-z]*)Exception\b:? ?")]
    private static partial Regex ExceptionName();

    public static string Of(Exception e)
    {
        string message = e.Message ?? "";
        var key = ResourceKey().Match(message);
        bool ownWords = message.Length > 0 && !key.Success && !message.Contains("Exception", StringComparison.Ordinal);
        if (ownWords && e is not (OutOfMemoryException or InsufficientExecutionStackException)) return message;
        string? subject = key.Success && key.Groups["arg"].Success ? key.Groups["arg"].Value.Trim() : null;
        string words = Describe(e);
        return subject is { Length: > 0 } && subject.Length < 512 ? $"{subject}: {words}" : words;
    }

    /// <summary>
    /// Replaces any resource key or exception type name left in a text with words: the last guard
    /// before a line reaches the user (Log uses it for every line).
    /// </summary>
    public static string Scrub(string text)
    {
        if (text.IndexOf('_') >= 0)
            text = EmbeddedKey().Replace(text, m =>
            {
                string words = DescribeKey(m.Value);
                return m.Groups["arg"].Success && m.Groups["arg"].Value.Trim() is { Length: > 0 } arg ? $"{arg}: {words}" : words;
            });
        if (text.Contains("Exception", StringComparison.Ordinal))
            text = ExceptionName().Replace(text, m => DescribeType(m.Groups["type"].Value) + ": ");
        return text;
    }

    private static string DescribeKey(string key)
    {
        if (key.Contains("FileNotFound", StringComparison.Ordinal)) return "no such file";
        if (key.Contains("DirectoryNotFound", StringComparison.Ordinal)) return "no such directory";
        if (key.Contains("UnauthorizedAccess", StringComparison.Ordinal)) return "permission denied";
        if (key.Contains("EOF", StringComparison.Ordinal) || key.Contains("EndOfStream", StringComparison.Ordinal)) return "the data ends early (truncated)";
        if (key.Contains("OutOfMemory", StringComparison.Ordinal)) return Describe(new OutOfMemoryException());
        if (key.Contains("Overflow", StringComparison.Ordinal) || key.StartsWith("Arg", StringComparison.Ordinal)) return Describe(new OverflowException());
        if (key.Contains("InvalidData", StringComparison.Ordinal) || key.Contains("Corrupt", StringComparison.Ordinal)) return "the data is corrupt";
        if (key.StartsWith("IO_", StringComparison.Ordinal)) return "input/output error";
        return "an internal error (please report it with the input that caused it)";
    }

    private static string DescribeType(string type) => type switch
    {
        "FileNotFound" => "no such file",
        "DirectoryNotFound" => "no such directory",
        "OutOfMemory" => Describe(new OutOfMemoryException()),
        "Overflow" or "ArgumentOutOfRange" or "IndexOutOfRange" or "Argument" => Describe(new OverflowException()),
        "EndOfStream" => "the data ends early (truncated)",
        "InvalidData" => "the data is corrupt",
        "IO" => "input/output error",
        _ => "error",
    };

    private static string Describe(Exception e) => e switch
    {
        FileNotFoundException => "no such file",
        DirectoryNotFoundException => "no such directory",
        PathTooLongException => "the path is too long",
        UnauthorizedAccessException => "permission denied",
        EndOfStreamException => "the data ends early (truncated)",
        OutOfMemoryException or InsufficientMemoryException =>
            $"not enough memory: the input asks for more than the agent's {HeapLimitMiB} MiB heap allows",
        InsufficientExecutionStackException => "the input nests too deeply",
        OverflowException or ArgumentOutOfRangeException or IndexOutOfRangeException or ArgumentException =>
            "a size, count or offset in the input is out of range",
        InvalidDataException => "the data is corrupt",
        FormatException => "a value has the wrong format",
        TimeoutException => "timed out",
        NotSupportedException => "not supported",
        OperationCanceledException => "cancelled",
        IOException io when io.HResult is > 0 and < 4096 => Marshal.GetPInvokeErrorMessage(io.HResult),
        IOException => "input/output error",
        _ => "an internal error (please report it with the input that caused it)",
    };
}

namespace CaptureAgent.Common;

public static class ExitCodes
{
    public const int Ok = 0;
    /// <summary>Nothing usable was produced.</summary>
    public const int Failed = 1;
    public const int Usage = 2;
    /// <summary>Output was written, but the input was damaged or filtering was degraded (see the messages).</summary>
    public const int Degraded = 3;
    /// <summary>`status`, `load`: a capture kernel is armed, but no dump target can be reached by it (LUKS, a missing driver...).</summary>
    public const int ArmedWontSave = 4;
}

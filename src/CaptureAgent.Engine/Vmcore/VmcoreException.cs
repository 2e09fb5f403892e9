namespace CaptureAgent.Vmcore;

/// <summary>An input that cannot be used; the message names the problem in one line.</summary>
public sealed class VmcoreException(string message) : Exception(message);

// The agent runs on Linux only: the kexec, vmcore and PID-1 code have no meaning elsewhere.
[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]

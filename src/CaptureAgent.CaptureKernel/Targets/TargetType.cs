namespace CaptureAgent.Targets;

/// <summary>What a `target =` line names: a local filesystem, a raw device, an NFS export or an SSH host.</summary>
public enum TargetType { Local, Raw, Nfs, Ssh }

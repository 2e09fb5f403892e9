using System.Buffers.Binary;

namespace CaptureAgent.Targets;

/// <summary>
/// Linux swap: a 10-byte signature in the last bytes of the first page (whatever the page size of
/// the kernel that made it), with a version 1 header at byte 1024 holding the uuid and a 16-byte
/// label. A hibernation image replaces the signature with its own.
/// </summary>
internal static class SwapHeader
{
    private static readonly int[] PageSizes = [4096, 8192, 16384, 32768, 65536];

    public static VolumeIdentity? Probe(BlockSource source)
    {
        foreach (int page in PageSizes)
        {
            var magic = source.Read(page - 10, 10);
            if (magic is null) return null;
            var m = magic.AsSpan();
            if (m.SequenceEqual("SWAP-SPACE"u8))
                return new VolumeIdentity("swap") { Usage = VolumeUsage.Other, Version = "0" };
            if (m.SequenceEqual("SWAPSPACE2"u8))
            {
                var header = source.Read(1024, 44);
                if (header is null) return null;
                uint version = BinaryPrimitives.ReadUInt32LittleEndian(header);
                if (version != 1 && BinaryPrimitives.ReverseEndianness(version) != 1) return null;
                return new VolumeIdentity("swap", SuperblockText.Uuid(header.AsSpan(12, 16)), SuperblockText.Label(header.AsSpan(28, 16)))
                {
                    Usage = VolumeUsage.Other,
                    Version = "1",
                };
            }
            if (m.StartsWith("S1SUSPEND"u8) || m.StartsWith("S2SUSPEND"u8) || m.StartsWith("ULSUSPEND"u8) || m.SequenceEqual("LINHIB0001"u8))
                return new VolumeIdentity("swsuspend") { Usage = VolumeUsage.Other };
        }
        return null;
    }
}

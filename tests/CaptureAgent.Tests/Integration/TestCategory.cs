using System.Diagnostics;
using System.Reflection;
using Xunit;

namespace CaptureAgent.Tests.Integration;

/// <summary>
/// The categories that keep a quick run of pure unit tests one command
/// (<c>dotnet test --filter "Category!=Vm&amp;Category!=Root&amp;Category!=Fixture&amp;Category!=Binary"</c>).
/// The helpers that boot QEMU, need root, read the fixture cache or run the published binary call
/// <see cref="Require"/>, so a test that forgets its trait fails saying which one it needs.
/// </summary>
public static class TestCategory
{
    /// <summary>Boots QEMU (minutes of TCG).</summary>
    public const string Vm = "Vm";
    /// <summary>Loop devices, mounts, network namespaces: needs root.</summary>
    public const string Root = "Root";
    /// <summary>Reads a real vmcore or kernel tree that scripts/fixtures.sh makes.</summary>
    public const string Fixture = "Fixture";
    /// <summary>Runs the published NativeAOT binary (scripts/test publishes it).</summary>
    public const string Binary = "Binary";

    /// <summary>
    /// Fails unless the calling test (or its class) carries <c>[Trait("Category", category)]</c>. A VM test
    /// stands for all of them: it is never in a quick run and needs root, fixtures and the binary anyway.
    /// </summary>
    public static void Require(string category)
    {
        foreach (var frame in new StackTrace().GetFrames())
        {
            if (frame.GetMethod() is not MethodInfo m || !m.IsDefined(typeof(FactAttribute), inherit: true)) continue;
            if (Has(m, category) || Has(m, Vm) || (m.DeclaringType is { } t && (Has(t, category) || Has(t, Vm)))) return;
            throw new InvalidOperationException(
                $"{m.DeclaringType?.Name}.{m.Name} needs [Trait(\"Category\", \"{category}\")] (on the test or its class): quick runs filter on it");
        }
        // Not under a test method's frame (a worker thread of the test): the test's own call checked it.
    }

    private static bool Has(MemberInfo member, string category) =>
        member.GetCustomAttributesData().Any(a => a.AttributeType == typeof(TraitAttribute)
            && a.ConstructorArguments is [{ Value: "Category" }, { Value: string v }] && v == category);
}

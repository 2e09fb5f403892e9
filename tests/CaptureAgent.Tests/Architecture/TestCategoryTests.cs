using System.Reflection;
using CaptureAgent.Tests.Integration;
using Xunit;

namespace CaptureAgent.Tests.Architecture;

/// <summary>The categories a quick run filters on are where they must be.</summary>
public class TestCategoryTests
{
    private static bool HasCategory(MemberInfo m, string category) =>
        m.GetCustomAttributesData().Any(a => a.AttributeType == typeof(TraitAttribute)
            && a.ConstructorArguments is [{ Value: "Category" }, { Value: string v }] && v == category);

    [Fact]
    public void EveryClassThatBootsVirtualMachinesIsInTheVmCategory()
    {
        var vmClasses = typeof(TestCategoryTests).Assembly.GetTypes()
            .Where(t => t.GetCustomAttributesData().Any(a => a.AttributeType == typeof(CollectionAttribute)
                && a.ConstructorArguments is [{ Value: "VirtualMachines" }]))
            .ToList();
        Assert.NotEmpty(vmClasses);
        Assert.All(vmClasses, t => Assert.True(HasCategory(t, TestCategory.Vm), $"{t.Name} is in the VirtualMachines collection without [Trait(\"Category\", \"Vm\")]"));
    }

    [Fact]
    public void ARequirementWithoutItsTraitFailsAndNamesTheTrait()
    {
        var e = Assert.Throws<InvalidOperationException>(() => TestCategory.Require(TestCategory.Fixture));
        Assert.Contains($"{nameof(ARequirementWithoutItsTraitFailsAndNamesTheTrait)} needs [Trait(\"Category\", \"Fixture\")]", e.Message);
    }

    [Fact]
    public void NoCategoryCarriesTheOldNames()
    {
        var old = typeof(TestCategoryTests).Assembly.GetTypes()
            .SelectMany(t => new MemberInfo[] { t }.Concat(t.GetMethods()))
            .Where(m => HasCategory(m, "EndToEnd") || HasCategory(m, "Integration"))
            .Select(m => m.Name).ToList();
        Assert.Empty(old);
    }
}

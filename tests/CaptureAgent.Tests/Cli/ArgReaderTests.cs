using CaptureAgent.Cli;
using Xunit;

namespace CaptureAgent.Tests.Cli;

/// <summary>The forms every command takes, read as getopt_long reads them, and the mistakes said in words.</summary>
public class ArgReaderTests
{
    /// <summary>
    /// Reads like dump's switch: -c, -z and --json are flags, -d and --message-level take a value.
    /// Returns what was read as "option=value" / "option" items, then "operands: ...".
    /// </summary>
    private static List<string> Read(params string[] args)
    {
        var cli = new ArgReader("test", args);
        var seen = new List<string>();
        while (cli.Next() is { } option)
        {
            switch (option)
            {
                case "-c" or "-z" or "--json": seen.Add(option); break;
                case "-d" or "--message-level": seen.Add($"{option}={cli.Value()}"); break;
                default: throw cli.Unknown();
            }
        }
        seen.Add("operands: " + string.Join(' ', cli.Operands(0, 9, "anything")));
        return seen;
    }

    private static string Fails(params string[] args) => Assert.Throws<UsageException>(() => Read(args)).Message;

    [Theory]
    [InlineData("-cd 31", "-c,-d=31")]
    [InlineData("-cd31", "-c,-d=31")]
    [InlineData("-d31", "-d=31")]
    [InlineData("-d 31", "-d=31")]
    [InlineData("-zc", "-z,-c")]
    [InlineData("--message-level=1", "--message-level=1")]
    [InlineData("--message-level 1", "--message-level=1")]
    [InlineData("--message-level= ", "--message-level=")]
    [InlineData("-d -3", "-d=-3")]
    public void OptionForms(string line, string expected)
    {
        string[] args = line == "--message-level= " ? ["--message-level="] : line.Split(' ');
        var seen = Read(args);
        Assert.Equal(expected.Split(','), seen.Take(seen.Count - 1));
        Assert.Equal("operands: ", seen[^1]);
    }

    [Fact]
    public void OperandsAreKeptInOrderWhereverTheyStand()
    {
        Assert.Equal(new[] { "-c", "-d=31", "operands: VMCORE DUMPFILE" }, Read("VMCORE", "-c", "-d", "31", "DUMPFILE"));
        // "-" is an operand (standard output); after "--" everything is.
        Assert.Equal(new[] { "operands: - -x --json" }, Read("-", "--", "-x", "--json"));
        Assert.Equal(new[] { "-c", "operands: --" }, Read("-c", "--", "--"));
        // A value is taken as written, even when it looks like an option.
        Assert.Equal(new[] { "-d=--json", "operands: x" }, Read("-d", "--json", "x"));
    }

    [Fact]
    public void MistakesAreSaidInWords()
    {
        Assert.Equal("test: unknown option --bogus", Fails("--bogus"));
        Assert.Equal("test: unknown option -x", Fails("-cx"));
        Assert.Equal("test: unknown option --bogus", Fails("--bogus=1"));
        Assert.Equal("test: -d needs a value", Fails("-c", "-d"));
        Assert.Equal("test: --message-level needs a value", Fails("--message-level"));
        Assert.Equal("test: --json takes no value", Fails("--json=yes"));
    }

    [Fact]
    public void OperandCountsAreChecked()
    {
        var cli = new ArgReader("verify", ["a", "b"]);
        Assert.Null(cli.Next());
        Assert.Equal("verify: unexpected argument 'b'", Assert.Throws<UsageException>(() => cli.Operands(1, 1, "DIR or DUMPFILE")).Message);
        Assert.Equal("verify: expected DIR or DUMPFILE", Assert.Throws<UsageException>(() => new ArgReader("verify", []).Operands(1, 1, "DIR or DUMPFILE")).Message);
        var status = new ArgReader("status", ["extra"]);
        Assert.Null(status.Next());
        Assert.Equal("status: unexpected argument 'extra'", Assert.Throws<UsageException>(status.NoOperands).Message);
        var two = new ArgReader("c", ["x", "y"]);
        Assert.Null(two.Next());
        Assert.Equal(new[] { "x", "y" }, two.Operands(2, 2, "X and Y"));
    }

    [Theory]
    [InlineData("31", 31)]
    [InlineData("0", 0)]
    [InlineData("+7", 7)]
    public void NumbersWithinTheirRange(string text, int expected)
    {
        var cli = new ArgReader("dump", ["-d", text]);
        Assert.Equal("-d", cli.Next());
        Assert.Equal(expected, cli.Int(0, 31, "a dump level"));
    }

    [Theory]
    [InlineData("32")]
    [InlineData("-1")]
    [InlineData("thirty")]
    [InlineData("")]
    [InlineData("0x1f")]
    public void NumbersOutsideTheirRangeAreRefused(string text)
    {
        var cli = new ArgReader("dump", [$"-d{text}", "more"]);
        Assert.Equal("-d", cli.Next());
        // An empty attached value means the next word: "-d" then "more", refused as well.
        string expected = text.Length == 0 ? "more" : text;
        Assert.Equal($"dump: -d takes a dump level from 0 to 31, not '{expected}'", Assert.Throws<UsageException>(() => cli.Int(0, 31, "a dump level")).Message);
    }

    [Fact]
    public void ListsAndNonEmptyValues()
    {
        var cli = new ArgReader("load", ["--blacklist=a,,b", "--device", ""]);
        Assert.Equal("--blacklist", cli.Next());
        Assert.Equal(new[] { "a", "b" }, cli.List());
        Assert.Equal("--device", cli.Next());
        Assert.Equal("load: --device needs a value", Assert.Throws<UsageException>(cli.NonEmptyValue).Message);
    }

    [Theory]
    [InlineData(true, "--help")]
    [InlineData(true, "-h")]
    [InlineData(true, "build", "-o", "x", "--help")]
    [InlineData(true, "--bogus", "-h")]
    [InlineData(false, "--", "--help")]
    [InlineData(false, "--helpful")]
    [InlineData(false, "-hx")]
    [InlineData(false)]
    public void HelpIsAskedByItsOwnWordBeforeTheOptionsEnd(bool asks, params string[] args) =>
        Assert.Equal(asks, ArgReader.AsksForHelp(args));
}

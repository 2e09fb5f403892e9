using System.Globalization;

namespace CaptureAgent.Cli;

/// <summary>A command line that cannot be run as written: said in one line, exit 2 (<see cref="ExitCodes.Usage"/>).</summary>
public sealed class UsageException(string message) : Exception(message);

/// <summary>
/// One command's arguments, read as getopt_long reads them, so every command takes the same forms:
/// <c>--opt value</c> and <c>--opt=value</c>; short options clustered (<c>-cd 31</c>, <c>-cd31</c>) or
/// with the value attached (<c>-d31</c>); <c>--</c> ends the options; <c>-</c> alone is an operand.
/// Operands (the words that are not options) are kept in order wherever they stand. The command
/// asks <see cref="Next"/> for each option and takes its value with <see cref="Value"/> only when
/// the option has one: that is how a cluster is split, with no table of options to keep in step
/// with the command's switch. Every mistake is a <see cref="UsageException"/>.
/// </summary>
public sealed class ArgReader
{
    private readonly string[] _args;
    private int _next;
    /// <summary>What follows the current short option inside its word ("d31" after -c in -cd31).</summary>
    private string _rest = "";
    /// <summary>The value written after '=' of the current long option, until it is taken.</summary>
    private string? _attached;
    private bool _optionsEnded;
    private readonly List<string> _operands = [];

    /// <param name="command">How errors name the command ("dump", "net up").</param>
    public ArgReader(string command, string[] args)
    {
        Command = command;
        _args = args;
    }

    public string Command { get; }

    /// <summary>The option <see cref="Next"/> returned last, as the user would write it alone ("-d", "--num-threads").</summary>
    public string Option { get; private set; } = "";

    /// <summary>
    /// -h or --help among the words before "--": checked before anything is read, so that help is
    /// printed whatever else is on the line (a mistyped option, a file name) and nothing is done.
    /// </summary>
    public static bool AsksForHelp(IEnumerable<string> args) =>
        args.TakeWhile(a => a != "--").Any(a => a is "-h" or "--help");

    /// <summary>The next option, or null when every word is read; operands are collected on the way.</summary>
    public string? Next()
    {
        if (_attached is not null) throw Error($"{Option} takes no value");
        if (_rest.Length > 0) return ShortOption(_rest);
        while (_next < _args.Length)
        {
            string word = _args[_next++];
            if (_optionsEnded || word == "-" || !word.StartsWith('-')) _operands.Add(word);
            else if (word == "--") _optionsEnded = true;
            else if (word.StartsWith("--", StringComparison.Ordinal)) return LongOption(word);
            else return ShortOption(word[1..]);
        }
        return null;
    }

    private string ShortOption(string cluster)
    {
        _rest = cluster[1..];
        return Option = "-" + cluster[0];
    }

    private string LongOption(string word)
    {
        int eq = word.IndexOf('=');
        if (eq < 0) return Option = word;
        _attached = word[(eq + 1)..];
        return Option = word[..eq];
    }

    /// <summary>The current option's value: after '=', the rest of its word (-d31), or the next word.</summary>
    public string Value()
    {
        if (_attached is { } attached)
        {
            _attached = null;
            return attached;
        }
        if (_rest.Length > 0)
        {
            string rest = _rest;
            _rest = "";
            return rest;
        }
        if (_next < _args.Length) return _args[_next++];
        throw Error($"{Option} needs a value");
    }

    /// <summary>A value that may not be empty (a path, a device name).</summary>
    public string NonEmptyValue() => Value() is { Length: > 0 } v ? v : throw Error($"{Option} needs a value");

    /// <summary>The value as a whole number within [min, max].</summary>
    public int Int(int min, int max, string? what = null)
    {
        string v = Value();
        if (int.TryParse(v, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int n) && n >= min && n <= max) return n;
        throw Error($"{Option} takes {what ?? "a number"} from {min} to {max}, not '{v}'");
    }

    /// <summary>A comma-separated list (--module a,b), empty items dropped.</summary>
    public string[] List() => Value().Split(',', StringSplitOptions.RemoveEmptyEntries);

    /// <summary>The operands, checked against how many the command takes.</summary>
    /// <param name="expected">What they are, for the message ("VMCORE and DUMPFILE").</param>
    public IReadOnlyList<string> Operands(int min, int max, string expected)
    {
        if (_operands.Count > max) throw Error($"unexpected argument '{_operands[max]}'");
        if (_operands.Count < min) throw Error($"expected {expected}");
        return _operands;
    }

    /// <summary>For a command that takes no operands: any is an error.</summary>
    public void NoOperands() => Operands(0, 0, "no arguments");

    /// <summary>For the default of a command's switch.</summary>
    public UsageException Unknown() => Error($"unknown option {Option}");

    public UsageException Error(string message) => new($"{Command}: {message}");
}

using System.Text;
using System.Text.RegularExpressions;
using CaptureAgent.Common;

namespace CaptureAgent.Cli;

/// <summary>
/// /usr/share/bash-completion/completions/capture-agent, made from the help table: the commands,
/// each command's options as its usage text names them, and the words that follow some commands.
/// </summary>
public static partial class BashCompletion
{
    /// <summary>Words a command takes first (its subcommands), beyond its options.</summary>
    public static readonly IReadOnlyDictionary<string, string[]> Subcommands = new Dictionary<string, string[]>
    {
        ["config"] = ["import", "check", "default"],
        ["net"] = ["up", "list", "modules"],
        ["kernel-hook"] = ["add", "remove", "early"],
        ["initramfs"] = ["build"],
        ["test"] = ["--crash"],
    };

    [GeneratedRegex(@"(?<![\w-])--?[A-Za-z][A-Za-z0-9-]*")]
    private static partial Regex OptionPattern();

    /// <summary>The options a usage text names (--config, -o...), in order of first mention.</summary>
    public static List<string> Options(string usage) =>
        OptionPattern().Matches(usage).Select(m => m.Value).Where(o => o != "-" && !o.EndsWith('-')).Distinct().ToList();

    public static string Script()
    {
        var sb = new StringBuilder();
        sb.Append($"# bash completion for capture-agent {BuildInfo.Version}: made by `capture-agent help --bash-completion`\n");
        sb.Append("# from the same texts as `capture-agent COMMAND --help`.\n\n");
        sb.Append("_capture_agent()\n{\n");
        sb.Append("    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} words='' command=${COMP_WORDS[1]:-}\n");
        sb.Append("    COMPREPLY=()\n");
        sb.Append("    if [ \"$COMP_CWORD\" -eq 1 ]; then\n");
        sb.Append($"        mapfile -t COMPREPLY < <(compgen -W '{string.Join(' ', CommandHelp.All.Select(c => c.Name))} --help --version' -- \"$cur\")\n");
        sb.Append("        return 0\n    fi\n");
        sb.Append("    case $prev in\n");
        sb.Append("        --config|--kernel|--initrd|--output|-o|--root|--dir|--work|--binary|--agent|--kdump-conf|--sysconfig|--kdump-tools|--executable|--modules-root|--resolv-conf)\n");
        sb.Append("            [ \"$command\" = propagate ] && [ \"$prev\" = -o ] && return 0\n");
        sb.Append("            mapfile -t COMPREPLY < <(compgen -f -- \"$cur\")\n");
        sb.Append("            return 0 ;;\n");
        sb.Append("    esac\n");
        sb.Append("    case $command in\n");
        foreach (var c in CommandHelp.All)
        {
            var words = new List<string>();
            if (Subcommands.TryGetValue(c.Name, out var subs)) words.AddRange(subs);
            if (c.Name == "help") words.AddRange(CommandHelp.All.Select(x => x.Name));
            words.AddRange(Options(c.Usage).Where(o => !words.Contains(o)));
            sb.Append($"        {c.Name}) words='{string.Join(' ', words)}' ;;\n");
        }
        sb.Append("    esac\n");
        sb.Append("    if [[ $cur == -* ]] || [ \"$COMP_CWORD\" -eq 2 ]; then\n");
        sb.Append("        mapfile -t COMPREPLY < <(compgen -W \"$words\" -- \"$cur\")\n");
        sb.Append("    fi\n");
        sb.Append("    if [ ${#COMPREPLY[@]} -eq 0 ]; then\n");
        sb.Append("        mapfile -t COMPREPLY < <(compgen -f -- \"$cur\")\n");
        sb.Append("    fi\n");
        sb.Append("    return 0\n}\n");
        sb.Append("complete -F _capture_agent capture-agent\n");
        return sb.ToString();
    }
}

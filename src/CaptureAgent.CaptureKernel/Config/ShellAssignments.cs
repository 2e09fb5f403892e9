using System.Text;

namespace CaptureAgent.Config;

/// <summary>One <c>NAME=value</c> of a sourced shell file, with its value as the shell would see it.</summary>
/// <param name="Problem">Why the value could not be read exactly (command substitution, unknown expansion), or null.</param>
public sealed record ShellAssignment(string Name, string Value, int Line, string Text, string? Problem);

/// <summary>A statement of the file that is not a plain assignment (an <c>if</c>, a command...).</summary>
public sealed record ShellStatement(int Line, string Text);

/// <summary>
/// Reads the variable assignments of a file meant to be sourced by sh (/etc/default/kdump-tools,
/// /etc/sysconfig/kdump) without running anything: <c>export</c>, single and double quotes, backslash
/// escapes, quoted values over several lines, line continuations, trailing comments, and
/// <c>$NAME</c> / <c>${NAME}</c> / <c>${NAME:-word}</c> of variables set earlier in the file.
/// Anything else is returned as a statement it did not interpret.
/// </summary>
public static class ShellAssignments
{
    public static (List<ShellAssignment> Assignments, List<ShellStatement> Other) Parse(string text)
    {
        var assignments = new List<ShellAssignment>();
        var other = new List<ShellStatement>();
        var vars = new Dictionary<string, string>(StringComparer.Ordinal);
        string norm = text.Replace("\r\n", "\n");
        var r = new Reader(norm);
        while (!r.End)
        {
            r.SkipBlanks();
            if (r.End) break;
            char c = r.Peek;
            if (c == '\n' || c == ';') { r.Next(); continue; }
            if (c == '#') { r.SkipToEol(); continue; }
            int line = r.Line, start = r.Pos;
            string word = r.PeekName();
            if (word is "export" or "readonly" && r.CharAfter(word.Length) is ' ' or '\t')
            {
                r.Advance(word.Length);
                r.SkipBlanks();
                // `export NAME` of a name set before changes nothing we read.
                string name = r.PeekName();
                if (name.Length == 0 || r.CharAfter(name.Length) != '=')
                {
                    r.Advance(name.Length);
                    r.SkipBlanks();
                    if (name.Length > 0 && r.AtStatementEnd()) continue;
                    r.Pos = start;
                    r.Line = line;
                    other.Add(new ShellStatement(line, r.ReadStatement()));
                    continue;
                }
                word = name;
            }
            if (word.Length > 0 && r.CharAfter(word.Length) == '=')
            {
                r.Advance(word.Length + 1);
                var (value, problem) = r.ReadWord(vars);
                r.SkipBlanks();
                if (!r.AtStatementEnd())
                {
                    // NAME=value command: the assignment only applies to that command.
                    problem ??= "followed by a command on the same line, so the shell does not keep it";
                    r.SkipToStatementEnd();
                }
                string stmt = norm[start..r.Pos].Trim();
                assignments.Add(new ShellAssignment(word, value, line, OneLine(stmt), problem));
                if (problem is null) vars[word] = value;
                continue;
            }
            other.Add(new ShellStatement(line, r.ReadStatement()));
        }
        return (assignments, other);
    }

    /// <summary>The last assignment of each name (what the shell ends up with).</summary>
    public static Dictionary<string, ShellAssignment> Last(IEnumerable<ShellAssignment> assignments)
    {
        var d = new Dictionary<string, ShellAssignment>(StringComparer.Ordinal);
        foreach (var a in assignments) d[a.Name] = a;
        return d;
    }

    private static string OneLine(string s) => s.Replace("\\\n", " ").Replace('\n', ' ').Replace('\t', ' ');

    private sealed class Reader(string text)
    {
        public int Pos;
        public int Line = 1;
        public bool End => Pos >= text.Length;
        public char Peek => text[Pos];
        public char CharAfter(int n) => Pos + n < text.Length ? text[Pos + n] : '\0';

        public char Next()
        {
            char c = text[Pos++];
            if (c == '\n') Line++;
            return c;
        }

        public void Advance(int n)
        {
            for (int i = 0; i < n && !End; i++) Next();
        }

        public void SkipBlanks()
        {
            while (!End)
            {
                if (Peek is ' ' or '\t') Pos++;
                else if (Peek == '\\' && CharAfter(1) == '\n') { Pos++; Next(); }
                else break;
            }
        }

        public void SkipToEol()
        {
            while (!End && Peek != '\n') Pos++;
        }

        public bool AtStatementEnd() => End || Peek is '\n' or ';' or '#';

        public void SkipToStatementEnd()
        {
            while (!End && Peek is not ('\n' or ';')) Next();
        }

        public string PeekName()
        {
            int i = Pos;
            if (i >= text.Length || !(char.IsAsciiLetter(text[i]) || text[i] == '_')) return "";
            while (i < text.Length && (char.IsAsciiLetterOrDigit(text[i]) || text[i] == '_')) i++;
            return text[Pos..i];
        }

        /// <summary>The rest of a statement that is not an assignment, quotes kept, up to its end of line.</summary>
        public string ReadStatement()
        {
            var sb = new StringBuilder();
            char quote = '\0';
            while (!End)
            {
                char c = Peek;
                if (quote == '\0' && c == '\n') break;
                if (quote == '\0' && c == '#' && (sb.Length == 0 || sb[^1] is ' ' or '\t')) { SkipToEol(); break; }
                if (c == '\\' && CharAfter(1) == '\n') { Pos++; Next(); sb.Append(' '); continue; }
                if (quote == '\0' && c is '"' or '\'') quote = c;
                else if (c == quote) quote = '\0';
                sb.Append(Next() == '\n' ? ' ' : c);
            }
            return sb.ToString().Trim();
        }

        /// <summary>One shell word: quotes removed, escapes and known variables expanded.</summary>
        public (string Value, string? Problem) ReadWord(Dictionary<string, string> vars)
        {
            var sb = new StringBuilder();
            string? problem = null;
            while (!End)
            {
                char c = Peek;
                if (c is ' ' or '\t' or '\n' or ';') break;
                if (c is '|' or '&' or '<' or '>' or '(' or ')') { problem ??= $"'{c}' is shell syntax this reader does not run"; break; }
                if (c == '\'')
                {
                    Next();
                    while (!End && Peek != '\'') sb.Append(Next());
                    if (End) problem ??= "unterminated single quote";
                    else Next();
                }
                else if (c == '"')
                {
                    Next();
                    while (!End && Peek != '"')
                    {
                        char d = Peek;
                        if (d == '\\' && CharAfter(1) is '$' or '`' or '"' or '\\') { Next(); sb.Append(Next()); }
                        else if (d == '\\' && CharAfter(1) == '\n') { Next(); Next(); }
                        else if (d == '$') problem ??= Expand(sb, vars);
                        else if (d == '`') { problem ??= "command substitution is not run"; sb.Append(Next()); }
                        else sb.Append(Next());
                    }
                    if (End) problem ??= "unterminated double quote";
                    else Next();
                }
                else if (c == '\\')
                {
                    Next();
                    if (End) break;
                    if (Peek == '\n') Next();
                    else sb.Append(Next());
                }
                else if (c == '$') problem ??= Expand(sb, vars);
                else if (c == '`') { problem ??= "command substitution is not run"; sb.Append(Next()); }
                else sb.Append(Next());
            }
            return (sb.ToString(), problem);
        }

        private string? Expand(StringBuilder sb, Dictionary<string, string> vars)
        {
            Next(); // $
            if (End) { sb.Append('$'); return null; }
            if (Peek == '(') { sb.Append("$("); Next(); return "command substitution is not run"; }
            if (Peek == '{')
            {
                int close = text.IndexOf('}', Pos);
                if (close < 0) { sb.Append("${"); Next(); return "unterminated ${"; }
                string inner = text[(Pos + 1)..close];
                Advance(close - Pos + 1);
                int op = inner.IndexOfAny([':', '-', '=', '+', '?', '#', '%', '/']);
                string name = op < 0 ? inner : inner[..op];
                string rest = op < 0 ? "" : inner[op..];
                if (!IsName(name)) { sb.Append("${").Append(inner).Append('}'); return $"${{{inner}}} is not expanded"; }
                bool set = vars.TryGetValue(name, out var v);
                if (rest.Length == 0)
                {
                    sb.Append(v);
                    return set ? null : $"${name} is not set in this file (taken as empty)";
                }
                if (rest.StartsWith(":-") || rest.StartsWith(":="))
                {
                    sb.Append(string.IsNullOrEmpty(v) ? rest[2..] : v);
                    return null;
                }
                if (rest[0] is '-' or '=')
                {
                    sb.Append(set ? v : rest[1..]);
                    return null;
                }
                sb.Append("${").Append(inner).Append('}');
                return $"${{{inner}}} is not expanded";
            }
            string simple = PeekName();
            if (simple.Length == 0)
            {
                sb.Append('$');
                return char.IsAsciiDigit(Peek) || Peek is '@' or '*' or '#' or '?' or '!' or '$' ? $"${Peek} is not expanded" : null;
            }
            Advance(simple.Length);
            if (vars.TryGetValue(simple, out var value)) { sb.Append(value); return null; }
            return $"${simple} is not set in this file (taken as empty)";
        }

        private static bool IsName(string s) => s.Length > 0 && (char.IsAsciiLetter(s[0]) || s[0] == '_') && s.All(ch => char.IsAsciiLetterOrDigit(ch) || ch == '_');
    }
}

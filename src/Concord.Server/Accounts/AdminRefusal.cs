namespace Concord.Server.Accounts;

/// <summary>
/// Why an administration verb (shared by the API and the command line) refused its input: the field in the API's terms,
/// the reason, and whether it is a conflict with what exists (409) rather than bad input (400). The command line prints
/// the reason.
/// </summary>
internal sealed record AdminRefusal(string Field, string Reason, bool Conflict = false)
{
    public override string ToString() => Reason;

    /// <summary>
    /// The reason a name or description is refused, or null: trimmed, 1 to <paramref name="max"/> characters of text.
    /// With <paramref name="named"/> the reason starts with it, for the command line, which prints reasons alone.
    /// </summary>
    public static AdminRefusal? Text(string field, string? text, int max, string? named = null)
    {
        var prefix = named is null ? "" : named + " ";
        if (string.IsNullOrWhiteSpace(text) || text.Trim().Length > max)
        {
            return new AdminRefusal(field, $"{prefix}must be 1 to {max} characters (not only spaces)");
        }

        return Reports.ReportRules.ControlCharacterProblem(text) is { } problem ? new AdminRefusal(field, prefix + problem) : null;
    }
}

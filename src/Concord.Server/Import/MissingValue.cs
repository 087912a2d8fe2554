namespace Concord.Server.Import;

/// <summary>
/// A CSV cell that says "no value": R's <c>write.csv</c> and <c>readr::write_csv</c> write a missing value as <c>NA</c>,
/// spreadsheets as <c>N/A</c>. Read as empty in the columns where it stands for nothing (an actor, a note, a province),
/// never in a required figure, where it is refused by name as before.
/// </summary>
internal static class MissingValue
{
    public static string Cleared(string value) =>
        value.Equals("NA", StringComparison.OrdinalIgnoreCase) || value.Equals("N/A", StringComparison.OrdinalIgnoreCase) ? "" : value;
}

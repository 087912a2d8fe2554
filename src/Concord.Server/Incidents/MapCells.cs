using Concord.Server.Http;

namespace Concord.Server.Incidents;

/// <summary>
/// The map's grid: half-degree squares numbered row by row from the south-west corner of the world. Each incident's
/// square is stored in <c>incidents.cell</c> (schema version 8), which leads the map index: a viewport seeks to its own
/// squares rather than scanning its whole latitude band across the mission. (A column the store generates would have
/// kept itself right, but SQLite does not answer a query from an index that holds a generated column, and reading the
/// table is the cost this index exists to avoid.)
/// </summary>
internal static class MapCells
{
    /// <summary>
    /// A viewport over more squares than this is read without them: the list of squares would cost more than it saves,
    /// and a viewport that large holds most of a mission's incidents anyway.
    /// </summary>
    public const int MaxCovering = 1024;

    private const int PerDegree = 2;
    private const int PerRow = 360 * PerDegree;

    public static int Of(double latitude, double longitude) => Row(latitude) * PerRow + Col(longitude);

    /// <summary>Every square the box touches, or null when there are more than <see cref="MaxCovering"/>.</summary>
    public static int[]? Covering(BoundingBox box)
    {
        int south = Row(box.South), north = Row(box.North), west = Col(box.West), east = Col(box.East);
        var count = (long)(north - south + 1) * (east - west + 1);
        if (count > MaxCovering)
        {
            return null;
        }

        var cells = new int[count];
        var n = 0;
        for (var row = south; row <= north; row++)
        {
            for (var col = west; col <= east; col++)
            {
                cells[n++] = row * PerRow + col;
            }
        }

        return cells;
    }

    // Schema version 8 computes the cells of existing incidents with the same double arithmetic (in SQLite
    // CAST((latitude + 90) * 2 AS INTEGER): the sum is never negative, so truncation is the floor).
    private static int Row(double latitude) => (int)Math.Floor((latitude + 90) * PerDegree);

    private static int Col(double longitude) => (int)Math.Floor((longitude + 180) * PerDegree);
}

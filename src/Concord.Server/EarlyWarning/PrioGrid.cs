namespace Concord.Server.EarlyWarning;

/// <summary>PRIO-GRID: 0.5° cells numbered from the south-west corner of the world, row by row (gid = (row − 1) × 720 + col).</summary>
internal static class PrioGrid
{
    public const double Size = 0.5;

    public static int Gid(double latitude, double longitude) => OfFloors(Math.Floor((latitude + 90) / Size), Math.Floor((longitude + 180) / Size));

    /// <summary>
    /// The cell of the floors of (latitude + 90) / <see cref="Size"/> and (longitude + 180) / <see cref="Size"/>, as a
    /// store computes them when it groups by cell.
    /// </summary>
    public static int OfFloors(double rowFloor, double columnFloor)
    {
        // The grid's east and north edges (longitude 180, latitude 90, both valid places) belong to the last column and
        // row: a cell past them would fall in the next row, or off the grid.
        var row = Math.Min((int)rowFloor + 1, 360);
        var col = Math.Min((int)columnFloor + 1, 720);
        return ((row - 1) * 720) + col;
    }

    /// <summary>The centre of a cell.</summary>
    public static (double Latitude, double Longitude) Centre(int gid)
    {
        var row = ((gid - 1) / 720) + 1;
        var col = ((gid - 1) % 720) + 1;
        return (-90 + ((row - 0.5) * Size), -180 + ((col - 0.5) * Size));
    }

    /// <summary>The eight cells around a cell (fewer at the poles).</summary>
    public static IEnumerable<int> Neighbours(int gid)
    {
        var row = ((gid - 1) / 720) + 1;
        var col = ((gid - 1) % 720) + 1;
        for (var dr = -1; dr <= 1; dr++)
        {
            for (var dc = -1; dc <= 1; dc++)
            {
                if ((dr, dc) != (0, 0) && row + dr is >= 1 and <= 360)
                {
                    var c = ((col + dc - 1 + 720) % 720) + 1;
                    yield return ((row + dr - 1) * 720) + c;
                }
            }
        }
    }
}

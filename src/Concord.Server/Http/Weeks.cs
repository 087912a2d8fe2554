namespace Concord.Server.Http;

/// <summary>Weeks as the charts and metrics count them: ISO weeks, starting on Monday (UTC).</summary>
internal static class Weeks
{
    public static DateTime Start(DateTime at) => at.Date.AddDays(-(((int)at.DayOfWeek + 6) % 7));
}

using System.Linq.Expressions;
using System.Reflection;

namespace Concord.Server.Access;

/// <summary>
/// The one access predicate. Every read path goes through <see cref="VisibleTo{T}"/>, which the store translates
/// to SQL, so lists, maps, counts and feeds filter before anything leaves the database.
/// </summary>
internal static class Visibility
{
    private static readonly MethodInfo StringContains =
        typeof(string).GetMethod(nameof(string.Contains), [typeof(string)])!;

    public static IQueryable<T> VisibleTo<T>(this IQueryable<T> records, Viewer viewer)
        where T : class, IMarked =>
        records.Where(Predicate<T>(viewer));

    public static Expression<Func<T, bool>> Predicate<T>(Viewer viewer)
        where T : class, IMarked
    {
        var record = Expression.Parameter(typeof(T), "r");
        var level = Expression.Property(record, typeof(T).GetProperty(nameof(IMarked.Classification))!);
        var releasable = Expression.Property(record, typeof(T).GetProperty(nameof(IMarked.ReleasableTo))!);
        var caveats = Expression.Property(record, typeof(T).GetProperty(nameof(IMarked.Caveats))!);
        var mask = Expression.Property(record, typeof(T).GetProperty(nameof(IMarked.ReleaseMask))!);

        // Captured values become SQL parameters, so the query shape is shared by all viewers with the same number of communities.
        var clearance = Capture(viewer.Clearance);
        var notHeld = Capture(~viewer.CaveatBits);

        var cleared = Expression.LessThanOrEqual(level, clearance);
        var holdsCaveats = Expression.Equal(Expression.And(caveats, notHeld), Expression.Constant(0L));

        Expression released = Expression.NotEqual(Expression.And(mask, Capture(viewer.ReleaseMaskBits)), Expression.Constant(0L));
        foreach (var pattern in viewer.TextPatterns)
        {
            var contains = Expression.Call(releasable, StringContains, Capture(pattern));
            released = Expression.OrElse(released, contains);
        }

        var body = Expression.AndAlso(Expression.AndAlso(cleared, holdsCaveats), released);
        return Expression.Lambda<Func<T, bool>>(body, record);
    }

    /// <summary>
    /// Records every member of the mission may read, whoever they are: at the lowest level, under no caveat, released to
    /// the whole mission. What is drawn from these alone (a forecast, fusion's word weights) tells no one of other records.
    /// </summary>
    public static Expression<Func<T, bool>> OpenToAll<T>()
        where T : class, IMarked
    {
        var record = Expression.Parameter(typeof(T), "r");
        Expression Column(string name) => Expression.Property(record, typeof(T).GetProperty(name)!);
        var body = Expression.AndAlso(
            Expression.AndAlso(Expression.Equal(Column(nameof(IMarked.Classification)), Expression.Constant(0)), Expression.Equal(Column(nameof(IMarked.Caveats)), Expression.Constant(0L))),
            Expression.NotEqual(Expression.And(Column(nameof(IMarked.ReleaseMask)), Expression.Constant(Releasability.MissionBit)), Expression.Constant(0L)));
        return Expression.Lambda<Func<T, bool>>(body, record);
    }

    // Wrapping a value in a closure makes EF treat it as a parameter rather than inlining a constant.
    private static MemberExpression Capture<TValue>(TValue value)
    {
        var box = new ParameterBox<TValue>(value);
        return Expression.Field(Expression.Constant(box), nameof(ParameterBox<TValue>.Value));
    }

    private sealed class ParameterBox<TValue>(TValue value)
    {
#pragma warning disable IDE1006, CA1051 // a public field is what makes EF see a parameter here
        public readonly TValue Value = value;
#pragma warning restore IDE1006, CA1051
    }
}

using Concord.Server.Hosting;
using Microsoft.Extensions.Logging;

namespace Concord.Server.Tests;

/// <summary>A background loop's failures in a row: logged whole once, then summed up once a minute, and their end said once.</summary>
public sealed class FailureRunTests
{
    private sealed class Lines : ILogger
    {
        public List<(LogLevel Level, string Text, Exception? Failure)> Written { get; } = [];

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            Written.Add((logLevel, formatter(state, exception), exception));
    }

    [Fact]
    public void An_outage_is_a_few_lines_not_a_stack_trace_a_second()
    {
        var log = new Lines();
        long now = 0;
        var run = new FailureRun(log, "sending live changes to browsers", () => now);
        var refused = new InvalidOperationException("store down", new System.Net.Sockets.SocketException(111));

        // The first failure is the loop's to log whole.
        Assert.True(run.Failed(refused));
        Assert.Empty(log.Written);

        // A retry a second for the next 59 s: nothing more.
        for (var second = 1; second < 60; second++)
        {
            now = second * 1000L;
            Assert.False(run.Failed(refused));
        }

        Assert.Empty(log.Written);

        // A minute after the first line: one summary, without a stack trace, with the count and the reason.
        now = 60_000;
        Assert.False(run.Failed(refused));
        var summary = Assert.Single(log.Written);
        Assert.Equal(LogLevel.Warning, summary.Level);
        Assert.Null(summary.Failure);
        Assert.Contains("sending live changes to browsers still fails", summary.Text);
        Assert.Contains("60 more failures", summary.Text);
        Assert.Contains("61 since 1 min 0 s ago", summary.Text);
        Assert.Contains("store down", summary.Text);
        Assert.Equal(61, run.Count);

        // Another kind of failure within the run is news: the loop logs it whole.
        now = 61_000;
        Assert.True(run.Failed(new TimeoutException("slow")));
        Assert.False(run.Failed(new TimeoutException("slow again")));
        // Failures alternating between kinds the run has had are not news at each turn.
        Assert.False(run.Failed(refused));
        Assert.False(run.Failed(new TimeoutException("slow")));
        Assert.Single(log.Written);

        // The first success ends the run, once; the next failure starts a new one.
        now = 90_000;
        run.Succeeded();
        run.Succeeded();
        Assert.Equal(2, log.Written.Count);
        Assert.Equal(LogLevel.Information, log.Written[1].Level);
        Assert.Contains("works again after 65 failures over 1 min 30 s", log.Written[1].Text);
        Assert.Equal(0, run.Count);
        Assert.True(run.Failed(refused));
    }

    [Fact]
    public void The_stores_error_code_tells_one_failure_from_another()
    {
        // Too many connections, then a constraint violated: the same types, another cause, and the second is news.
        static Npgsql.PostgresException Postgres(string state) => new("refused", "ERROR", "ERROR", state);
        var run = new FailureRun(new Lines(), "storing reports", () => 0);
        Assert.True(run.Failed(new InvalidOperationException("save failed", Postgres("53300"))));
        Assert.False(run.Failed(new InvalidOperationException("save failed", Postgres("53300"))));
        Assert.True(run.Failed(new InvalidOperationException("save failed", Postgres("23505"))));
        Assert.True(run.Failed(new Microsoft.Data.Sqlite.SqliteException("busy", 5)));
        Assert.True(run.Failed(new Microsoft.Data.Sqlite.SqliteException("full", 13)));
    }

    [Fact]
    public void A_loop_that_never_fails_writes_nothing()
    {
        var log = new Lines();
        var run = new FailureRun(log, "routing incidents", () => 0);
        run.Succeeded();
        Assert.Empty(log.Written);
        Assert.Equal(0, run.Count);
    }
}

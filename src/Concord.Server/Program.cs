using Concord.Server.Cli;

using var stop = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) =>
{
    // The first Ctrl+C stops the verb (committed work stays, exit 130); a second one, while it winds down, ends the process.
    e.Cancel = !stop.IsCancellationRequested;
    stop.Cancel();
};
return await Commands.RunAsync(args, Console.Out, Console.Error, stop.Token);

using System.Globalization;
using Concord.Bench;
using Concord.Server.Data;

// Usage:
//   Concord.Bench create URL TOKEN CONNECTIONS SECONDS     one line of the creation table
//   Concord.Bench query sqlite DIR COUNT | query postgres CONNECTION COUNT     lines of the query table
//   Concord.Bench import sqlite DIR WORK ROWS | import postgres CONNECTION WORK ROWS   lines of the import table
//   Concord.Bench forecast CELLS YEARS                                          lines of the forecast table
//   Concord.Bench map DIR COUNT                                               lines of the browser map table
//   Concord.Bench tak DATA_DIR TAK_PORT SERVER_PID SOAK_SECONDS                lines of the TAK table
//   Concord.Bench coordination sqlite DIR | coordination postgres CONNECTION   lines of the coordination table
var mode = args.ElementAtOrDefault(0);
switch (mode)
{
    case "create" when args.Length == 5:
        Console.WriteLine(await CreateLoad.RunAsync(new Uri(args[1]), args[2], int.Parse(args[3], CultureInfo.InvariantCulture),
            TimeSpan.FromSeconds(3), TimeSpan.FromSeconds(int.Parse(args[4], CultureInfo.InvariantCulture))));
        return 0;
    case "query" when args.Length == 4:
        var store = args[1] == "sqlite" ? StoreOptions.Sqlite(args[2]) : StoreOptions.Postgres(args[2]);
        foreach (var line in await QueryBench.RunAsync(store, int.Parse(args[3], CultureInfo.InvariantCulture), Console.Error))
        {
            Console.WriteLine(line);
        }

        return 0;
    case "import" when args.Length == 5:
        var importStore = args[1] == "sqlite" ? StoreOptions.Sqlite(args[2]) : StoreOptions.Postgres(args[2]);
        foreach (var line in await ImportBench.RunAsync(importStore, args[3], int.Parse(args[4], CultureInfo.InvariantCulture), Console.Error))
        {
            Console.WriteLine(line);
        }

        return 0;
    case "forecast" when args.Length == 3:
        foreach (var line in ForecastBench.Run(int.Parse(args[1], CultureInfo.InvariantCulture), int.Parse(args[2], CultureInfo.InvariantCulture)))
        {
            Console.WriteLine(line);
        }

        return 0;
    case "map" when args.Length == 3:
        foreach (var line in await MapBench.RunAsync(args[1], int.Parse(args[2], CultureInfo.InvariantCulture), Console.Error))
        {
            Console.WriteLine(line);
        }

        return 0;
    case "tak" when args.Length == 5:
        foreach (var line in await TakBench.RunAsync(args[1], int.Parse(args[2], CultureInfo.InvariantCulture), int.Parse(args[3], CultureInfo.InvariantCulture),
            int.Parse(args[4], CultureInfo.InvariantCulture), Console.Error))
        {
            Console.WriteLine(line);
        }

        return 0;
    case "coordination" when args.Length == 3:
        var coordinationStore = args[1] == "sqlite" ? StoreOptions.Sqlite(args[2]) : StoreOptions.Postgres(args[2]);
        foreach (var line in await CoordinationBench.RunAsync(coordinationStore, args[1] == "sqlite" ? "SQLite" : "PostgreSQL", 100_000, 2_000, Console.Error))
        {
            Console.WriteLine(line);
        }

        return 0;
    default:
        Console.Error.WriteLine("usage: Concord.Bench create URL TOKEN CONNECTIONS SECONDS | query sqlite DIR COUNT | query postgres CONNECTION COUNT | tak DATA_DIR PORT PID SOAK_SECONDS");
        return 2;
}

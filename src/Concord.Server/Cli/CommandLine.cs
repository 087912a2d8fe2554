namespace Concord.Server.Cli;

/// <summary>A verb with its options, as parsed from the command line.</summary>
internal sealed record Invocation(string Verb, IReadOnlyDictionary<string, string> Options)
{
    public string? this[string option] => Options.GetValueOrDefault(option);

    public bool Has(string option) => Options.ContainsKey(option);
}

internal sealed record VerbSpec(string Name, string Summary, IReadOnlyList<OptionSpec> Options);

/// <param name="MayBeEmpty">
/// Whether an empty value means something: a list given empty (no caveats; releasable to no one beyond the organisation).
/// Any other option given empty (an unset shell variable: <c>--data "$DIR"</c>) is refused.
/// </param>
internal sealed record OptionSpec(string Name, string Help, bool IsFlag = false, bool Required = false, string? Value = "VALUE", bool MayBeEmpty = false);

/// <summary>
/// A small, strict parser: every verb declares its options, anything else is an error with the usage.
/// (System.CommandLine would do too; a few dozen lines keep the messages exactly as we want them and cost no dependency.)
/// </summary>
internal static class CommandLine
{
    private static readonly OptionSpec[] StoreOptions =
    [
        new("--data", "directory of the embedded SQLite database and of the deployment's keys, the TAK certificate authority among them (default ./data)", Value: "DIR"),
        new("--store", "sqlite (default) or postgres", Value: "KIND"),
        new("--connection", "PostgreSQL connection string, with --store postgres", Value: "STRING"),
        new("--classification", "classification scheme: un (default) or nato", Value: "SCHEME"),
    ];

    private static readonly OptionSpec[] ServeOptions =
    [
        .. StoreOptions,
        new("--urls", $"where to listen (default {Hosting.ServerOptions.DefaultUrls})", Value: "URLS"),
        new("--tak-address", "address of the TAK listeners (default: the host of --urls)", Value: "IP"),
        new("--tak-port", $"TAK over TLS with client certificates (default {Tak.TakOptions.DefaultTlsPort})", Value: "PORT"),
        new("--no-tak", "do not listen for TAK devices", IsFlag: true),
        new("--tak-tcp-port", "also accept plain TCP TAK connections (off by default; e.g. 8087), acting as --tak-tcp-user", Value: "PORT"),
        new("--tak-tcp-user", "the low-privilege member plain TCP connections act as", Value: "NAME"),
        new("--tile-url", "raster tiles for the map on your own network, e.g. http://tiles.mission/{z}/{x}/{y}.png (default: none, boundaries only)", Value: "TEMPLATE"),
        new("--tile-dir", "a directory of z/x/y.png tiles to serve to the map at /tiles", Value: "DIR"),
        new("--trusted-proxy", "the address(es) of a reverse proxy in front of the server, whose X-Forwarded-For names the client (for sign-in limits)", Value: "IP[,IP]"),
    ];

    /// <summary>The options only a serving verb uses (a seeding that exits listens nowhere).</summary>
    public static IEnumerable<string> ServingOnly => ServeOptions.Except(StoreOptions).Select(o => o.Name);

    public static readonly IReadOnlyList<VerbSpec> Verbs =
    [
        new("serve", "run the server (the default verb)", ServeOptions),
        new("demo", "seed the demo mission in the Central African Republic from real UCDP data, then serve it", [
            .. ServeOptions,
            new("--seed-only", "seed and exit without serving", IsFlag: true),
        ]),
        new("migrate", "create or upgrade the database schema and exit", StoreOptions),
        new("forecast", "train the forecast on the store's history and write next month's forecast per 0.5° cell", StoreOptions),
        new("forecast evaluate", "back-test the fatality forecast against the VIEWS benchmarks on real UCDP GED data (CRPS, Brier, calibration)", [
            new("--file", "a UCDP GED CSV (default: the bundled CAR events)", Value: "PATH"),
            new("--areas", "GeoJSON admin-1 areas whose 0.5° cells are forecast (default: the bundled CAR prefectures)", Value: "PATH"),
            new("--from", "first held-out year (default 2015)", Value: "YEAR"),
            new("--to", "last held-out year (default 2022)", Value: "YEAR"),
            new("--out", "also write forecast-evaluation.md and forecast-crps.svg here", Value: "DIR"),
        ]),
        new("import", "import a UCDP GED CSV, an ACLED-style CSV or a GeoJSON FeatureCollection as reports (fused into incidents)", [
            .. StoreOptions,
            new("--file", "the file to import", Required: true, Value: "PATH"),
            new("--format", "ged, acled or geojson (default: geojson for .geojson/.json files)", Value: "FORMAT"),
            new("--user", "the member the reports are by (their organisation's agreements mark them)", Required: true, Value: "NAME"),
            new("--level", "mark every report at this classification level instead of by agreement (with --releasable-to and --caveats)", Value: "LEVEL"),
            new("--releasable-to", "comma-separated communities, e.g. mission or kind:military,org:JOC (default mission)", Value: "LIST", MayBeEmpty: true),
            new("--caveats", "comma-separated caveats", Value: "LIST", MayBeEmpty: true),
            new("--source", "the dataset's name (default: the file's name): keeps a GeoJSON file's feature ids apart from other datasets', so the same dataset under another file name imports again without duplicates; for GED, names the release (ged231, GEDEvent_v24_1)", Value: "NAME"),
        ]),
        new("org add", "add an organisation", [
            .. StoreOptions,
            new("--code", "short code used in markings, e.g. UNPOL", Required: true, Value: "CODE"),
            new("--name", "full name", Required: true, Value: "NAME"),
            new("--kind", "military, police, civilian, humanitarian, intelligence, local-authority, community or regional-organization", Required: true, Value: "KIND"),
            new("--nation", "ISO 3166-1 alpha-3 code of the contributing nation", Value: "ISO3"),
        ]),
        new("user add", "add a member to an organisation", [
            .. StoreOptions,
            new("--user", "sign-in name", Required: true, Value: "NAME"),
            new("--org", "organisation code", Required: true, Value: "CODE"),
            new("--display", "display name (default: the sign-in name)", Value: "NAME"),
            new("--roles", "comma-separated: reporter, analyst, org-admin, mission-admin, releaser, auditor (default reporter)", Value: "ROLES", MayBeEmpty: true),
            new("--clearance", "highest classification the member may read (default the lowest level)", Value: "LEVEL"),
            new("--caveats", "comma-separated caveats the member holds", Value: "CAVEATS", MayBeEmpty: true),
            new("--password", "password (default: read CONCORD_PASSWORD, else generate and print one)", Value: "PASSWORD"),
        ]),
        new("user set", "change a member's roles, clearance, caveats or status", [
            .. StoreOptions,
            new("--user", "sign-in name", Required: true, Value: "NAME"),
            new("--roles", "comma-separated roles (replaces the current ones)", Value: "ROLES", MayBeEmpty: true),
            new("--clearance", "highest classification the member may read", Value: "LEVEL"),
            new("--caveats", "comma-separated caveats (replaces the current ones; empty for none)", Value: "CAVEATS", MayBeEmpty: true),
            new("--disable", "stop the member signing in and using tokens", IsFlag: true),
            new("--enable", "allow a disabled member again", IsFlag: true),
            new("--password", "set this password (ends the member's sessions and tokens)", Value: "PASSWORD"),
            new("--new-password", "set the password in CONCORD_PASSWORD, else generate and print one (ends the member's sessions and tokens)", IsFlag: true),
        ]),
        new("token create", "create a personal access token for the API and print it once", [
            .. StoreOptions,
            new("--user", "the member the token acts for", Required: true, Value: "NAME"),
            new("--name", "what the token is for (default cli)", Value: "NAME"),
            new("--days", "lifetime in days, 1 to 365 (default 90)", Value: "DAYS"),
        ]),
        new("audit verify", "walk the audit log's hash chain and report the first altered, inserted or missing entry", [
            .. StoreOptions,
            new("--expect", "an entry as an earlier verify printed it: fail unless it is there with that hash (nothing cut off or rewritten)", Value: "INDEX:HASH"),
        ]),
        new("caveat add", "add a caveat (a compartment members must hold to read records carrying it)", [
            .. StoreOptions,
            new("--code", "caveat code, e.g. PROTECTION-SENSITIVE", Required: true, Value: "CODE"),
            new("--description", "what it protects", Required: true, Value: "TEXT"),
        ]),
        new("group add", "add a sharing group owned by an organisation", [
            .. StoreOptions,
            new("--code", "group code used in markings (group:CODE)", Required: true, Value: "CODE"),
            new("--name", "full name", Required: true, Value: "NAME"),
            new("--owner", "owner organisation code", Required: true, Value: "ORG"),
            new("--members", "comma-separated organisation codes to add besides the owner", Value: "ORGS", MayBeEmpty: true),
        ]),
        new("agreement add", "record an agreement (or a new version of it) from a JSON file", [
            .. StoreOptions,
            new("--file", "JSON: {code, name, parties: [ORG…], rules: [{reporter, category, marking, tlp}]}", Required: true, Value: "FILE"),
        ]),
        new("cert issue", "issue a TAK client certificate for a member's device (PEM, PKCS#12, and a data package with --package)", [
            .. StoreOptions,
            new("--user", "the member the device acts for", Required: true, Value: "NAME"),
            new("--out", "directory to write the files to (default: ./certs)", Value: "DIR"),
            new("--host", "address devices use to reach this server, for the data package (default: this machine's name)", Value: "HOST"),
            new("--port", $"TLS port for the data package (default {Tak.TakOptions.DefaultTlsPort})", Value: "PORT"),
            new("--password", $"password of the PKCS#12 files (default {Tak.TakCertificates.DefaultPassword}, as TAK clients expect)", Value: "PASSWORD"),
            new("--days", "validity in days (default 365)", Value: "DAYS"),
            new("--package", "also write a TAK data package zip for ATAK/WinTAK/iTAK", IsFlag: true),
        ]),
        new("cert revoke", "revoke a device certificate: the device can no longer connect", [
            .. StoreOptions,
            new("--thumbprint", "the certificate's SHA-256 thumbprint (printed by cert issue)", Required: true, Value: "HEX"),
        ]),
        new("token revoke", "revoke a personal access token", [
            .. StoreOptions,
            new("--user", "the member the token belongs to", Required: true, Value: "NAME"),
            new("--id", "the token's id", Required: true, Value: "ID"),
        ]),
    ];

    public static bool TryParse(string[] args, out Invocation invocation, out string error)
    {
        invocation = new Invocation("serve", new Dictionary<string, string>());
        error = "";
        var rest = args;

        VerbSpec? verb = null;
        if (rest.Length == 0 || rest[0].StartsWith("--", StringComparison.Ordinal))
        {
            verb = Verbs[0];
        }
        else
        {
            var two = rest.Length > 1 ? rest[0] + " " + rest[1] : null;
            verb = Verbs.FirstOrDefault(v => v.Name == two) ?? Verbs.FirstOrDefault(v => v.Name == rest[0]);
            if (verb is null)
            {
                var group = Verbs.Where(v => v.Name.StartsWith(rest[0] + " ", StringComparison.Ordinal)).Select(v => v.Name).ToList();
                error = group.Count > 0
                    ? $"'{string.Join(' ', rest.Take(2))}' is not a verb; did you mean {string.Join(" or ", group.Select(g => $"'{g}'"))}?"
                    : $"unknown verb '{rest[0]}'";
                return false;
            }

            rest = rest[verb.Name.Split(' ').Length..];
        }

        var options = new Dictionary<string, string>(StringComparer.Ordinal);
        for (var i = 0; i < rest.Length; i++)
        {
            var arg = rest[i];
            string name;
            string? value = null;
            var equals = arg.IndexOf('=', StringComparison.Ordinal);
            if (equals > 0)
            {
                name = arg[..equals];
                value = arg[(equals + 1)..];
            }
            else
            {
                name = arg;
            }

            var spec = verb.Options.FirstOrDefault(o => o.Name == name);
            if (spec is null)
            {
                error = arg.StartsWith("--", StringComparison.Ordinal)
                    ? $"unknown option '{name}' for '{verb.Name}'"
                    : $"unexpected argument '{arg}' for '{verb.Name}'";
                return false;
            }

            if (spec.IsFlag)
            {
                if (value is not null)
                {
                    error = $"option '{name}' takes no value";
                    return false;
                }

                value = "true";
            }
            else if (value is null)
            {
                if (i + 1 >= rest.Length || rest[i + 1].StartsWith("--", StringComparison.Ordinal))
                {
                    error = $"option '{name}' needs a value ({spec.Value})";
                    return false;
                }

                value = rest[++i];
            }

            if (!spec.IsFlag && value.Length == 0 && !spec.MayBeEmpty)
            {
                error = $"option '{name}' needs a value ({spec.Value}), not an empty one";
                return false;
            }

            if (!options.TryAdd(name, value))
            {
                error = $"option '{name}' is given twice";
                return false;
            }
        }

        var missing = verb.Options.FirstOrDefault(o => o.Required && !options.ContainsKey(o.Name));
        if (missing is not null)
        {
            error = $"'{verb.Name}' needs {missing.Name} {missing.Value}";
            return false;
        }

        invocation = new Invocation(verb.Name, options);
        return true;
    }

    /// <summary>Says what is wrong with the command line, then the verb's usage, as every usage error does; returns exit code 2.</summary>
    public static async Task<int> RefuseAsync(TextWriter errors, string? verbName, string reason)
    {
        await errors.WriteLineAsync("concord: " + reason);
        await errors.WriteAsync(Usage(verbName));
        return 2;
    }

    public static string Usage(string? verbName = null)
    {
        var writer = new StringWriter();
        // A verb, or the first word of two-word verbs ('token': 'token create' and 'token revoke').
        var verbs = verbName is null ? Verbs : Verbs.Where(v => v.Name == verbName || v.Name.StartsWith(verbName + " ", StringComparison.Ordinal)).ToList();
        writer.WriteLine("usage: concord [VERB] [OPTIONS]");
        writer.WriteLine();
        foreach (var verb in verbs)
        {
            writer.WriteLine($"  {verb.Name,-14} {verb.Summary}");
            if (verbName is not null)
            {
                foreach (var option in verb.Options)
                {
                    var left = option.IsFlag ? option.Name : $"{option.Name} {option.Value}";
                    writer.WriteLine($"      {left,-26} {option.Help}{(option.Required ? " (required)" : "")}");
                }
            }
        }

        if (verbName is null)
        {
            writer.WriteLine();
            writer.WriteLine("Run 'concord VERB --help' for a verb's options.");
        }

        return writer.ToString();
    }
}

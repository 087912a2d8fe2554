using System.Security.Cryptography;
using System.Text.Json;
using Concord.Server.Access;
using Concord.Server.Audit;
using Concord.Server.Data;
using Concord.Server.Http;
using Concord.Server.Incidents;
using Concord.Server.Sharing;
using Microsoft.EntityFrameworkCore;

namespace Concord.Server.Reports;

/// <summary>
/// Takes reports in, from every door (HTTP, importer, demo, later CoT): validates, applies the marking, assigns the area,
/// and writes the report with its incident in one transaction, so a rejected report leaves nothing behind.
/// </summary>
internal sealed class ReportIntake(MissionDirectory directory, MarkingFormat markings, ReportWriter writer, DeploymentKeys keys, ConcordDb db, TimeProvider time)
{
    internal abstract record Outcome
    {
        public sealed record Created(Report Report, Guid IncidentId) : Outcome;

        public sealed record Existing(Report Report, Guid? IncidentId) : Outcome;

        public sealed record Conflict(string Reason) : Outcome
        {
            /// <summary>An imported report's source-derived id is another organisation's copy of the record (see <see cref="SourceIds"/>).</summary>
            public bool HeldByAnotherOrganization { get; init; }
        }

        public sealed record Invalid(Dictionary<string, string[]> Errors) : Outcome;
    }

    /// <summary>
    /// Stores one report. <paramref name="idMadeByServer"/>: the id is Concord's own (a TAK marker's, a patrol's report),
    /// name-based like an import's; any other id is the client's, and may not be name-based.
    /// </summary>
    public async Task<Outcome> CreateAsync(CreateReport request, Viewer author, CancellationToken cancellationToken, bool idMadeByServer = false)
    {
        if (!idMadeByServer && request.Id is { Version: 8 })
        {
            // Imported records have name-based ids (version 8), and stores from before schema 12 hold them under ids anyone
            // can compute from the record's name: a client choosing one would learn from the answer (409 or 201) whether
            // an organisation imported that record, or take the id before its importer does.
            return Refused(request, "id", "is a name-based UUID (version 8), which Concord keeps for the records it names itself; use a random (version 4) or time-ordered (version 7) UUID, or leave it out");
        }

        if (!idMadeByServer && Fusion.FusionFeatures.Dataset(request.ExternalRef) is { } dataset)
        {
            // Fusion never joins two records of one curated dataset (it codes each event once): a report passing for one
            // would keep the dataset's real record of the event out of its incident.
            return Refused(request, "externalRef", $"'{dataset}:' names a record of a curated dataset, which comes in through the importer (concord import, POST /api/imports)");
        }

        if (!idMadeByServer && Tak.CotMapping.IsItemRef(request.ExternalRef))
        {
            // A marker's reports are judged by their reference: who sent its first owns its uid, and an incident made only of
            // them goes to no device (the devices have the marker itself). A report passing for one would do both.
            return Refused(request, "externalRef", $"'{Tak.CotMapping.ItemRefPrefix}' names a marker a TAK device sent, which comes in through the TAK listener");
        }

        var (prepared, errors) = await PrepareAsync(request, author, cancellationToken);
        if (prepared is null)
        {
            // A retry of a report stored before is answered with it, whatever changed since (the author's releaser role
            // taken away, an agreement tightened, an area renamed): its first send was accepted, and refusing the same
            // request now would tell the author it was not.
            return (Outcome?)await StoredRetryAsync(request, author, cancellationToken) ?? new Outcome.Invalid(errors!);
        }

        return await writer.WriteAsync(new ReportWriter.Entry(prepared.Report, prepared.Incident, prepared.Link, prepared.Audit), author, cancellationToken);

        // Refused before anything is looked up in the store (an id's owner, an agreement), and with every other field the
        // rules alone find wrong, as any invalid report is: not one field per attempt.
        Outcome.Invalid Refused(CreateReport request, string field, string reason)
        {
            var errors = new Dictionary<string, string[]>(StringComparer.Ordinal);
            ReportRules.Validate(request, time.GetUtcNow(), directory.IsKnownCategory, errors);
            errors[field] = errors.TryGetValue(field, out var more) ? [reason, .. more] : [reason];
            return new(errors);
        }
    }

    /// <summary>The stored report this request is an exact retry of: same id, same author, same request, and readable by them still.</summary>
    private async Task<Outcome.Existing?> StoredRetryAsync(CreateReport request, Viewer author, CancellationToken cancellationToken)
    {
        if (request.Id is not { } id)
        {
            return null;
        }

        return await AuthorsAsync(id, author, cancellationToken) is var (report, incidentId)
            && ReportWriter.Decide(report, incidentId, report, author, candidateHash: RequestHash(request, sourceKeyed: false)) is Outcome.Existing existing
            ? existing
            : null;
    }

    /// <summary>The report stored under <paramref name="id"/> if <paramref name="author"/> wrote it, with the incident it is in.</summary>
    public async Task<(Report Report, Guid? IncidentId)?> AuthorsAsync(Guid id, Viewer author, CancellationToken cancellationToken) =>
        await db.Reports.AsNoTracking().Where(r => r.Id == id && r.MemberId == author.MemberId)
            .Select(r => new { Report = r, IncidentId = db.IncidentReports.Where(l => l.ReportId == r.Id).Select(l => (Guid?)l.IncidentId).FirstOrDefault() })
            .SingleOrDefaultAsync(cancellationToken) is { } stored
            ? (stored.Report, stored.IncidentId)
            : null;

    /// <summary>
    /// Writes many reports from one author in one transaction (the importer and the demo). Reports whose id already
    /// exists are skipped; invalid ones are returned with their errors and nothing of theirs is written.
    /// </summary>
    /// <param name="after">Ends once the batch before this one has handed its reports to the writer: an import's batches are
    /// prepared side by side, but reach the writer in file order (the later of two rows with one id is the one refused).</param>
    /// <param name="handedOver">Set once this batch's reports are queued for the writer (or it failed before). Given, the
    /// batch is carried through from then on, whatever <paramref name="cancellationToken"/> says.</param>
    public async Task<(int Created, int Skipped, IReadOnlyList<(int Index, Dictionary<string, string[]> Errors)> Rejected)> CreateManyAsync(
        IReadOnlyList<CreateReport> requests, Viewer author, CancellationToken cancellationToken, Task? after = null, TaskCompletionSource? handedOver = null)
    {
        try
        {
            return await CreateManyInOrderAsync(requests, author, after, handedOver, cancellationToken);
        }
        finally
        {
            handedOver?.TrySetResult();
        }
    }

    private async Task<(int Created, int Skipped, IReadOnlyList<(int Index, Dictionary<string, string[]> Errors)> Rejected)> CreateManyInOrderAsync(
        IReadOnlyList<CreateReport> requests, Viewer author, Task? after, TaskCompletionSource? handedOver, CancellationToken cancellationToken)
    {
        var rejected = new List<(int, Dictionary<string, string[]>)>();
        var ready = new List<(int Position, ReportWriter.Entry Entry)>();
        byte[]? key = null;
        bool? legacy = null;
        var given = new HashSet<Guid>();
        for (var i = 0; i < requests.Count; i++)
        {
            var request = requests[i];
            var sourceKeyed = SourceIds.IsSourceKeyed(request);
            if (sourceKeyed)
            {
                // The reader's id stands for the record: the report gets the deployment's id for it, and the reader's is
                // looked up too, as imports before schema 12 stored it (with the hash of that request).
                key ??= await keys.SourceIdsAsync(cancellationToken);
                legacy ??= await keys.LegacySourceIdsAsync(cancellationToken);
                request = request with { Id = SourceIds.Of(key, request.ExternalRef!) };
            }

            var (prepared, errors) = await PrepareAsync(request, author, cancellationToken, sourceKeyed);
            if (prepared is null)
            {
                rejected.Add((i, errors!));
            }
            else
            {
                var keyed = sourceKeyed ? prepared.Entry with { SourceKeyed = true, GivenEarlierInFile = !given.Add(prepared.Entry.Report.Id) } : prepared.Entry;
                ready.Add((i, sourceKeyed && legacy == true ? keyed with { LegacyId = requests[i].Id, LegacyHash = Hash(requests[i]) } : keyed));
            }
        }

        // Through the one writer, like single creates: fusion sees every report in order, and the same id twice is one report.
        if (after is not null)
        {
            await after.WaitAsync(cancellationToken);
        }

        // An import's batch, once its turn came, is seen through even when the run is cancelled: the writer stores what is
        // queued either way, and the run counts what it stored (in its summary and its audit entry).
        if (handedOver is not null)
        {
            cancellationToken = CancellationToken.None;
        }

        // Each write is queued before its call returns (the writer's queue keeps callers in order when full).
        var writing = WriteAllAsync(ready);
        handedOver?.TrySetResult();
        var outcomes = await writing;

        // Records another organisation imported first: this organisation's copies get ids of their own and join the
        // incidents of the first copies (the writer decided this, so two imports at once cannot both take one id).
        var copies = new List<(int Position, ReportWriter.Entry Entry)>();
        var copied = new List<int>();
        for (var k = 0; k < ready.Count; k++)
        {
            if (outcomes[k] is Outcome.Conflict { HeldByAnotherOrganization: true })
            {
                var request = requests[ready[k].Position];
                var (prepared, errors) = await PrepareAsync(request with { Id = SourceIds.For(key!, author.OrganizationId, request.ExternalRef!) }, author, cancellationToken, sourceKeyed: true);
                if (prepared is null)
                {
                    outcomes[k] = new Outcome.Invalid(errors!);
                    continue;
                }

                // A copy stored under the id copies had before is this organisation's copy: found there, not made twice.
                var legacyCopy = request with { Id = SourceIds.LegacyFor(key!, author.OrganizationId, request.ExternalRef!) };
                copies.Add((ready[k].Position, prepared.Entry with
                {
                    SourceKeyed = true,
                    SameRecordAs = ready[k].Entry.Report.Id,
                    LegacyId = legacyCopy.Id,
                    LegacyHash = RequestHash(legacyCopy, sourceKeyed: true),
                }));
                copied.Add(k);
            }
        }

        if (copies.Count > 0)
        {
            var again = await WriteAllAsync(copies);
            for (var c = 0; c < copied.Count; c++)
            {
                outcomes[copied[c]] = again[c];
            }
        }

        var created = 0;
        var skipped = 0;
        for (var i = 0; i < outcomes.Length; i++)
        {
            var position = ready[i].Position;
            switch (outcomes[i])
            {
                case Outcome.Created:
                    created++;
                    break;
                case Outcome.Existing:
                    skipped++;
                    break;
                case Outcome.Conflict conflict:
                    rejected.Add((position, new Dictionary<string, string[]>(StringComparer.Ordinal) { ["id"] = [conflict.Reason] }));
                    break;
                case Outcome.Invalid invalid:
                    rejected.Add((position, invalid.Errors));
                    break;
                case null:
                    rejected.Add((position, new Dictionary<string, string[]>(StringComparer.Ordinal) { ["report"] = ["the store refused this report (the log says why: the server's, or standard error for concord import)"] }));
                    break;
            }
        }

        return (created, skipped, rejected);

        Task<Outcome?[]> WriteAllAsync(List<(int Position, ReportWriter.Entry Entry)> entries) =>
            Task.WhenAll(entries.Select(e => Refusable(writer.WriteAsync(e.Entry, author, cancellationToken))));

        // A report the store refuses costs only itself (the writer stores the others of its batch one by one); a store
        // that fails altogether still fails the whole request.
        static async Task<Outcome?> Refusable(Task<Outcome> writing)
        {
            try
            {
                return await writing;
            }
            catch (Microsoft.EntityFrameworkCore.DbUpdateException refused) when (Data.StoreErrors.IsConstraintViolation(refused.GetBaseException()))
            {
                return null;
            }
        }
    }

    /// <summary>
    /// Whether the author of a report marked by their agreement may read it back: one refused otherwise (the API's 400 on
    /// <c>marking</c>), and a TAK marker that would become one goes to no device (TakRouter).
    /// </summary>
    public static bool AuthorMayRead(Viewer author, int classification, long caveats) => Marking.Clears(author.Clearance, author.CaveatBits, classification, caveats);

    private sealed record Prepared(Report Report, Incident Incident, IncidentReport Link, IReadOnlyList<AuditEntry> Audit)
    {
        /// <summary>Why the row may not be stored if the organisation does not hold its record already (see <see cref="ReportWriter.Entry.RefusedIfNew"/>).</summary>
        public Dictionary<string, string[]>? RefusedIfNew { get; init; }

        public ReportWriter.Entry Entry => new(Report, Incident, Link, Audit) { RefusedIfNew = RefusedIfNew };
    }

    /// <param name="sourceKeyed">
    /// An import's row: its hash leaves out the source's description, which says where the file came from (e.g. which GED
    /// release) rather than what the record says, so that the same record from a file named otherwise is still the same.
    /// </param>
    private async Task<(Prepared? Ready, Dictionary<string, string[]>? Errors)> PrepareAsync(CreateReport request, Viewer author, CancellationToken cancellationToken, bool sourceKeyed = false)
    {
        var now = time.GetUtcNow();
        var errors = new Dictionary<string, string[]>(StringComparer.Ordinal);
        Dictionary<string, string[]>? refusedIfNew = null;
        ReportRules.Validate(request, now, directory.IsKnownCategory, errors);

        string? loosenedDetail = null;
        var @default = request.MarkedBy is { } marked ? marked.Decision
            : request.Category is { } category && directory.IsKnownCategory(category)
            ? AgreementDecisions.Resolve(await directory.AgreementsAsync(cancellationToken), author.OrganizationCode, author.OrganizationKind, category, markings.Scheme)
            : null;

        var tlp = @default?.Tlp ?? Tlp.Amber;
        if (request.Tlp is not null && !Tlps.TryParse(request.Tlp, out tlp))
        {
            errors["tlp"] = ["must be one of clear, green, amber, amber+strict, red"];
            tlp = @default?.Tlp ?? Tlp.Amber;
        }

        int classification;
        string releasableTo;
        long caveats;
        if (request.Marking is { } marking)
        {
            await directory.KnowCaveatsAsync(marking.Caveats, cancellationToken);
            markings.TryRead(marking, author, "marking", errors, out classification, out releasableTo, out caveats);
            if (await directory.UnknownCommunityAsync(releasableTo, cancellationToken) is { } unknown)
            {
                errors["marking.releasableTo"] = [unknown];
            }
        }
        else
        {
            (classification, releasableTo, caveats) = AgreementDecisions.Marks(@default, author.OrganizationCode, markings.Caveats);
            if (@default is not null && !AuthorMayRead(author, classification, caveats))
            {
                // Stored, the report would be one its author could not read back (a 404, and a retry a 409): refused instead.
                // An imported record the organisation holds already (a colleague's run, marked otherwise) is skipped: the
                // writer refuses the row only if it would be new.
                string[] refusal = [$"agreement {@default.AgreementCode} (version {@default.AgreementVersion}) marks these reports " +
                    $"{markings.ToDto(classification, releasableTo, caveats).Label}, above your clearance or under a caveat you do not hold: " +
                    "a report you could not read back is not stored (a releaser of your organisation may give it a marking you may read, or an administrator may clear you)"];
                (sourceKeyed ? refusedIfNew ??= new(StringComparer.Ordinal) : errors)["marking"] = refusal;
            }
        }

        // A report marked by the agreement may still ask for a wider TLP: that loosens the agreement as a looser marking does.
        if (@default is not null && !errors.ContainsKey("marking.classification") && !errors.ContainsKey("marking.caveats")
            && AgreementDecisions.Loosening(@default, classification, Releasability.Decode(releasableTo).ToList(), markings.Caveats.CodesOf(caveats), tlp, author.OrganizationCode, markings.Scheme,
                code => directory.Organizations.FirstOrDefault(o => o.Code == code)) is { } loosening)
        {
            if (author.HasRole(MemberRoles.Releaser))
            {
                loosenedDetail = Audits.Detail(new { agreement = @default.AgreementCode, version = @default.AgreementVersion, loosened = loosening.ToString() });
            }
            else
            {
                // Each reason under the field it is about: the marking's, and the TLP's.
                var agreed = $"agreement {@default.AgreementCode} (version {@default.AgreementVersion})";
                var refusal = new Dictionary<string, string[]>(StringComparer.Ordinal);
                foreach (var (field, reason) in new[] { ("marking", loosening.Marking), ("tlp", loosening.Tlp) })
                {
                    if (reason is not null)
                    {
                        refusal[field] = [$"is looser than {agreed} allows: {reason}; only a releaser may loosen it"];
                    }
                }

                // An imported record the organisation holds already is skipped under the marking it was stored with,
                // whatever this run asks (an agreement tightened since the first run, a colleague's options): the writer
                // refuses the row only if it would be new.
                var refused = sourceKeyed ? refusedIfNew ??= new(StringComparer.Ordinal) : errors;
                foreach (var (field, reasons) in refusal)
                {
                    refused[field] = reasons;
                }
            }
        }

        Guid? areaId = null;
        if (request.Location?.Area is { } areaCode)
        {
            areaId = directory.AreaByCode(areaCode)?.Id;
            if (areaId is null)
            {
                errors["location.area"] = [$"no area has the code '{Http.QueryReader.Shown(areaCode)}'"];
            }
        }

        if (errors.Count > 0)
        {
            return (null, errors);
        }

        var location = request.Location!;
        var latitude = location.Latitude!.Value;
        var longitude = location.Longitude!.Value;
        areaId ??= directory.AreaAt(latitude, longitude)?.Id;
        var precision = request.ObservedPrecision is { } p && ReportRules.TryParsePrecision(p, out var parsed) ? parsed : TimePrecision.Exact;
        // Kept to the microsecond, the finest time both stores hold: PostgreSQL dropped the seventh digit the 201 still showed
        // (every later read disagreed with the first answer), and SQLite kept it past the last microsecond of a day that
        // to=DAY reads to.
        var observedAt = AuditChain.Truncate(request.ObservedAt!.Value.UtcDateTime);
        var c = request.Casualties;
        var source = request.Source;
        var report = new Report
        {
            Id = request.Id ?? Guid.CreateVersion7(now),
            OrganizationId = author.OrganizationId,
            MemberId = author.MemberId,
            ObservedAt = observedAt,
            ObservedPrecision = precision,
            Latitude = latitude,
            Longitude = longitude,
            LocationPrecisionMeters = location.PrecisionMeters ?? 0,
            AreaId = areaId,
            Category = request.Category!,
            KilledCivilianLow = c?.KilledCivilian?.Low,
            KilledCivilianBest = c?.KilledCivilian?.Best,
            KilledCivilianHigh = c?.KilledCivilian?.High,
            KilledOtherLow = c?.KilledOther?.Low,
            KilledOtherBest = c?.KilledOther?.Best,
            KilledOtherHigh = c?.KilledOther?.High,
            InjuredCivilianLow = c?.InjuredCivilian?.Low,
            InjuredCivilianBest = c?.InjuredCivilian?.Best,
            InjuredCivilianHigh = c?.InjuredCivilian?.High,
            InjuredOtherLow = c?.InjuredOther?.Low,
            InjuredOtherBest = c?.InjuredOther?.Best,
            InjuredOtherHigh = c?.InjuredOther?.High,
            Narrative = request.Narrative!.Trim(),
            NarrativeLanguage = request.Language ?? ReportRules.DefaultLanguage,
            Actors = Releasability.Encode(request.Actors?.Select(a => a.Trim()) ?? []),
            SourceReliability = source?.Reliability ?? "F",
            SourceCredibility = source?.Credibility ?? 6,
            SourceDescription = source?.Description,
            ProtectedSource = source?.ProtectedIdentity,
            ExternalRef = request.ExternalRef,
            Classification = classification,
            ReleasableTo = releasableTo,
            Caveats = caveats,
            Tlp = tlp,
            AgreementId = @default?.AgreementId,
            AgreementVersion = @default?.AgreementVersion,
            ReceivedAt = AuditChain.Truncate(now.UtcDateTime),
            RequestHash = RequestHash(request, sourceKeyed),
        };
        var incident = IncidentSummary.OpenFor(report, now.UtcDateTime);
        var link = new IncidentReport { IncidentId = incident.Id, ReportId = report.Id, Contribution = 1.0, LinkedAt = now.UtcDateTime };
        List<AuditEntry> audit = [Audits.Created(author, report, markings, now.UtcDateTime)];
        if (loosenedDetail is not null)
        {
            audit.Add(Audits.Entry(author, AuditActions.MarkingLoosened, "report", report.Id, AuditMarking.Of(report), now.UtcDateTime, loosenedDetail));
        }

        return (new Prepared(report, incident, link, audit) { RefusedIfNew = refusedIfNew }, null);
    }

    /// <summary>The request re-serialised in one canonical form, so whitespace and field order do not make a retry look different.</summary>
    /// <summary>What a report keeps of its request to tell the same request again (an import's source description aside).</summary>
    private static string RequestHash(CreateReport request, bool sourceKeyed) =>
        Hash(sourceKeyed && request.Source is { } described ? request with { Source = described with { Description = null } } : request);

    internal static string Hash(CreateReport request) =>
        Convert.ToHexStringLower(SHA256.HashData(JsonSerializer.SerializeToUtf8Bytes(request, JsonBody.Options)));
}

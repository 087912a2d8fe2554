using System.Security.Cryptography;
using System.Text.Json;
using Concord.Server.Access;
using Concord.Server.Data;
using Concord.Server.Http;
using Concord.Server.Incidents;
using Microsoft.EntityFrameworkCore;

namespace Concord.Server.Reports;

/// <summary>
/// Takes reports in, from every door (HTTP, importer, demo, later CoT): validates, applies the marking, assigns the area,
/// and writes the report with its incident in one transaction, so a rejected report leaves nothing behind.
/// </summary>
internal sealed class ReportIntake(ConcordDb db, MissionDirectory directory, MarkingFormat markings, ReportWriter writer, TimeProvider time)
{
    internal abstract record Outcome
    {
        public sealed record Created(Report Report, Guid IncidentId) : Outcome;

        public sealed record Existing(Report Report, Guid? IncidentId) : Outcome;

        public sealed record Conflict(string Reason) : Outcome;

        public sealed record Invalid(Dictionary<string, string[]> Errors) : Outcome;
    }

    public async Task<Outcome> CreateAsync(CreateReport request, Viewer author, CancellationToken cancellationToken)
    {
        var (prepared, errors) = await PrepareAsync(request, author, cancellationToken);
        return prepared is null
            ? new Outcome.Invalid(errors!)
            : await writer.WriteAsync(new ReportWriter.Entry(prepared.Report, prepared.Incident, prepared.Link), author, cancellationToken);
    }

    /// <summary>
    /// Writes many reports from one author in one transaction (the importer and the demo). Reports whose id already
    /// exists are skipped; invalid ones are returned with their errors and nothing of theirs is written.
    /// </summary>
    public async Task<(int Created, int Skipped, IReadOnlyList<(int Index, Dictionary<string, string[]> Errors)> Rejected)> CreateManyAsync(
        IReadOnlyList<CreateReport> requests, Viewer author, CancellationToken cancellationToken)
    {
        var rejected = new List<(int, Dictionary<string, string[]>)>();
        var ready = new List<Prepared>();
        for (var i = 0; i < requests.Count; i++)
        {
            var (prepared, errors) = await PrepareAsync(requests[i], author, cancellationToken);
            if (prepared is null)
            {
                rejected.Add((i, errors!));
            }
            else
            {
                ready.Add(prepared);
            }
        }

        var ids = ready.Select(r => r.Report.Id).ToList();
        var existing = (await db.Reports.Where(r => ids.Contains(r.Id)).Select(r => r.Id).ToListAsync(cancellationToken)).ToHashSet();
        var created = 0;
        foreach (var (report, incident, link) in ready.Where(r => !existing.Contains(r.Report.Id)).DistinctBy(r => r.Report.Id))
        {
            db.Reports.Add(report);
            db.Incidents.Add(incident);
            db.IncidentReports.Add(link);
            created++;
        }

        await db.SaveChangesAsync(cancellationToken);
        db.ChangeTracker.Clear();
        return (created, ready.Count - created, rejected);
    }

    private sealed record Prepared(Report Report, Incident Incident, IncidentReport Link);

    private async Task<(Prepared? Ready, Dictionary<string, string[]>? Errors)> PrepareAsync(CreateReport request, Viewer author, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var errors = new Dictionary<string, string[]>(StringComparer.Ordinal);
        ReportRules.Validate(request, now, directory.IsKnownCategory, errors);

        int classification;
        string releasableTo;
        long caveats;
        if (request.Marking is { } marking)
        {
            markings.TryRead(marking, author, "marking", errors, out classification, out releasableTo, out caveats);
            foreach (var code in Releasability.Decode(releasableTo).Where(t => t.StartsWith("org:", StringComparison.Ordinal)))
            {
                if (await directory.OrganizationAsync(code[4..], cancellationToken) is null)
                {
                    errors["marking.releasableTo"] = [$"no organisation has the code '{code[4..]}'"];
                }
            }
        }
        else
        {
            // Until agreements set defaults, an unmarked report stays within its own organisation: sharing is a decision.
            classification = 0;
            releasableTo = Releasability.Encode([Community.Organization(author.OrganizationCode)]);
            caveats = 0;
        }

        Guid? areaId = null;
        if (request.Location?.Area is { } areaCode)
        {
            areaId = directory.AreaByCode(areaCode)?.Id;
            if (areaId is null)
            {
                errors["location.area"] = [$"no area has the code '{areaCode}'"];
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
        var observedAt = request.ObservedAt!.Value.UtcDateTime;
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
            NarrativeLanguage = request.Language ?? "en",
            Actors = Releasability.Encode(request.Actors?.Select(a => a.Trim()) ?? []),
            SourceReliability = source?.Reliability ?? "F",
            SourceCredibility = source?.Credibility ?? 6,
            SourceDescription = source?.Description,
            ProtectedSource = source?.ProtectedIdentity,
            Classification = classification,
            ReleasableTo = releasableTo,
            Caveats = caveats,
            ReceivedAt = now.UtcDateTime,
            RequestHash = Hash(request),
        };
        var incident = IncidentSummary.OpenFor(report, now.UtcDateTime);
        var link = new IncidentReport { IncidentId = incident.Id, ReportId = report.Id, Contribution = 1.0, LinkedAt = now.UtcDateTime };
        return (new Prepared(report, incident, link), null);
    }

    /// <summary>The request re-serialised in one canonical form, so whitespace and field order do not make a retry look different.</summary>
    private static string Hash(CreateReport request) =>
        Convert.ToHexStringLower(SHA256.HashData(JsonSerializer.SerializeToUtf8Bytes(request, JsonBody.Options)));
}

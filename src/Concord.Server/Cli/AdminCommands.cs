using System.Globalization;
using System.Text.Json;
using Concord.Server.Access;
using Concord.Server.Accounts;
using Concord.Server.Audit;
using Concord.Server.Data;
using Concord.Server.Hosting;
using Concord.Server.Http;
using Concord.Server.Sharing;
using Microsoft.EntityFrameworkCore;

namespace Concord.Server.Cli;

/// <summary>The sharing-model verbs. Changes made here are audited as done by "system" (whoever runs the CLI on the server).</summary>
internal static class AdminCommands
{
    public static async Task<int> VerifyAuditAsync(ServiceProvider services, Invocation invocation, TextWriter output, TextWriter errors, CancellationToken cancellationToken)
    {
        await using (services)
        {
            (long Index, string Hash)? expected = null;
            if (invocation["--expect"] is { } expect)
            {
                var parts = expect.Split(':');
                if (parts.Length != 2 || !long.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var index) || index < 1
                    || parts[1].Length != 64 || !parts[1].All(char.IsAsciiHexDigit))
                {
                    return await CommandLine.RefuseAsync(errors, invocation.Verb, $"--expect must be INDEX:HASH as a verify printed it (an entry number and 64 hexadecimal digits), not '{QueryReader.Shown(expect)}'");
                }

                expected = (index, parts[1].ToLowerInvariant());
            }

            // Verifying reads: it neither creates a missing store (an empty chain would read as intact) nor migrates one.
            var store = services.GetRequiredService<StoreOptions>();
            if (!await store.ExistsAsync(cancellationToken))
            {
                await errors.WriteLineAsync($"concord: there is no store at {store.Describe()}: nothing to verify");
                return 1;
            }

            await using var scope = services.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
            switch (await Migrator.PendingAsync(db, store.Kind, cancellationToken))
            {
                case null:
                    await errors.WriteLineAsync($"concord: {store.Describe()} holds no Concord schema: nothing to verify");
                    return 1;
                case > 0:
                    await errors.WriteLineAsync($"concord: {store.Describe()} has an older schema than this build; run 'concord migrate' first");
                    return 1;
            }

            var result = await AuditVerifier.VerifyAsync(db, cancellationToken);
            if (!result.Intact)
            {
                await errors.WriteLineAsync($"concord: audit chain broken at entry {result.BrokenAt}: {result.Problem}");
                await errors.WriteLineAsync($"{result.Entries} entries before it verified.");
                return 1;
            }

            await output.WriteLineAsync($"audit chain intact: {result.Entries} entries; head {result.HeadHash}");
            if (expected is { } recorded)
            {
                // The chain links each entry to the one before: the recorded entry there with its hash vouches for every
                // entry up to it. Anyone may recompute the hashes, so a chain cut short or rewritten from some entry on
                // verifies; only a hash kept elsewhere shows it.
                if (recorded.Index > result.Entries)
                {
                    await errors.WriteLineAsync($"concord: entry {recorded.Index} is missing: the chain ends at entry {result.Entries}, so entries were cut off its end");
                    return 1;
                }

                var hash = await db.Audit.AsNoTracking().Where(a => a.ChainIndex == recorded.Index).Select(a => a.Hash).SingleAsync(cancellationToken);
                if (hash != recorded.Hash)
                {
                    await errors.WriteLineAsync($"concord: entry {recorded.Index} has hash {hash}, not {recorded.Hash} as recorded: the chain was rewritten up to it");
                    return 1;
                }

                await output.WriteLineAsync($"entry {recorded.Index} has the recorded hash: no entry up to it was cut off or rewritten.");
            }

            if (result.Entries > 0)
            {
                await output.WriteLineAsync($"Record '{result.Entries}:{result.HeadHash}' outside this server: 'concord audit verify --expect {result.Entries}:{result.HeadHash}' proves later that no entry up to it was cut off or rewritten.");
            }

            return 0;
        }
    }

    public static async Task<int> SetUserAsync(ServiceProvider services, Invocation invocation, TextWriter output, TextWriter errors, CancellationToken cancellationToken)
    {
        await using (services)
        {
            if (invocation.Has("--disable") && invocation.Has("--enable"))
            {
                return await CommandLine.RefuseAsync(errors, invocation.Verb, "--disable and --enable contradict each other");
            }

            if (invocation["--password"] is not null && invocation.Has("--new-password"))
            {
                return await CommandLine.RefuseAsync(errors, invocation.Verb, "--password and --new-password contradict each other");
            }

            // A password forgotten by the only administrator cleared to change the member through the API is reset here.
            var fromEnvironment = Environment.GetEnvironmentVariable("CONCORD_PASSWORD");
            var generated = invocation.Has("--new-password") && string.IsNullOrEmpty(fromEnvironment);
            var password = invocation["--password"] ?? (!invocation.Has("--new-password") ? null : generated ? MemberAdmin.GeneratePassword() : fromEnvironment);
            if (password is not null && Passwords.Weakness(password) is { } weakness)
            {
                await errors.WriteLineAsync($"concord: password {weakness}");
                return 1;
            }

            if (!await Commands.PrepareHeldStoreAsync(services, errors, cancellationToken))
            {
                return 1;
            }
            await using var scope = services.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
            var markings = services.GetRequiredService<MarkingFormat>();
            var name = invocation["--user"]!.Trim().ToLowerInvariant();
            var member = await db.Members.SingleOrDefaultAsync(m => m.UserName == name, cancellationToken);
            if (member is null)
            {
                await errors.WriteLineAsync($"concord: no member is named '{name}'");
                return 1;
            }

            if (invocation["--roles"] is { } rolesText)
            {
                var roles = rolesText.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
                if (roles.FirstOrDefault(r => !MemberRoles.All.Contains(r)) is { } bad)
                {
                    await errors.WriteLineAsync($"concord: role '{bad}' is not one of {string.Join(", ", MemberRoles.All)}");
                    return 1;
                }

                member.Roles = string.Join(',', roles.Distinct());
            }

            if (invocation["--clearance"] is { } clearance)
            {
                if (!markings.Scheme.TryParse(clearance, out var level))
                {
                    await errors.WriteLineAsync($"concord: '{clearance}' is not a level of the {markings.Scheme.Name} scheme ({string.Join(", ", markings.Scheme.Levels)})");
                    return 1;
                }

                member.Clearance = level;
            }

            if (invocation["--caveats"] is { } caveatText)
            {
                if (!markings.Caveats.TryGetBits(caveatText.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries), out var bits, out var unknown))
                {
                    await errors.WriteLineAsync($"concord: unknown caveat '{unknown}'");
                    return 1;
                }

                member.Caveats = bits;
            }

            if (invocation.Has("--disable") || invocation.Has("--enable"))
            {
                member.SetDisabled(invocation.Has("--disable"), byMission: true);
            }

            if (password is not null)
            {
                member.SetPassword(password);
            }

            var (tokensRevoked, certificatesRevoked) = await MemberCredentials.EndAsync(db, member.Id, passwordSet: password is not null, invocation.Has("--disable"),
                services.GetRequiredService<TimeProvider>(), cancellationToken);
            // With the member as the entry's record and its values after the change, as the API's are (found by ?record=).
            await SaveAuditedAsync(services, db, "member", MemberAdmin.UpdatedDetail(member, passwordSet: password is not null, tokensRevoked, certificatesRevoked),
                cancellationToken, record: member.Id, beforeSave: invocation.Has("--disable") ? d => MemberCredentials.RevokeIssuedMeanwhileAsync(d, member.Id, services.GetRequiredService<TimeProvider>(), cancellationToken) : null);
            await output.WriteLineAsync($"{member.UserName}: {member.Roles}; clearance {markings.Scheme.Label(member.Clearance)}; caveats {string.Join(",", markings.Caveats.CodesOf(member.Caveats)) switch { "" => "none", var c => c }}{(member.Disabled ? "; disabled" : "")}");
            if (generated)
            {
                await output.WriteLineAsync($"password: {password}");
            }

            if (invocation["--password"] is not null)
            {
                await errors.WriteLineAsync("concord: warning: --password is visible to other users of this machine while the command runs and may stay in your shell's history; give it in CONCORD_PASSWORD with --new-password instead");
            }

            return 0;
        }
    }

    public static async Task<int> AddCaveatAsync(ServiceProvider services, Invocation invocation, TextWriter output, TextWriter errors, CancellationToken cancellationToken)
    {
        await using (services)
        {
            await services.PrepareStoreAsync(cancellationToken);
            await using var scope = services.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
            var (caveat, error) = await CaveatAdmin.AddAsync(db, invocation["--code"]!, invocation["--description"]!, cancellationToken);
            if (caveat is null)
            {
                await errors.WriteLineAsync("concord: " + error);
                return 1;
            }

            await SaveAuditedAsync(services, db, "caveat", new { created = caveat.Code, caveat.Bit }, cancellationToken);
            await output.WriteLineAsync($"added caveat {caveat.Code} (bit {caveat.Bit})");
            return 0;
        }
    }

    public static async Task<int> AddGroupAsync(ServiceProvider services, Invocation invocation, TextWriter output, TextWriter errors, CancellationToken cancellationToken)
    {
        await using (services)
        {
            // A group is owned by an organisation, which a store that is not there has none of (a mistyped --data).
            if (!await Commands.PrepareHeldStoreAsync(services, errors, cancellationToken))
            {
                return 1;
            }

            await using var scope = services.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
            var code = invocation["--code"]!.Trim().ToUpperInvariant();
            if (!Community.IsOrganizationCode(code))
            {
                await errors.WriteLineAsync("concord: a group code is 1 to 40 letters, digits, '-' or '_'");
                return 1;
            }

            // As the API refuses it (POST /api/groups): a blank, overlong or control-character name.
            if (AdminRefusal.Text("name", invocation["--name"], 200, "--name") is { } badName)
            {
                await errors.WriteLineAsync("concord: " + badName.Reason);
                return 1;
            }

            var codes = new[] { invocation["--owner"]! }.Concat((invocation["--members"] ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
                .Select(c => c.ToUpperInvariant()).Distinct().ToList();
            var organizations = await db.Organizations.Where(o => codes.Contains(o.Code)).ToListAsync(cancellationToken);
            var unknown = codes.Except(organizations.Select(o => o.Code)).ToList();
            if (unknown.Count > 0)
            {
                await errors.WriteLineAsync($"concord: no organisation has the code {string.Join(", ", unknown)}");
                return 1;
            }

            if (await db.SharingGroups.AnyAsync(g => g.Code == code, cancellationToken))
            {
                await errors.WriteLineAsync($"concord: a group '{code}' already exists");
                return 1;
            }

            var owner = organizations.Single(o => o.Code == codes[0]);
            var group = new SharingGroup { Id = Guid.CreateVersion7(), Code = code, Name = invocation["--name"]!.Trim(), OwnerOrganizationId = owner.Id, CreatedAt = services.GetRequiredService<TimeProvider>().GetUtcNow().UtcDateTime };
            db.SharingGroups.Add(group);
            db.SharingGroupMembers.AddRange(organizations.Select(o => new SharingGroupMember { GroupId = group.Id, OrganizationId = o.Id }));
            await SaveAuditedAsync(services, db, "group", new { created = code, members = codes }, cancellationToken);
            await output.WriteLineAsync($"added group {code} owned by {owner.Code} with {string.Join(", ", codes)}");
            return 0;
        }
    }

    public static async Task<int> AddAgreementAsync(ServiceProvider services, Invocation invocation, TextWriter output, TextWriter errors, CancellationToken cancellationToken)
    {
        await using (services)
        {
            AgreementRequest? request;
            try
            {
                request = JsonSerializer.Deserialize<AgreementRequest>(await File.ReadAllTextAsync(invocation["--file"]!, cancellationToken), JsonBody.Options);
            }
            // A folder or a file this account may not read is the file's fault, not the store's (the catch-all said "the
            // store could not be used").
            catch (Exception e) when (e is JsonException or IOException or UnauthorizedAccessException)
            {
                await errors.WriteLineAsync($"concord: {invocation["--file"]}: {e.Message}");
                return 1;
            }

            if (request is null || string.IsNullOrWhiteSpace(request.Code))
            {
                await errors.WriteLineAsync($"concord: {invocation["--file"]}: an agreement needs a code");
                return 1;
            }

            var code = request.Code.Trim().ToUpperInvariant();
            if (!Community.IsOrganizationCode(code))
            {
                await errors.WriteLineAsync("concord: code: must be 1 to 40 letters, digits, '-' or '_'");
                return 1;
            }

            // An agreement names parties, which a store that is not there has none of.
            if (!await Commands.PrepareHeldStoreAsync(services, errors, cancellationToken))
            {
                return 1;
            }

            var directory = services.GetRequiredService<MissionDirectory>();
            var (parties, problems) = await AdminEndpoints.ValidateAgreementAsync(request, directory, services.GetRequiredService<MarkingFormat>(), cancellationToken);
            if (problems.Count > 0)
            {
                foreach (var (field, reasons) in problems)
                {
                    await errors.WriteLineAsync($"concord: {field}: {string.Join(' ', reasons)}");
                }

                return 1;
            }

            await using var scope = services.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
            var latest = await db.Agreements.Where(a => a.Code == code).OrderByDescending(a => a.Version).FirstOrDefaultAsync(cancellationToken);
            if (latest?.RetiredAt is not null)
            {
                // As the API refuses it: a retired code stays with its history, and a new version would revive it unseen.
                await errors.WriteLineAsync($"concord: code: agreement '{code}' was retired; agreeing again is a new agreement under a new code");
                return 1;
            }

            var agreement = AdminEndpoints.NewVersion(latest?.Id ?? Guid.CreateVersion7(), (latest?.Version ?? 0) + 1, code, request, parties, directory, "system",
                services.GetRequiredService<TimeProvider>());
            db.Agreements.Add(agreement);
            try
            {
                // Checked inside the audit chain's transaction, which the API's revisions and retirements take too: a version
                // written meanwhile, or a retirement committed after the version above was read, and this one is not written
                // (it would bring back an agreement a party had just withdrawn from).
                await SaveAuditedAsync(services, db, "agreement", new { code, version = agreement.Version }, cancellationToken,
                    beforeSave: async d =>
                    {
                        if (await d.Agreements.AnyAsync(a => a.Code == code && (a.Version == agreement.Version || a.RetiredAt != null), cancellationToken))
                        {
                            throw new AgreementMovedException();
                        }
                    });
            }
            catch (AgreementMovedException)
            {
                await errors.WriteLineAsync($"concord: code: agreement '{code}' was revised or retired meanwhile; nothing was recorded: read it again (GET /api/agreements/{code})");
                return 1;
            }

            await output.WriteLineAsync($"recorded agreement {code} version {agreement.Version} ({request.Rules?.Count ?? 0} marking rules, {request.Responsibilities?.Count ?? 0} responsibilities, {request.Assistance?.Count ?? 0} assistance rules)");
            return 0;
        }
    }

    /// <summary>An agreement revised or retired by another process between its read and the new version's write.</summary>
    private sealed class AgreementMovedException : Exception;

    /// <summary>
    /// Saves with an audit entry by the system, naming <paramref name="record"/> when the change has one (a member);
    /// <paramref name="beforeSave"/> runs inside the audit chain's transaction.
    /// </summary>

    internal static Task SaveAuditedAsync(IServiceProvider services, ConcordDb db, string entity, object detail, CancellationToken cancellationToken,
        Guid? record = null, Func<ConcordDb, Task>? beforeSave = null) =>
        services.GetRequiredService<AuditChain>().SaveAsync(db,
            [Audits.Entry(null, AuditActions.Administer, entity, record, AuditMarking.None, services.GetRequiredService<TimeProvider>().GetUtcNow().UtcDateTime, Audits.Detail(detail))],
            cancellationToken, beforeSave);
}

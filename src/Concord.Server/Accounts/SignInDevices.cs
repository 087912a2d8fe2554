using System.Globalization;
using System.Security.Cryptography;
using Microsoft.AspNetCore.DataProtection;

namespace Concord.Server.Accounts;

/// <summary>
/// The browsers members signed in from ("device cookies", as OWASP describes them): a successful sign-in leaves in the
/// browser a cookie naming the account and a random device id, sealed by the server's data protection keys, for
/// <see cref="SignInThrottle.KnownFor"/>. A later attempt for that account from that browser is limited by the device's
/// own failures (<see cref="SignInThrottle.Begin"/>), not by the address it comes from: on a mission network many
/// organisations sit behind one router, and anyone there could otherwise lock a member out by typing wrong passwords for
/// their name. A browser keeps the devices of the last <see cref="MaxAccounts"/> accounts that signed in on it (a shared
/// desk). The cookie proves nothing but a past sign-in: it gives no access, and a copy of it gives its holder the device's
/// few guesses, not more. Each entry holds the member's session version when it was made: a password reset or a disable
/// (which end the member's sessions) ends the device too, so a browser that once signed in (a stolen laptop, an intruder
/// who knew the old password) keeps no guesses of its own past the reset.
/// </summary>
internal sealed class SignInDevices(IDataProtectionProvider protection, TimeProvider time)
{
    public const string CookieName = "concord-device";

    /// <summary>The accounts one browser keeps a device for (the most recent sign-ins).</summary>
    public const int MaxAccounts = 8;

    private readonly IDataProtector _protector = protection.CreateProtector("concord.sign-in-devices");

    private sealed record Entry(string Account, string Device, DateTimeOffset SignedInAt, int SessionVersion);

    /// <summary>
    /// The device this browser holds for <paramref name="userName"/> under the member's current <paramref name="sessionVersion"/>
    /// (null for a name no member has), or null (none, expired, made before the member's last reset, or a cookie not sealed here).
    /// </summary>
    public string? DeviceFor(HttpContext context, string userName, int? sessionVersion)
    {
        var account = SignInThrottle.Normalize(userName);
        var now = time.GetUtcNow();
        // The cookie is opened whether or not a member has the name: opened only for members, the time it takes (a
        // forged cookie of 4 KB, refused by the decryption) told which names are members', even to an address throttled.
        var entries = Read(context);
        return sessionVersion is { } version
            ? entries.FirstOrDefault(e => e.Account == account && e.SessionVersion == version && now - e.SignedInAt < SignInThrottle.KnownFor)?.Device
            : null;
    }

    /// <summary>After a successful sign-in: the browser keeps (or gets) a device for the account, its time renewed.</summary>
    public void Remember(HttpContext context, string userName, string? device, int sessionVersion)
    {
        var account = SignInThrottle.Normalize(userName);
        var now = time.GetUtcNow();
        var entries = Read(context).Where(e => e.Account != account && now - e.SignedInAt < SignInThrottle.KnownFor).Take(MaxAccounts - 1)
            .Prepend(new Entry(account, device ?? Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16)), now, sessionVersion));
        var text = string.Join('\n', entries.Select(e => string.Join('\t', e.Account, e.Device, e.SignedInAt.UtcTicks.ToString(CultureInfo.InvariantCulture),
            e.SessionVersion.ToString(CultureInfo.InvariantCulture))));
        context.Response.Cookies.Append(CookieName, _protector.Protect(text), new CookieOptions
        {
            HttpOnly = true,
            Secure = context.Request.IsHttps,
            SameSite = SameSiteMode.Strict,
            IsEssential = true,
            MaxAge = SignInThrottle.KnownFor,
        });
    }

    private List<Entry> Read(HttpContext context)
    {
        if (context.Request.Cookies[CookieName] is not { Length: > 0 and <= 4096 } sealedText)
        {
            return [];
        }

        string text;
        try
        {
            text = _protector.Unprotect(sealedText);
        }
        catch (CryptographicException)
        {
            // Made up, altered, or sealed under keys this server no longer has: no device.
            return [];
        }

        var entries = new List<Entry>();
        foreach (var line in text.Split('\n'))
        {
            // Entries of cookies made before session versions were kept (three fields) are no devices: signed in again, they are.
            if (line.Split('\t') is [var account, var device, var ticks, var version] && long.TryParse(ticks, NumberStyles.None, CultureInfo.InvariantCulture, out var at)
                && at <= DateTimeOffset.MaxValue.UtcTicks && int.TryParse(version, NumberStyles.None, CultureInfo.InvariantCulture, out var sessionVersion))
            {
                entries.Add(new Entry(account, device, new DateTimeOffset(at, TimeSpan.Zero), sessionVersion));
            }
        }

        return entries;
    }
}

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
/// few guesses, not more.
/// </summary>
internal sealed class SignInDevices(IDataProtectionProvider protection, TimeProvider time)
{
    public const string CookieName = "concord-device";

    /// <summary>The accounts one browser keeps a device for (the most recent sign-ins).</summary>
    public const int MaxAccounts = 8;

    private readonly IDataProtector _protector = protection.CreateProtector("concord.sign-in-devices");

    private sealed record Entry(string Account, string Device, DateTimeOffset SignedInAt);

    /// <summary>The device this browser holds for <paramref name="userName"/>, or null (none, expired, or a cookie not sealed here).</summary>
    public string? DeviceFor(HttpContext context, string userName)
    {
        var account = SignInThrottle.Normalize(userName);
        var now = time.GetUtcNow();
        return Read(context).FirstOrDefault(e => e.Account == account && now - e.SignedInAt < SignInThrottle.KnownFor)?.Device;
    }

    /// <summary>After a successful sign-in: the browser keeps (or gets) a device for the account, its time renewed.</summary>
    public void Remember(HttpContext context, string userName, string? device)
    {
        var account = SignInThrottle.Normalize(userName);
        var now = time.GetUtcNow();
        var entries = Read(context).Where(e => e.Account != account && now - e.SignedInAt < SignInThrottle.KnownFor).Take(MaxAccounts - 1)
            .Prepend(new Entry(account, device ?? Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16)), now));
        var text = string.Join('\n', entries.Select(e => string.Join('\t', e.Account, e.Device, e.SignedInAt.UtcTicks.ToString(CultureInfo.InvariantCulture))));
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
            if (line.Split('\t') is [var account, var device, var ticks] && long.TryParse(ticks, NumberStyles.None, CultureInfo.InvariantCulture, out var at)
                && at <= DateTimeOffset.MaxValue.UtcTicks)
            {
                entries.Add(new Entry(account, device, new DateTimeOffset(at, TimeSpan.Zero)));
            }
        }

        return entries;
    }
}

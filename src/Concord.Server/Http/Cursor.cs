using System.Buffers.Binary;
using System.Security.Cryptography;

namespace Concord.Server.Http;

/// <summary>
/// An opaque keyset cursor: the sort time and the store number of the last item of a page (for incidents, their random
/// tie-breaker, <see cref="Incidents.Incident.Tie"/>), encrypted. The store number
/// counts every record ever stored, those the viewer may not see too, so a readable cursor told how many records were
/// stored between two the viewer sees. The cursor is the pair in one AES block with a truncated HMAC of it, under keys
/// derived from a secret the store holds (<see cref="CursorKeys"/>), so it can be neither read nor made up, and it stays
/// valid across restarts and on every server of one store.
/// </summary>
internal readonly record struct Cursor(DateTime At, long Number)
{
    private const int MacBytes = 8;

    public string Encode(CursorKeys keys)
    {
        Span<byte> block = stackalloc byte[16];
        BinaryPrimitives.WriteInt64LittleEndian(block, At.Ticks);
        BinaryPrimitives.WriteInt64LittleEndian(block[8..], Number);
        var sealedBytes = new byte[16 + MacBytes];
        using (var aes = Aes.Create())
        {
            aes.Key = keys.Encryption;
            aes.EncryptEcb(block, sealedBytes.AsSpan(0, 16), PaddingMode.None);
        }

        HMACSHA256.HashData(keys.Mac, sealedBytes.AsSpan(0, 16)).AsSpan(0, MacBytes).CopyTo(sealedBytes.AsSpan(16));
        return Convert.ToBase64String(sealedBytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
    }

    public static bool TryDecode(string? text, CursorKeys keys, out Cursor cursor)
    {
        cursor = default;
        if (string.IsNullOrEmpty(text) || text.Length > 64)
        {
            return false;
        }

        byte[] sealedBytes;
        try
        {
            var base64 = text.Replace('-', '+').Replace('_', '/');
            sealedBytes = Convert.FromBase64String(base64.PadRight(base64.Length + ((4 - (base64.Length % 4)) % 4), '='));
        }
        catch (FormatException)
        {
            return false;
        }

        if (sealedBytes.Length != 16 + MacBytes
            || !CryptographicOperations.FixedTimeEquals(HMACSHA256.HashData(keys.Mac, sealedBytes.AsSpan(0, 16)).AsSpan(0, MacBytes), sealedBytes.AsSpan(16)))
        {
            return false;
        }

        Span<byte> block = stackalloc byte[16];
        using (var aes = Aes.Create())
        {
            aes.Key = keys.Encryption;
            aes.DecryptEcb(sealedBytes.AsSpan(0, 16), block, PaddingMode.None);
        }

        var ticks = BinaryPrimitives.ReadInt64LittleEndian(block);
        var number = BinaryPrimitives.ReadInt64LittleEndian(block[8..]);
        if (ticks < DateTime.MinValue.Ticks || ticks > DateTime.MaxValue.Ticks || number < 0)
        {
            return false;
        }

        cursor = new Cursor(new DateTime(ticks, DateTimeKind.Utc), number);
        return true;
    }
}

/// <summary>
/// The keys of <see cref="Cursor"/>s, derived (HKDF-SHA-256, a label of their own) from the deployment's secret in the store
/// (<see cref="Data.DeploymentKeys"/>): every server of one store seals and opens the same cursors, before and after a restart.
/// </summary>
internal sealed class CursorKeys
{
    public CursorKeys(byte[] deploymentSecret)
    {
        var keys = HKDF.DeriveKey(HashAlgorithmName.SHA256, deploymentSecret, 48, info: "concord page cursors"u8.ToArray());
        Encryption = keys[..16];
        Mac = keys[16..];
    }

    private CursorKeys(byte[] encryption, byte[] mac)
    {
        Encryption = encryption;
        Mac = mac;
    }

    /// <summary>
    /// The keys of one listing's cursors: a cursor of another listing is refused there rather than read as a position in
    /// it (a report list's cursor holds a report's store number, which against the requests' numbers would tell how many
    /// reports, seen or not, were stored between two).
    /// </summary>
    public CursorKeys For(string listing) =>
        _listings.GetOrAdd(listing, (name, keys) => new CursorKeys(keys.Encryption, HMACSHA256.HashData(keys.Mac, System.Text.Encoding.UTF8.GetBytes(name))), this);

    /// <summary>Each listing's keys, derived once (the listings are the few of <see cref="CursorListings"/>).</summary>
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, CursorKeys> _listings = new(StringComparer.Ordinal);

    public byte[] Encryption { get; }

    public byte[] Mac { get; }
}

/// <summary>The listings that page with cursors, each sealing its cursors under keys of its own (<see cref="CursorKeys.For"/>).</summary>
internal static class CursorListings
{
    public const string Reports = "reports";
    public const string Incidents = "incidents";
    public const string IncidentsGeoJson = "incidents.geojson";
    public const string Requests = "requests";
    public const string Tasks = "tasks";
    public const string Patrols = "patrols";
    public const string Meetings = "meetings";
    public const string Liaison = "liaison";
}

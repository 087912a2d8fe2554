using System.Buffers.Binary;
using System.Security.Cryptography;

namespace Concord.Server.Http;

/// <summary>
/// An opaque keyset cursor: the sort time and the store number of the last item of a page, encrypted. The store number
/// counts every record ever stored, those the viewer may not see too, so a readable cursor told how many records were
/// stored between two the viewer sees. The cursor is the pair in one AES block under a key of this process, with a
/// truncated HMAC of it, so it can be neither read nor made up; a cursor from before a restart is refused like any
/// other invalid one (the client starts the listing again).
/// </summary>
internal readonly record struct Cursor(DateTime At, long Number)
{
    private static readonly byte[] EncryptionKey = RandomNumberGenerator.GetBytes(16);
    private static readonly byte[] MacKey = RandomNumberGenerator.GetBytes(32);
    private const int MacBytes = 8;

    public string Encode()
    {
        Span<byte> block = stackalloc byte[16];
        BinaryPrimitives.WriteInt64LittleEndian(block, At.Ticks);
        BinaryPrimitives.WriteInt64LittleEndian(block[8..], Number);
        var sealedBytes = new byte[16 + MacBytes];
        using (var aes = Aes.Create())
        {
            aes.Key = EncryptionKey;
            aes.EncryptEcb(block, sealedBytes.AsSpan(0, 16), PaddingMode.None);
        }

        HMACSHA256.HashData(MacKey, sealedBytes.AsSpan(0, 16)).AsSpan(0, MacBytes).CopyTo(sealedBytes.AsSpan(16));
        return Convert.ToBase64String(sealedBytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
    }

    public static bool TryDecode(string? text, out Cursor cursor)
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
            || !CryptographicOperations.FixedTimeEquals(HMACSHA256.HashData(MacKey, sealedBytes.AsSpan(0, 16)).AsSpan(0, MacBytes), sealedBytes.AsSpan(16)))
        {
            return false;
        }

        Span<byte> block = stackalloc byte[16];
        using (var aes = Aes.Create())
        {
            aes.Key = EncryptionKey;
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

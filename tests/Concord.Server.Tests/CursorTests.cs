using System.Text;
using Concord.Server.Http;

namespace Concord.Server.Tests;

/// <summary>Paging cursors carry a store number that counts records the viewer may not see: they must be sealed.</summary>
public sealed class CursorTests
{
    private static readonly DateTime At = new(2025, 6, 1, 10, 0, 0, DateTimeKind.Utc);

    [Fact]
    public void A_cursor_comes_back_as_it_went_out_and_cannot_be_read_or_made_up()
    {
        var cursor = new Cursor(At, 41_213);
        var keys = new CursorKeys(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32));
        var text = cursor.Encode(keys);

        Assert.True(Cursor.TryDecode(text, keys, out var back));
        Assert.Equal(cursor, back);

        // Neither the number nor the time can be read off it, nor off the difference between neighbours.
        var next = new Cursor(At, 41_214).Encode(keys);
        Assert.DoesNotContain("41213", Decoded(text), StringComparison.Ordinal);
        Assert.NotEqual(text[..8], next[..8]);

        // A changed character, the readable form cursors once had, and junk are all refused.
        var changed = (text[0] == 'A' ? "B" : "A") + text[1..];
        Assert.False(Cursor.TryDecode(changed, keys, out _));
        Assert.False(Cursor.TryDecode(Convert.ToBase64String(Encoding.ASCII.GetBytes($"{At.Ticks}:41213")), keys, out _));
        Assert.False(Cursor.TryDecode("not a cursor!", keys, out _));
        Assert.False(Cursor.TryDecode(new string('A', 200), keys, out _));

        // One listing's keys open none of another's cursors; the same listing's keys, made again, open them.
        Assert.False(Cursor.TryDecode(cursor.Encode(keys.For(CursorListings.Reports)), keys.For(CursorListings.Requests), out _));
        Assert.True(Cursor.TryDecode(cursor.Encode(keys.For(CursorListings.Reports)), keys.For(CursorListings.Reports), out var listed) && listed == cursor);

        // Another deployment's keys (another store) open none of this one's cursors; the same secret gives the same keys.
        Assert.False(Cursor.TryDecode(text, new CursorKeys(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32)), out _));
    }

    private static string Decoded(string text)
    {
        var base64 = text.Replace('-', '+').Replace('_', '/');
        return Encoding.Latin1.GetString(Convert.FromBase64String(base64.PadRight(base64.Length + ((4 - (base64.Length % 4)) % 4), '=')));
    }
}

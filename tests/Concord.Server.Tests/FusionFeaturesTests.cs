using System.Globalization;
using System.Text;
using Concord.Server.Fusion;

namespace Concord.Server.Tests;

/// <summary>The words fusion compares: lower case, four letters or more, accents removed, common words left out.</summary>
public sealed class FusionFeaturesTests
{
    [Theory]
    [InlineData("Attaque près de Bambari: André KOLINGBA et ses éléments ont tué des civils, blessés",
        "attaque|bambari|andre|kolingba|elements|civils")]
    [InlineData("Les Anti-Balaka ont incendié l'école de Ngaoundaye; Œuvre, Straße, Łódź",
        "anti|balaka|incendie|ecole|ngaoundaye|œuvre|straße|łodz")]
    [InlineData("Ɓangui Ḿbomou ṡoldiers", "ɓangui|mbomou|soldiers")]
    [InlineData("The armed men killed people after the market closed", "armed|market|closed")]
    public void Words_lose_their_accents_and_common_words(string text, string expected) =>
        Assert.Equal(expected.Split('|'), FusionFeatures.Tokens(text));

    [Fact]
    public void The_accent_table_agrees_with_unicode_decomposition()
    {
        // Every letter of Latin-1 and Latin Extended-A, in a word of its own, gives what full decomposition gives.
        for (var code = 0xC0; code <= 0x17F; code++)
        {
            var letter = (char)code;
            if (!char.IsLetter(letter))
            {
                continue;
            }

            var text = $"abc{letter}";
            var decomposed = new string([.. text.Normalize(NormalizationForm.FormD)
                .Where(c => CharUnicodeInfo.GetUnicodeCategory(c) != UnicodeCategory.NonSpacingMark)]).ToLowerInvariant();
            Assert.Equal([decomposed], FusionFeatures.Tokens(text));
        }
    }
}

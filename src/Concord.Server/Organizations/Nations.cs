using System.Collections.Frozen;

namespace Concord.Server.Organizations;

/// <summary>
/// The nations an organisation may name: the ISO 3166-1 alpha-3 codes (the 249 assigned in 2024), and XKX, the code the
/// EU and UN bodies use for Kosovo, which ISO has not assigned. A shape check alone let "RWD" for RWA through, and once an
/// organisation carried it, a release to nation:RWD no longer read as the typo it is.
/// </summary>
internal static class Nations
{
    private static readonly FrozenSet<string> Codes = (
        "ABW AFG AGO AIA ALA ALB AND ARE ARG ARM ASM ATA ATF ATG AUS AUT AZE BDI BEL BEN BES BFA BGD BGR BHR BHS BIH BLM "
        + "BLR BLZ BMU BOL BRA BRB BRN BTN BVT BWA CAF CAN CCK CHE CHL CHN CIV CMR COD COG COK COL COM CPV CRI CUB CUW CXR "
        + "CYM CYP CZE DEU DJI DMA DNK DOM DZA ECU EGY ERI ESH ESP EST ETH FIN FJI FLK FRA FRO FSM GAB GBR GEO GGY GHA GIB "
        + "GIN GLP GMB GNB GNQ GRC GRD GRL GTM GUF GUM GUY HKG HMD HND HRV HTI HUN IDN IMN IND IOT IRL IRN IRQ ISL ISR ITA "
        + "JAM JEY JOR JPN KAZ KEN KGZ KHM KIR KNA KOR KWT LAO LBN LBR LBY LCA LIE LKA LSO LTU LUX LVA MAC MAF MAR MCO MDA "
        + "MDG MDV MEX MHL MKD MLI MLT MMR MNE MNG MNP MOZ MRT MSR MTQ MUS MWI MYS MYT NAM NCL NER NFK NGA NIC NIU NLD NOR "
        + "NPL NRU NZL OMN PAK PAN PCN PER PHL PLW PNG POL PRI PRK PRT PRY PSE PYF QAT REU ROU RUS RWA SAU SDN SEN SGP SGS "
        + "SHN SJM SLB SLE SLV SMR SOM SPM SRB SSD STP SUR SVK SVN SWE SWZ SXM SYC SYR TCA TCD TGO THA TJK TKL TKM TLS TON "
        + "TTO TUN TUR TUV TWN TZA UGA UKR UMI URY USA UZB VAT VCT VEN VGB VIR VNM VUT WLF WSM YEM ZAF ZMB ZWE "
        + "XKX").Split(' ').ToFrozenSet(StringComparer.Ordinal);

    /// <summary>Whether <paramref name="code"/> (any case) names a nation.</summary>
    public static bool IsKnown(string code) => code.Length == 3 && Codes.Contains(code.ToUpperInvariant());
}

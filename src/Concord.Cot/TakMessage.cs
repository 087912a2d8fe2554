namespace Concord.Cot;

// The TAK protocol version 1 payload, field for field as in the public ATAK CIV takproto/*.proto files
// (package atakmap.commoncommo.protobuf.v1). Empty strings and zeros are proto3 defaults (absent);
// a null message field is absent.

/// <summary>takmessage.proto: the top-level TAK protocol v1 payload.</summary>
public sealed record TakMessage
{
    /// <summary>Field 1.</summary>
    public TakControl? TakControl { get; init; }

    /// <summary>Field 2.</summary>
    public TakCotEvent? CotEvent { get; init; }
}

/// <summary>takcontrol.proto: the protocol versions a sender can decode (mesh networks).</summary>
public sealed record TakControl
{
    /// <summary>Field 1; 0 means 1.</summary>
    public uint MinProtoVersion { get; init; }

    /// <summary>Field 2; 0 means 1.</summary>
    public uint MaxProtoVersion { get; init; }

    /// <summary>Field 3.</summary>
    public string ContactUid { get; init; } = "";
}

/// <summary>cotevent.proto: a CoT event; times are milliseconds since the Unix epoch.</summary>
public sealed record TakCotEvent
{
    /// <summary>Field 1.</summary>
    public string Type { get; init; } = "";

    /// <summary>Field 2.</summary>
    public string Access { get; init; } = "";

    /// <summary>Field 3.</summary>
    public string Qos { get; init; } = "";

    /// <summary>Field 4.</summary>
    public string Opex { get; init; } = "";

    /// <summary>Field 5.</summary>
    public string Uid { get; init; } = "";

    /// <summary>Field 6: &lt;event time&gt;.</summary>
    public ulong SendTime { get; init; }

    /// <summary>Field 7.</summary>
    public ulong StartTime { get; init; }

    /// <summary>Field 8.</summary>
    public ulong StaleTime { get; init; }

    /// <summary>Field 9.</summary>
    public string How { get; init; } = "";

    /// <summary>Field 10.</summary>
    public double Lat { get; init; }

    /// <summary>Field 11.</summary>
    public double Lon { get; init; }

    /// <summary>Field 12.</summary>
    public double Hae { get; init; }

    /// <summary>Field 13.</summary>
    public double Ce { get; init; }

    /// <summary>Field 14.</summary>
    public double Le { get; init; }

    /// <summary>Field 15.</summary>
    public TakDetail? Detail { get; init; }
}

/// <summary>detail.proto: typed detail children plus the rest as XML.</summary>
public sealed record TakDetail
{
    /// <summary>Field 1: the detail children not carried by a typed field, as XML without &lt;detail&gt;.</summary>
    public string XmlDetail { get; init; } = "";

    /// <summary>Field 2.</summary>
    public TakContact? Contact { get; init; }

    /// <summary>Field 3: &lt;__group&gt;.</summary>
    public TakGroup? Group { get; init; }

    /// <summary>Field 4.</summary>
    public TakPrecisionLocation? PrecisionLocation { get; init; }

    /// <summary>Field 5.</summary>
    public TakStatus? Status { get; init; }

    /// <summary>Field 6.</summary>
    public TakTakv? Takv { get; init; }

    /// <summary>Field 7.</summary>
    public TakTrack? Track { get; init; }
}

/// <summary>contact.proto.</summary>
public sealed record TakContact
{
    /// <summary>Field 1; optional.</summary>
    public string Endpoint { get; init; } = "";

    /// <summary>Field 2.</summary>
    public string Callsign { get; init; } = "";
}

/// <summary>group.proto.</summary>
public sealed record TakGroup
{
    /// <summary>Field 1.</summary>
    public string Name { get; init; } = "";

    /// <summary>Field 2.</summary>
    public string Role { get; init; } = "";
}

/// <summary>precisionlocation.proto.</summary>
public sealed record TakPrecisionLocation
{
    /// <summary>Field 1.</summary>
    public string Geopointsrc { get; init; } = "";

    /// <summary>Field 2.</summary>
    public string Altsrc { get; init; } = "";
}

/// <summary>status.proto.</summary>
public sealed record TakStatus
{
    /// <summary>Field 1.</summary>
    public uint Battery { get; init; }
}

/// <summary>takv.proto.</summary>
public sealed record TakTakv
{
    /// <summary>Field 1.</summary>
    public string Device { get; init; } = "";

    /// <summary>Field 2.</summary>
    public string Platform { get; init; } = "";

    /// <summary>Field 3.</summary>
    public string Os { get; init; } = "";

    /// <summary>Field 4.</summary>
    public string Version { get; init; } = "";
}

/// <summary>track.proto.</summary>
public sealed record TakTrack
{
    /// <summary>Field 1.</summary>
    public double Speed { get; init; }

    /// <summary>Field 2.</summary>
    public double Course { get; init; }
}

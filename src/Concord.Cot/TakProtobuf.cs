namespace Concord.Cot;

/// <summary>
/// Hand-written protobuf codec for the TAK protocol v1 <see cref="TakMessage"/> (no protobuf runtime).
/// Encoding is canonical proto3: default scalars are omitted and fields are written in field order.
/// Decoding skips unknown fields and rejects malformed input with <see cref="CotParseException"/>.
/// </summary>
public static class TakProtobuf
{
    public static byte[] Encode(TakMessage message)
    {
        ArgumentNullException.ThrowIfNull(message);
        var bytes = new byte[GetEncodedLength(message)];
        Encode(message, bytes);
        return bytes;
    }

    public static int GetEncodedLength(TakMessage message)
    {
        ArgumentNullException.ThrowIfNull(message);
        var length = 0;
        if (message.TakControl is { } control)
        {
            length += ProtoWriter.MessageFieldSize(1, Size(control));
        }

        if (message.CotEvent is { } cotEvent)
        {
            length += ProtoWriter.MessageFieldSize(2, Size(cotEvent));
        }

        return length;
    }

    /// <summary>Writes the message into <paramref name="destination"/> and returns the bytes written.</summary>
    public static int Encode(TakMessage message, Span<byte> destination)
    {
        ArgumentNullException.ThrowIfNull(message);
        if (destination.Length < GetEncodedLength(message))
        {
            throw new ArgumentException("destination is too small", nameof(destination));
        }

        var writer = new ProtoWriter(destination);
        if (message.TakControl is { } control)
        {
            writer.MessageHeader(1, Size(control));
            Write(ref writer, control);
        }

        if (message.CotEvent is { } cotEvent)
        {
            writer.MessageHeader(2, Size(cotEvent));
            Write(ref writer, cotEvent);
        }

        return writer.Position;
    }

    /// <exception cref="CotParseException">The payload is not a valid TakMessage.</exception>
    public static TakMessage Decode(ReadOnlySpan<byte> payload)
    {
        var reader = new ProtoReader(payload, "TakMessage");
        TakControl? control = null;
        TakCotEvent? cotEvent = null;
        while (!reader.End)
        {
            var field = reader.ReadTag(out var wireType);
            switch (field)
            {
                case 1:
                    reader.Expect(field, wireType, WireType.LengthDelimited);
                    control = ReadControl(reader.ReadBytes());
                    break;
                case 2:
                    reader.Expect(field, wireType, WireType.LengthDelimited);
                    cotEvent = ReadCotEvent(reader.ReadBytes());
                    break;
                default:
                    reader.Skip(field, wireType);
                    break;
            }
        }

        return new TakMessage { TakControl = control, CotEvent = cotEvent };
    }

    private static int Size(TakControl control) =>
        ProtoWriter.VarintFieldSize(1, control.MinProtoVersion)
        + ProtoWriter.VarintFieldSize(2, control.MaxProtoVersion)
        + ProtoWriter.StringSize(3, control.ContactUid);

    private static int Size(TakCotEvent e) =>
        ProtoWriter.StringSize(1, e.Type)
        + ProtoWriter.StringSize(2, e.Access)
        + ProtoWriter.StringSize(3, e.Qos)
        + ProtoWriter.StringSize(4, e.Opex)
        + ProtoWriter.StringSize(5, e.Uid)
        + ProtoWriter.VarintFieldSize(6, e.SendTime)
        + ProtoWriter.VarintFieldSize(7, e.StartTime)
        + ProtoWriter.VarintFieldSize(8, e.StaleTime)
        + ProtoWriter.StringSize(9, e.How)
        + ProtoWriter.DoubleFieldSize(10, e.Lat)
        + ProtoWriter.DoubleFieldSize(11, e.Lon)
        + ProtoWriter.DoubleFieldSize(12, e.Hae)
        + ProtoWriter.DoubleFieldSize(13, e.Ce)
        + ProtoWriter.DoubleFieldSize(14, e.Le)
        + (e.Detail is { } detail ? ProtoWriter.MessageFieldSize(15, Size(detail)) : 0);

    private static int Size(TakDetail d) =>
        ProtoWriter.StringSize(1, d.XmlDetail)
        + (d.Contact is { } contact ? ProtoWriter.MessageFieldSize(2, Size(contact)) : 0)
        + (d.Group is { } group ? ProtoWriter.MessageFieldSize(3, Size(group)) : 0)
        + (d.PrecisionLocation is { } location ? ProtoWriter.MessageFieldSize(4, Size(location)) : 0)
        + (d.Status is { } status ? ProtoWriter.MessageFieldSize(5, Size(status)) : 0)
        + (d.Takv is { } takv ? ProtoWriter.MessageFieldSize(6, Size(takv)) : 0)
        + (d.Track is { } track ? ProtoWriter.MessageFieldSize(7, Size(track)) : 0);

    private static int Size(TakContact c) => ProtoWriter.StringSize(1, c.Endpoint) + ProtoWriter.StringSize(2, c.Callsign);

    private static int Size(TakGroup g) => ProtoWriter.StringSize(1, g.Name) + ProtoWriter.StringSize(2, g.Role);

    private static int Size(TakPrecisionLocation p) => ProtoWriter.StringSize(1, p.Geopointsrc) + ProtoWriter.StringSize(2, p.Altsrc);

    private static int Size(TakStatus s) => ProtoWriter.VarintFieldSize(1, s.Battery);

    private static int Size(TakTakv t) =>
        ProtoWriter.StringSize(1, t.Device) + ProtoWriter.StringSize(2, t.Platform)
        + ProtoWriter.StringSize(3, t.Os) + ProtoWriter.StringSize(4, t.Version);

    private static int Size(TakTrack t) => ProtoWriter.DoubleFieldSize(1, t.Speed) + ProtoWriter.DoubleFieldSize(2, t.Course);

    private static void Write(ref ProtoWriter writer, TakControl control)
    {
        writer.VarintField(1, control.MinProtoVersion);
        writer.VarintField(2, control.MaxProtoVersion);
        writer.String(3, control.ContactUid);
    }

    private static void Write(ref ProtoWriter writer, TakCotEvent e)
    {
        writer.String(1, e.Type);
        writer.String(2, e.Access);
        writer.String(3, e.Qos);
        writer.String(4, e.Opex);
        writer.String(5, e.Uid);
        writer.VarintField(6, e.SendTime);
        writer.VarintField(7, e.StartTime);
        writer.VarintField(8, e.StaleTime);
        writer.String(9, e.How);
        writer.DoubleField(10, e.Lat);
        writer.DoubleField(11, e.Lon);
        writer.DoubleField(12, e.Hae);
        writer.DoubleField(13, e.Ce);
        writer.DoubleField(14, e.Le);
        if (e.Detail is { } d)
        {
            writer.MessageHeader(15, Size(d));
            writer.String(1, d.XmlDetail);
            if (d.Contact is { } c)
            {
                writer.MessageHeader(2, Size(c));
                writer.String(1, c.Endpoint);
                writer.String(2, c.Callsign);
            }

            if (d.Group is { } g)
            {
                writer.MessageHeader(3, Size(g));
                writer.String(1, g.Name);
                writer.String(2, g.Role);
            }

            if (d.PrecisionLocation is { } p)
            {
                writer.MessageHeader(4, Size(p));
                writer.String(1, p.Geopointsrc);
                writer.String(2, p.Altsrc);
            }

            if (d.Status is { } s)
            {
                writer.MessageHeader(5, Size(s));
                writer.VarintField(1, s.Battery);
            }

            if (d.Takv is { } t)
            {
                writer.MessageHeader(6, Size(t));
                writer.String(1, t.Device);
                writer.String(2, t.Platform);
                writer.String(3, t.Os);
                writer.String(4, t.Version);
            }

            if (d.Track is { } k)
            {
                writer.MessageHeader(7, Size(k));
                writer.DoubleField(1, k.Speed);
                writer.DoubleField(2, k.Course);
            }
        }
    }

    private static TakControl ReadControl(ReadOnlySpan<byte> bytes)
    {
        var reader = new ProtoReader(bytes, "TakControl");
        var control = new TakControl();
        while (!reader.End)
        {
            var field = reader.ReadTag(out var wireType);
            switch (field)
            {
                case 1:
                    reader.Expect(field, wireType, WireType.Varint);
                    control = control with { MinProtoVersion = (uint)reader.ReadVarint() };
                    break;
                case 2:
                    reader.Expect(field, wireType, WireType.Varint);
                    control = control with { MaxProtoVersion = (uint)reader.ReadVarint() };
                    break;
                case 3:
                    reader.Expect(field, wireType, WireType.LengthDelimited);
                    control = control with { ContactUid = reader.ReadString(field) };
                    break;
                default:
                    reader.Skip(field, wireType);
                    break;
            }
        }

        return control;
    }

    private static TakCotEvent ReadCotEvent(ReadOnlySpan<byte> bytes)
    {
        var reader = new ProtoReader(bytes, "CotEvent");
        string type = "", access = "", qos = "", opex = "", uid = "", how = "";
        ulong sendTime = 0, startTime = 0, staleTime = 0;
        double lat = 0, lon = 0, hae = 0, ce = 0, le = 0;
        TakDetail? detail = null;
        while (!reader.End)
        {
            var field = reader.ReadTag(out var wireType);
            switch (field)
            {
                case 1 or 2 or 3 or 4 or 5 or 9:
                    reader.Expect(field, wireType, WireType.LengthDelimited);
                    var text = reader.ReadString(field);
                    switch (field)
                    {
                        case 1: type = text; break;
                        case 2: access = text; break;
                        case 3: qos = text; break;
                        case 4: opex = text; break;
                        case 5: uid = text; break;
                        default: how = text; break;
                    }

                    break;
                case 6 or 7 or 8:
                    reader.Expect(field, wireType, WireType.Varint);
                    var time = reader.ReadVarint();
                    switch (field)
                    {
                        case 6: sendTime = time; break;
                        case 7: startTime = time; break;
                        default: staleTime = time; break;
                    }

                    break;
                case >= 10 and <= 14:
                    reader.Expect(field, wireType, WireType.Fixed64);
                    var number = reader.ReadDouble();
                    switch (field)
                    {
                        case 10: lat = number; break;
                        case 11: lon = number; break;
                        case 12: hae = number; break;
                        case 13: ce = number; break;
                        default: le = number; break;
                    }

                    break;
                case 15:
                    reader.Expect(field, wireType, WireType.LengthDelimited);
                    detail = ReadDetail(reader.ReadBytes());
                    break;
                default:
                    reader.Skip(field, wireType);
                    break;
            }
        }

        return new TakCotEvent
        {
            Type = type,
            Access = access,
            Qos = qos,
            Opex = opex,
            Uid = uid,
            SendTime = sendTime,
            StartTime = startTime,
            StaleTime = staleTime,
            How = how,
            Lat = lat,
            Lon = lon,
            Hae = hae,
            Ce = ce,
            Le = le,
            Detail = detail,
        };
    }

    private static TakDetail ReadDetail(ReadOnlySpan<byte> bytes)
    {
        var reader = new ProtoReader(bytes, "Detail");
        var detail = new TakDetail();
        while (!reader.End)
        {
            var field = reader.ReadTag(out var wireType);
            if (field is < 1 or > 7)
            {
                reader.Skip(field, wireType);
                continue;
            }

            reader.Expect(field, wireType, WireType.LengthDelimited);
            if (field == 1)
            {
                detail = detail with { XmlDetail = reader.ReadString(field) };
                continue;
            }

            var inner = reader.ReadBytes();
            detail = field switch
            {
                2 => detail with { Contact = ReadStrings(inner, "Contact", 2, (s, f, v) => f == 1 ? s with { Endpoint = v } : s with { Callsign = v }, new TakContact()) },
                3 => detail with { Group = ReadStrings(inner, "Group", 2, (s, f, v) => f == 1 ? s with { Name = v } : s with { Role = v }, new TakGroup()) },
                4 => detail with { PrecisionLocation = ReadStrings(inner, "PrecisionLocation", 2, (s, f, v) => f == 1 ? s with { Geopointsrc = v } : s with { Altsrc = v }, new TakPrecisionLocation()) },
                5 => detail with { Status = ReadStatus(inner) },
                6 => detail with
                {
                    Takv = ReadStrings(inner, "Takv", 4, (s, f, v) => f switch
                    {
                        1 => s with { Device = v },
                        2 => s with { Platform = v },
                        3 => s with { Os = v },
                        _ => s with { Version = v },
                    }, new TakTakv()),
                },
                _ => detail with { Track = ReadTrack(inner) },
            };
        }

        return detail;
    }

    // Contact, Group, PrecisionLocation and Takv are all "string fields 1..n".
    private static T ReadStrings<T>(ReadOnlySpan<byte> bytes, string name, int fieldCount, Func<T, int, string, T> set, T value)
    {
        var reader = new ProtoReader(bytes, name);
        while (!reader.End)
        {
            var field = reader.ReadTag(out var wireType);
            if (field > fieldCount)
            {
                reader.Skip(field, wireType);
                continue;
            }

            reader.Expect(field, wireType, WireType.LengthDelimited);
            value = set(value, field, reader.ReadString(field));
        }

        return value;
    }

    private static TakStatus ReadStatus(ReadOnlySpan<byte> bytes)
    {
        var reader = new ProtoReader(bytes, "Status");
        var status = new TakStatus();
        while (!reader.End)
        {
            var field = reader.ReadTag(out var wireType);
            if (field != 1)
            {
                reader.Skip(field, wireType);
                continue;
            }

            reader.Expect(field, wireType, WireType.Varint);
            status = new TakStatus { Battery = (uint)reader.ReadVarint() };
        }

        return status;
    }

    private static TakTrack ReadTrack(ReadOnlySpan<byte> bytes)
    {
        var reader = new ProtoReader(bytes, "Track");
        var track = new TakTrack();
        while (!reader.End)
        {
            var field = reader.ReadTag(out var wireType);
            if (field is not (1 or 2))
            {
                reader.Skip(field, wireType);
                continue;
            }

            reader.Expect(field, wireType, WireType.Fixed64);
            var value = reader.ReadDouble();
            track = field == 1 ? track with { Speed = value } : track with { Course = value };
        }

        return track;
    }
}

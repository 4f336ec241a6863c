//! The wire format of Go zbus v1.0.1: msgpack maps keyed by Go field names.
//!
//! Request:  `{"ID", "Inputs": [bin, ...], "Object": {"Name", "Version"}, "ReplyTo", "Method"}`, every input
//! msgpack-encoded on its own. Response: `{"ID", "Output": {"Data": bin | nil, "Error": nil | {"Message"}}, "Error": nil | str}`.
//! `Data` is nil when the method failed, returns nothing but an error, or was never called (a protocol
//! error), exactly as Go sends it: Go's generated stubs decode `Data` before they look at the error, and
//! nil decodes into any return type. We add an optional `"Code"` next to `"Message"` so that errors keep
//! their identity across the bus; Go decoders ignore unknown fields.

use serde::{Deserialize, Deserializer, Serialize};
use serde_bytes::ByteBuf;
use std::fmt;

/// An object served on the bus: `name@version`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ObjectId {
    /// Object name, e.g. `storage`.
    #[serde(rename = "Name")]
    pub name: String,
    /// Version, e.g. `0.0.1`.
    #[serde(rename = "Version")]
    pub version: String,
}

impl ObjectId {
    /// `name@version`.
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> ObjectId {
        ObjectId { name: name.into(), version: version.into() }
    }

    /// The Redis list a module's object is served on: `<module>.<name>@<version>`.
    pub fn queue(&self, module: &str) -> String {
        format!("{module}.{self}")
    }

    /// The channel a stream method publishes on: `<module>.<name>@<version>.<Method>`.
    pub fn stream(&self, module: &str, method: &str) -> String {
        format!("{module}.{self}.{method}")
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.version.is_empty() { write!(f, "{}", self.name) } else { write!(f, "{}@{}", self.name, self.version) }
    }
}

/// A call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// Unique id of the call.
    #[serde(rename = "ID")]
    pub id: String,
    /// Each argument, msgpack-encoded on its own.
    #[serde(rename = "Inputs", default)]
    pub inputs: Vec<ByteBuf>,
    /// The object called.
    #[serde(rename = "Object")]
    pub object: ObjectId,
    /// The list the reply goes to (the id).
    #[serde(rename = "ReplyTo")]
    pub reply_to: String,
    /// The method, by its Go name.
    #[serde(rename = "Method")]
    pub method: String,
}

/// An error a method returned, with a stable code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct RemoteError {
    /// What went wrong, in words (Go zbus carries only this).
    #[serde(rename = "Message")]
    pub message: String,
    /// A stable code callers match on (`not_found`, `exists`, `not_enough_space`, ...); empty from Go peers.
    #[serde(rename = "Code", default, skip_serializing_if = "String::is_empty")]
    pub code: String,
}

impl RemoteError {
    /// An error with a code.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> RemoteError {
        RemoteError { message: message.into(), code: code.into() }
    }
}

/// A method's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Output {
    /// The return value, msgpack-encoded (an array when a method returns several); `None` (msgpack
    /// nil) when there is none: the method failed, returns only an error, or was never called.
    #[serde(rename = "Data", default)]
    pub data: Option<ByteBuf>,
    /// The method's error.
    #[serde(rename = "Error", default)]
    pub error: Option<RemoteError>,
}

/// A reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// The call's id.
    #[serde(rename = "ID")]
    pub id: String,
    /// The method's outcome.
    #[serde(rename = "Output")]
    pub output: Output,
    /// A protocol error (unknown object or method, bad arguments, a panic); `nil` (or `""`) when none.
    #[serde(rename = "Error", default, deserialize_with = "empty_is_none")]
    pub error: Option<String>,
}

fn empty_is_none<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(deserializer)?.filter(|text| !text.is_empty()))
}

/// The fields of a request needed to answer even a malformed one.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Envelope {
    #[serde(rename = "ID", default)]
    pub(crate) id: String,
    #[serde(rename = "ReplyTo", default)]
    pub(crate) reply_to: String,
}

/// The msgpack encoding of nil: what a `Data` of nil stands for when a return value is decoded.
pub const NIL: [u8; 1] = [0xc0];

/// The msgpack extension type Go's msgpack v4 gives `time.Time`.
const GO_TIME_EXT: i8 = -1;

/// A Go `time.Time` as Go's msgpack v4 encodes it: extension type -1 holding 4 bytes (seconds), 8
/// bytes (nanoseconds << 34 | seconds) or 12 bytes (nanoseconds u32, seconds i64), big-endian.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct GoTime {
    /// Seconds since the Unix epoch.
    pub secs: i64,
    /// Nanoseconds within the second (below 10^9).
    pub nanos: u32,
}

impl GoTime {
    /// Now, from the system clock.
    pub fn now() -> GoTime {
        let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        GoTime { secs: i64::try_from(since.as_secs()).unwrap_or(i64::MAX), nanos: since.subsec_nanos() }
    }

    fn to_ext(self) -> Vec<u8> {
        // The 4- and 8-byte forms hold seconds in 34 bits; anything else takes 12 bytes.
        match u64::try_from(self.secs) {
            Ok(secs) if secs >> 34 == 0 => {
                let packed = (u64::from(self.nanos) << 34) | secs;
                match u32::try_from(packed) {
                    Ok(small) => small.to_be_bytes().to_vec(),
                    Err(_) => packed.to_be_bytes().to_vec(),
                }
            }
            _ => {
                let mut bytes = self.nanos.to_be_bytes().to_vec();
                bytes.extend_from_slice(&self.secs.to_be_bytes());
                bytes
            }
        }
    }

    fn from_ext(bytes: &[u8]) -> Option<GoTime> {
        match bytes.len() {
            4 => Some(GoTime { secs: i64::from(u32::from_be_bytes(bytes.try_into().ok()?)), nanos: 0 }),
            8 => {
                let packed = u64::from_be_bytes(bytes.try_into().ok()?);
                let secs = i64::try_from(packed & ((1 << 34) - 1)).ok()?;
                Some(GoTime { secs, nanos: u32::try_from(packed >> 34).ok()? })
            }
            12 => Some(GoTime {
                nanos: u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?),
                secs: i64::from_be_bytes(bytes.get(4..)?.try_into().ok()?),
            }),
            _ => None,
        }
    }
}

/// rmp-serde's stand-in for a msgpack extension value.
#[derive(Serialize, Deserialize)]
#[serde(rename = "_ExtStruct")]
struct Ext((i8, ByteBuf));

impl Serialize for GoTime {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Ext((GO_TIME_EXT, ByteBuf::from(self.to_ext()))).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for GoTime {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<GoTime, D::Error> {
        let Ext((kind, bytes)) = Ext::deserialize(deserializer)?;
        if kind != GO_TIME_EXT {
            return Err(serde::de::Error::custom(format!("extension type {kind} is not a Go time")));
        }
        GoTime::from_ext(&bytes).ok_or_else(|| serde::de::Error::custom(format!("a Go time of {} bytes", bytes.len())))
    }
}

/// Encodes a value as zbus does (msgpack, structs as maps keyed by field name).
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, rmp_serde::encode::Error> {
    rmp_serde::to_vec_named(value)
}

/// Decodes a msgpack value.
pub fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, rmp_serde::decode::Error> {
    rmp_serde::from_slice(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn str8(s: &str) -> Vec<u8> {
        // fixstr for the short strings used below
        let mut out = vec![0xa0 | s.len() as u8];
        out.extend_from_slice(s.as_bytes());
        out
    }

    /// The byte layout of a request, written out by hand from the msgpack spec.
    #[test]
    fn golden_request_bytes() {
        let request = Request {
            id: "id1".into(),
            inputs: vec![ByteBuf::from(vec![0x01]), ByteBuf::from(vec![0xa1, b'x'])],
            object: ObjectId::new("calc", "1.0"),
            reply_to: "id1".into(),
            method: "Add".into(),
        };
        let mut expected = vec![0x85]; // map of 5
        expected.extend(str8("ID"));
        expected.extend(str8("id1"));
        expected.extend(str8("Inputs"));
        expected.extend([0x92, 0xc4, 0x01, 0x01, 0xc4, 0x02, 0xa1, b'x']); // array of 2 bin8
        expected.extend(str8("Object"));
        expected.push(0x82);
        expected.extend(str8("Name"));
        expected.extend(str8("calc"));
        expected.extend(str8("Version"));
        expected.extend(str8("1.0"));
        expected.extend(str8("ReplyTo"));
        expected.extend(str8("id1"));
        expected.extend(str8("Method"));
        expected.extend(str8("Add"));
        assert_eq!(encode(&request).expect("encode"), expected);
        assert_eq!(decode::<Request>(&expected).expect("decode"), request);
    }

    /// The byte layout of a response with a value, and of one with a coded error.
    #[test]
    fn golden_response_bytes() {
        let ok = Response {
            id: "r".into(),
            output: Output { data: Some(ByteBuf::from(vec![0x03])), error: None },
            error: None,
        };
        let mut expected = vec![0x83];
        expected.extend(str8("ID"));
        expected.extend(str8("r"));
        expected.extend(str8("Output"));
        expected.push(0x82);
        expected.extend(str8("Data"));
        expected.extend([0xc4, 0x01, 0x03]);
        expected.extend(str8("Error"));
        expected.push(0xc0);
        expected.extend(str8("Error"));
        expected.push(0xc0);
        assert_eq!(encode(&ok).expect("encode"), expected);

        let failed = Response {
            id: "r".into(),
            output: Output { data: None, error: Some(RemoteError::new("not_found", "no such volume")) },
            error: None,
        };
        let bytes = encode(&failed).expect("encode");
        assert_eq!(decode::<Response>(&bytes).expect("decode"), failed);
        // A failed method's Data is msgpack nil, as Go sends it (an empty bin makes Go stubs panic with EOF).
        let mut data_nil = str8("Data");
        data_nil.push(0xc0);
        assert!(bytes.windows(data_nil.len()).any(|w| w == data_nil), "Data must be nil: {bytes:02x?}");
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("Message") && text.contains("Code") && text.contains("not_found"));
    }

    /// A Go peer's error has no code, and a Go response may carry `""` for "no protocol error".
    #[test]
    fn go_shapes_decode() {
        #[derive(Serialize)]
        struct GoError {
            #[serde(rename = "Message")]
            message: String,
        }
        #[derive(Serialize)]
        struct GoOutput {
            #[serde(rename = "Data")]
            data: ByteBuf,
            #[serde(rename = "Error")]
            error: Option<GoError>,
        }
        #[derive(Serialize)]
        struct GoResponse {
            #[serde(rename = "ID")]
            id: String,
            #[serde(rename = "Output")]
            output: GoOutput,
            #[serde(rename = "Error")]
            error: String,
        }
        let bytes = encode(&GoResponse {
            id: "x".into(),
            output: GoOutput { data: ByteBuf::new(), error: Some(GoError { message: "boom".into() }) },
            error: String::new(),
        })
        .expect("encode");
        let response: Response = decode(&bytes).expect("decode");
        assert_eq!(response.error, None);
        assert_eq!(response.output.error, Some(RemoteError { message: "boom".into(), code: String::new() }));
    }

    fn unhex(hex: &str) -> Vec<u8> {
        (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex")).collect()
    }

    /// A Go error reply to an error-only method (or any protocol error) carries `Data` as nil: it must
    /// decode, and the Go error must reach the caller.
    #[test]
    fn go_error_reply_with_nil_data_decodes() {
        let go = unhex(
            "83a24944a172a64f757470757482a444617461c0a54572726f7281a74d657373616765ae6e6f207375636820766f6c756d65a54572726f72c0",
        );
        let response: Response = decode(&go).expect("Go's reply decodes");
        assert_eq!(response.id, "r");
        assert_eq!(response.output.data, None);
        assert_eq!(response.output.error, Some(RemoteError { message: "no such volume".into(), code: String::new() }));
        assert_eq!(response.error, None);
        // And ours, for the same outcome without a code, is byte-identical to Go's.
        let ours = Response {
            id: "r".into(),
            output: Output { data: None, error: Some(RemoteError::new("", "no such volume")) },
            error: None,
        };
        assert_eq!(encode(&ours).expect("encode"), go);
    }

    /// Go's msgpack v4 encodes `time.Time` as extension -1 in 4, 8 or 12 bytes; each decodes, and ours
    /// encodes to the same bytes.
    #[test]
    fn go_time_values_round_trip() {
        // 2024-01-15T10:32:40Z, no nanoseconds: fixext4 (d6 ff) + u32 seconds.
        let four = unhex("d6ff65a509c8");
        let t: GoTime = decode(&four).expect("4-byte time");
        assert_eq!(t, GoTime { secs: 1_705_314_760, nanos: 0 });
        assert_eq!(encode(&t).expect("encode"), four);
        // With nanoseconds: fixext8 (d7 ff) + (nanos << 34 | secs).
        let with_nanos = GoTime { secs: 1_705_314_760, nanos: 123_456_789 };
        let eight = encode(&with_nanos).expect("encode");
        assert_eq!(&eight[..2], &[0xd7, 0xff]);
        let packed = (123_456_789u64 << 34) | 1_705_314_760;
        assert_eq!(&eight[2..], &packed.to_be_bytes());
        assert_eq!(decode::<GoTime>(&eight).expect("8-byte time"), with_nanos);
        // Go's zero time (year 1): ext8 (c7 0c ff) + u32 nanos + i64 seconds.
        let zero = GoTime { secs: -62_135_596_800, nanos: 0 };
        let twelve = encode(&zero).expect("encode");
        assert_eq!(&twelve[..3], &[0xc7, 0x0c, 0xff]);
        assert_eq!(decode::<GoTime>(&twelve).expect("12-byte time"), zero);
        // Another extension type is not a time.
        assert!(decode::<GoTime>(&unhex("d60165a508c8")).is_err());
    }

    #[test]
    fn addressing() {
        let object = ObjectId::new("storage", "0.0.1");
        assert_eq!(object.queue("storage"), "storage.storage@0.0.1");
        assert_eq!(object.stream("provision", "ReservedStream"), "provision.storage@0.0.1.ReservedStream");
        assert_eq!(ObjectId::new("zbus", "").to_string(), "zbus");
    }
}

//! The wire format of Go zbus v1.0.1: msgpack maps keyed by Go field names.
//!
//! Request:  `{"ID", "Inputs": [bin, ...], "Object": {"Name", "Version"}, "ReplyTo", "Method"}`, every input
//! msgpack-encoded on its own. Response: `{"ID", "Output": {"Data": bin, "Error": nil | {"Message"}}, "Error": nil | str}`.
//! We add an optional `"Code"` next to `"Message"` so that errors keep their identity across the bus; Go
//! decoders ignore unknown fields.

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
    /// The return value, msgpack-encoded (an array when a method returns several).
    #[serde(rename = "Data", default)]
    pub data: ByteBuf,
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
        let ok =
            Response { id: "r".into(), output: Output { data: ByteBuf::from(vec![0x03]), error: None }, error: None };
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
            output: Output { data: ByteBuf::new(), error: Some(RemoteError::new("not_found", "no such volume")) },
            error: None,
        };
        let bytes = encode(&failed).expect("encode");
        assert_eq!(decode::<Response>(&bytes).expect("decode"), failed);
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

    #[test]
    fn addressing() {
        let object = ObjectId::new("storage", "0.0.1");
        assert_eq!(object.queue("storage"), "storage.storage@0.0.1");
        assert_eq!(object.stream("provision", "ReservedStream"), "provision.storage@0.0.1.ReservedStream");
        assert_eq!(ObjectId::new("zbus", "").to_string(), "zbus");
    }
}

//! Request bodies in Kubernetes protobuf (`application/vnd.kubernetes.protobuf`), decoded into the
//! JSON object a real API server would have stored. kubectl 1.32's typed clients (`kubectl create
//! configmap|secret|deployment|namespace|service|...`) send built-in objects this way and never
//! fall back to JSON; every real API server accepts it for built-in kinds.
//!
//! The wire format is the `k8s\0` magic followed by a `runtime.Unknown` envelope whose `raw` bytes
//! are the object's message (<https://kubernetes.io/docs/reference/using-api/api-concepts/#protobuf-encoding>).
//! Field numbers and JSON names come from `schema.txt`, generated from the k8s-pb crate and the
//! Go types' struct tags by `crates/kube-sim/codegen/protobuf_schema.py`, so no protobuf library
//! is linked. Answers stay JSON: kubectl's `Accept` lists JSON after protobuf.

mod schema;
mod wire;

use base64::Engine;
use serde_json::{Map, Value};

use crate::error::SimError;
use schema::{Field, Kind, SCHEMA};
use wire::{Reader, WireValue};

/// The media type kubectl sends built-in objects in.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// Every protobuf-encoded Kubernetes object starts with these four bytes.
const MAGIC: &[u8] = b"k8s\0";

/// Go's zero `time.Time` (0001-01-01T00:00:00Z) in Unix seconds. A Go client writes an unset
/// non-pointer `metav1.Time` (`creationTimestamp`) as an empty message, and a real server reads
/// an empty message back as the zero time, JSON `null`
/// (k8s.io/apimachinery/pkg/apis/meta/v1/time_proto.go); this spelling of it is null as well.
const GO_ZERO_TIME_SECS: i64 = -62_135_596_800;

fn bad(msg: impl Into<String>) -> SimError {
    SimError::BadRequest(format!(
        "error decoding protobuf request body: {}",
        msg.into()
    ))
}

/// Decodes a protobuf request body (magic, `runtime.Unknown` envelope, object) into the JSON
/// object it stands for, `apiVersion` and `kind` included. Kinds outside the simulator's built-in
/// groups (custom resources, CRDs themselves) are 415: kubectl sends those as JSON.
pub fn decode_object(body: &[u8]) -> Result<Value, SimError> {
    let envelope = body
        .strip_prefix(MAGIC)
        .ok_or_else(|| bad("the body does not start with the Kubernetes protobuf magic k8s\\0"))?;
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), &[][..]);
    let mut r = Reader::new(envelope);
    while let Some((tag, v)) = r.next_field()? {
        match (tag, v) {
            (1, WireValue::Len(type_meta)) => {
                let mut t = Reader::new(type_meta);
                while let Some((tag, v)) = t.next_field()? {
                    match (tag, v) {
                        (1, WireValue::Len(s)) => api_version = utf8(s)?,
                        (2, WireValue::Len(s)) => kind = utf8(s)?,
                        _ => {}
                    }
                }
            }
            (2, WireValue::Len(bytes)) => raw = bytes,
            (3, WireValue::Len(enc)) if !enc.is_empty() => {
                return Err(bad(format!("content encoding {:?}", utf8(enc)?)))
            }
            _ => {}
        }
    }
    let message = SCHEMA.kind(&api_version, &kind).ok_or_else(|| {
        SimError::UnsupportedMediaType(format!(
            "kube-sim decodes protobuf for built-in kinds only, not {kind} of {api_version:?}; send JSON"
        ))
    })?;
    let mut obj = Map::new();
    obj.insert("apiVersion".into(), Value::String(api_version));
    obj.insert("kind".into(), Value::String(kind));
    decode_message(raw, message, &mut obj)?;
    Ok(Value::Object(obj))
}

fn utf8(b: &[u8]) -> Result<String, SimError> {
    String::from_utf8(b.to_vec()).map_err(|_| bad("a string is not UTF-8"))
}

/// Decodes one message's fields into `out` (the parent's object for an inlined message).
fn decode_message(
    bytes: &[u8],
    message: &str,
    out: &mut Map<String, Value>,
) -> Result<(), SimError> {
    let fields = SCHEMA
        .message(message)
        .ok_or_else(|| bad(format!("no schema for message {message}")))?;
    let mut r = Reader::new(bytes);
    while let Some((tag, v)) = r.next_field()? {
        // Fields newer than the schema are skipped, as a real server skips unknown fields.
        let Some(f) = fields.get(&tag) else { continue };
        decode_field(f, v, out)?;
    }
    Ok(())
}

fn decode_field(f: &Field, v: WireValue<'_>, out: &mut Map<String, Value>) -> Result<(), SimError> {
    if let Kind::Map(key, value) = &f.kind {
        let WireValue::Len(entry) = v else {
            return Err(bad(format!(
                "{}: a map entry is not length-delimited",
                f.json
            )));
        };
        let (mut k, mut val) = (None, None);
        let mut r = Reader::new(entry);
        while let Some((tag, v)) = r.next_field()? {
            match tag {
                1 => k = Some(decode_value(key, v, &f.json)?),
                2 => val = Some(decode_value(value, v, &f.json)?),
                _ => {}
            }
        }
        let k = match k {
            Some(Value::String(s)) => s,
            Some(other) => other.to_string(),
            None => String::new(),
        };
        let val = match val {
            Some(v) => v,
            None => decode_value(value, WireValue::Len(&[]), &f.json)?,
        };
        let map = out
            .entry(f.json.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(m) = map {
            m.insert(k, val);
        }
        return Ok(());
    }
    if f.inline {
        let (Kind::Message(m), WireValue::Len(bytes)) = (&f.kind, v) else {
            return Err(bad(format!("inlined field {} is not a message", f.json)));
        };
        return decode_message(bytes, m, out);
    }
    if f.repeated {
        // Repeated numbers may come packed (one length-delimited run) or one per field.
        if let (true, WireValue::Len(run)) = (f.kind.is_varint(), &v) {
            let mut r = Reader::new(run);
            let items = out
                .entry(f.json.clone())
                .or_insert_with(|| Value::Array(Vec::new()));
            while !r.is_empty() {
                let n = r.varint()?;
                if let Value::Array(a) = items {
                    a.push(decode_value(&f.kind, WireValue::Varint(n), &f.json)?);
                }
            }
            return Ok(());
        }
        let item = decode_value(&f.kind, v, &f.json)?;
        if let Value::Array(a) = out
            .entry(f.json.clone())
            .or_insert_with(|| Value::Array(Vec::new()))
        {
            a.push(item);
        }
        return Ok(());
    }
    let value = decode_value(&f.kind, v, &f.json)?;
    // A Go client writes every non-pointer field, zero or not; a real server reads it into the Go
    // struct and answers JSON without the zero values of `omitempty` fields (and null times).
    let dropped = value.is_null() || (!f.keep_zero && f.kind.is_scalar() && is_zero(&value));
    if !dropped {
        out.insert(f.json.clone(), value);
    }
    Ok(())
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::String(s) => s.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        _ => false,
    }
}

fn decode_value(kind: &Kind, v: WireValue<'_>, field: &str) -> Result<Value, SimError> {
    let mismatch = || bad(format!("{field}: unexpected wire type for {kind:?}"));
    Ok(match (kind, v) {
        (Kind::String, WireValue::Len(b)) => Value::String(utf8(b)?),
        (Kind::Bytes, WireValue::Len(b)) => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(b))
        }
        (Kind::Bool, WireValue::Varint(n)) => Value::Bool(n != 0),
        // int32 values are sign-extended to 64 bits on the wire.
        (Kind::Int32, WireValue::Varint(n)) => Value::from(n as i64 as i32),
        (Kind::Int64, WireValue::Varint(n)) => Value::from(n as i64),
        (Kind::Double, WireValue::Fixed64(n)) => {
            serde_json::Number::from_f64(f64::from_bits(n)).map_or(Value::Null, Value::Number)
        }
        (Kind::Message(m), WireValue::Len(b)) => {
            let mut obj = Map::new();
            decode_message(b, m, &mut obj)?;
            Value::Object(obj)
        }
        (Kind::Time, WireValue::Len(b)) => time(b, false)?,
        (Kind::MicroTime, WireValue::Len(b)) => time(b, true)?,
        (Kind::Quantity, WireValue::Len(b)) => {
            // message Quantity { optional string string = 1; }
            let mut s = String::new();
            let mut r = Reader::new(b);
            while let Some((tag, v)) = r.next_field()? {
                if let (1, WireValue::Len(t)) = (tag, v) {
                    s = utf8(t)?;
                }
            }
            Value::String(s)
        }
        (Kind::IntOrString, WireValue::Len(b)) => {
            // message IntOrString { optional int64 type = 1; optional int32 intVal = 2; optional string strVal = 3; }
            let (mut is_string, mut int, mut string) = (false, 0i32, String::new());
            let mut r = Reader::new(b);
            while let Some((tag, v)) = r.next_field()? {
                match (tag, v) {
                    (1, WireValue::Varint(t)) => is_string = t == 1,
                    (2, WireValue::Varint(n)) => int = n as i64 as i32,
                    (3, WireValue::Len(s)) => string = utf8(s)?,
                    _ => {}
                }
            }
            if is_string {
                Value::String(string)
            } else {
                Value::from(int)
            }
        }
        (Kind::RawJson, WireValue::Len(b)) => {
            // RawExtension and FieldsV1: message { optional bytes raw = 1; } holding JSON.
            let mut raw: &[u8] = &[];
            let mut r = Reader::new(b);
            while let Some((tag, v)) = r.next_field()? {
                if let (1, WireValue::Len(t)) = (tag, v) {
                    raw = t;
                }
            }
            if raw.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(raw)
                    .map_err(|e| bad(format!("{field}: embedded JSON: {e}")))?
            }
        }
        _ => return Err(mismatch()),
    })
}

/// `metav1.Time` (RFC 3339, seconds) or `metav1.MicroTime` (microseconds) from
/// `message { optional int64 seconds = 1; optional int32 nanos = 2; }`; Go's zero time is null.
fn time(b: &[u8], micro: bool) -> Result<Value, SimError> {
    if b.is_empty() {
        return Ok(Value::Null);
    }
    let (mut secs, mut nanos) = (0i64, 0u32);
    let mut r = Reader::new(b);
    while let Some((tag, v)) = r.next_field()? {
        match (tag, v) {
            (1, WireValue::Varint(n)) => secs = n as i64,
            (2, WireValue::Varint(n)) => nanos = n as i64 as u32,
            _ => {}
        }
    }
    if secs == GO_ZERO_TIME_SECS && nanos == 0 {
        return Ok(Value::Null);
    }
    let t = chrono::DateTime::from_timestamp(secs, nanos)
        .ok_or_else(|| bad(format!("time {secs}s {nanos}ns is out of range")))?;
    let fmt = if micro {
        "%Y-%m-%dT%H:%M:%S%.6fZ"
    } else {
        "%Y-%m-%dT%H:%M:%SZ"
    };
    Ok(Value::String(t.format(fmt).to_string()))
}

#[cfg(test)]
mod tests;

//! The few ONNX protobuf messages the local model's graph needs (ModelProto, GraphProto,
//! NodeProto, AttributeProto, TensorProto, ValueInfoProto), written straight in protobuf's
//! wire format. A protobuf code generator would need `protoc` at build time for six messages;
//! field numbers are those of onnx/onnx.proto3 (cited per message).
//!
//! Weights are large, so a message is written in two steps: its small fields are encoded at
//! once, and the byte length of its large payload is known beforehand, so that the whole
//! model is written into one buffer of the exact size without copying any tensor twice.

/// Protobuf wire types.
const VARINT: u64 = 0;
const LEN: u64 = 2;
const FIXED32: u64 = 5;

/// ONNX `TensorProto.DataType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElemType {
    Float = 1,
    Int32 = 6,
    Int64 = 7,
}

/// A protobuf message under construction (small messages only; see [`TensorHeader`]).
#[derive(Debug, Default, Clone)]
pub struct Message(Vec<u8>);

impl Message {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    fn key(&mut self, field: u64, wire: u64) {
        put_varint(&mut self.0, (field << 3) | wire);
    }

    pub fn int(&mut self, field: u64, value: i64) -> &mut Self {
        self.key(field, VARINT);
        // int64/int32 fields encode negatives as ten-byte two's complement varints.
        put_varint(&mut self.0, value as u64);
        self
    }

    pub fn float(&mut self, field: u64, value: f32) -> &mut Self {
        self.key(field, FIXED32);
        self.0.extend_from_slice(&value.to_le_bytes());
        self
    }

    pub fn bytes_field(&mut self, field: u64, value: &[u8]) -> &mut Self {
        self.key(field, LEN);
        put_varint(&mut self.0, value.len() as u64);
        self.0.extend_from_slice(value);
        self
    }

    pub fn string(&mut self, field: u64, value: &str) -> &mut Self {
        self.bytes_field(field, value.as_bytes())
    }

    pub fn message(&mut self, field: u64, value: &Message) -> &mut Self {
        self.bytes_field(field, &value.0)
    }

    /// The key and length prefix of a length-delimited field whose `len` payload bytes the
    /// caller appends next (with [`Message::raw`]).
    pub fn open(&mut self, field: u64, len: usize) -> &mut Self {
        self.key(field, LEN);
        put_varint(&mut self.0, len as u64);
        self
    }

    pub fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.0.extend_from_slice(bytes);
        self
    }

    pub fn reserve(&mut self, additional: usize) {
        self.0.reserve_exact(additional);
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Bytes a varint of `v` takes.
pub fn varint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

/// Bytes a length-delimited field (key, length, payload) takes, for a field number below 16.
pub fn len_field_size(payload: usize) -> usize {
    1 + varint_len(payload as u64) + payload
}

/// `TensorProto` (dims = 1, data_type = 2, name = 8, raw_data = 9) without its raw data:
/// the caller writes `raw_len` bytes of little-endian data after it. Or, made with
/// [`TensorHeader::external`], a tensor whose data is in an external file
/// (external_data = 13, data_location = 14), complete as it is.
pub struct TensorHeader {
    head: Message,
    raw_len: usize,
    inline: bool,
}

impl TensorHeader {
    pub fn new(name: &str, elem: ElemType, dims: &[usize]) -> Self {
        let mut head = Message::new();
        for &d in dims {
            head.int(1, d as i64);
        }
        head.int(2, elem as i64);
        head.string(8, name);
        let elem_size = match elem {
            ElemType::Float | ElemType::Int32 => 4,
            ElemType::Int64 => 8,
        };
        let raw_len = dims.iter().product::<usize>() * elem_size;
        Self {
            head,
            raw_len,
            inline: true,
        }
    }

    /// The tensor's `raw_len` bytes are at `offset` of the file `location` (relative to the
    /// model file): `external_data` entries (StringStringEntryProto: key = 1, value = 2)
    /// `location`, `offset`, `length`, and `data_location` = EXTERNAL (1).
    pub fn external(
        name: &str,
        elem: ElemType,
        dims: &[usize],
        location: &str,
        offset: usize,
    ) -> Self {
        let mut t = Self::new(name, elem, dims);
        let length = t.raw_len.to_string();
        let offset = offset.to_string();
        for (key, value) in [
            ("location", location),
            ("offset", offset.as_str()),
            ("length", length.as_str()),
        ] {
            let mut entry = Message::new();
            entry.string(1, key).string(2, value);
            t.head.message(13, &entry);
        }
        t.head.int(14, 1);
        t.inline = false;
        t
    }

    /// The whole TensorProto's encoded size.
    pub fn encoded_len(&self) -> usize {
        if self.inline {
            self.head.len() + len_field_size(self.raw_len)
        } else {
            self.head.len()
        }
    }

    #[cfg(test)]
    pub fn raw_len(&self) -> usize {
        self.raw_len
    }

    /// Writes the tensor as field `field` of `into`, its data produced by `write_data`,
    /// which must append exactly [`TensorHeader::raw_len`] bytes (and is not called for an
    /// external tensor).
    pub fn write(&self, into: &mut Message, field: u64, write_data: impl FnOnce(&mut Message)) {
        into.open(field, self.encoded_len());
        into.raw(self.head.bytes());
        if self.inline {
            into.open(9, self.raw_len);
            let before = into.len();
            write_data(into);
            debug_assert_eq!(into.len() - before, self.raw_len, "tensor data size");
        }
    }
}

/// `AttributeProto` (name = 1, f = 2, i = 3, type = 20: FLOAT = 1, INT = 2).
pub enum Attribute {
    Float(&'static str, f32),
    Int(&'static str, i64),
}

impl Attribute {
    fn encode(&self) -> Message {
        let mut m = Message::new();
        match *self {
            Attribute::Float(name, v) => {
                m.string(1, name).float(2, v).int(20, 1);
            }
            Attribute::Int(name, v) => {
                m.string(1, name).int(3, v).int(20, 2);
            }
        }
        m
    }
}

/// `NodeProto` (input = 1, output = 2, name = 3, op_type = 4, attribute = 5, domain = 7).
pub fn node(
    op: &str,
    domain: &str,
    inputs: &[&str],
    outputs: &[&str],
    attributes: &[Attribute],
) -> Message {
    let mut m = Message::new();
    for i in inputs {
        m.string(1, i);
    }
    for o in outputs {
        m.string(2, o);
    }
    m.string(
        3,
        &format!("{op}:{}", outputs.first().copied().unwrap_or("")),
    );
    m.string(4, op);
    for a in attributes {
        m.message(5, &a.encode());
    }
    if !domain.is_empty() {
        m.string(7, domain);
    }
    m
}

/// One dimension of a graph input or output, named: any size at run time.
pub enum Dim {
    Named(&'static str),
}

/// `ValueInfoProto` (name = 1, type = 2) of a tensor: `TypeProto.tensor_type` = 1,
/// `Tensor.elem_type` = 1, `Tensor.shape` = 2, `TensorShapeProto.dim` = 1,
/// `Dimension.dim_value` = 1, `Dimension.dim_param` = 2.
pub fn tensor_value_info(name: &str, elem: ElemType, dims: &[Dim]) -> Message {
    let mut shape = Message::new();
    for d in dims {
        let mut dim = Message::new();
        let Dim::Named(p) = d;
        dim.string(2, p);
        shape.message(1, &dim);
    }
    let mut tensor = Message::new();
    tensor.int(1, elem as i64).message(2, &shape);
    let mut ty = Message::new();
    ty.message(1, &tensor);
    let mut info = Message::new();
    info.string(1, name).message(2, &ty);
    info
}

/// `OperatorSetIdProto` (domain = 1, version = 2).
pub fn opset(domain: &str, version: i64) -> Message {
    let mut m = Message::new();
    if !domain.is_empty() {
        m.string(1, domain);
    }
    m.int(2, version);
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_follow_the_protobuf_encoding() {
        let mut m = Message::new();
        m.int(1, 150);
        // The example of the protobuf encoding guide: field 1, value 150.
        assert_eq!(m.bytes(), [0x08, 0x96, 0x01]);
        assert_eq!(varint_len(150), 2);
        assert_eq!(varint_len(127), 1);
        let mut neg = Message::new();
        neg.int(1, -1);
        assert_eq!(neg.len(), 11, "negative ints take ten varint bytes");
    }

    #[test]
    fn a_tensor_is_written_with_the_size_announced_beforehand() {
        let t = TensorHeader::new("w", ElemType::Float, &[2, 3]);
        assert_eq!(t.raw_len(), 24);
        let mut m = Message::new();
        t.write(&mut m, 5, |m| {
            m.raw(&[0u8; 24]);
        });
        assert_eq!(m.len(), len_field_size(t.encoded_len()));
    }
}

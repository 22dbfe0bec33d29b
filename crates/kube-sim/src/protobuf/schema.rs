//! The table of Kubernetes protobuf messages (`schema.txt`), parsed once on first use.

use std::collections::HashMap;
use std::sync::LazyLock;

pub static SCHEMA: LazyLock<Schema> = LazyLock::new(|| Schema::parse(include_str!("schema.txt")));

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    String,
    Bool,
    Int32,
    Int64,
    Double,
    Bytes,
    Time,
    MicroTime,
    Quantity,
    IntOrString,
    RawJson,
    Message(String),
    Map(Box<Kind>, Box<Kind>),
}

impl Kind {
    fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "string" => Kind::String,
            "bool" => Kind::Bool,
            "int32" => Kind::Int32,
            "int64" => Kind::Int64,
            "double" => Kind::Double,
            "bytes" => Kind::Bytes,
            "time" => Kind::Time,
            "microtime" => Kind::MicroTime,
            "quantity" => Kind::Quantity,
            "intstr" => Kind::IntOrString,
            "rawjson" => Kind::RawJson,
            _ => {
                if let Some(m) = s.strip_prefix("m:") {
                    Kind::Message(m.to_string())
                } else {
                    let (k, v) = s.strip_prefix("map:")?.split_once(':')?;
                    Kind::Map(Box::new(Kind::parse(k)?), Box::new(Kind::parse(v)?))
                }
            }
        })
    }

    pub fn is_varint(&self) -> bool {
        matches!(self, Kind::Bool | Kind::Int32 | Kind::Int64)
    }

    /// Kinds whose zero value an `omitempty` Go field leaves out of JSON.
    pub fn is_scalar(&self) -> bool {
        matches!(
            self,
            Kind::String
                | Kind::Bool
                | Kind::Int32
                | Kind::Int64
                | Kind::Double
                | Kind::Bytes
                | Kind::IntOrString
        )
    }
}

#[derive(Debug)]
pub struct Field {
    pub json: String,
    pub kind: Kind,
    pub repeated: bool,
    /// A Go pointer or a field without `omitempty`: its zero value is part of the JSON.
    pub keep_zero: bool,
    /// An embedded Go struct whose fields sit in the parent's JSON object.
    pub inline: bool,
}

#[derive(Debug, Default)]
pub struct Schema {
    messages: HashMap<String, HashMap<u32, Field>>,
    kinds: HashMap<(String, String), String>,
}

impl Schema {
    /// Parses the generated table. The table is part of the source, so a malformed line is a
    /// build mistake that the unit tests catch; it is skipped here rather than panicking a server.
    fn parse(text: &str) -> Schema {
        let mut s = Schema::default();
        let mut current: Option<String> = None;
        for line in text.lines() {
            let parts: Vec<&str> = line.split(' ').collect();
            match parts.as_slice() {
                ["M", name] => {
                    s.messages.entry(name.to_string()).or_default();
                    current = Some(name.to_string());
                }
                ["F", tag, json, kind, flags] => {
                    let (Some(m), Ok(tag), Some(kind)) =
                        (current.as_ref(), tag.parse::<u32>(), Kind::parse(kind))
                    else {
                        continue;
                    };
                    let field = Field {
                        json: if *json == "-" {
                            String::new()
                        } else {
                            json.to_string()
                        },
                        kind,
                        repeated: flags.contains('r'),
                        keep_zero: flags.contains('z'),
                        inline: flags.contains('i'),
                    };
                    s.messages.entry(m.clone()).or_default().insert(tag, field);
                }
                ["K", api_version, kind, message] => {
                    s.kinds.insert(
                        (api_version.to_string(), kind.to_string()),
                        message.to_string(),
                    );
                }
                _ => {}
            }
        }
        s
    }

    pub fn message(&self, name: &str) -> Option<&HashMap<u32, Field>> {
        self.messages.get(name)
    }

    /// The message of a top-level kind, e.g. `("v1", "ConfigMap")`.
    pub fn kind(&self, api_version: &str, kind: &str) -> Option<&str> {
        self.kinds
            .get(&(api_version.to_string(), kind.to_string()))
            .map(String::as_str)
    }

    #[cfg(test)]
    pub fn all_messages(&self) -> impl Iterator<Item = (&String, &HashMap<u32, Field>)> {
        self.messages.iter()
    }
}

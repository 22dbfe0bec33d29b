use serde_json::json;

use super::schema::{Kind, SCHEMA};
use super::{decode_object, GO_ZERO_TIME_SECS};
use crate::error::SimError;

/// A minimal protobuf writer for building bodies the way a Go client does.
#[derive(Default)]
struct Enc(Vec<u8>);

impl Enc {
    fn varint(&mut self, mut n: u64) -> &mut Self {
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                self.0.push(b);
                return self;
            }
            self.0.push(b | 0x80);
        }
    }
    fn int(&mut self, tag: u32, n: i64) -> &mut Self {
        self.varint(u64::from(tag) << 3).varint(n as u64)
    }
    fn bytes(&mut self, tag: u32, b: &[u8]) -> &mut Self {
        self.varint((u64::from(tag) << 3) | 2)
            .varint(b.len() as u64);
        self.0.extend_from_slice(b);
        self
    }
    fn str(&mut self, tag: u32, s: &str) -> &mut Self {
        self.bytes(tag, s.as_bytes())
    }
    fn msg(&mut self, tag: u32, f: impl FnOnce(&mut Enc)) -> &mut Self {
        let mut e = Enc::default();
        f(&mut e);
        self.bytes(tag, &e.0)
    }
}

fn envelope(api_version: &str, kind: &str, raw: &Enc) -> Vec<u8> {
    let mut e = Enc::default();
    e.msg(1, |t| {
        t.str(1, api_version).str(2, kind);
    })
    .bytes(2, &raw.0)
    .str(3, "")
    .str(4, "");
    let mut out = b"k8s\0".to_vec();
    out.extend(e.0);
    out
}

/// An object whose metadata (field 1) is [`meta`] of `name`, then what `more` writes.
fn object(name: &str, more: impl FnOnce(&mut Enc)) -> Enc {
    let mut e = Enc::default();
    e.msg(1, |m| {
        meta(m, name);
        more(m);
    });
    e
}

/// ObjectMeta as a Go client writes it: every non-pointer field, zero or not.
fn meta(e: &mut Enc, name: &str) {
    e.str(1, name)
        .str(2, "")
        .str(3, "")
        .str(4, "")
        .str(5, "")
        .str(6, "");
    e.int(7, 0);
    e.msg(8, |t| {
        t.int(1, GO_ZERO_TIME_SECS).int(2, 0);
    });
}

#[test]
fn every_field_of_the_table_parses_and_every_message_it_names_exists() {
    let text = include_str!("schema.txt");
    let declared = text.lines().filter(|l| l.starts_with("F ")).count();
    let mut parsed = 0;
    for (_, fields) in SCHEMA.all_messages() {
        parsed += fields.len();
        for f in fields.values() {
            let mut kinds = vec![&f.kind];
            if let Kind::Map(k, v) = &f.kind {
                kinds = vec![k, v];
            }
            for k in kinds {
                if let Kind::Message(m) = k {
                    assert!(SCHEMA.message(m).is_some(), "{} names {m}", f.json);
                }
            }
        }
    }
    assert_eq!(parsed, declared);
    assert_eq!(
        SCHEMA.kind("v1", "ConfigMap"),
        Some("api.core.v1.ConfigMap")
    );
}

#[test]
fn a_configmap_from_kubectl_create_decodes_to_the_json_a_server_stores() {
    let mut cm = object("settings", |m| {
        m.msg(11, |l| {
            l.str(1, "app").str(2, "shop");
        });
    });
    cm.msg(2, |d| {
        d.str(1, "mode").str(2, "fast");
    })
    .msg(3, |d| {
        d.str(1, "blob").bytes(2, &[0, 1, 2]);
    });
    let obj = decode_object(&envelope("v1", "ConfigMap", &cm)).unwrap();
    assert_eq!(
        obj,
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "settings", "labels": {"app": "shop"}},
            "data": {"mode": "fast"}, "binaryData": {"blob": "AAEC"}})
    );
}

#[test]
fn pointer_zeros_stay_and_inlined_structs_join_their_parent() {
    // Deployment: spec.replicas (a pointer) = 0, minReadySeconds (omitempty) = 0, a volume whose
    // VolumeSource is inlined, a maxSurge IntOrString, a container port.
    let mut d = object("web", |_| {});
    d.msg(2, |spec| {
        spec.int(1, 0).int(5, 0);
        spec.msg(4, |s| {
            s.str(1, "RollingUpdate").msg(2, |ru| {
                ru.msg(2, |i| {
                    i.int(1, 1).int(2, 0).str(3, "25%");
                });
            });
        });
        spec.msg(3, |tpl| {
            tpl.msg(2, |pod| {
                pod.msg(1, |v| {
                    v.str(1, "cache").msg(2, |src| {
                        src.msg(2, |empty| {
                            empty.str(1, "");
                        });
                    });
                });
                pod.msg(2, |c| {
                    c.str(1, "web").str(2, "nginx:1.25").msg(6, |p| {
                        p.str(1, "").int(3, 80).str(4, "TCP");
                    });
                });
            });
        });
    });
    let obj = decode_object(&envelope("apps/v1", "Deployment", &d)).unwrap();
    let spec = &obj["spec"];
    assert_eq!(spec["replicas"], 0, "{spec}");
    assert!(spec.get("minReadySeconds").is_none(), "{spec}");
    assert_eq!(spec["strategy"]["rollingUpdate"]["maxSurge"], "25%");
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["volumes"][0], json!({"name": "cache", "emptyDir": {}}));
    assert_eq!(
        pod["containers"][0],
        json!({"name": "web", "image": "nginx:1.25", "ports": [{"containerPort": 80, "protocol": "TCP"}]})
    );
}

#[test]
fn times_are_rfc3339_and_the_go_zero_time_is_left_out() {
    let mut ev = object("e1", |m| {
        m.msg(9, |t| {
            t.int(1, 1_700_000_000).int(2, 0);
        });
    });
    ev.msg(2, |t| {
        t.int(1, 1_700_000_000).int(2, 123_456_000);
    })
    .msg(13, |t| {
        t.int(1, GO_ZERO_TIME_SECS);
    });
    let obj = decode_object(&envelope("events.k8s.io/v1", "Event", &ev)).unwrap();
    assert!(obj["metadata"].get("creationTimestamp").is_none());
    assert!(obj.get("deprecatedFirstTimestamp").is_none(), "{obj}");
    assert_eq!(obj["metadata"]["deletionTimestamp"], "2023-11-14T22:13:20Z");
    assert_eq!(obj["eventTime"], "2023-11-14T22:13:20.123456Z");
}

#[test]
fn a_custom_resource_in_protobuf_is_refused_with_415() {
    let e = decode_object(&envelope("example.com/v1", "Widget", &Enc::default())).unwrap_err();
    assert!(matches!(e, SimError::UnsupportedMediaType(_)), "{e}");
    let e = decode_object(b"{\"kind\":\"ConfigMap\"}").unwrap_err();
    assert_eq!(e.code(), 400);
}

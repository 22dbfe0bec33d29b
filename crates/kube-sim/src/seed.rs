//! Seeding from manifests: multi-document YAML or JSON (also `kind: List`), from a file or a
//! folder. Namespaces and CRDs go first, missing namespaces are created, existing objects are
//! replaced, so the same folder can be loaded twice.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{json, Value};

use crate::error::{Result, SimError};
use crate::store::{Store, StoredObject};

/// Parses every document of a YAML or JSON text, flattening `List` objects.
pub fn parse_documents(text: &str, origin: &str) -> Result<Vec<Value>> {
    let mut docs = Vec::new();
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        let v: Value = serde_json::from_str(text)
            .map_err(|e| SimError::BadRequest(format!("{origin}: invalid JSON: {e}")))?;
        match v {
            Value::Array(items) => docs.extend(items),
            other => docs.push(other),
        }
    } else {
        for d in serde_yaml::Deserializer::from_str(text) {
            let v: Value = serde::Deserialize::deserialize(d)
                .map_err(|e| SimError::BadRequest(format!("{origin}: invalid YAML: {e}")))?;
            if !v.is_null() {
                docs.push(v);
            }
        }
    }
    let mut out = Vec::new();
    for d in docs {
        let is_list = d
            .get("kind")
            .and_then(Value::as_str)
            .is_some_and(|k| k == "List" || k.ends_with("List"))
            && d.get("items").is_some_and(Value::is_array);
        if is_list {
            if let Some(items) = d.get("items").and_then(Value::as_array) {
                out.extend(items.iter().cloned());
            }
        } else {
            out.push(d);
        }
    }
    Ok(out)
}

fn rank(obj: &Value) -> u8 {
    match obj.get("kind").and_then(Value::as_str) {
        Some("Namespace") => 0,
        Some("CustomResourceDefinition") => 1,
        _ => 2,
    }
}

/// Creates the object, or replaces it when it exists (keeping its status unless it carries one).
pub fn apply_object(store: &Store, mut obj: Value) -> Result<Arc<StoredObject>> {
    let s = |v: &Value, p: &str| {
        v.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let (api_version, kind, name) = (
        s(&obj, "/apiVersion"),
        s(&obj, "/kind"),
        s(&obj, "/metadata/name"),
    );
    if api_version.is_empty() || kind.is_empty() {
        return Err(SimError::BadRequest(format!(
            "object {name:?} needs apiVersion and kind"
        )));
    }
    let ty = store.type_for(&api_version, &kind)?;
    let ns = if ty.namespaced {
        let ns = s(&obj, "/metadata/namespace");
        let ns = if ns.is_empty() {
            "default".to_string()
        } else {
            ns
        };
        let ns_ty = store.type_for("v1", "Namespace")?;
        if store.get(&ns_ty, "", &ns).is_err() {
            store.create(&ns_ty, None, json!({"metadata": {"name": ns}}))?;
        }
        ns
    } else {
        String::new()
    };
    if !name.is_empty() && store.get(&ty, &ns, &name).is_ok() {
        if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
        }
        let status = obj.get("status").cloned();
        let updated = store.update(&ty, &ns, &name, obj, false)?;
        return match status {
            Some(st) if ty.has_status => store.update(&ty, &ns, &name, json!({"status": st}), true),
            _ => Ok(updated),
        };
    }
    store.create(&ty, ty.namespaced.then_some(ns.as_str()), obj)
}

/// Applies the documents of a text; returns how many objects were applied.
pub fn apply_manifests(store: &Store, text: &str, origin: &str) -> Result<usize> {
    let mut docs = parse_documents(text, origin)?;
    docs.sort_by_key(rank);
    let n = docs.len();
    for d in docs {
        apply_object(store, d).map_err(|e| match e {
            SimError::Io(m) => SimError::Io(m),
            other => SimError::BadRequest(format!("{origin}: {other}")),
        })?;
    }
    Ok(n)
}

fn manifest_files(path: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let meta =
        std::fs::metadata(path).map_err(|e| SimError::Io(format!("{}: {e}", path.display())))?;
    if meta.is_file() {
        out.push(path.to_path_buf());
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| SimError::Io(format!("{}: {e}", path.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            manifest_files(&p, out)?;
        } else if p
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
        {
            out.push(p);
        }
    }
    Ok(())
}

/// Loads a manifest file, or every `.yaml`/`.yml`/`.json` file under a folder (sorted by path;
/// namespaces and CRDs of all files first). Returns how many objects were applied.
pub fn load_path(store: &Store, path: &Path) -> Result<usize> {
    let mut files = Vec::new();
    manifest_files(path, &mut files)?;
    let mut docs = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f)
            .map_err(|e| SimError::Io(format!("{}: {e}", f.display())))?;
        for d in parse_documents(&text, &f.display().to_string())? {
            docs.push((f.display().to_string(), d));
        }
    }
    docs.sort_by_key(|(_, d)| rank(d));
    let n = docs.len();
    for (origin, d) in docs {
        apply_object(store, d).map_err(|e| SimError::BadRequest(format!("{origin}: {e}")))?;
    }
    Ok(n)
}

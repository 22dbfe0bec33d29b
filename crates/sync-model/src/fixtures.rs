//! Resource instances for tests across the workspace: the crate's own tests, and other
//! crates' tests through the `fixtures` feature (a dev-dependency feature only).

use crate::{ResourceId, ResourceInstance};

/// A Deployment `namespace/name` labelled `app=<app>`, no annotations.
pub fn deployment(namespace: &str, name: &str, app: &str) -> ResourceInstance {
    ResourceInstance {
        id: ResourceId::new(Some(namespace), "apps/v1", "Deployment", name),
        namespace: namespace.into(),
        name: name.into(),
        kind: "Deployment".into(),
        api_version: "apps/v1".into(),
        api_group: "apps".into(),
        labels: [("app".to_string(), app.to_string())].into(),
        annotations: Default::default(),
        created_at: "2026-02-20T10:00:00Z".into(),
        health: None,
        images: Vec::new(),
        owner: None,
    }
}

/// The contract's example: Deployment default/nginx, labels app=nginx and tier=frontend,
/// described as "Main web server".
pub fn nginx() -> ResourceInstance {
    let mut nginx = deployment("default", "nginx", "nginx");
    nginx
        .labels
        .insert("tier".to_string(), "frontend".to_string());
    nginx.annotations = [("description".to_string(), "Main web server".to_string())].into();
    nginx
}

//! Auth fails closed: a token that is configured but blank stops every command that
//! serves, instead of silently turning the bearer check off.

mod common;

use std::process::Command;

fn start_with_blank_token(args: &[&str], work: &std::path::Path) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_cw"))
        .args(args)
        .env("CW_INGEST_TOKEN", " \n")
        .env("CW_MODEL_DIR", common::model_dir())
        .env("CW_DATA_DIR", work.join("data"))
        .env("CW_PORT", testkit::free_port().to_string())
        .env(
            "API_BIND_ADDRESS",
            format!("127.0.0.1:{}", testkit::free_port()),
        )
        .env("KUBECONFIG", work.join("no-kubeconfig"))
        .env_remove("CHROMA_URL")
        .env_remove("CW_EMBEDDING_PROVIDER")
        .output()
        .expect("running cw");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_blank_token_is_a_start_up_error_for_serve_run_and_watch() {
    let work = tempfile::tempdir().expect("temp dir");
    for command in ["serve", "run", "watch"] {
        let (ok, stderr) = start_with_blank_token(&[command], work.path());
        assert!(!ok, "cw {command} with a blank token must not start");
        assert!(
            stderr.contains("CW_INGEST_TOKEN") && stderr.contains("blank"),
            "cw {command} should say the token is blank; stderr:\n{stderr}"
        );
    }
}

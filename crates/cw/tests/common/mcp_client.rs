//! A real MCP client (the Python `mcp` SDK in .venv, scripts/setup installs it;
//! tests/mcp/client.py) for the tests that drive cw's MCP server.
#![allow(dead_code)] // not every test binary uses every helper

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use super::workspace_root;

fn python() -> PathBuf {
    let py = workspace_root().join(".venv/bin/python");
    assert!(
        py.is_file(),
        "{} is missing: run scripts/setup (it installs the Python mcp SDK)",
        py.display()
    );
    py
}

/// Runs the Python MCP client with `transport_args` and `plan`; its JSON report.
pub fn drive(transport_args: &[&str], plan: Value, env: &[(&str, &str)]) -> Value {
    let (status, report, stderr) = run_client(transport_args, plan, env);
    assert!(
        status.success(),
        "the MCP client failed ({status}):\n{report}\n{stderr}"
    );
    report
}

/// Runs the Python MCP client for a session that must fail; what the SDK raised
/// (`{"type", "message", "code"}`).
pub fn drive_failing(transport_args: &[&str], plan: Value, env: &[(&str, &str)]) -> Value {
    let (status, report, stderr) = run_client(transport_args, plan, env);
    assert_eq!(
        status.code(),
        Some(3),
        "the MCP session should fail: {report}\n{stderr}"
    );
    report["failure"].clone()
}

fn run_client(
    transport_args: &[&str],
    plan: Value,
    env: &[(&str, &str)],
) -> (std::process::ExitStatus, Value, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mcp/client.py");
    let mut command = Command::new(python());
    command
        .arg(&script)
        .args(transport_args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().expect("starting the Python MCP client");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(plan.to_string().as_bytes())
            .expect("writing the plan");
    }
    let out = child.wait_with_output().expect("the MCP client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let report = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "the MCP client ({}) printed no report ({e}):\n{stdout}\n{stderr}",
            out.status
        )
    });
    (out.status, report, stderr)
}

/// The structured answer of call `i`, which must have succeeded.
pub fn ok(report: &Value, i: usize) -> &Value {
    let call = &report["calls"][i];
    assert_ne!(
        call["isError"], true,
        "{} {} failed: {}",
        call["tool"], call["args"], call["content"]
    );
    &call["structuredContent"]
}

/// The list under `key` of an answer, which must hold one.
pub fn list<'a>(answer: &'a Value, key: &str) -> std::slice::Iter<'a, Value> {
    answer[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key:?} list in {answer}"))
        .iter()
}

/// The message of call `i`, which must be a tool error (not a protocol failure).
pub fn tool_error(report: &Value, i: usize) -> String {
    let call = &report["calls"][i];
    assert_eq!(
        call["isError"], true,
        "{} should fail: {call}",
        call["tool"]
    );
    call["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

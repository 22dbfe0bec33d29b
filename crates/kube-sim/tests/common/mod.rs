//! Shared by the kube-rs tests of the simulator: a kube-rs watcher's events as lines of text,
//! a wait for one line, and a JSON GET through the client.
#![allow(dead_code)]

use std::time::Duration;

use futures::StreamExt;
use kube::runtime::watcher::{self, Event};
use tokio::sync::mpsc;

/// A textual log of watcher events: "init", "initapply:NAME", "initdone", "apply:NAME",
/// "delete:NAME", and "error:" followed by what `error` says of an error.
pub fn spawn_watch<K>(
    stream: impl futures::Stream<Item = watcher::Result<Event<K>>> + Send + 'static,
    error: fn(&watcher::Error) -> String,
) -> mpsc::UnboundedReceiver<String>
where
    K: kube::Resource + Send + 'static,
{
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(ev) = stream.next().await {
            let name = |o: &K| o.meta().name.clone().unwrap_or_default();
            let line = match ev {
                Ok(Event::Init) => "init".to_string(),
                Ok(Event::InitApply(o)) => format!("initapply:{}", name(&o)),
                Ok(Event::InitDone) => "initdone".to_string(),
                Ok(Event::Apply(o)) => format!("apply:{}", name(&o)),
                Ok(Event::Delete(o)) => format!("delete:{}", name(&o)),
                Err(e) => format!("error:{}", error(&e)),
            };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// The lines up to and including `want`; fails with what was seen when it does not come in
/// 20 s.
pub async fn wait_for(rx: &mut mpsc::UnboundedReceiver<String>, want: &str) -> Vec<String> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(line)) => {
                let done = line == want;
                seen.push(line);
                if done {
                    return seen;
                }
            }
            _ => panic!("never saw {want:?}; saw {seen:?}"),
        }
    }
}

/// `GET path` through `client` (the simulator's own endpoints too): its JSON answer.
pub async fn get_json(client: &kube::Client, path: &str) -> serde_json::Value {
    let request = http::Request::get(path)
        .body(vec![])
        .expect("a GET request");
    let text = client
        .request_text(request)
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {path} answered {text}: {e}"))
}

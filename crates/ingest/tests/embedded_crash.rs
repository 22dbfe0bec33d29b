//! Kill -9 while writing: every write the store acknowledged is there after a restart, and
//! the file opens and passes SQLite's integrity check. The writer is this same test binary
//! re-run as a child process (selected by an environment variable).

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use ingest::embed::ModelInfo;
use ingest::store::embedded::EmbeddedStore;
use ingest::store::{MetaValue, Record, VectorStore};

const CHILD_STORE: &str = "CW_CRASH_TEST_STORE";
const CHILD_ROUND: &str = "CW_CRASH_TEST_ROUND";
const BATCH: usize = 200;
const COLLECTION: &str = "instances";

fn model() -> ModelInfo {
    ModelInfo {
        id: "test:crash-384d".into(),
        dimension: 384,
    }
}

fn batch(round: u32, b: u32) -> Vec<Record> {
    let mut records: Vec<Record> = (0..BATCH)
        .map(|i| Record {
            id: format!("r{round}/b{b}/{i}"),
            document: format!("round {round} batch {b} item {i}"),
            metadata: [("round".to_string(), MetaValue::Str(round.to_string()))].into(),
            embedding: (0..384)
                .map(|j| ((i + j + b as usize) % 13) as f32 - 6.0)
                .collect(),
            content_hash: format!("h{round}-{b}-{i}"),
        })
        .collect();
    // One record rewritten by every batch: after a crash it holds the last acknowledged batch
    // (or the one in flight, if its commit landed before the kill).
    records.push(Record {
        id: format!("r{round}/latest"),
        document: format!("latest of round {round}"),
        metadata: Default::default(),
        embedding: vec![1.0; 384],
        content_hash: b.to_string(),
    });
    records
}

/// Child mode: write batches forever, printing `ACK n` after each acknowledged upsert.
async fn write_until_killed(path: &str, round: u32) {
    let store = EmbeddedStore::open(std::path::Path::new(path)).expect("child opens the store");
    store
        .ensure_collection(COLLECTION, &model())
        .await
        .expect("ensure");
    for b in 0.. {
        store
            .upsert(COLLECTION, &batch(round, b))
            .await
            .expect("upsert");
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        writeln!(out, "ACK {b}").expect("stdout");
        out.flush().expect("stdout");
    }
}

#[tokio::test]
async fn acknowledged_writes_survive_sigkill_and_the_file_still_opens() {
    if let (Ok(path), Ok(round)) = (std::env::var(CHILD_STORE), std::env::var(CHILD_ROUND)) {
        let round = round.parse().expect("round number");
        return write_until_killed(&path, round).await;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("store.sqlite3");
    let exe = std::env::current_exe().expect("test binary path");
    let mut acked: HashMap<u32, u32> = HashMap::new();
    for round in 0..3u32 {
        let mut child = Command::new(&exe)
            .args([
                "acknowledged_writes_survive_sigkill_and_the_file_still_opens",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_STORE, &path)
            .env(CHILD_ROUND, round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the writer");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(n) = line
                    .strip_prefix("ACK ")
                    .and_then(|n| n.parse::<u32>().ok())
                {
                    if tx.send(n).is_err() {
                        break;
                    }
                }
            }
        });
        // Let it get going, then kill at a different point each round.
        let target = 5 + round * 4;
        let mut last = None;
        while last.is_none_or(|n| n < target) {
            match rx.recv_timeout(Duration::from_secs(60)) {
                Ok(n) => last = Some(n),
                Err(_) => {
                    let _ = child.kill();
                    panic!(
                        "round {round}: the writer acknowledged nothing for 60 s (last: {last:?})"
                    );
                }
            }
        }
        std::thread::sleep(Duration::from_millis(3 * u64::from(round) + 1));
        child.kill().expect("SIGKILL the writer");
        let status = child.wait().expect("reap the writer");
        assert!(!status.success(), "the writer was killed, not finished");
        reader.join().expect("reader thread");
        // Acknowledgements printed before the kill count too.
        let last = rx.try_iter().last().or(last).expect("at least one ack");
        acked.insert(round, last);
    }

    {
        let store = EmbeddedStore::open(&path).expect("the store opens after three kills");
        let hashes = store
            .all_hashes(COLLECTION, None)
            .await
            .expect("all_hashes");
        for (&round, &last) in &acked {
            for b in 0..=last {
                for r in batch(round, b).iter().take(BATCH) {
                    assert_eq!(
                        hashes.get(&r.id),
                        Some(&r.content_hash),
                        "acknowledged record {} lost",
                        r.id
                    );
                }
            }
            let latest: u32 = hashes[&format!("r{round}/latest")]
                .parse()
                .expect("batch number");
            assert!(
                latest == last || latest == last + 1,
                "round {round}: latest is batch {latest}, last ack {last}"
            );
        }
        let probe = &batch(0, 0)[0];
        let hits = store
            .query(COLLECTION, &probe.embedding, None, 1)
            .await
            .expect("query");
        assert!(hits[0].distance.abs() < 1e-4, "vectors survive too");
    }
    let conn = rusqlite::Connection::open(&path).expect("sqlite opens the file");
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check");
    assert_eq!(check, "ok");
}

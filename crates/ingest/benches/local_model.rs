//! Local model throughput: sentences per second for several batch sizes, on however many
//! cores the machine has (2 in this project's CI).
//!
//!     cargo bench -p ingest --bench local_model
//!
//! Needs the model (`cw model fetch`, or CW_MODEL_DIR). CW_BENCH_SENTENCES sets the count.
//!
//! With CW_BENCH_TEXTS=FILE (one text per line) it embeds those texts once after a warm-up
//! batch, at the default batch size, and prints one JSON line `{"docs_per_s": ...}`; with
//! CW_BENCH_VECTORS_OUT=FILE it also writes the vectors there (little-endian f32, in order);
//! CW_BENCH_BATCH sets the batch size.
//! scripts/bench-embed runs it so, next to sentence-transformers.

use std::path::PathBuf;
use std::time::Instant;

use ingest::embed::local::{default_model_dir, LocalEmbedder};

mod bench_run;
use bench_run::{cores, count_from_env};

fn main() {
    let dir = std::env::var_os("CW_MODEL_DIR")
        .map(PathBuf::from)
        .or_else(default_model_dir)
        .expect("set HOME or CW_MODEL_DIR");
    let embedder = match LocalEmbedder::load(&dir) {
        Ok(e) if std::env::var_os("CW_BENCH_LOAD_ONLY").is_some() => {
            println!(
                "after load: rss {:.0} MiB, peak {:.0} MiB",
                status_mib("VmRSS:"),
                status_mib("VmHWM:")
            );
            drop(e);
            return;
        }
        Ok(e) => e,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    if let Some(file) = std::env::var_os("CW_BENCH_TEXTS") {
        embed_file(&embedder, &PathBuf::from(file));
        return;
    }
    let n: usize = count_from_env("CW_BENCH_SENTENCES", 256);
    // Document texts as the pipeline makes them (about 30-40 word pieces each).
    let kinds = [
        "Deployment",
        "StatefulSet",
        "Service",
        "ConfigMap",
        "CronJob",
    ];
    let texts: Vec<String> = (0..n)
        .map(|i| {
            format!(
                "{} app-{i} | namespace: team-{} | apiVersion: apps/v1 | labels: app=app-{i}, tier={} | {}",
                kinds[i % kinds.len()],
                i % 13,
                ["frontend", "backend", "data"][i % 3],
                ["Main web server", "PostgreSQL primary for orders", "Nightly report job", ""][i % 4]
            )
        })
        .collect();
    let cores = cores();
    println!("local model all-MiniLM-L6-v2, {n} document texts, {cores} cores");
    // Warm-up: first-touch of the weights and allocator.
    let _ = embedder.embed_blocking(&texts[..8.min(n)]);
    for batch in [1usize, 8, 32, 64] {
        let e = embedder.clone().with_batch_size(batch);
        let start = Instant::now();
        let vectors = e.embed_blocking(&texts).expect("embed");
        let secs = start.elapsed().as_secs_f64();
        assert_eq!(vectors.len(), n);
        println!(
            "batch {batch:>3}: {:>8.1} sentences/s  ({:.2} s for {n}, {:.1} ms per sentence)",
            n as f64 / secs,
            secs,
            secs * 1000.0 / n as f64
        );
    }
    // A query as `cw search` embeds it: one short sentence.
    let query = vec!["what databases are running?".to_string()];
    let start = Instant::now();
    for _ in 0..20 {
        embedder.embed_blocking(&query).expect("embed query");
    }
    println!(
        "one short query: {:.1} ms",
        start.elapsed().as_secs_f64() * 1000.0 / 20.0
    );
}

/// One timed pass over the texts of `file` (the default batch size, as the pipeline embeds).
fn embed_file(embedder: &LocalEmbedder, file: &std::path::Path) {
    let text = std::fs::read_to_string(file).expect("read CW_BENCH_TEXTS");
    let texts: Vec<String> = text.lines().map(String::from).collect();
    let batch = std::env::var("CW_BENCH_BATCH")
        .ok()
        .and_then(|b| b.parse().ok())
        .unwrap_or(ingest::embed::local::DEFAULT_BATCH_SIZE);
    let embedder = embedder.clone().with_batch_size(batch);
    let _ = embedder.embed_blocking(&texts[..32.min(texts.len())]);
    let start = Instant::now();
    let vectors = embedder.embed_blocking(&texts).expect("embed");
    let secs = start.elapsed().as_secs_f64();
    if let Some(out) = std::env::var_os("CW_BENCH_VECTORS_OUT") {
        let bytes: Vec<u8> = vectors
            .iter()
            .flatten()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        std::fs::write(out, bytes).expect("write CW_BENCH_VECTORS_OUT");
    }
    println!(
        "{{\"docs_per_s\": {:.3}, \"texts\": {}, \"secs\": {:.3}, \"rss_mib\": {:.0}, \"peak_rss_mib\": {:.0}}}",
        texts.len() as f64 / secs,
        texts.len(),
        secs,
        status_mib("VmRSS:"),
        status_mib("VmHWM:"),
    );
}

/// A memory figure of this process from /proc/self/status (Linux), in MiB; 0 elsewhere.
fn status_mib(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

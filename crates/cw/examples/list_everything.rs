//! Baseline for `scripts/bench-sync`: what listing alone costs. Discovers the types as
//! `cw sync-instances` does and lists every one in pages (metadata only, the watcher's
//! extraction), without diffing or sending anything. Prints `<objects> <types> <seconds>`.
//!
//!   KUBECONFIG=... cargo run --release -p cw --example list_everything [PAGE_SIZE]

use std::time::Instant;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let page_size: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(500);
    let started = Instant::now();
    let client = watcher::kube_client().await?;
    let types = watcher::discover(&client, &watcher::TypeFilter::default())
        .await?
        .types;
    let namespaces = watcher::NamespaceFilter::default();
    let mut objects = 0;
    for ty in &types {
        objects +=
            watcher::source::list_type(&client, ty, &namespaces, page_size, |_| async {}).await?;
    }
    println!(
        "{objects} {} {:.2}",
        types.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

//! `voyage-standin --port 8123`: the Voyage AI stand-in as a process, for benchmark
//! scripts. `GET /stats` returns the counters, `POST /stats/reset` clears them.

use clap::Parser;

#[derive(Parser)]
#[command(about = "A local stand-in for Voyage AI's /v1/embeddings (tests and benchmarks only)")]
struct Args {
    #[arg(long, default_value_t = 0)]
    port: u16,
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Require `Authorization: Bearer <key>`.
    #[arg(long, env = "VOYAGE_API_KEY")]
    api_key: Option<String>,
    /// Refuse (400) any request holding an input longer than this many characters.
    #[arg(long)]
    refuse_inputs_longer_than: Option<usize>,
    /// Milliseconds every embeddings request waits before its answer: a provider's round
    /// trip (Voyage AI answers a batch in roughly 100 to 300 ms; 0 answers at once).
    #[arg(long, env = "VOYAGE_STANDIN_LATENCY_MS", default_value_t = 0)]
    latency_ms: u64,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port)).await?;
    // The one line a script reads to learn the address.
    println!("listening on http://{}/v1", listener.local_addr()?);
    testkit::voyage::serve(
        listener,
        args.api_key,
        args.refuse_inputs_longer_than,
        std::time::Duration::from_millis(args.latency_ms),
        async {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(_) => return std::future::pending().await,
                };
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        },
    )
    .await
}

//! `cw watch`: wiring only; see the crate that implements it.

#[derive(clap::Args)]
pub struct Args {}

pub async fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("cw watch is not built yet")
}

//! `cw model`: wiring only; see the crate that implements it.

#[derive(clap::Args)]
pub struct Args {}

pub async fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("cw model is not built yet")
}

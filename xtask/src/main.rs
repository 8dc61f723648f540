//! `cargo xtask`: project automation (plugin bundling).

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    anyhow::bail!("unknown xtask command {args:?}; try `cargo xtask bundle <package> [--release]`")
}

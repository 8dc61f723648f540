//! `cargo xtask`: project automation. `cargo xtask bundle <package> [--release]` builds a plugin
//! package's cdylib and lays it out as `target/bundled/<package>.clap` and `<package>.vst3`.

mod bundle;

use anyhow::{bail, Context, Result};

const HELP: &str = "\
cargo xtask bundle <package> [--release] [--target-dir <dir>]

Builds <package> (a cdylib exporting `clap_entry` and `GetPluginFactory`) and writes
  target/bundled/<package>.clap   the CLAP plugin
  target/bundled/<package>.vst3   the VST3 bundle
with the layout hosts expect on this OS:
  Linux    <package>.clap is the .so; <package>.vst3/Contents/<arch>-linux/<package>.so
  macOS    <package>.clap and <package>.vst3 are bundles: Contents/Info.plist, Contents/PkgInfo,
           Contents/MacOS/<package>
  Windows  <package>.clap is the .dll; <package>.vst3/Contents/<arch>-win/<package>.vst3

Install: copy the .clap to ~/.clap (Linux), ~/Library/Audio/Plug-Ins/CLAP (macOS) or
%COMMONPROGRAMFILES%\\CLAP (Windows), and the .vst3 to ~/.vst3, ~/Library/Audio/Plug-Ins/VST3 or
%COMMONPROGRAMFILES%\\VST3.

Options:
  --release            build with the release profile (default: dev)
  --target-dir <dir>   cargo's target directory (default: $CARGO_TARGET_DIR or <workspace>/target)
  -h, --help           this text";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("bundle") => {
            let rest = &args[1..];
            if rest.iter().any(|a| a == "-h" || a == "--help") {
                println!("{HELP}");
                return Ok(());
            }
            let opts =
                bundle::Options::parse(rest).context("parsing `cargo xtask bundle` arguments")?;
            let out = bundle::run(&opts)?;
            for p in out {
                println!("bundled {}", p.display());
            }
            Ok(())
        }
        Some("-h" | "--help" | "help") | None => {
            println!("{HELP}");
            Ok(())
        }
        Some(other) => bail!("unknown xtask command `{other}`\n\n{HELP}"),
    }
}

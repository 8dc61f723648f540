//! `cargo xtask bundle`: build a plugin cdylib and lay it out as .clap and .vst3 bundles.

use anyhow::{bail, Context, Result};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Parsed arguments of `bundle`.
pub struct Options {
    pub package: String,
    pub release: bool,
    pub target_dir: PathBuf,
}

impl Options {
    pub fn parse(args: &[String]) -> Result<Self> {
        let mut package = None;
        let mut release = false;
        let mut target_dir = None;
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--release" => release = true,
                "--target-dir" => {
                    target_dir = Some(PathBuf::from(
                        it.next().context("--target-dir needs a value")?,
                    ))
                }
                s if s.starts_with('-') => bail!("unknown option `{s}` (try --help)"),
                s if package.is_none() => package = Some(s.to_string()),
                s => bail!("unexpected argument `{s}` (one package at a time)"),
            }
        }
        let package = package.context("missing <package> (try --help)")?;
        let target_dir = match target_dir {
            Some(d) => d,
            None => match std::env::var_os("CARGO_TARGET_DIR") {
                Some(d) => PathBuf::from(d),
                None => workspace_root().join("target"),
            },
        };
        Ok(Self {
            package,
            release,
            target_dir,
        })
    }
}

fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(Path::to_path_buf).unwrap_or(manifest)
}

/// Builds the package and writes both bundles; returns their paths.
pub fn run(opts: &Options) -> Result<Vec<PathBuf>> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace_root())
        .args(["build", "--lib", "-p", &opts.package])
        .arg("--target-dir")
        .arg(&opts.target_dir);
    if opts.release {
        cmd.arg("--release");
    }
    let status = cmd.status().context("running cargo build")?;
    if !status.success() {
        bail!("cargo build -p {} failed ({status})", opts.package);
    }
    let profile_dir = opts
        .target_dir
        .join(if opts.release { "release" } else { "debug" });
    let lib = profile_dir.join(library_file(&opts.package));
    if !lib.is_file() {
        bail!(
            "{} was not built (is {} a cdylib?)",
            lib.display(),
            opts.package
        );
    }
    let out_dir = opts.target_dir.join("bundled");
    fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let clap = out_dir.join(format!("{}.clap", opts.package));
    let vst3 = out_dir.join(format!("{}.vst3", opts.package));
    write_clap(&lib, &clap, &opts.package)?;
    write_vst3(&lib, &vst3, &opts.package)?;
    Ok(vec![clap, vst3])
}

fn library_file(package: &str) -> String {
    let stem = package.replace('-', "_");
    if cfg!(target_os = "windows") {
        format!("{stem}.dll")
    } else if cfg!(target_os = "macos") {
        format!("lib{stem}.dylib")
    } else {
        format!("lib{stem}.so")
    }
}

fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86" => "x86",
        "aarch64" => "aarch64",
        _ => "x86_64",
    }
}

fn remove(path: &Path) -> Result<()> {
    if path.is_dir() {
        fs::remove_dir_all(path).with_context(|| format!("removing {}", path.display()))?;
    } else if path.exists() {
        fs::remove_file(path).with_context(|| format!("removing {}", path.display()))?;
    }
    Ok(())
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    fs::copy(from, to)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    Ok(())
}

fn write_clap(lib: &Path, clap: &Path, name: &str) -> Result<()> {
    remove(clap)?;
    if cfg!(target_os = "macos") {
        copy(lib, &clap.join("Contents/MacOS").join(name))?;
        write_plist(clap, name, "BNDL")
    } else {
        copy(lib, clap)
    }
}

fn write_vst3(lib: &Path, vst3: &Path, name: &str) -> Result<()> {
    remove(vst3)?;
    if cfg!(target_os = "macos") {
        copy(lib, &vst3.join("Contents/MacOS").join(name))?;
        write_plist(vst3, name, "BNDL")
    } else if cfg!(target_os = "windows") {
        copy(
            lib,
            &vst3.join(format!("Contents/{}-win/{name}.vst3", arch())),
        )
    } else {
        copy(
            lib,
            &vst3.join(format!("Contents/{}-linux/{name}.so", arch())),
        )
    }
}

fn write_plist(bundle: &Path, name: &str, package_type: &str) -> Result<()> {
    let plist = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
  <key>CFBundleExecutable</key><string>{name}</string>
  <key>CFBundleIdentifier</key><string>dev.adiff.{name}</string>
  <key>CFBundleName</key><string>{name}</string>
  <key>CFBundlePackageType</key><string>{package_type}</string>
  <key>CFBundleSignature</key><string>????</string>
  <key>CFBundleVersion</key><string>{version}</string>
  <key>CFBundleShortVersionString</key><string>{version}</string>
</dict>
</plist>
"#,
        version = env!("CARGO_PKG_VERSION")
    );
    let contents = bundle.join("Contents");
    fs::write(contents.join("Info.plist"), plist).context("writing Info.plist")?;
    fs::write(contents.join("PkgInfo"), format!("{package_type}????"))
        .context("writing PkgInfo")?;
    Ok(())
}

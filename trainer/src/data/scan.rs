//! Recursive scan of a data folder for audio files, and the validation split by file.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// File extensions the trainer reads (decoded by `adiff_core::audio::read_audio`).
pub const EXTENSIONS: [&str; 5] = ["wav", "flac", "mp3", "ogg", "oga"];

/// Every audio file under `root` (recursively), sorted by path so the order is the same on
/// every machine. Hidden files and folders (names starting with `.`) are skipped.
pub fn scan(root: &Path) -> Result<Vec<PathBuf>> {
    let meta =
        std::fs::metadata(root).with_context(|| format!("data folder {}", root.display()))?;
    anyhow::ensure!(
        meta.is_dir(),
        "data path {} is not a folder",
        root.display()
    );
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))?
        {
            let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
            let path = entry.path();
            let name = entry.file_name();
            if name.to_string_lossy().starts_with('.') {
                continue;
            }
            let ty = entry.file_type()?;
            if ty.is_dir() {
                stack.push(path);
            } else if is_audio(&path) {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Whether `path` has one of the [`EXTENSIONS`] (case-insensitive).
pub fn is_audio(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

/// Splits sorted `files` into (train, validation) by file, never by window: with
/// `k = max(2, round(1 / fraction))`, file `i` is held out iff `i % k == 1` (the rule of the
/// project's dataset recipe, stable as the folder grows). `fraction <= 0` holds out nothing.
pub fn split_by_file(files: Vec<PathBuf>, fraction: f64) -> (Vec<PathBuf>, Vec<PathBuf>) {
    if fraction <= 0.0 {
        return (files, Vec::new());
    }
    let k = ((1.0 / fraction).round() as usize).max(2);
    let (mut train, mut val) = (Vec::new(), Vec::new());
    for (i, f) in files.into_iter().enumerate() {
        if i % k == 1 {
            val.push(f);
        } else {
            train.push(f);
        }
    }
    (train, val)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_is_recursive_sorted_and_filters_extensions() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        std::fs::create_dir_all(r.join("b/c")).unwrap();
        std::fs::create_dir_all(r.join(".hidden")).unwrap();
        for f in [
            "z.WAV",
            "b/a.flac",
            "b/c/x.mp3",
            "b/c/y.ogg",
            "notes.txt",
            ".hidden/h.wav",
        ] {
            std::fs::write(r.join(f), b"").unwrap();
        }
        let got: Vec<String> = scan(r)
            .unwrap()
            .iter()
            .map(|p| {
                p.strip_prefix(r)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/")
            })
            .collect();
        assert_eq!(got, vec!["b/a.flac", "b/c/x.mp3", "b/c/y.ogg", "z.WAV"]);
        assert!(scan(&r.join("missing")).is_err());
    }

    #[test]
    fn split_holds_out_whole_files_by_index() {
        let files: Vec<PathBuf> = (0..25)
            .map(|i| PathBuf::from(format!("{i:02}.wav")))
            .collect();
        let (train, val) = split_by_file(files, 0.1);
        assert_eq!(
            val,
            vec![
                PathBuf::from("01.wav"),
                PathBuf::from("11.wav"),
                PathBuf::from("21.wav")
            ]
        );
        assert_eq!(train.len(), 22);
        let (t, v) = split_by_file(vec![PathBuf::from("a.wav")], 0.5);
        assert_eq!((t.len(), v.len()), (1, 0));
    }
}

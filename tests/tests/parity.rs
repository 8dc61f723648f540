//! Parity with audio-diffusion-pytorch 0.0.61: every case in the fixtures folder, discovered at run time.

use adiff_tests::{fixtures, runners};

#[test]
fn every_fixture_case_matches_the_reference() {
    let dir = fixtures::fixtures_dir();
    let reports =
        fixtures::run_all(&dir, runners::runner_for).expect("fixtures folder is readable");
    assert!(
        !reports.is_empty(),
        "no fixture cases found in {}",
        dir.display()
    );
    let mut failed = Vec::new();
    for r in &reports {
        println!(
            "{:<6} {:<40} {:<26} max_abs {:>10} rel_l2 {:>10} {}",
            r.status,
            r.name,
            r.component,
            r.max_abs.map_or("-".into(), |v| format!("{v:.2e}")),
            r.rel_l2.map_or("-".into(), |v| format!("{v:.2e}")),
            r.reason.as_deref().unwrap_or("")
        );
        if r.status == "fail" {
            failed.push(r.name.clone());
        }
    }
    let passed = reports.iter().filter(|r| r.status == "pass").count();
    let skipped = reports.iter().filter(|r| r.status == "skip").count();
    println!(
        "{} cases: {passed} pass, {skipped} skip, {} fail",
        reports.len(),
        failed.len()
    );
    assert!(failed.is_empty(), "failing fixture cases: {failed:?}");
}

//! Band extension: fitting, the known band kept exactly, the high band filled at the right level,
//! folder round trip.

use super::*;
use crate::eval::metrics::signal_metrics;
use crate::noise::SeededNoise;

/// Noise with a per-second level pattern and a fixed spectral tilt: its high band is predictable
/// from its low band.
fn tilted(seconds: usize, seed: u64) -> Vec<f32> {
    let n = 48_000 * seconds;
    let w = to_vec(&SeededNoise::new(seed).randn(&[n], &Device::Cpu).unwrap()).unwrap();
    // One-pole low-pass (a tilt), amplitude varying every 0.25 s.
    let mut y = 0f32;
    w.iter()
        .enumerate()
        .map(|(i, v)| {
            y = 0.7 * y + 0.3 * v;
            let g = 0.05 + 0.1 * ((i / 12_000) % 3) as f32;
            g * y
        })
        .collect()
}

#[test]
fn fitted_model_keeps_the_known_band_and_fills_the_high_band() {
    // Without the transition-band equaliser, so the known band must come out exactly.
    let cfg = BandExtConfig {
        factors: vec![4],
        equalize_floor: 0.0,
        ..Default::default()
    };
    let mut fitter = Fitter::new(cfg);
    for s in 0..3 {
        assert!(fitter.add(&tilted(2, s)).unwrap() > 100);
    }
    let model = fitter.finish().unwrap();
    let truth = tilted(2, 99);
    let lo = sinc_down(&truth, 4).unwrap();
    let out = model
        .upsample_signal(&lo, 4, &mut SeededNoise::new(1))
        .unwrap();
    assert_eq!(out.len(), lo.len() * 4);
    let up = sinc_up(&lo, 4).unwrap();
    // Data consistency: below the input's Nyquist the output is the sinc upsample, exactly.
    let diff: Vec<f32> = out.iter().zip(&up).map(|(a, b)| a - b).collect();
    let low_of_diff: Vec<f32> = diff
        .iter()
        .zip(brickwall_highpass(&diff, 0.25).unwrap())
        .map(|(a, b)| a - b)
        .collect();
    let leak = low_of_diff.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!(leak < 1e-5, "the fill leaks {leak} into the known band");
    let m_out = signal_metrics(&truth, &out, 4).unwrap();
    let m_sinc = signal_metrics(&truth, &up, 4).unwrap();
    // Noise against noise at the right level: about 0.8 decades RMS (two log-exponential draws).
    assert!(
        m_out.lsd_hf < 1.0,
        "LSD-HF {} (sinc {})",
        m_out.lsd_hf,
        m_sinc.lsd_hf
    );
    assert!(m_sinc.lsd_hf > 3.0);
    assert!((m_out.lsd_lf - m_sinc.lsd_lf).abs() < 0.02);
}

#[test]
fn the_equaliser_restores_the_transition_band() {
    let mut fitter = Fitter::new(BandExtConfig {
        factors: vec![4],
        ..Default::default()
    });
    fitter.add(&tilted(2, 1)).unwrap();
    let model = fitter.finish().unwrap();
    let truth = tilted(2, 42);
    let lo = sinc_down(&truth, 4).unwrap();
    let out = model
        .upsample_signal(&lo, 4, &mut SeededNoise::new(1))
        .unwrap();
    let up = sinc_up(&lo, 4).unwrap();
    let (m_out, m_sinc) = (
        signal_metrics(&truth, &out, 4).unwrap(),
        signal_metrics(&truth, &up, 4).unwrap(),
    );
    assert!(
        m_out.lsd_lf < 0.8 * m_sinc.lsd_lf,
        "LSD-LF {} vs sinc {}",
        m_out.lsd_lf,
        m_sinc.lsd_lf
    );
}

#[test]
fn folder_round_trip_and_unknown_factor() {
    let mut fitter = Fitter::new(BandExtConfig {
        factors: vec![2, 8],
        ..Default::default()
    });
    fitter.add(&tilted(2, 5)).unwrap();
    let model = fitter.finish().unwrap();
    let dir = std::env::temp_dir().join(format!("adiff-bandext-{}", std::process::id()));
    model.save(&dir).unwrap();
    let back = BandExtension::load(&dir).unwrap();
    assert_eq!(back.config(), model.config());
    let up = sinc_up(&sinc_down(&tilted(1, 7), 8).unwrap(), 8).unwrap();
    let (a, b) = (
        model.envelope(&up, 8).unwrap(),
        back.envelope(&up, 8).unwrap(),
    );
    for (fa, fb) in a.iter().zip(&b) {
        for (x, y) in fa.iter().zip(fb) {
            assert!((x - y).abs() < 1e-4);
        }
    }
    assert!(back
        .upsample_signal(&[0.0; 4000], 4, &mut SeededNoise::new(0))
        .is_err());
    std::fs::remove_dir_all(&dir).ok();
}

/// A generator's band-extension stage: the folder field round-trips and is checked, a missing
/// sub-folder is named, an unserved factor is refused, and the stage gives exactly what the model
/// gives (factor times the samples, at factor times the rate).
#[test]
fn generator_stage_loads_from_its_sub_folder_and_upsamples_by_its_factor() {
    use crate::models::folder::{BandExtensionStage, FolderConfig, ModelKind, BAND_EXTENSION_DIR};
    use stage::Stage;
    let mut fitter = Fitter::new(BandExtConfig {
        factors: vec![4],
        phase_iters: 0,
        ..Default::default()
    });
    fitter.add(&tilted(2, 3)).unwrap();
    let model = fitter.finish().unwrap();
    let dir = std::env::temp_dir().join(format!("adiff-stage-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kwargs = serde_json::json!({"in_channels": 1});
    let mut cfg = FolderConfig::new(ModelKind::AudioDiffusionModel, kwargs, 12_000, 1, 4096);
    assert!(Stage::load(&dir, &cfg).unwrap().is_none());
    assert_eq!(cfg.output_rate(), 12_000);
    cfg.band_extension = Some(BandExtensionStage { factor: 4 });
    assert_eq!(cfg.output_rate(), 48_000);
    let p = dir.join("config.json");
    cfg.write(&p).unwrap();
    assert_eq!(FolderConfig::read(&p).unwrap(), cfg);
    let err = Stage::load(&dir, &cfg).unwrap_err().to_string();
    assert!(err.contains(BAND_EXTENSION_DIR), "{err}");
    model.save(dir.join(BAND_EXTENSION_DIR)).unwrap();
    let stage = Stage::load(&dir, &cfg).unwrap().unwrap();
    assert_eq!(stage.factor(), 4);
    let lo = sinc_down(&tilted(1, 8), 4).unwrap();
    let clip = AudioClip::new(12_000, vec![lo.clone()]).unwrap();
    let out = stage.apply(&clip, &mut SeededNoise::new(2)).unwrap();
    assert_eq!((out.sample_rate(), out.len()), (48_000, lo.len() * 4));
    // The stage is the saved model (f32 weights) applied by factor 4, nothing else.
    let saved = BandExtension::load(dir.join(BAND_EXTENSION_DIR)).unwrap();
    let direct = saved
        .upsample_signal(&lo, 4, &mut SeededNoise::new(2))
        .unwrap();
    assert!(
        out.channels()[0] == direct,
        "the stage differs from its model"
    );
    // A factor the model does not serve, a factor out of range, a stage on a non-generator.
    cfg.band_extension = Some(BandExtensionStage { factor: 2 });
    assert!(Stage::load(&dir, &cfg)
        .unwrap_err()
        .to_string()
        .contains("not 2"));
    cfg.band_extension = Some(BandExtensionStage { factor: 1 });
    assert!(cfg
        .validate(&p)
        .unwrap_err()
        .to_string()
        .contains("band_extension.factor"));
    cfg.band_extension = Some(BandExtensionStage { factor: 4 });
    cfg.kind = ModelKind::AudioDiffusionUpsampler;
    assert!(cfg
        .validate(&p)
        .unwrap_err()
        .to_string()
        .contains("band_extension"));
    std::fs::remove_dir_all(&dir).ok();
}

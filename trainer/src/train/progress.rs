//! The progress bar of a training run (indicatif): step, loss and windows per second.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar at `position` of `total` steps on stderr, or a hidden one.
pub fn bar(position: u64, total: u64, visible: bool) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(
        Some(total),
        if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    if let Ok(style) = ProgressStyle::with_template(
        "{bar:30} {pos}/{len} steps [{elapsed_precise}<{eta_precise}] {msg}",
    ) {
        bar.set_style(style);
    }
    bar.set_position(position);
    bar
}

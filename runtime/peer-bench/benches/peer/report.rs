//! Pairs of rounds and what is printed about them.

use crate::measure::Sample;

/// Which library a round runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// tidings, from this workspace.
    Tidings,
    /// ruststream, from crates.io.
    Ruststream,
}

/// Runs a warm-up pair, then `rounds` pairs of one round per side, and keeps the latter. The
/// side that goes first alternates, so that neither always meets a broker the other has just
/// warmed up or left busy.
pub async fn pairs(rounds: usize, mut round: impl AsyncFnMut(Side, usize) -> Sample) -> Pairs {
    let mut pairs = Pairs::default();
    for number in 0..=rounds {
        let (tidings, ruststream) = if number % 2 == 0 {
            let tidings = round(Side::Tidings, number).await;
            (tidings, round(Side::Ruststream, number).await)
        } else {
            let ruststream = round(Side::Ruststream, number).await;
            (round(Side::Tidings, number).await, ruststream)
        };
        if number > 0 {
            pairs.tidings.push(tidings);
            pairs.ruststream.push(ruststream);
        }
    }
    pairs
}

/// The measured pairs of a scenario, in the order they ran.
#[derive(Debug, Default)]
pub struct Pairs {
    tidings: Vec<Sample>,
    ruststream: Vec<Sample>,
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// One scenario's figures, medians over its pairs.
#[derive(Debug)]
pub struct Figures {
    /// The scenario's name.
    pub scenario: String,
    /// The median of the pairs' own ratios, tidings' rate over ruststream's: each pair ran back
    /// to back, so its ratio cancels most of what the machine did between pairs.
    pub ratio: f64,
    /// Events per second, tidings then ruststream.
    pub rate: [f64; 2],
    /// Allocation calls per event, tidings then ruststream.
    pub allocations: [f64; 2],
    /// This process's CPU time per event in microseconds, tidings then ruststream.
    pub cpu_us: [f64; 2],
}

impl Pairs {
    /// The figures of `events` events per round.
    pub fn figures(&self, scenario: &str, events: u64) -> Figures {
        let per_event = |samples: &[Sample], of: fn(&Sample) -> f64| {
            median(samples.iter().map(|s| of(s) / events as f64).collect())
        };
        let both = |of: fn(&Sample) -> f64| {
            [
                per_event(&self.tidings, of),
                per_event(&self.ruststream, of),
            ]
        };
        let rate = |samples: &[Sample]| {
            median(
                samples
                    .iter()
                    .map(|s| events as f64 / s.elapsed.as_secs_f64())
                    .collect(),
            )
        };
        Figures {
            scenario: scenario.to_owned(),
            ratio: median(
                self.tidings
                    .iter()
                    .zip(&self.ruststream)
                    .map(|(t, r)| r.elapsed.as_secs_f64() / t.elapsed.as_secs_f64())
                    .collect(),
            ),
            rate: [rate(&self.tidings), rate(&self.ruststream)],
            allocations: both(|s| s.allocations as f64),
            cpu_us: both(|s| s.cpu.as_secs_f64() * 1e6),
        }
    }

    /// Prints the scenario's figures and every pair's rates.
    pub fn print(&self, figures: &Figures, events: u64, what: &str) {
        let Figures {
            scenario,
            ratio,
            rate,
            allocations,
            cpu_us,
        } = figures;
        println!("{scenario}: tidings/ruststream {ratio:.2} (median of the pairs' ratios)");
        println!("  {what}");
        println!(
            "  {events} events per round, {} pairs after a warm-up pair; medians:",
            self.tidings.len()
        );
        println!(
            "  events/s:                 tidings {:>9.0}   ruststream {:>9.0}",
            rate[0], rate[1]
        );
        println!(
            "  allocation calls / event: tidings {:>9.1}   ruststream {:>9.1}",
            allocations[0], allocations[1]
        );
        println!(
            "  CPU µs / event:           tidings {:>9.2}   ruststream {:>9.2}",
            cpu_us[0], cpu_us[1]
        );
        let pairs: Vec<String> = self
            .tidings
            .iter()
            .zip(&self.ruststream)
            .map(|(t, r)| {
                format!(
                    "{:.0}/{:.0}",
                    events as f64 / t.elapsed.as_secs_f64(),
                    events as f64 / r.elapsed.as_secs_f64()
                )
            })
            .collect();
        println!(
            "  each pair, events/s tidings/ruststream: {}",
            pairs.join(" ")
        );
    }
}

/// The closing table, in Markdown, one row per scenario run.
pub fn table(all: &[Figures]) {
    println!();
    println!(
        "| scenario | tidings / ruststream | events/s, tidings / ruststream | allocation calls \
         per event | CPU µs per event |"
    );
    println!("|---|---|---|---|---|");
    for f in all {
        println!(
            "| `{}` | {:.2} | {:.0} / {:.0} | {:.1} / {:.1} | {:.1} / {:.1} |",
            f.scenario,
            f.ratio,
            f.rate[0],
            f.rate[1],
            f.allocations[0],
            f.allocations[1],
            f.cpu_us[0],
            f.cpu_us[1]
        );
    }
}

//! Every committed corpus input through its target, then a short mutation pass from those
//! inputs (byte flips, insertions, cuts, splices; a fixed seed, a few seconds a target). Not
//! coverage-guided, but it needs no fuzzing toolchain, so a parser that starts panicking on a
//! known input, or near one, fails CI. A failing input is kept in `target/fuzz-failures/`.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sightline_fuzz::{Target, TARGETS};

const MUTATION_TIME: Duration = Duration::from_secs(3);

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files.iter().map(|f| std::fs::read(f).unwrap()).collect()
}

/// Run one input; a panic keeps the input and fails with its name.
fn survive(name: &str, target: Target, input: &[u8]) {
    if catch_unwind(AssertUnwindSafe(|| target(input))).is_err() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/fuzz-failures");
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(name);
        std::fs::write(&file, input).unwrap();
        panic!(
            "{name} panicked on {} bytes, kept in {}",
            input.len(),
            file.display()
        );
    }
}

/// xorshift64: the same mutations on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One to four edits of `input`, some borrowing from `other`.
fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    const INTERESTING: &[u8] = b"\0\xff\x7f\x80{}[]\":,\\\r\n=-0123456789";
    let mut out = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(out.len() + 1);
        match rng.below(6) {
            0 if !out.is_empty() => {
                let i = at.min(out.len() - 1);
                out[i] ^= 1 << rng.below(8);
            }
            1 => out.insert(at, INTERESTING[rng.below(INTERESTING.len())]),
            2 => out.insert(at, rng.next() as u8),
            3 => out.truncate(at),
            4 => {
                let end = (at + rng.below(16)).min(out.len());
                out.drain(at..end);
            }
            _ if !other.is_empty() => {
                let from = rng.below(other.len());
                let len = rng.below(other.len() - from + 1);
                out.splice(at..at, other[from..from + len].iter().copied());
            }
            _ => {}
        }
    }
    out
}

#[test]
fn every_target_survives_its_corpus() {
    for (name, target) in TARGETS {
        let inputs = corpus(name);
        assert!(!inputs.is_empty(), "no corpus for {name}");
        for input in &inputs {
            survive(name, *target, input);
        }
        survive(name, *target, &[]);
    }
}

#[test]
fn every_target_survives_a_short_mutation_pass() {
    for (name, target) in TARGETS {
        let inputs = corpus(name);
        let mut rng = Rng(0x5eed_0000 + name.len() as u64);
        let (start, mut runs) = (Instant::now(), 0u64);
        while start.elapsed() < MUTATION_TIME {
            let input = &inputs[rng.below(inputs.len())];
            let other = &inputs[rng.below(inputs.len())];
            survive(name, *target, &mutate(&mut rng, input, other));
            runs += 1;
        }
        println!("{name}: {runs} mutated inputs, no panic");
        assert!(runs > 0);
    }
}

//! Criterion benches on realistic generated traffic (`auditwatch simulate`'s generator):
//! the parser alone (its fast path, and simd-json alone for comparison), parser + engine
//! with every shipped rule, and end-to-end replay of a file on one thread and on two.
//! Throughput is reported in bytes and entries.
//! `cargo bench --bench pipeline`; the large-file comparison is `benches/compare.sh`.

use std::io::Write;
use std::sync::Arc;

use auditwatch::config::Config;
use auditwatch::parse::Parser;
use auditwatch::pipeline::Pipeline;
use auditwatch::rules::RuleSet;
use auditwatch::simulate::{SimConfig, Simulation};
use auditwatch::source::input::{Input, Progress, ReplayOptions};
use auditwatch::source::replay;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

/// About `target` bytes of simulated platform traffic (50 tenants, every injection off).
fn traffic(target: usize) -> Vec<Vec<u8>> {
    let cfg = SimConfig {
        tenants: 50,
        duration_secs: 30 * 24 * 3600,
        ..SimConfig::default()
    };
    let mut sim = Simulation::new(&cfg).expect("simulation config");
    let mut out = Vec::new();
    let mut bytes = 0;
    while bytes < target {
        let Some((_, line)) = sim.next_line() else {
            break;
        };
        bytes += line.len() + 1;
        out.push(line.into_bytes());
    }
    out
}

struct NoProgress;
impl Progress for NoProgress {
    fn update(&mut self, _: u64, _: Option<u64>, _: u64, _: std::time::Duration) {}
}

fn benches(c: &mut Criterion) {
    let lines = traffic(16 * 1024 * 1024);
    let bytes: u64 = lines.iter().map(|l| l.len() as u64 + 1).sum();
    let cfg = Arc::new(Config::default());
    let rules = Arc::new(RuleSet::embedded());

    for (unit, throughput) in [
        ("bytes", Throughput::Bytes(bytes)),
        ("entries", Throughput::Elements(lines.len() as u64)),
    ] {
        let mut g = c.benchmark_group(format!("pipeline/{unit}"));
        g.throughput(throughput);
        g.sample_size(10);
        // The parser reads lines without changing them: no copies per iteration.
        for (name, fast) in [("parse", true), ("parse/simd-json only", false)] {
            g.bench_function(name, |b| {
                let mut p = Parser::default();
                p.set_fast_path(fast);
                b.iter(|| {
                    lines
                        .iter()
                        .filter(|l| p.parse(l, |_, r| r.is_ok()))
                        .count()
                })
            });
        }
        g.bench_function("parse+engine", |b| {
            b.iter_batched_ref(
                || Pipeline::new(cfg.clone(), rules.clone()),
                |p| {
                    let mut alerts = Vec::new();
                    for l in &lines {
                        let _ = p.feed_line(l, &mut alerts);
                    }
                    p.finish(&mut alerts);
                    alerts.len()
                },
                BatchSize::LargeInput,
            )
        });
        g.finish();
    }

    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("traffic.log");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&file).expect("create"));
    for l in &lines {
        f.write_all(l)
            .and_then(|_| f.write_all(b"\n"))
            .expect("write");
    }
    drop(f);
    let mut g = c.benchmark_group("replay/bytes");
    g.throughput(Throughput::Bytes(bytes));
    g.sample_size(10);
    for threads in [1, 2] {
        g.bench_function(format!("threads={threads}"), |b| {
            b.iter(|| {
                let mut p = Pipeline::new(cfg.clone(), rules.clone());
                let opts = ReplayOptions {
                    max_line_bytes: 8 << 20,
                    threads,
                    log_errors_per_input: 0,
                };
                let mut n = 0usize;
                replay::replay(
                    &mut p,
                    &[Input::File(file.clone())],
                    &opts,
                    &mut NoProgress,
                    &mut |_| {
                        n += 1;
                        Ok(())
                    },
                )
                .expect("replay");
                n
            })
        });
    }
    g.finish();
}

criterion_group!(pipeline, benches);
criterion_main!(pipeline);

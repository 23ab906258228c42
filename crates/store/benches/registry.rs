//! Registry benchmark (a plain program, `harness = false`): ITI-65-like registrations per
//! second and ITI-67 search latency as the store grows.
//!
//!   cargo bench -p ddcc-store --bench registry -- sqlite /tmp/bench-sqlite 10000,100000 [full|normal]
//!   cargo bench -p ddcc-store --bench registry -- postgres postgres://…/db 10000,100000 [concurrency]
//!
//! Each step loads documents until the store holds the target count (the rate over the
//! last 2 000 registrations is reported), then times 500 searches of each ITI-67 shape
//! against random existing patients.

#[path = "../tests/common/iti65.rs"]
mod iti65;

use std::sync::Arc;
use std::time::{Duration, Instant};

use ddcc_store::{PostgresStore, SearchQuery, SqliteStore, Store, Synchronous};

const HOLDERS: usize = 10_000;
const WINDOW: usize = 2_000;
const SEARCHES: usize = 500;

/// Builds one search from (document index, patient id).
type QueryFn<'a> = Box<dyn Fn(usize, &str) -> SearchQuery + 'a>;

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// Small xorshift so runs are reproducible without a rand dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

async fn load(
    store: &Arc<dyn Store>,
    from: usize,
    to: usize,
    conc: usize,
    run: &str,
    patients: &mut Vec<(usize, String)>,
) -> f64 {
    let mut window_start = None;
    let mut next = from;
    while next < to {
        if window_start.is_none() && to - next <= WINDOW {
            window_start = Some((Instant::now(), next));
        }
        let batch: Vec<usize> = (next..(next + conc).min(to)).collect();
        next += batch.len();
        let tasks: Vec<_> = batch
            .into_iter()
            .map(|i| {
                let s = store.clone();
                let run = run.to_owned();
                tokio::spawn(async move {
                    (
                        i,
                        s.transaction(iti65::iti65_request(&run, i, HOLDERS)).await,
                    )
                })
            })
            .collect();
        for t in tasks {
            let (i, r) = t.await.expect("task");
            let r = r.unwrap_or_else(|e| panic!("registration {i}: {e}"));
            patients.push((i, r[0].id.clone()));
        }
    }
    let (t0, n0) = window_start.unwrap_or((Instant::now(), to));
    (to - n0) as f64 / t0.elapsed().as_secs_f64().max(1e-9)
}

async fn time_search(
    store: &dyn Store,
    queries: Vec<SearchQuery>,
    expect_min: usize,
) -> (f64, f64, f64) {
    let mut times = Vec::with_capacity(queries.len());
    for q in &queries {
        let t = Instant::now();
        let r = store.search("DocumentReference", q).await.expect("search");
        times.push(t.elapsed());
        assert!(r.len() >= expect_min, "query {q:?} found {}", r.len());
    }
    times.sort();
    let mean = times.iter().map(Duration::as_secs_f64).sum::<f64>() / times.len() as f64 * 1000.0;
    (mean, pct(&times, 0.5), pct(&times, 0.95))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let [backend, target, sizes, rest @ ..] = args.as_slice() else {
        eprintln!("usage: registry sqlite <dir> <sizes> [full|normal] | postgres <url> <sizes> [concurrency]");
        std::process::exit(2);
    };
    let sizes: Vec<usize> = sizes.split(',').map(|s| s.parse().expect("size")).collect();
    let (store, conc, label): (Arc<dyn Store>, usize, String) = match backend.as_str() {
        "sqlite" => {
            let sync = if rest.first().map(String::as_str) == Some("normal") {
                Synchronous::Normal
            } else {
                Synchronous::Full
            };
            std::fs::create_dir_all(target).expect("dir");
            let s = SqliteStore::open_file(
                std::path::Path::new(target).join(ddcc_store::SQLITE_DB_FILE),
                sync,
                4,
            )
            .expect("open");
            (Arc::new(s), 1, format!("sqlite synchronous={sync:?}"))
        }
        "postgres" => {
            let conc: usize = rest.first().and_then(|c| c.parse().ok()).unwrap_or(8);
            (
                Arc::new(
                    PostgresStore::connect(
                        target,
                        conc.max(1),
                        Arc::new(ddcc_store::DataKeys::generate().expect("keys")),
                    )
                    .await
                    .expect("connect"),
                ),
                conc,
                format!("postgres concurrency={conc}"),
            )
        }
        other => panic!("unknown backend {other}"),
    };
    let run = format!("b{}", std::process::id());
    let mut patients = Vec::new();
    let mut have = 0;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    println!("| backend | documents | registrations/s (last {WINDOW}) | search | mean ms | p50 ms | p95 ms |");
    println!("|---|---|---|---|---|---|---|");
    for size in sizes {
        let t = Instant::now();
        let rate = load(&store, have, size, conc, &run, &mut patients).await;
        eprintln!("loaded {have}..{size} in {:.0}s", t.elapsed().as_secs_f64());
        have = size;
        let shapes: [(&str, QueryFn); 4] = [
            (
                "patient",
                Box::new(|_, p| SearchQuery::new().with("patient", format!("Patient/{p}"))),
            ),
            (
                "patient+status+type",
                Box::new(|_, p| {
                    SearchQuery::new()
                        .with("patient", format!("Patient/{p}"))
                        .with("status", "current")
                        .with("type", "http://loinc.org|82593-5")
                }),
            ),
            (
                "identifier",
                Box::new(|i, _| {
                    SearchQuery::new().with(
                        "identifier",
                        format!(
                            "{}|{}",
                            iti65::DOC_ID_SYSTEM,
                            iti65::doc_identifier(&run, i)
                        ),
                    )
                }),
            ),
            (
                "patient+date ge+_sort=-date+_count=10",
                Box::new(|_, p| {
                    SearchQuery::new()
                        .with("patient", format!("Patient/{p}"))
                        .with("date", "ge2021-01-01")
                        .with("_sort", "-date")
                        .with("_count", "10")
                }),
            ),
        ];
        for (name, make) in &shapes {
            let qs: Vec<SearchQuery> = (0..SEARCHES)
                .map(|_| {
                    let (i, p) = &patients[rng.next(patients.len())];
                    make(*i, p)
                })
                .collect();
            let (mean, p50, p95) = time_search(store.as_ref(), qs, 1).await;
            println!("| {label} | {size} | {rate:.0} | {name} | {mean:.3} | {p50:.3} | {p95:.3} |");
        }
    }
}

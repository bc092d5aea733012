//! Upload and download throughput of the image API over HTTP on loopback,
//! and the process's peak RSS during each transfer.
//!
//! Runs an identity service and the image service in this process and
//! serves them on 127.0.0.1 with an OS-chosen port. A minimal HTTP/1.1
//! client drives them and generates the upload on the fly from a repeated
//! 1 MiB pseudo-random block, so no large file is needed. Sizes in MiB come from
//! the command line (default: 64 and 4096); each size is measured
//! `BENCH_RUNS` times (default 3) and the median reported.
//!
//! Run: `cargo bench -p oxstack-image --bench transfer [-- 64 4096]`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use oxstack_identity::testing::TestIdentity;
use oxstack_identity::token::LocalValidator;
use oxstack_image::{ImageConfig, ImageService};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const MIB: u64 = 1 << 20;

#[tokio::main]
async fn main() {
    let sizes: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|arg| arg.parse().ok())
        .collect::<Vec<_>>();
    let sizes = if sizes.is_empty() {
        vec![64, 4096]
    } else {
        sizes
    };
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    // Warnings only: the services log every request at info.
    let _ = tracing_subscriber::fmt().with_env_filter("warn").try_init();

    let identity = TestIdentity::start().await;
    let token = identity.admin_token().await;
    let data_dir = tempfile::tempdir().expect("data dir");
    let url = format!("sqlite://{}/image.db", data_dir.path().display());
    let store = oxstack_store::Store::connect(&url).await.expect("database");
    let service = ImageService::open(
        store,
        ImageConfig::default(),
        data_dir.path(),
        "http://127.0.0.1".into(),
    )
    .await
    .expect("image service");
    let validator = Arc::new(LocalValidator(identity.state.clone()));
    let app = oxstack_image::mount(Arc::new(service), validator)
        .layer(axum::middleware::from_fn(oxstack_core::request_id::assign));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });

    println!(
        "image transfer benchmark: HTTP/1.1 on {addr}, {runs} run(s) per size, median reported"
    );
    println!(
        "resident set before the transfers: {} MiB",
        rss_kib() / 1024
    );
    println!(
        "{:>9} {:>14} {:>16} {:>16} {:>18}",
        "size MiB", "upload MiB/s", "download MiB/s", "upload peak RSS", "download peak RSS"
    );
    for size in sizes {
        let mut uploads = Vec::new();
        let mut downloads = Vec::new();
        let (mut upload_rss, mut download_rss) = (0, 0);
        for _ in 0..runs {
            let id = create_image(addr, &token).await;
            reset_peak_rss();
            let elapsed = upload(addr, &token, &id, size * MIB).await;
            upload_rss = upload_rss.max(peak_rss_kib());
            uploads.push(mib_per_second(size, elapsed));

            reset_peak_rss();
            let elapsed = download(addr, &token, &id, size * MIB).await;
            download_rss = download_rss.max(peak_rss_kib());
            downloads.push(mib_per_second(size, elapsed));
            delete_image(addr, &token, &id).await;
        }
        println!(
            "{size:>9} {:>14.0} {:>16.0} {:>12} MiB {:>14} MiB",
            median(&mut uploads),
            median(&mut downloads),
            upload_rss / 1024,
            download_rss / 1024
        );
    }
    drop(identity);
}

fn mib_per_second(size_mib: u64, elapsed: Duration) -> f64 {
    size_mib as f64 / elapsed.as_secs_f64()
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

/// Resets the kernel's peak-RSS counter (VmHWM) of this process, so that
/// the next reading covers only what follows.
fn reset_peak_rss() {
    // "5" resets the peak resident set size (Linux 4.0 and later).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Returns VmHWM, the peak resident set size, in KiB.
fn peak_rss_kib() -> u64 {
    status_field_kib("VmHWM:")
}

/// Returns VmRSS, the current resident set size, in KiB.
fn rss_kib() -> u64 {
    status_field_kib("VmRSS:")
}

fn status_field_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Sends one request with `Connection: close` and returns the status and
/// the stream positioned after the response headers.
async fn request(addr: SocketAddr, head: &str, body: Option<u64>) -> (u16, TcpStream, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    stream
        .write_all(head.as_bytes())
        .await
        .expect("send headers");
    if let Some(size) = body {
        let block = pseudo_random_block();
        let mut sent = 0u64;
        while sent < size {
            let n = (size - sent).min(block.len() as u64) as usize;
            stream.write_all(&block[..n]).await.expect("send body");
            sent += n as u64;
        }
    }
    let mut received = Vec::new();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = stream.read(&mut buffer).await.expect("read response");
        assert!(n > 0, "connection closed before the response headers");
        received.extend_from_slice(&buffer[..n]);
        if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            let status = std::str::from_utf8(&received[9..12])
                .unwrap()
                .parse()
                .unwrap();
            let rest = received.split_off(end + 4);
            return (status, stream, rest);
        }
    }
}

async fn read_to_end(mut stream: TcpStream, already: usize) -> u64 {
    let mut total = already as u64;
    let mut buffer = vec![0u8; 256 * 1024];
    loop {
        let n = stream.read(&mut buffer).await.expect("read body");
        if n == 0 {
            return total;
        }
        total += n as u64;
    }
}

fn head(method: &str, path: &str, token: &str, extra: &str) -> String {
    format!(
        "{method} /image{path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Auth-Token: {token}\r\nAccept: application/json\r\nConnection: close\r\n{extra}\r\n"
    )
}

async fn create_image(addr: SocketAddr, token: &str) -> String {
    let body = r#"{"name": "bench", "disk_format": "raw", "container_format": "bare"}"#;
    let extra = format!(
        "Content-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    let (status, stream, rest) = request(
        addr,
        &(head("POST", "/v2/images", token, &extra) + body),
        None,
    )
    .await;
    assert_eq!(status, 201, "create failed");
    let mut text = rest;
    let mut stream = stream;
    stream
        .read_to_end(&mut text)
        .await
        .expect("read create body");
    let image: serde_json::Value = serde_json::from_slice(&text).expect("image JSON");
    image["id"].as_str().expect("image id").to_owned()
}

async fn upload(addr: SocketAddr, token: &str, id: &str, size: u64) -> Duration {
    let extra = format!("Content-Type: application/octet-stream\r\nContent-Length: {size}\r\n");
    let started = Instant::now();
    let (status, _, _) = request(
        addr,
        &head("PUT", &format!("/v2/images/{id}/file"), token, &extra),
        Some(size),
    )
    .await;
    let elapsed = started.elapsed();
    assert_eq!(status, 204, "upload failed");
    elapsed
}

async fn download(addr: SocketAddr, token: &str, id: &str, size: u64) -> Duration {
    let started = Instant::now();
    let (status, stream, rest) = request(
        addr,
        &head("GET", &format!("/v2/images/{id}/file"), token, ""),
        None,
    )
    .await;
    assert_eq!(status, 200, "download failed");
    let received = read_to_end(stream, rest.len()).await;
    let elapsed = started.elapsed();
    assert_eq!(received, size, "download returned a different size");
    elapsed
}

async fn delete_image(addr: SocketAddr, token: &str, id: &str) {
    let (status, _, _) = request(
        addr,
        &head("DELETE", &format!("/v2/images/{id}"), token, ""),
        None,
    )
    .await;
    assert_eq!(status, 204, "delete failed");
}

/// Returns 1 MiB of xorshift output, which is incompressible and matches no
/// disk image format, so the upload is inspected as raw data.
fn pseudo_random_block() -> Vec<u8> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    (0..MIB / 8)
        .flat_map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()
        })
        .collect()
}

//! The CloudWatch Logs source against moto's server (`pip install 'moto[server]'`),
//! started here on loopback: two log streams, pages smaller than the data, a Fluent Bit
//! envelope, a daemon restart from the checkpoint with events put while it was down.
//! Every entry must raise exactly one alert. Skips (saying SKIPPED) without `moto_server`,
//! except under `CI=true`, where it fails.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::util::*;
use aws_sdk_cloudwatchlogs::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_cloudwatchlogs::types::InputLogEvent;

struct Moto(Child);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

const GROUP: &str = "/vault/audit";

fn entry(i: u64) -> String {
    response_line(&request_id(0xc10d, i), "2026-03-02T10:00:00Z")
}

#[test]
fn cloudwatch_source_pages_dedups_and_resumes_from_its_checkpoint() {
    if !require_tool("moto_server", "pip install 'moto[server]'") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _moto = Moto(
        Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("moto.log")).unwrap())
            .spawn()
            .expect("start moto_server"),
    );
    let endpoint = format!("http://127.0.0.1:{port}");
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "moto_server did not come up"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let conf = aws_sdk_cloudwatchlogs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(&endpoint)
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        // The SDK's default HTTPS client is not compiled (it would bring aws-lc): the same
        // rustls/ring client as the daemon's.
        .http_client(
            aws_smithy_http_client::Builder::new()
                .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                    aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
                ))
                .build_https(),
        )
        .build();
    let client = aws_sdk_cloudwatchlogs::Client::from_conf(conf);
    rt.block_on(async {
        client
            .create_log_group()
            .log_group_name(GROUP)
            .send()
            .await
            .expect("create log group");
        for s in ["node-a", "node-b"] {
            client
                .create_log_stream()
                .log_group_name(GROUP)
                .log_stream_name(s)
                .send()
                .await
                .expect("create log stream");
        }
    });
    // Entries alternate between the two streams; every fifth is in a Fluent Bit envelope.
    let put = |range: std::ops::Range<u64>| {
        rt.block_on(async {
            for stream in ["node-a", "node-b"] {
                let events: Vec<InputLogEvent> = range
                    .clone()
                    .filter(|i| (i % 2 == 0) == (stream == "node-a"))
                    .map(|i| {
                        let line = entry(i);
                        let message = if i % 5 == 0 {
                            serde_json::json!({"log": format!("{line}\n"), "stream": "stdout"})
                                .to_string()
                        } else {
                            line
                        };
                        InputLogEvent::builder()
                            .timestamp(now_ms())
                            .message(message)
                            .build()
                            .unwrap()
                    })
                    .collect();
                if events.is_empty() {
                    continue;
                }
                client
                    .put_log_events()
                    .log_group_name(GROUP)
                    .log_stream_name(stream)
                    .set_log_events(Some(events))
                    .send()
                    .await
                    .expect("put log events");
            }
        })
    };

    let cfg = format!(
        "server: {{listen: 127.0.0.1:0, tick_secs: 0}}
sources:
  - {{name: cloudwatch, kind: cloudwatch, log_group: '{GROUP}', region: us-east-1, endpoint: '{endpoint}',
     checkpoint_dir: '{}', poll_secs: 1, overlap_secs: 120, page_size: 7,
     start_time: '{}'}}
",
        dir.path().join("state").display(),
        auditwatch::parse::time::format_rfc3339((now_ms() - 3_600_000) * 1_000_000)
    );
    let rules = rules_dir(dir.path(), &[("every.yaml", EVERY_READ_RULE)]);
    let env = [
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_CONFIG_FILE", "/nonexistent"),
        ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent"),
    ];
    let args = ["--rules", rules.to_str().unwrap()];
    let expect = |d: &Daemon, n: u64| {
        d.wait_until(&format!("{n} alerts"), Duration::from_secs(60), |d| {
            d.alerts().len() as u64 >= n
        });
        // Two more polls: late duplicates would show up now.
        std::thread::sleep(Duration::from_millis(2500));
        let ids = ids(&d.alerts());
        let want: Vec<String> = (0..n).map(|i| request_id(0xc10d, i)).collect();
        assert!(want.iter().all(|w| ids.get(w) == Some(&1)), "{ids:?}");
        assert_eq!(ids.len() as u64, n);
    };

    put(0..30);
    let d = Daemon::start_env(dir.path(), &cfg, &args, &env);
    expect(&d, 30);
    put(30..40);
    expect(&d, 40);
    assert!(d.metric("auditwatch_source_api_calls_total", &["outcome=\"ok\""]) >= 6.0);
    assert_eq!(d.metric("auditwatch_parse_errors_total", &[]), 0.0);
    let exit = d.stop();
    assert_eq!(exit.code, Some(0), "{}", exit.log);
    assert!(dir.path().join("state/cloudwatch.checkpoint.json").exists());

    // Put while the daemon is down; the restart resumes without repeating anything.
    put(40..50);
    let d = Daemon::start_env(dir.path(), &cfg, &args, &env);
    expect(&d, 50);
    assert_eq!(d.stop().code, Some(0));
}

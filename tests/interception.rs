//! Interception while a tool runs: the `escape` test component tries every way out we know
//! of, through the real gateway (bundled policy, our WASI host code, a real audit log), and
//! each attempt must be refused *and* leave a denial record. Servers are real, on 127.0.0.1
//! and [::1] only, started by each test.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;

use gatehouse::audit::{AuditReader, Entry, EntryFilter};
use gatehouse::auth::Caller;
use gatehouse::config::{Config, MountConfig};
use gatehouse::gateway::{CallResult, Gateway};
use serde_json::{Value, json};

/// A gateway over the `escape` and `misbehave` components with two mounts: `/data`
/// (read-only, holding `hello.txt` and a symlink `evil` pointing out of the mount) and
/// `/work` (read-write); `outside/secret.txt` lies beside them, in no mount.
struct Sandbox {
    dir: tempfile::TempDir,
    gateway: Gateway,
}

const SECRET: &str = "the secret outside every mount";

impl Sandbox {
    /// `data` is merged over the bundled policy's data.json; `tweak` adjusts the config.
    fn new(data: Value, tweak: impl FnOnce(&mut Config)) -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for sub in ["data", "work", "outside"] {
            std::fs::create_dir(root.join(sub)).unwrap();
        }
        std::fs::write(root.join("data/hello.txt"), "hello from /data\n").unwrap();
        std::fs::write(root.join("outside/secret.txt"), SECRET).unwrap();
        std::os::unix::fs::symlink("../outside", root.join("data/evil")).unwrap();
        std::fs::write(root.join("policy-data.json"), data.to_string()).unwrap();

        let mut config = Config::default();
        for name in ["escape", "misbehave"] {
            config
                .components
                .push(toml::from_str(&format!("path = {:?}", common::component(name))).unwrap());
        }
        config.mounts = vec![
            MountConfig {
                host: root.join("data"),
                guest: "/data".into(),
                writable: false,
            },
            MountConfig {
                host: root.join("work"),
                guest: "/work".into(),
                writable: true,
            },
        ];
        config.policy.dir = Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("policies"));
        config.policy.data = vec![root.join("policy-data.json")];
        config.audit.path = Some(root.join("audit.db"));
        config.cache.dir = Some(Path::new(env!("CARGO_TARGET_TMPDIR")).join("compile-cache"));
        tweak(&mut config);
        let gateway = Gateway::from_config(&config).unwrap();
        Sandbox { dir, gateway }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Calls `tool` as the local operator; returns the text the agent gets and the call id.
    async fn call(&self, tool: &str, arguments: Value) -> (String, String) {
        let caller = Caller::operator("local");
        let Value::Object(arguments) = arguments else {
            panic!("arguments must be an object")
        };
        let result = self.gateway.call(&caller, tool, Some(arguments)).await;
        let text = match result {
            CallResult::Completed { text, .. } => text,
            CallResult::Failed(error) => format!("failed: {error}"),
            CallResult::Denied { reasons } => format!("denied: {}", reasons.join("; ")),
            other => panic!("{tool}: unexpected result {other:?}"),
        };
        (text, self.last_call_id())
    }

    fn last_call_id(&self) -> String {
        let entries = self.entries(EntryFilter {
            phase: Some("call".into()),
            newest_first: true,
            limit: Some(1),
            ..Default::default()
        });
        entries[0].call_id.clone().unwrap()
    }

    fn entries(&self, filter: EntryFilter) -> Vec<Entry> {
        AuditReader::open(&self.root().join("audit.db"))
            .unwrap()
            .query(&filter)
            .unwrap()
    }

    /// The in-flight decisions (`http`, `fs`, `socket`) recorded for one call, in order.
    fn decisions(&self, call_id: &str) -> Vec<Entry> {
        self.entries(EntryFilter {
            call_id: Some(call_id.into()),
            ..Default::default()
        })
        .into_iter()
        .filter(|e| matches!(e.phase.as_str(), "http" | "fs" | "socket"))
        .collect()
    }

    /// Asserts that the call left a denial in `phase` whose reasons mention `reason`.
    fn assert_denied(&self, call_id: &str, phase: &str, reason: &str) -> Entry {
        let decisions = self.decisions(call_id);
        decisions
            .iter()
            .find(|e| {
                e.phase == phase
                    && e.verdict == "deny"
                    && e.reasons.iter().any(|r| r.contains(reason))
            })
            .cloned()
            .unwrap_or_else(|| {
                panic!("no {phase} denial mentioning {reason:?} for call {call_id}: {decisions:#?}")
            })
    }
}

fn refused(text: &str) -> bool {
    text.starts_with("refused: ")
}

/// Policy data for a deployment where everything the call phase checks passes, so that
/// what is tested is the interception underneath.
fn open_data(fs: Value, http: Value) -> Value {
    json!({
        "settings": {"mode": "dev"},
        "principals": {"local": {"tools": ["*"]}},
        "fs": fs,
        "http": http,
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn mount_escapes_are_refused_whatever_the_policy_says() {
    // The policy allows every path and every write: only the host stands in the way.
    let sandbox = Sandbox::new(
        open_data(
            json!({"allowed_prefixes": ["/"], "writable": ["/"]}),
            json!({}),
        ),
        |_| {},
    );

    let (text, call) = sandbox
        .call(
            "escape_read-parent",
            json!({"path": "/data/../outside/secret.txt"}),
        )
        .await;
    assert!(refused(&text), "{text}");
    sandbox.assert_denied(&call, "fs", "climbs above the directory");

    let (text, call) = sandbox
        .call(
            "escape_open-at",
            json!({"preopen": "/data", "path": "/etc/passwd"}),
        )
        .await;
    assert!(refused(&text) && text.contains("not-permitted"), "{text}");
    sandbox.assert_denied(&call, "fs", "absolute path");

    let (text, call) = sandbox
        .call(
            "escape_symlink-out",
            json!({"link": "/work/etc", "target": "/etc"}),
        )
        .await;
    assert!(refused(&text), "{text}");
    sandbox.assert_denied(&call, "fs", "may not point to an absolute path");
    assert!(std::fs::symlink_metadata(sandbox.root().join("work/etc")).is_err());

    let (text, call) = sandbox
        .call(
            "escape_symlink-out",
            json!({"link": "/work/out", "target": "../outside"}),
        )
        .await;
    assert!(refused(&text), "{text}");
    sandbox.assert_denied(&call, "fs", "may not point outside its mount");

    let (text, call) = sandbox
        .call(
            "escape_hardlink-out",
            json!({"src": "/data/hello.txt", "dst": "/work/hello"}),
        )
        .await;
    assert!(refused(&text), "{text}");
    sandbox.assert_denied(&call, "fs", "crosses mounts");

    let (text, call) = sandbox
        .call(
            "escape_hardlink-out",
            json!({"src": "/work/../outside/secret.txt", "dst": "/work/s"}),
        )
        .await;
    assert!(refused(&text), "{text}");
    sandbox.assert_denied(&call, "fs", "climbs above");

    // A symlink already in the mount that points out of it: the policy allows the lexical
    // path, the lookup underneath refuses to follow the link out.
    let (text, _) = sandbox
        .call(
            "escape_read-parent",
            json!({"path": "/data/evil/secret.txt"}),
        )
        .await;
    assert!(refused(&text), "{text}");

    // A read-only mount stays read-only even though the policy allows the write.
    let (text, _) = sandbox
        .call("escape_write-readonly", json!({"path": "/data/new.txt"}))
        .await;
    assert!(refused(&text), "{text}");
    assert!(!sandbox.root().join("data/new.txt").exists());

    // Nothing read the secret.
    let all = sandbox.entries(EntryFilter::default());
    assert!(!serde_json::to_string(&all).unwrap().contains(SECRET));

    // And the ordinary path still works, decided and recorded with the guest path.
    let (text, call) = sandbox
        .call("escape_read-parent", json!({"path": "/data/hello.txt"}))
        .await;
    assert!(
        text.starts_with("succeeded: ") && text.contains("hello from /data"),
        "{text}"
    );
    let opened = sandbox
        .decisions(&call)
        .into_iter()
        .find(|e| e.input["fs"]["operation"] == "open-at")
        .expect("the open is recorded");
    assert_eq!(opened.verdict, "allow");
    assert_eq!(opened.input["fs"]["path"], "/data/hello.txt");
    assert_eq!(opened.input["fs"]["mount"], "/data");
    assert_eq!(opened.input["fs"]["access"], "read");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_policy_decides_each_file_operation() {
    let sandbox = Sandbox::new(
        open_data(
            json!({"allowed_prefixes": ["/data", "/work"], "writable": ["/work"]}),
            json!({}),
        ),
        |_| {},
    );
    let (text, call) = sandbox
        .call("escape_write-readonly", json!({"path": "/data/new.txt"}))
        .await;
    assert!(refused(&text), "{text}");
    let denial = sandbox.assert_denied(&call, "fs", "not under a writable prefix");
    assert_eq!(denial.input["fs"]["access"], "write");
    assert!(
        denial.input["fs"]["flags"]
            .as_array()
            .unwrap()
            .contains(&json!("create"))
    );

    let (text, _) = sandbox
        .call("escape_write-readonly", json!({"path": "/work/new.txt"}))
        .await;
    assert!(text.starts_with("succeeded: "), "{text}");
    assert!(sandbox.root().join("work/new.txt").is_file());

    // A link inside the writable mount may not point at what the policy does not allow.
    let sandbox = Sandbox::new(
        open_data(
            json!({"allowed_prefixes": ["/work/public"], "writable": ["/work/public"]}),
            json!({}),
        ),
        |_| {},
    );
    std::fs::create_dir_all(sandbox.root().join("work/public")).unwrap();
    std::fs::create_dir_all(sandbox.root().join("work/private")).unwrap();
    let (text, call) = sandbox
        .call(
            "escape_symlink-out",
            json!({"link": "/work/public/door", "target": "../private"}),
        )
        .await;
    assert!(refused(&text), "{text}");
    sandbox.assert_denied(
        &call,
        "fs",
        "target /work/private is outside fs.allowed_prefixes",
    );
}

/// The original contents of `share/in/config` in [`links_sandbox`].
const CONFIG: &str = "read-only configuration";

/// One read-write mount `/data` over `share/` holding `in/config` (read-only by the policy),
/// `out/` (writable) and `secret/key`, with `fs` as the policy's filesystem data.
fn links_sandbox(fs: Value) -> Sandbox {
    let sandbox = Sandbox::new(open_data(fs, json!({})), |config| {
        let share = config.audit.path.as_ref().unwrap().with_file_name("share");
        config.mounts = vec![MountConfig {
            host: share,
            guest: "/data".into(),
            writable: true,
        }];
    });
    let share = sandbox.root().join("share");
    for sub in ["in", "out", "secret"] {
        std::fs::create_dir_all(share.join(sub)).unwrap();
    }
    std::fs::write(share.join("in/config"), CONFIG).unwrap();
    std::fs::write(share.join("secret/key"), SECRET).unwrap();
    sandbox
}

impl Sandbox {
    /// Calls `tool` and asserts that what it tried succeeded.
    async fn succeeds(&self, tool: &str, arguments: Value) {
        let (text, _) = self.call(tool, arguments).await;
        assert!(text.starts_with("succeeded: "), "{tool}: {text}");
    }

    /// Calls `tool` and asserts that what it tried was refused; returns the call id.
    async fn refuses(&self, tool: &str, arguments: Value) -> String {
        let (text, call) = self.call(tool, arguments).await;
        assert!(refused(&text), "{tool}: {text}");
        call
    }

    fn config_is_untouched(&self) {
        let config = self.root().join("share/in/config");
        assert_eq!(
            std::fs::read_to_string(&config).ok().as_deref(),
            Some(CONFIG),
            "{} was changed or removed",
            config.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hard_link_cannot_make_a_read_only_file_writable() {
    let sandbox = links_sandbox(json!({"allowed_prefixes": ["/data"], "writable": ["/data/out"]}));
    let write = |path: &str| json!({"path": path});
    sandbox
        .refuses("escape_write-readonly", write("/data/in/config"))
        .await;
    let link = json!({"src": "/data/in/config", "dst": "/data/out/h"});
    let call = sandbox.refuses("escape_hard-link", link).await;
    let reason = "link-at source \"/data/in/config\" is not under a writable prefix";
    sandbox.assert_denied(&call, "fs", reason);
    assert!(!sandbox.root().join("share/out/h").exists());
    // The new name is writable, but it is a new file, not the configuration.
    sandbox
        .succeeds("escape_write-readonly", write("/data/out/h"))
        .await;
    sandbox.config_is_untouched();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_symlink_the_tool_makes_is_decided_where_it_leads() {
    let sandbox = links_sandbox(json!({"allowed_prefixes": ["/data"], "writable": ["/data/out"]}));
    let path = |path: &str| json!({"path": path});
    // The link itself may be made: it lies in a writable place and points at a readable one.
    let link = json!({"target": "../in", "link": "/data/out/l"});
    sandbox.succeeds("escape_make-symlink", link).await;

    // Writing and removing through it are decided on the file they would touch.
    let not_writable = "path \"/data/in/config\" is not under a writable prefix";
    let call = sandbox
        .refuses("escape_write-readonly", path("/data/out/l/config"))
        .await;
    let denial = sandbox.assert_denied(&call, "fs", not_writable);
    assert_eq!(denial.input["fs"]["path"], "/data/in/config");
    assert_eq!(denial.input["fs"]["requested"], "/data/out/l/config");
    let call = sandbox
        .refuses("escape_remove-file", path("/data/out/l/config"))
        .await;
    sandbox.assert_denied(&call, "fs", not_writable);
    sandbox.config_is_untouched();

    // Reading through it is what the policy allows for the real file.
    let (text, _) = sandbox
        .call("escape_read-parent", path("/data/out/l/config"))
        .await;
    assert!(
        text.starts_with("succeeded: ") && text.contains(CONFIG),
        "{text}"
    );
    // Removing the link itself (not what it points to) is a write in /data/out.
    sandbox
        .succeeds("escape_remove-file", path("/data/out/l"))
        .await;
    sandbox.config_is_untouched();
}

#[tokio::test(flavor = "multi_thread")]
async fn chained_symlinks_cannot_reach_outside_the_allowed_prefixes() {
    let prefixes = ["/data/in", "/data/out"];
    let sandbox = links_sandbox(json!({"allowed_prefixes": prefixes, "writable": prefixes}));
    let link = json!({"target": "../in", "link": "/data/out/l"});
    sandbox.succeeds("escape_make-symlink", link).await;
    // The second link lies in /data/in (through the first), so `../secret/key` from there is
    // /data/secret/key: outside every allowed prefix, whatever the text says.
    let link = json!({"target": "../secret/key", "link": "/data/out/l/x"});
    let call = sandbox.refuses("escape_make-symlink", link).await;
    let denial = sandbox.assert_denied(&call, "fs", "target /data/secret/key is outside");
    assert_eq!(denial.input["fs"]["path"], "/data/in/x");

    // The same chain made on the host (not by the tool) is resolved when it is used.
    std::os::unix::fs::symlink("../secret/key", sandbox.root().join("share/in/x")).unwrap();
    let call = sandbox
        .refuses("escape_read-parent", json!({"path": "/data/out/l/x"}))
        .await;
    let outside = "path \"/data/secret/key\" is outside fs.allowed_prefixes";
    sandbox.assert_denied(&call, "fs", outside);
    let all = sandbox.entries(EntryFilter::default());
    assert!(!serde_json::to_string(&all).unwrap().contains(SECRET));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_link_swapped_in_during_the_call_cannot_redirect_a_write() {
    let sandbox = links_sandbox(json!({"allowed_prefixes": ["/data"], "writable": ["/data/out"]}));
    let share = sandbox.root().join("share");
    std::fs::create_dir(share.join("out/d")).unwrap();
    // Another party flips /data/out/d between a real directory and a link to ../in as fast
    // as it can, while the tool writes /data/out/d/config again and again.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flipper = {
        let stop = stop.clone();
        let (dir, parked) = (share.join("out/d"), share.join("out/parked"));
        std::thread::spawn(move || {
            let mut flips = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                std::fs::rename(&dir, &parked).unwrap();
                std::os::unix::fs::symlink("../in", &dir).unwrap();
                std::thread::yield_now();
                std::fs::remove_file(&dir).unwrap();
                std::fs::rename(&parked, &dir).unwrap();
                flips += 1;
            }
            flips
        })
    };
    let mut outcomes = (0, 0);
    for _ in 0..150 {
        let (text, _) = sandbox
            .call(
                "escape_write-readonly",
                json!({"path": "/data/out/d/config"}),
            )
            .await;
        if text.starts_with("succeeded: ") {
            outcomes.0 += 1;
        } else {
            outcomes.1 += 1;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let flips = flipper.join().unwrap();
    assert!(flips > 0, "the flipper never ran");
    eprintln!(
        "{flips} flips; writes succeeded {} times, refused {} times",
        outcomes.0, outcomes.1
    );
    sandbox.config_is_untouched();
}

/// A tiny web server on `address`: `/hello`, `/redirect` (302 to a host no policy allows),
/// `/big` (64 KiB). Stops when the test's runtime ends.
async fn serve(address: &str) -> Option<SocketAddr> {
    use axum::Router;
    use axum::http::{StatusCode, header};
    use axum::routing::get;
    let listener = tokio::net::TcpListener::bind(address).await.ok()?;
    let local = listener.local_addr().unwrap();
    let app = Router::new()
        .route("/hello", get(|| async { "hello from the test server" }))
        .route(
            "/redirect",
            get(|| async {
                (
                    StatusCode::FOUND,
                    [(header::LOCATION, "http://forbidden.example/")],
                    "",
                )
            }),
        )
        .route("/big", get(|| async { "x".repeat(64 * 1024) }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    Some(local)
}

#[tokio::test(flavor = "multi_thread")]
async fn loopback_is_denied_by_default_however_it_is_spelled() {
    let v4 = serve("127.0.0.1:0")
        .await
        .expect("127.0.0.1 is always there");
    let port = v4.port();
    let spellings = [
        format!("http://127.0.0.1:{port}/hello"),
        format!("http://0x7f000001:{port}/hello"),
        format!("http://2130706433:{port}/hello"),
        format!("http://[::ffff:127.0.0.1]:{port}/hello"),
        format!("http://localhost:{port}/hello"),
        format!("http://[::1]:{port}/hello"),
    ];
    // Every spelling is an allowed domain here: the resolved address alone must stop it.
    let domains = [
        "127.0.0.1",
        "0x7f000001",
        "2130706433",
        "::ffff:127.0.0.1",
        "localhost",
        "::1",
    ];
    let sandbox = Sandbox::new(
        open_data(
            json!({}),
            json!({"allowed_domains": domains, "allowed_schemes": ["http"], "allow_private": false}),
        ),
        |_| {},
    );
    for url in &spellings {
        let (text, call) = sandbox.call("escape_http-get", json!({"url": url})).await;
        assert!(
            refused(&text) && text.contains("HttpRequestDenied"),
            "{url}: {text}"
        );
        let denial = sandbox.assert_denied(&call, "http", "of class loopback, which is not global");
        assert!(
            denial.input["request"]["resolved_ips"]
                .as_array()
                .unwrap()
                .iter()
                .any(|ip| ip == "127.0.0.1" || ip == "::1"),
            "{denial:#?}"
        );
    }
}

/// IPv6 spellings of 127.0.0.1 and 169.254.169.254 that a NAT64 translator, a 6to4 or
/// Teredo relay, or the kernel (mapped) delivers to the IPv4 address, with the embedding's
/// name. The Teredo ones use the server 65.54.227.120 and the (inverted) port 40000.
const EMBEDDED_SPELLINGS: [(&str, &str, &str, &str); 12] = [
    ("::ffff:127.0.0.1", "mapped", "127.0.0.1", "loopback"),
    ("64:ff9b::7f00:1", "nat64", "127.0.0.1", "loopback"),
    ("64:ff9b:1::7f00:1", "nat64", "127.0.0.1", "loopback"),
    ("2002:7f00:1::", "6to4", "127.0.0.1", "loopback"),
    ("::7f00:1", "compatible", "127.0.0.1", "loopback"),
    (
        "2001:0:4136:e378:8000:63bf:80ff:fffe",
        "teredo",
        "127.0.0.1",
        "loopback",
    ),
    (
        "::ffff:169.254.169.254",
        "mapped",
        "169.254.169.254",
        "metadata",
    ),
    ("64:ff9b::a9fe:a9fe", "nat64", "169.254.169.254", "metadata"),
    (
        "64:ff9b:1::a9fe:a9fe",
        "nat64",
        "169.254.169.254",
        "metadata",
    ),
    ("2002:a9fe:a9fe::", "6to4", "169.254.169.254", "metadata"),
    ("::a9fe:a9fe", "compatible", "169.254.169.254", "metadata"),
    (
        "2001:0:4136:e378:8000:63bf:5601:5601",
        "teredo",
        "169.254.169.254",
        "metadata",
    ),
];

#[tokio::test(flavor = "multi_thread")]
async fn ipv6_spellings_of_loopback_and_metadata_are_denied_by_their_class() {
    let (server, hits) = common::counting_server().await;
    let port = server.port();
    // Every spelling is an allowed domain: the class of the resolved address alone must stop
    // it, as a decision (not as a connection that happens to fail).
    let domains: Vec<&str> = EMBEDDED_SPELLINGS.iter().map(|s| s.0).collect();
    let sandbox = Sandbox::new(
        open_data(
            json!({}),
            json!({"allowed_domains": domains, "allowed_schemes": ["http"], "allow_private": false}),
        ),
        |_| {},
    );
    for (ip, embedding, ipv4, class) in EMBEDDED_SPELLINGS {
        let url = format!("http://[{ip}]:{port}/hello");
        let (text, call) = sandbox.call("escape_http-get", json!({"url": url})).await;
        assert!(
            refused(&text) && text.contains("HttpRequestDenied"),
            "{url}: {text}"
        );
        let denial = sandbox.assert_denied(
            &call,
            "http",
            &format!("({embedding} of {ipv4}) of class {class}, which is not global"),
        );
        let addresses = denial.input["request"]["addresses"].as_array().unwrap();
        assert_eq!(addresses.len(), 1, "{denial:#?}");
        let resolved: std::net::IpAddr = addresses[0]["ip"].as_str().unwrap().parse().unwrap();
        assert_eq!(resolved, ip.parse::<std::net::IpAddr>().unwrap());
        assert_eq!(addresses[0]["class"], class, "{url}");
        assert_eq!(addresses[0]["embedded_ipv4"], ipv4, "{url}");
        assert_eq!(addresses[0]["embedding"], embedding, "{url}");
        // Kept for older policies.
        assert!(denial.input["request"]["resolved_ips"].is_array());
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "a denied request reached the server"
    );

    // The server counts what does reach it: loopback permitted by class, spelled plainly.
    let control = Sandbox::new(
        open_data(
            json!({}),
            json!({"allowed_domains": ["127.0.0.1"], "allowed_schemes": ["http"], "allowed_classes": ["loopback"]}),
        ),
        |_| {},
    );
    let (text, call) = control
        .call(
            "escape_http-get",
            json!({"url": format!("http://{server}/hello")}),
        )
        .await;
    assert_eq!(text, "succeeded: status 200, 2 body bytes");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    let decision = &control.decisions(&call)[0];
    assert_eq!(
        decision.input["request"]["addresses"],
        json!([{"ip": "127.0.0.1", "class": "loopback", "embedded_ipv4": null, "embedding": null}])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn raw_sockets_to_an_ipv6_spelling_of_loopback_are_denied_by_class_though_listed() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let nothing_connected = |listener: &std::net::TcpListener| matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
    let loopback = EMBEDDED_SPELLINGS.iter().filter(|s| s.3 == "loopback");
    // socket.allowed lists every spelling exactly as the gateway shows it (mapped as IPv4);
    // only the class rule stands in the way.
    let listed: Vec<Value> = loopback
        .clone()
        .map(|(ip, embedding, ipv4, _)| {
            let shown = if *embedding == "mapped" { ipv4 } else { ip };
            json!({"protocol": "tcp", "operation": "connect", "address": shown, "port": port})
        })
        .collect();
    let mut data = open_data(json!({}), json!({}));
    data["socket"] = json!({ "allowed": listed });
    let sandbox = Sandbox::new(data, |_| {});
    for &(ip, embedding, ipv4, _) in loopback {
        let (text, call) = sandbox
            .call(
                "escape_tcp-connect",
                json!({"address": format!("[{ip}]:{port}")}),
            )
            .await;
        assert!(refused(&text), "{ip}: {text}");
        if matches!(embedding, "mapped" | "compatible") {
            // wasmtime-wasi refuses these on an IPv6 socket before any decision is asked.
            assert!(text.contains("Invalid argument"), "{ip}: {text}");
            assert!(sandbox.decisions(&call).is_empty(), "{ip}");
            continue;
        }
        let denial = sandbox.assert_denied(
            &call,
            "socket",
            &format!("({embedding} of {ipv4}) port {port}: class loopback is not global"),
        );
        let socket = &denial.input["socket"];
        assert_eq!(socket["class"], "loopback", "{ip}");
        assert_eq!(socket["embedded_ipv4"], ipv4, "{ip}");
        assert_eq!(socket["embedding"], embedding, "{ip}");
        assert!(
            !denial.reasons.iter().any(|r| r.contains("socket.allowed ")),
            "listed, so only the class denies: {denial:#?}"
        );
    }
    assert!(
        nothing_connected(&listener),
        "a denied connect reached the listener"
    );

    // The listener sees what does reach it: loopback listed and its class allowed.
    let mut data = open_data(json!({}), json!({}));
    data["socket"] = json!({
        "allowed": [{"protocol": "tcp", "operation": "connect", "address": "127.0.0.1", "port": port}],
        "allowed_classes": ["loopback"],
    });
    let control = Sandbox::new(data, |_| {});
    let (text, _) = control
        .call(
            "escape_tcp-connect",
            json!({"address": format!("127.0.0.1:{port}")}),
        )
        .await;
    assert_eq!(text, format!("succeeded: connected to 127.0.0.1:{port}"));
    assert!(!nothing_connected(&listener));
}

#[tokio::test(flavor = "multi_thread")]
async fn query_values_are_masked_before_anything_sees_them() {
    let v4 = serve("127.0.0.1:0").await.unwrap();
    let data = json!({"allowed_domains": ["127.0.0.1"], "allowed_schemes": ["http"], "allow_private": true});
    let sandbox = Sandbox::new(open_data(json!({}), data), |config| {
        config.http.unmasked_query_parameters = vec!["page".into()];
    });
    let url = format!("http://{v4}/hello?token=QuerySECRET&page=2&flag");
    let (text, call) = sandbox.call("escape_http-get", json!({"url": url})).await;
    assert_eq!(text, "succeeded: status 200, 26 body bytes");
    let decisions = sandbox.decisions(&call);
    assert_eq!(
        decisions[0].input["request"]["query"],
        "token=***&page=2&flag"
    );
    // Only the call's arguments hold the URL as the tool was given it: the audit file holds
    // the secret there (the caller sent it), never in the request the policy decided.
    let request = serde_json::to_string(&decisions[0].input["request"]).unwrap();
    assert!(!request.contains("QuerySECRET"), "{request}");
}

#[tokio::test(flavor = "multi_thread")]
async fn allowed_requests_go_out_and_redirects_come_back_undecided() {
    let v4 = serve("127.0.0.1:0").await.unwrap();
    let v6 = serve("[::1]:0").await;
    let sandbox = Sandbox::new(
        open_data(
            json!({}),
            json!({"allowed_domains": ["127.0.0.1", "::1"], "allowed_schemes": ["http"], "allow_private": true}),
        ),
        |config| config.http.max_response_bytes = 1000,
    );
    let (text, call) = sandbox
        .call(
            "escape_http-get",
            json!({"url": format!("http://{v4}/hello")}),
        )
        .await;
    assert_eq!(text, "succeeded: status 200, 26 body bytes");
    let decisions = sandbox.decisions(&call);
    assert_eq!(decisions.len(), 1, "{decisions:#?}");
    assert_eq!(decisions[0].verdict, "allow");
    let request = &decisions[0].input["request"];
    assert_eq!(request["method"], "GET");
    assert_eq!(request["host"], "127.0.0.1");
    assert_eq!(request["port"], v4.port());
    assert_eq!(request["path"], "/hello");
    assert_eq!(request["resolved_ips"], json!(["127.0.0.1"]));

    if let Some(v6) = v6 {
        let (text, _) = sandbox
            .call(
                "escape_http-get",
                json!({"url": format!("http://[::1]:{}/hello", v6.port())}),
            )
            .await;
        assert_eq!(text, "succeeded: status 200, 26 body bytes");
    } else {
        eprintln!("no IPv6 loopback on this machine: the [::1] request was not tried");
    }

    // The host hands the 3xx back; it never asks about (let alone visits) the Location.
    let (text, call) = sandbox
        .call(
            "escape_http-get",
            json!({"url": format!("http://{v4}/redirect")}),
        )
        .await;
    assert!(text.starts_with("succeeded: status 302"), "{text}");
    assert_eq!(sandbox.decisions(&call).len(), 1);

    // Responses are cut off at the configured size.
    let (text, _) = sandbox
        .call(
            "escape_http-get",
            json!({"url": format!("http://{v4}/big")}),
        )
        .await;
    assert!(
        refused(&text) && text.contains("body size exceeds limit: 1000 bytes"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn one_call_tells_its_whole_story_in_the_audit_log() {
    let v4 = serve("127.0.0.1:0").await.unwrap();
    let sandbox = Sandbox::new(
        open_data(
            json!({"allowed_prefixes": ["/data", "/work"], "writable": ["/work"]}),
            json!({"allowed_domains": ["127.0.0.1"], "allowed_schemes": ["http"], "allow_private": true}),
        ),
        |config| config.limits.max_requests = 2,
    );
    let urls = [
        format!("http://{v4}/hello"),
        format!("http://localhost:{}/hello", v4.port()),
        format!("http://{v4}/hello"),
    ];
    let (text, call) = sandbox
        .call(
            "escape_visit",
            json!({"urls": urls, "write-path": "/data/report.txt"}),
        )
        .await;
    let lines: Vec<String> = serde_json::from_str(&text).unwrap();
    assert!(lines[0].starts_with("succeeded: status 200"), "{lines:?}");
    assert!(
        refused(&lines[1]) && lines[1].contains("HttpRequestDenied"),
        "{lines:?}"
    );
    assert!(
        refused(&lines[2]),
        "the third request is over max_requests: {lines:?}"
    );
    assert!(refused(&lines[3]), "{lines:?}");
    sandbox.assert_denied(
        &call,
        "http",
        "host \"localhost\" is not in http.allowed_domains",
    );
    sandbox.assert_denied(&call, "http", "limit of 2 outgoing requests is reached");
    sandbox.assert_denied(&call, "fs", "not under a writable prefix");

    let story: Vec<(String, String)> = sandbox
        .entries(EntryFilter {
            call_id: Some(call.clone()),
            ..Default::default()
        })
        .into_iter()
        .map(|e| (e.phase, e.verdict))
        .collect();
    let expected = [
        ("call", "allow"),
        ("http", "allow"),
        ("http", "deny"),
        ("http", "deny"),
        ("fs", "deny"),
        ("result", "allow"),
        ("outcome", "ok"),
    ];
    let story: Vec<(&str, &str)> = story
        .iter()
        .map(|(p, v)| (p.as_str(), v.as_str()))
        .collect();
    assert_eq!(story, expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn raw_sockets_are_closed_unless_an_address_is_allowed() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let closed = Sandbox::new(open_data(json!({}), json!({})), |_| {});
    let (text, call) = closed
        .call(
            "escape_tcp-connect",
            json!({"address": address.to_string()}),
        )
        .await;
    assert!(refused(&text), "{text}");
    closed.assert_denied(&call, "socket", "is not in socket.allowed");

    let (text, _) = closed
        .call("escape_resolve", json!({"name": "localhost"}))
        .await;
    assert!(refused(&text), "name lookup is closed: {text}");

    let mut data = open_data(json!({}), json!({}));
    data["socket"] = json!({"allowed": [
        {"protocol": "tcp", "operation": "connect", "address": "127.0.0.1", "port": address.port()}
    ], "allowed_classes": ["loopback"]});
    let open = Sandbox::new(data, |_| {});
    let (text, _) = open
        .call(
            "escape_tcp-connect",
            json!({"address": address.to_string()}),
        )
        .await;
    assert_eq!(text, format!("succeeded: connected to {address}"));
}

#[tokio::test(flavor = "multi_thread")]
async fn limits_stop_a_tool_with_a_clear_error_and_others_keep_running() {
    let sandbox = Sandbox::new(open_data(json!({}), json!({})), |config| {
        config.limits.fuel = 5_000_000;
        config.limits.max_concurrent_per_component = 1;
    });
    let (text, _) = sandbox.call("misbehave_spin", json!({})).await;
    assert!(text.contains("used up its fuel of 5000000 units"), "{text}");
    let outcome = sandbox.entries(EntryFilter {
        phase: Some("outcome".into()),
        newest_first: true,
        limit: Some(1),
        ..Default::default()
    });
    assert_eq!(outcome[0].verdict, "limit");
    assert_eq!(outcome[0].input["kind"], "limit:fuel");

    // One misbehave call at a time: a second one is refused at once, another component runs.
    let (sleeping, busy, other) = tokio::join!(
        sandbox.call("misbehave_sleep-ms", json!({"ms": 1500})),
        async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            sandbox.call("misbehave_ok", json!({})).await
        },
        async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            sandbox
                .call("escape_read-env", json!({"name": "HOME"}))
                .await
        },
    );
    assert!(!sleeping.0.starts_with("failed"), "{}", sleeping.0);
    assert!(
        busy.0
            .contains("component `misbehave` is already running 1 calls"),
        "{}",
        busy.0
    );
    assert_eq!(other.0, "null", "no inherited environment");
}

#[tokio::test(flavor = "multi_thread")]
async fn environment_variables_are_only_those_granted() {
    let mut data = open_data(json!({}), json!({}));
    data["principals"]["local"]["env"] = json!(["API_TOKEN"]);
    let sandbox = Sandbox::new(data, |config| {
        config.env.insert("REGION".into(), "eu-west".into());
        config.env.insert("API_TOKEN".into(), "t0ken".into());
        config.env.insert("UNGRANTED".into(), "nope".into());
        config.components[0].env = vec!["REGION".into()];
    });
    let read = |name: &'static str| sandbox.call("escape_read-env", json!({"name": name}));
    assert_eq!(read("REGION").await.0, "eu-west");
    assert_eq!(read("API_TOKEN").await.0, "t0ken");
    assert_eq!(read("UNGRANTED").await.0, "null");
    assert_eq!(read("PATH").await.0, "null");
}

#[test]
fn a_component_naming_an_undefined_variable_refuses_to_start() {
    let mut config = Config::default();
    config.components.push(
        toml::from_str(&format!(
            "path = {:?}\nenv = [\"MISSING\"]",
            common::component("echo")
        ))
        .unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    config.policy.dir = Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("policies"));
    config.audit.path = Some(dir.path().join("audit.db"));
    config.cache.dir = Some(PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("compile-cache"));
    let error = Gateway::from_config(&config).err().unwrap().to_string();
    assert!(error.contains("`MISSING`"), "{error}");
}

#[test]
fn an_import_the_gateway_does_not_provide_fails_at_load_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = wat::parse_str(
        r#"(component
            (import "example:unprovided/door@1.0.0" (instance (export "open" (func))))
        )"#,
    )
    .unwrap();
    let path = dir.path().join("needs-a-door.wasm");
    std::fs::write(&path, wasm).unwrap();
    let mut config = Config::default();
    config
        .components
        .push(toml::from_str(&format!("path = {path:?}")).unwrap());
    config.policy.dir = Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("policies"));
    config.audit.path = Some(dir.path().join("audit.db"));
    config.cache.dir = Some(dir.path().join("cache"));
    let error = Gateway::from_config(&config).err().unwrap().to_string();
    assert!(error.contains("example:unprovided/door@1.0.0"), "{error}");
}

//! The `wit/` contract: what the gateway links is exactly the world `gatehouse:tool/tool`, a
//! component importing anything else is refused at load naming the import, and the two host
//! interfaces Gatehouse adds to WASI 0.2 work through the real gateway: `wasi:logging` lines
//! reach the call's audit story (bounded, masked like the arguments) and its observer, and
//! `wasi:config/store` reads are decided by the bundled policy and recorded.

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use gatehouse::audit::{AuditReader, Entry, EntryFilter};
use gatehouse::auth::Caller;
use gatehouse::config::{Config, LimitsConfig};
use gatehouse::gateway::{CallContext, CallResult, Gateway, LogObserver, ToolLog};
use gatehouse::host::HostConfig;
use gatehouse::host::logging::MAX_LOG_LINES;
use gatehouse::runtime::{ComponentSpec, LoadError, Runtime, RuntimeOptions};
use serde_json::{Value, json};
use wit_parser::{ManglingAndAbi, Resolve};

/// A component made from a WIT world alone (every import, no code), written to `dir`.
fn component_of_world(dir: &Path, extra_wit: Option<&str>, world: &str) -> PathBuf {
    let mut resolve = Resolve::default();
    let (package, _) = resolve
        .push_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("wit"))
        .unwrap();
    let world = match extra_wit {
        Some(source) => {
            let extra = resolve.push_str("extra.wit", source).unwrap();
            resolve.select_world(&[extra], Some(world)).unwrap()
        }
        None => resolve.select_world(&[package], Some(world)).unwrap(),
    };
    let mut module = wit_component::dummy_module(&resolve, world, ManglingAndAbi::Standard32);
    wit_component::embed_component_metadata(
        &mut module,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
    )
    .unwrap();
    let bytes = wit_component::ComponentEncoder::default()
        .module(&module)
        .unwrap()
        .validate(true)
        .encode()
        .unwrap();
    let path = dir.join("world.wasm");
    std::fs::write(&path, bytes).unwrap();
    path
}

fn load(path: &Path) -> Result<(), LoadError> {
    let limits = LimitsConfig::default();
    let runtime = Runtime::new(RuntimeOptions {
        cache_dir: None,
        host: HostConfig::default(),
        max_memory_bytes: limits.memory_bytes,
        max_concurrent_calls: limits.max_concurrent_calls,
        fuel: false,
    })
    .unwrap();
    runtime
        .load(&ComponentSpec {
            name: "world",
            path,
            expected_digest: None,
            exclude: &[],
            prepared: None,
        })
        .map(|_| ())
}

#[test]
fn the_gateway_links_every_import_of_the_tool_world() {
    let dir = tempfile::tempdir().unwrap();
    let path = component_of_world(dir.path(), None, "tool");
    load(&path).expect("every import of gatehouse:tool/tool is linked");
}

#[test]
fn an_import_outside_the_contract_is_refused_at_load_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let wit = "package example:outside;\n\
               interface thing { poke: func(); }\n\
               world outside { include gatehouse:tool/tool@0.1.0; import thing; }";
    let path = component_of_world(dir.path(), Some(wit), "outside");
    let error = load(&path).unwrap_err();
    assert!(matches!(error, LoadError::Link { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("example:outside/thing"), "{message}");
    assert!(message.contains("gatehouse:tool/tool"), "{message}");
}

/// A gateway serving `contract` with settings `greeting` and `region`.
struct Served {
    dir: tempfile::TempDir,
    gateway: Gateway,
}

impl Served {
    /// `data` is merged over the bundled policy's data.json.
    fn new(data: Value) -> Served {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("policy-data.json"), data.to_string()).unwrap();
        let mut config = Config::default();
        config.components.push(
            toml::from_str(&format!(
                "path = {:?}\nconfig = {{ greeting = \"hello\", region = \"eu-west\" }}",
                common::component("contract")
            ))
            .unwrap(),
        );
        config.policy.dir = Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("policies"));
        config.policy.data = vec![root.join("policy-data.json")];
        config.audit.path = Some(root.join("audit.db"));
        config.cache.dir = Some(Path::new(env!("CARGO_TARGET_TMPDIR")).join("compile-cache"));
        let gateway = Gateway::from_config(&config).unwrap();
        Served { dir, gateway }
    }

    /// Calls `tool`; returns the text the agent gets and the call id.
    async fn call(
        &self,
        tool: &str,
        arguments: Value,
        observer: Option<LogObserver>,
    ) -> (String, String) {
        let caller = Caller::operator("local");
        let Value::Object(arguments) = arguments else {
            panic!("arguments must be an object")
        };
        let result = self
            .gateway
            .call_with(
                &caller,
                tool,
                Some(arguments),
                CallContext {
                    observer,
                    ..CallContext::default()
                },
            )
            .await;
        let text = match result {
            CallResult::Completed { text, .. } => text,
            other => panic!("{tool}: unexpected result {other:?}"),
        };
        let call = self.entries("call").pop().unwrap().call_id.unwrap();
        (text, call)
    }

    /// Entries of `phase`, oldest first.
    fn entries(&self, phase: &str) -> Vec<Entry> {
        AuditReader::open(&self.dir.path().join("audit.db"))
            .unwrap()
            .query(&EntryFilter {
                phase: Some(phase.into()),
                ..Default::default()
            })
            .unwrap()
    }

    fn of_call(&self, phase: &str, call: &str) -> Vec<Entry> {
        self.entries(phase)
            .into_iter()
            .filter(|e| e.call_id.as_deref() == Some(call))
            .collect()
    }
}

fn open_data() -> Value {
    json!({"settings": {"mode": "dev"}, "principals": {"local": {"tools": ["*"]}}})
}

#[tokio::test(flavor = "multi_thread")]
async fn log_lines_reach_the_audit_story_in_order_and_within_bounds() {
    let served = Served::new(open_data());
    let heard: Arc<Mutex<Vec<ToolLog>>> = Arc::default();
    let sink = heard.clone();
    let observer: LogObserver = Arc::new(move |record: &ToolLog| {
        sink.lock().unwrap().push(record.clone());
    });
    let (text, call) = served
        .call(
            "contract_log-lines",
            json!({"count": 3, "level": "warn", "message": "step"}),
            Some(observer),
        )
        .await;
    assert_eq!(text, "3");
    let logged = served.of_call("log", &call);
    let lines: Vec<&Value> = logged.iter().map(|e| &e.input["log"]).collect();
    let expected: Vec<Value> = (0..3)
        .map(|i| json!({"level": "warn", "context": "contract", "message": format!("step {i}")}))
        .collect();
    assert_eq!(lines, expected.iter().collect::<Vec<_>>());
    assert!(logged.iter().all(|e| e.verdict == "warn"));
    assert!(
        logged
            .iter()
            .all(|e| e.tool.as_deref() == Some("contract_log-lines"))
    );
    assert_eq!(
        heard.lock().unwrap().len(),
        3,
        "the observer hears every line"
    );

    // Past the bounds: MAX_LOG_LINES lines kept, the rest counted in one `dropped` entry.
    let over = MAX_LOG_LINES + 25;
    let (_, call) = served
        .call(
            "contract_log-lines",
            json!({"count": over, "level": "info", "message": "flood"}),
            None,
        )
        .await;
    let logged = served.of_call("log", &call);
    assert_eq!(logged.len() as u64, MAX_LOG_LINES + 1);
    let marker = logged.last().unwrap();
    assert_eq!(marker.verdict, "dropped");
    assert_eq!(marker.input["log"]["dropped_lines"], json!(25));
    // The outcome is recorded after everything the tool logged.
    let outcome = served.of_call("outcome", &call).pop().unwrap();
    assert!(outcome.seq > marker.seq);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_logged_argument_the_call_decision_masks_is_masked_in_the_log() {
    let mut data = open_data();
    data["redact"] = json!({"argument_names": ["message"]});
    let served = Served::new(data);
    let (_, call) = served
        .call(
            "contract_log-lines",
            json!({"count": 1, "level": "info", "message": "hunter2-password"}),
            None,
        )
        .await;
    let logged = served.of_call("log", &call);
    assert_eq!(logged[0].input["log"]["message"], json!("[redacted] 0"));
}

#[tokio::test(flavor = "multi_thread")]
async fn settings_reads_are_decided_by_the_policy_and_recorded() {
    let mut data = open_data();
    data["config"] = json!({"withheld": {"contract": ["region"]}});
    let served = Served::new(data);

    let (text, call) = served
        .call("contract_read-config", json!({"key": "greeting"}), None)
        .await;
    assert_eq!(text, r#"{"ok":"hello"}"#);
    let reads = served.of_call("config", &call);
    assert_eq!(reads.len(), 1);
    assert_eq!(reads[0].verdict, "allow");
    assert_eq!(
        reads[0].input["config"],
        json!({"operation": "get", "key": "greeting", "present": true, "keys": ["greeting", "region"]})
    );
    // Only key names are recorded, never values.
    assert!(!reads[0].input.to_string().contains("hello\""));

    let (text, call) = served
        .call("contract_read-config", json!({"key": "region"}), None)
        .await;
    assert!(text.contains("denied by policy"), "{text}");
    assert!(!text.contains("eu-west"), "{text}");
    let reads = served.of_call("config", &call);
    assert_eq!(reads[0].verdict, "deny");
    assert!(
        reads[0].reasons[0].contains("withheld"),
        "{:?}",
        reads[0].reasons
    );

    // get-all would reveal the withheld key: denied too.
    let (text, call) = served
        .call("contract_read-all-config", json!({}), None)
        .await;
    assert!(text.contains("denied by policy"), "{text}");
    assert_eq!(served.of_call("config", &call)[0].verdict, "deny");

    // A key the component does not have reads as none, decided all the same.
    let (text, call) = served
        .call("contract_read-config", json!({"key": "colour"}), None)
        .await;
    assert_eq!(text, r#"{"ok":null}"#);
    assert_eq!(
        served.of_call("config", &call)[0].input["config"]["present"],
        json!(false)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn get_all_returns_every_setting_when_none_is_withheld() {
    let served = Served::new(open_data());
    let (text, _) = served
        .call("contract_read-all-config", json!({}), None)
        .await;
    let value: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        value,
        json!({"ok": [["greeting", "hello"], ["region", "eu-west"]]})
    );
}

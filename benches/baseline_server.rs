//! The floor of the streamable-HTTP figures: an rmcp server that answers the same `echo_echo`
//! tool natively, on the same transport set up as `src/mcp/http.rs` sets it up (rmcp's
//! `StreamableHttpService`, stateful sessions in a `LocalSessionManager`, SSE responses, the
//! same allowed hosts and origins, body limit and `TCP_NODELAY`, served by axum on a
//! multi-threaded tokio runtime with the same allocator). No wasm, no policy, no audit, no
//! authentication or session-owner middleware: what a call costs here is what the MCP
//! machinery alone costs, so Gatehouse's figures divided by these are what Gatehouse adds.
//!
//! Its answer has the shape of Gatehouse's answer for the `echo` component's `echo` export:
//! one text block holding the message and `structuredContent: {"result": message}`, and its
//! tool definition the same input and output schemas, so both put the same bytes on the wire.
//!
//! Not a criterion bench: a server that `scripts/bench` starts and loads (`BENCH_ONLY=http`).
//!
//! ```text
//! cargo bench --bench baseline_server -- --listen 127.0.0.1:8788
//! ```
//!
//! It serves until SIGINT or SIGTERM. `--listen` defaults to `127.0.0.1:8788`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::serve::ListenerExt;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    JsonObject, ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[global_allocator]
static ALLOCATOR: gatehouse::Allocator = gatehouse::Allocator;

/// The tool's name as Gatehouse names the `echo` export of a component named `echo`.
const TOOL: &str = "echo_echo";

/// Gatehouse's default `limits.max_argument_bytes` plus its JSON-RPC envelope allowance.
const MAX_BODY_BYTES: usize = (1 << 20) + (64 << 10);

fn main() -> anyhow::Result<()> {
    let listen = listen_address(std::env::args().skip(1))?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("baseline")
        .build()?
        .block_on(serve(listen))
}

/// `--listen ADDR` among the arguments (cargo bench also passes `--bench`, which is ignored).
fn listen_address(mut args: impl Iterator<Item = String>) -> anyhow::Result<SocketAddr> {
    let mut listen = "127.0.0.1:8788".to_owned();
    while let Some(arg) = args.next() {
        if arg == "--listen" {
            listen = args
                .next()
                .ok_or_else(|| anyhow::anyhow!("--listen needs an address"))?;
        } else if let Some(value) = arg.strip_prefix("--listen=") {
            listen = value.to_owned();
        }
    }
    listen
        .parse()
        .map_err(|e| anyhow::anyhow!("--listen {listen:?} is not an address: {e}"))
}

async fn serve(listen: SocketAddr) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let shutdown = CancellationToken::new();
    let port = addr.port();
    let hosts = vec![addr.to_string(), format!("localhost:{port}")];
    let origins = hosts
        .iter()
        .flat_map(|host| [format!("http://{host}"), format!("https://{host}")])
        .collect::<Vec<_>>();
    let config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(hosts)
        .with_allowed_origins(origins)
        .with_max_request_body_bytes(MAX_BODY_BYTES)
        .with_cancellation_token(shutdown.child_token());
    let echo = Echo::new();
    let service = StreamableHttpService::new(
        move || Ok(echo.clone()),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let router = Router::new().route_service("/mcp", service);
    let listener = listener.tap_io(|stream| {
        let _ = stream.set_nodelay(true);
    });
    eprintln!("baseline MCP server on http://{addr}/mcp");
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("a SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        stop.cancel();
    });
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await?;
    Ok(())
}

/// One session's handler: the single `echo_echo` tool.
#[derive(Clone)]
struct Echo {
    tool: Arc<Tool>,
}

impl Echo {
    fn new() -> Echo {
        // The schemas Gatehouse derives from `echo: func(message: string) -> string`.
        let input = json!({
            "type": "object",
            "properties": {"message": {"type": "string"}},
            "required": ["message"],
            "additionalProperties": false,
        });
        let output = json!({
            "type": "object",
            "properties": {"result": {"type": "string"}},
            "required": ["result"],
            "additionalProperties": false,
        });
        let object = |value: Value| -> Arc<JsonObject> {
            match value {
                Value::Object(map) => Arc::new(map),
                _ => unreachable!("a JSON object literal"),
            }
        };
        let tool = Tool::new(TOOL, "Returns `message` unchanged.", object(input))
            .with_title("echo: echo")
            .with_raw_output_schema(object(output));
        Echo {
            tool: Arc::new(tool),
        }
    }
}

impl ServerHandler for Echo {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("gatehouse-baseline", "0"))
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(vec![(*self.tool).clone()]))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if request.name != TOOL {
            return Err(ErrorData::invalid_params(
                format!("unknown tool `{}`", request.name),
                None,
            ));
        }
        let Some(Value::String(message)) = request
            .arguments
            .as_ref()
            .and_then(|arguments| arguments.get("message"))
        else {
            return Ok(CallToolResult::error(vec![ContentBlock::text(
                "invalid arguments: `message` must be a string",
            )])
            .into());
        };
        let mut answer = CallToolResult::success(vec![ContentBlock::text(message.clone())]);
        answer.structured_content = Some(json!({"result": message}));
        Ok(answer.into())
    }
}

//! The rmcp `ServerHandler`: one MCP session's view of the gateway.

use std::sync::{Arc, OnceLock};

#[allow(deprecated)]
use rmcp::model::SetLevelRequestParams;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool as McpTool,
    ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};

use super::elicit;
use super::logging::SessionLevel;
use super::sessions::SESSION_HEADER;
use crate::auth::{AuthenticatedPrincipal, Caller, ClientInfo, Transport};
use crate::gateway::{CallContext, CallResult, Gateway, Session, Tool};
use crate::telemetry::trace::TraceParent;

/// One MCP session's view of the gateway.
#[derive(Clone)]
pub struct McpServer {
    gateway: Arc<Gateway>,
    transport: Transport,
    /// Principal for transports without per-request authentication (stdio).
    default_principal: AuthenticatedPrincipal,
    /// The level set with `logging/setLevel`: tools' log lines at or above it are sent.
    log_level: SessionLevel,
    /// What the policy remembers of this session, made at its first use (rmcp also builds
    /// servers it only asks for a tool's schema); dropped with the last clone of this server,
    /// when rmcp ends the session (closed, idle timeout) or the stdio connection ends.
    session: Arc<OnceLock<Arc<Session>>>,
}

impl McpServer {
    pub fn new(
        gateway: Arc<Gateway>,
        transport: Transport,
        default_principal: AuthenticatedPrincipal,
    ) -> Self {
        McpServer {
            session: Arc::default(),
            gateway,
            transport,
            default_principal,
            log_level: SessionLevel::default(),
        }
    }

    fn caller(&self, context: &RequestContext<RoleServer>) -> Caller {
        let from_http = context
            .extensions
            .get::<::http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<AuthenticatedPrincipal>());
        let principal = from_http.unwrap_or(&self.default_principal);
        Caller {
            principal: principal.principal.clone(),
            authenticated: principal.authenticated,
            transport: self.transport,
            client: context.client_info().map(|info| ClientInfo {
                name: info.name,
                version: info.version,
            }),
            auth: principal.auth,
            claims: principal.claims.clone(),
        }
    }
}

impl McpServer {
    /// The session a request belongs to: this connection's or transport session's, or, for a
    /// request over HTTP without an `Mcp-Session-Id` (protocol 2026-07-28 and later has none),
    /// its principal's.
    fn session(&self, context: &RequestContext<RoleServer>, caller: &Caller) -> Arc<Session> {
        let session_less = context
            .extensions
            .get::<::http::request::Parts>()
            .is_some_and(|parts| !parts.headers.contains_key(SESSION_HEADER));
        if session_less {
            return self.gateway.principal_session(&caller.principal);
        }
        self.session
            .get_or_init(|| self.gateway.open_session())
            .clone()
    }
}

/// The agent's trace context, if it sent a valid one: from the W3C `traceparent` and
/// `tracestate` headers of the HTTP request that carried the call, else from the request's
/// `_meta` (MCP's SEP-414, which works over stdio too). The header comes first: an HTTP client
/// instrumented on its own puts its request's span there, itself a child of the span the MCP
/// client puts in `_meta`.
fn trace_parent(context: &RequestContext<RoleServer>) -> Option<TraceParent> {
    let headers = context
        .extensions
        .get::<::http::request::Parts>()
        .map(|parts| &parts.headers);
    let header = |name: &str| {
        headers
            .and_then(|headers| headers.get(name))
            .and_then(|value| value.to_str().ok())
    };
    let from_headers = header("traceparent")
        .and_then(|traceparent| TraceParent::from_w3c(traceparent, header("tracestate")));
    // rmcp moves the request's `_meta` into the context.
    let meta = &context.meta;
    from_headers.or_else(|| TraceParent::from_w3c(meta.get_traceparent()?, meta.get_tracestate()))
}

/// The MCP description of a tool: the catalog's definition in rmcp's type.
pub fn describe_tool(tool: &Tool) -> McpTool {
    let definition = tool.describe();
    let mut mcp_tool = McpTool::new(
        definition.name,
        definition.description,
        definition.input_schema,
    )
    .with_title(definition.title)
    .with_annotations(ToolAnnotations::new().open_world(definition.annotations.open_world_hint));
    if let Some(output) = definition.output_schema {
        mcp_tool = mcp_tool.with_raw_output_schema(output);
    }
    mcp_tool
}

/// Shapes a gateway result as the MCP answer.
pub fn to_mcp_result(result: CallResult) -> Result<CallToolResult, ErrorData> {
    Ok(match result {
        CallResult::Completed {
            structured,
            text,
            is_error,
        } => {
            let mut answer = if is_error {
                CallToolResult::error(vec![ContentBlock::text(text)])
            } else {
                CallToolResult::success(vec![ContentBlock::text(text)])
            };
            answer.structured_content = structured;
            answer
        }
        CallResult::InvalidArguments(message) => CallToolResult::error(vec![ContentBlock::text(
            format!("invalid arguments: {message}"),
        )]),
        CallResult::Failed(error) => {
            CallToolResult::error(vec![ContentBlock::text(error.to_string())])
        }
        CallResult::Denied { reasons } => {
            let why = if reasons.is_empty() {
                "no rule allowed this call".to_owned()
            } else {
                reasons.join("; ")
            };
            CallToolResult::error(vec![ContentBlock::text(format!("denied by policy: {why}"))])
        }
        CallResult::Unrecorded(reason) => CallToolResult::error(vec![ContentBlock::text(reason)]),
        // `call_tool` answers these itself; anywhere else a question cannot be shown.
        CallResult::InputRequired { question, .. } => {
            CallToolResult::error(vec![ContentBlock::text(format!(
                "approval required: question {question} waits for an answer (`gatehouse approvals approve {question}`)"
            ))])
        }
        CallResult::UnknownTool(name) => {
            return Err(ErrorData::invalid_params(
                format!("unknown tool `{name}`"),
                None,
            ));
        }
    })
}

impl ServerHandler for McpServer {
    // MCP logging is deprecated by SEP-2577 in rmcp, but the revisions clients speak today
    // have it (mcp::logging).
    #[allow(deprecated)]
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_logging()
                .build(),
        )
        .with_server_info(
            Implementation::new("gatehouse", env!("CARGO_PKG_VERSION")).with_title("Gatehouse"),
        )
        .with_instructions(
            "Tools served by Gatehouse are WebAssembly components. Every call is checked by \
                 policy before it runs and recorded in an audit log; a refused or failed call \
                 comes back as a tool error whose text says why.",
        )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let caller = self.caller(&context);
        let session = self.session(&context, &caller);
        let tools = self.gateway.tools(&caller, &session).await;
        Ok(ListToolsResult::with_all_items(
            tools.iter().map(describe_tool).collect(),
        ))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let caller = self.caller(&context);
        let session = self.session(&context, &caller);
        let forwarder = self
            .log_level
            .forwarder(context.peer.clone(), &request.name);
        let call = CallContext {
            session: Some(session),
            observer: forwarder.as_ref().map(|f| f.observer.clone()),
            trace_parent: trace_parent(&context),
            asker: elicit::asker_for(&context)
                .map(|asker| Arc::new(asker) as Arc<dyn crate::approval::Asker>),
            retry: elicit::retry_for(
                &context,
                &request,
                self.gateway.approvals().settings().max_minutes,
            ),
        };
        let result = self
            .gateway
            .call_with(&caller, &request.name, request.arguments, call)
            .await;
        if let Some(forwarder) = forwarder {
            forwarder.flush().await;
        }
        if let CallResult::InputRequired {
            question,
            prompt,
            max_minutes,
        } = result
        {
            let asking = elicit::input_required(question, prompt, max_minutes);
            return Ok(CallToolResponse::InputRequired(asking));
        }
        to_mcp_result(result).map(Into::into)
    }

    #[allow(deprecated)]
    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.log_level.set(request.level);
        Ok(())
    }
}

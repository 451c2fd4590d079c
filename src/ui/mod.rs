//! The auditor's web view at `/ui/`: a read-only timeline of calls, each call's story, an
//! overview and the log's integrity, for the principals `[ui]` names.
//!
//! The pages are static files embedded in the binary (`assets/`); their script draws
//! everything from the JSON endpoints of [`api`] with `textContent` and SVG elements, never
//! HTML strings, so a tool name or an argument holding `<script>` is shown as text. Every
//! answer carries a strict Content-Security-Policy (no inline script or style, nothing from
//! another origin, no framing).
//!
//! Who may look: a principal proven by an API key or a JWT, sent as `Authorization: Bearer`
//! (for scripts) or once through the login form, which opens a server-side session
//! (`session`) whose opaque token is the cookie. Actions (a verification run, logging out)
//! need the session's CSRF token in a header (a bearer caller's header cannot be forged by
//! another site, so it needs none), and a browser's POST from another site is refused
//! outright. Operators see what auditors see, and may also answer the questions a policy's `ask`
//! put (the approvals page). The log is opened read-only for each answer.
//!
//! The transport mounts [`router`] behind the same `Host` check as `/mcp`.

pub mod api;
mod session;
mod settings;

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path as UrlPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use futures::future::BoxFuture;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::json;

use crate::audit::NoteVerifier;
use crate::auth::AuthenticatedPrincipal;
use session::Sessions;
pub use settings::{Role, UiSettings};

/// Checks a bearer credential as the MCP endpoint does: who it proves, or why it is refused.
pub type Identify =
    Arc<dyn Fn(String) -> BoxFuture<'static, Result<AuthenticatedPrincipal, String>> + Send + Sync>;

/// What the web view needs from the gateway.
#[derive(Debug, Clone)]
pub struct UiOptions {
    pub settings: UiSettings,
    /// The audit log, opened read-only for each answer.
    pub audit_path: PathBuf,
    /// The public key checkpoints are signed with, when the gateway signs them.
    pub checkpoint_key: Option<NoteVerifier>,
    /// The gateway's approvals file (`[approvals] path`): questions its policy's `ask` put,
    /// which operators may answer here.
    pub approvals_path: PathBuf,
}

/// Where the view is served.
pub const PATH: &str = "/ui";

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
                   frame-ancestors 'none'";

const APP_HTML: &str = include_str!("assets/app.html");
const LOGIN_HTML: &str = include_str!("assets/login.html");
const FORBIDDEN_HTML: &str = include_str!("assets/forbidden.html");
const APP_JS: &str = include_str!("assets/app.js");
const LOGIN_JS: &str = include_str!("assets/login.js");
const APP_CSS: &str = include_str!("assets/app.css");

struct Ui {
    options: UiOptions,
    identify: Identify,
    /// Mark the session cookie `Secure` (the page is reached over HTTPS).
    secure_cookie: bool,
    sessions: Sessions,
    /// One verification at a time: it reads the whole log.
    verifying: tokio::sync::Mutex<()>,
}

/// Who is looking, and through what.
#[derive(Debug, Clone)]
struct Viewer {
    principal: String,
    role: Role,
    /// The session's CSRF token; `None` for a bearer caller.
    csrf: Option<String>,
}

/// Why a request gets no data.
#[derive(Debug)]
enum Refused {
    /// No credential and no session: the login page.
    NoCredential,
    /// A credential that proves nothing (the reason names no secret).
    BadCredential(String),
    /// A principal `[ui]` does not name.
    NotAllowed(String),
}

impl Ui {
    async fn viewer(&self, headers: &HeaderMap) -> Result<Viewer, Refused> {
        if let Some(value) = headers.get(header::AUTHORIZATION) {
            let token = value
                .to_str()
                .ok()
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .ok_or_else(|| {
                    Refused::BadCredential(
                        "malformed Authorization header: expected `Bearer <key or token>`".into(),
                    )
                })?;
            let principal = (self.identify)(token.to_owned())
                .await
                .map_err(Refused::BadCredential)?;
            return self.role(&principal).map(|role| Viewer {
                principal: principal.principal,
                role,
                csrf: None,
            });
        }
        let token = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| session::cookie(v, session::COOKIE))
            .ok_or(Refused::NoCredential)?;
        let session = self.sessions.get(token).ok_or(Refused::NoCredential)?;
        Ok(Viewer {
            principal: session.principal,
            role: session.role,
            csrf: Some(session.csrf),
        })
    }

    fn role(&self, principal: &AuthenticatedPrincipal) -> Result<Role, Refused> {
        self.options
            .settings
            .role_of(&principal.principal, principal.authenticated)
            .ok_or_else(|| Refused::NotAllowed(principal.principal.clone()))
    }
}

/// The refusal as an HTML page (for pages) or JSON (for the API).
fn refusal(refused: Refused, page: bool) -> Response {
    let (status, message) = match &refused {
        Refused::NoCredential => (
            StatusCode::UNAUTHORIZED,
            "log in: send `Authorization: Bearer <API key or JWT>` or use the form at /ui/".into(),
        ),
        Refused::BadCredential(reason) => (StatusCode::UNAUTHORIZED, reason.clone()),
        Refused::NotAllowed(principal) => (
            StatusCode::FORBIDDEN,
            format!(
                "principal {principal:?} is not an auditor: the web view is for the principals \
                 [ui] auditors and operators name"
            ),
        ),
    };
    if !page {
        let mut response = (status, axum::Json(json!({ "error": message }))).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        return response;
    }
    let body = match refused {
        Refused::NotAllowed(_) => FORBIDDEN_HTML.replace("{message}", &escape_html(&message)),
        _ => LOGIN_HTML.to_owned(),
    };
    (status, html(body)).into_response()
}

/// Text made safe to place in HTML, inside an element or a quoted attribute.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn html(body: String) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body)
}

/// Headers every answer of the view carries.
async fn protect(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Whether a request is a browser's POST sent from another site's page (`Sec-Fetch-Site`,
/// which pages cannot set). The CSRF token already guards the actions; this also keeps another
/// site from logging a browser in with its own key or logging it out. Scripts send no such
/// header and pass.
fn cross_site_post(method: &http::Method, headers: &HeaderMap) -> bool {
    method == http::Method::POST
        && headers
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|site| !matches!(site, "same-origin" | "none"))
}

async fn same_origin_posts(request: Request, next: Next) -> Response {
    if cross_site_post(request.method(), request.headers()) {
        return (
            StatusCode::FORBIDDEN,
            axum::Json(
                json!({ "error": "refused: a POST to the web view must come from its own pages" }),
            ),
        )
            .into_response();
    }
    next.run(request).await
}

/// A page of the app: the same shell, whose script draws the page the path names.
async fn page(State(ui): State<Arc<Ui>>, headers: HeaderMap) -> Response {
    match ui.viewer(&headers).await {
        Ok(_) => html(APP_HTML.to_owned()).into_response(),
        Err(refused) => refusal(refused, true),
    }
}

async fn story_page(state: State<Arc<Ui>>, _id: UrlPath<String>, headers: HeaderMap) -> Response {
    page(state, headers).await
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// `POST /ui/login`: a form with `token` (an API key or a JWT); opens a session.
async fn login(State(ui): State<Arc<Ui>>, body: axum::body::Bytes) -> Response {
    let token = form_urlencoded::parse(&body)
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_default();
    if token.is_empty() {
        return Redirect::to("/ui/?login=empty").into_response();
    }
    let principal = match (ui.identify)(token).await {
        Ok(principal) => principal,
        Err(reason) => {
            tracing::warn!(%reason, "web view login refused");
            return Redirect::to("/ui/?login=refused").into_response();
        }
    };
    let role = match ui.role(&principal) {
        Ok(role) => role,
        Err(refused) => {
            tracing::warn!(principal = %principal.principal, "web view login of a principal [ui] does not name");
            return refusal(refused, true);
        }
    };
    match ui.sessions.open(&principal.principal, role) {
        Ok(token) => {
            tracing::info!(principal = %principal.principal, "web view login");
            let mut response = Redirect::to("/ui/").into_response();
            if let Ok(cookie) =
                HeaderValue::from_str(&session::set_cookie(&token, ui.secure_cookie))
            {
                response.headers_mut().insert(header::SET_COOKIE, cookie);
            }
            response
        }
        Err(error) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot open a session: no randomness ({error})"),
        )
            .into_response(),
    }
}

/// Checks an action's CSRF token: a session must echo its own; a bearer caller needs none.
fn csrf_ok(viewer: &Viewer, headers: &HeaderMap) -> bool {
    let Some(csrf) = &viewer.csrf else {
        return true;
    };
    let sent = headers
        .get(session::CSRF_HEADER)
        .and_then(|v| v.to_str().ok());
    session::csrf_matches(csrf, sent)
}

fn csrf_refusal() -> Response {
    (
        StatusCode::FORBIDDEN,
        axum::Json(json!({ "error": format!("missing or wrong CSRF token: send the session's token (GET /ui/api/session) in the {} header", session::CSRF_HEADER) })),
    )
        .into_response()
}

/// `POST /ui/logout`: ends the session.
async fn logout(State(ui): State<Arc<Ui>>, headers: HeaderMap) -> Response {
    let viewer = match ui.viewer(&headers).await {
        Ok(viewer) => viewer,
        Err(refused) => return refusal(refused, false),
    };
    if !csrf_ok(&viewer, &headers) {
        return csrf_refusal();
    }
    if let Some(token) = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| session::cookie(v, session::COOKIE))
    {
        ui.sessions.close(token);
    }
    let mut response = axum::Json(json!({ "logged_out": true })).into_response();
    if let Ok(cookie) = HeaderValue::from_str(&session::clear_cookie(ui.secure_cookie)) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

/// Runs `answer` on a blocking thread (SQLite reads) and turns its result into a response.
async fn answer(
    answer: impl FnOnce() -> Result<serde_json::Value, api::ApiError> + Send + 'static,
) -> Response {
    match tokio::task::spawn_blocking(answer).await {
        Ok(Ok(value)) => axum::Json(value).into_response(),
        Ok(Err(error)) => {
            let status = match &error {
                api::ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
                api::ApiError::NoSuchCall(_) => StatusCode::NOT_FOUND,
                api::ApiError::Audit(crate::audit::AuditError::Invalid(_)) => {
                    StatusCode::BAD_REQUEST
                }
                api::ApiError::Approvals(crate::approval::ApprovalError::Unknown(_)) => {
                    StatusCode::NOT_FOUND
                }
                api::ApiError::Approvals(crate::approval::ApprovalError::Answered { .. }) => {
                    StatusCode::CONFLICT
                }
                api::ApiError::Audit(_)
                | api::ApiError::Encode(_)
                | api::ApiError::Approvals(_) => StatusCode::INTERNAL_SERVER_ERROR,
            };
            (status, axum::Json(json!({ "error": error.to_string() }))).into_response()
        }
        Err(error) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(json!({ "error": format!("reading the audit log failed: {error}") })),
        )
            .into_response(),
    }
}

/// Resolves the viewer for an API request, or answers the refusal.
macro_rules! viewer_or_refuse {
    ($ui:expr, $headers:expr) => {
        match $ui.viewer(&$headers).await {
            Ok(viewer) => viewer,
            Err(refused) => return refusal(refused, false),
        }
    };
}

async fn api_session(State(ui): State<Arc<Ui>>, headers: HeaderMap) -> Response {
    let viewer = viewer_or_refuse!(ui, headers);
    axum::Json(json!({
        "principal": viewer.principal,
        "role": viewer.role,
        "csrf_token": viewer.csrf,
    }))
    .into_response()
}

async fn api_calls(State(ui): State<Arc<Ui>>, headers: HeaderMap, request: Request) -> Response {
    viewer_or_refuse!(ui, headers);
    let query = request.uri().query().unwrap_or("").to_owned();
    let db = ui.options.audit_path.clone();
    answer(move || {
        let query = api::calls_query(&query, chrono::Utc::now())?;
        api::calls(&db, &query)
    })
    .await
}

async fn api_story(
    State(ui): State<Arc<Ui>>,
    UrlPath(call_id): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    viewer_or_refuse!(ui, headers);
    let db = ui.options.audit_path.clone();
    answer(move || api::story(&db, &call_id)).await
}

async fn api_overview(State(ui): State<Arc<Ui>>, headers: HeaderMap, request: Request) -> Response {
    viewer_or_refuse!(ui, headers);
    let since = form_urlencoded::parse(request.uri().query().unwrap_or("").as_bytes())
        .find(|(k, _)| k == "since")
        .map(|(_, v)| v.into_owned());
    let db = ui.options.audit_path.clone();
    answer(move || api::overview(&db, since.as_deref(), chrono::Utc::now())).await
}

async fn api_integrity(State(ui): State<Arc<Ui>>, headers: HeaderMap) -> Response {
    viewer_or_refuse!(ui, headers);
    let db = ui.options.audit_path.clone();
    let key = ui.options.checkpoint_key.clone();
    answer(move || api::integrity(&db, key.as_ref())).await
}

async fn api_verify(State(ui): State<Arc<Ui>>, headers: HeaderMap) -> Response {
    let viewer = viewer_or_refuse!(ui, headers);
    if !csrf_ok(&viewer, &headers) {
        return csrf_refusal();
    }
    let Ok(_running) = ui.verifying.try_lock() else {
        return (
            StatusCode::CONFLICT,
            axum::Json(
                json!({ "error": "a verification is already running; try again when it ends" }),
            ),
        )
            .into_response();
    };
    tracing::info!(principal = %viewer.principal, "web view: audit log verification");
    let db = ui.options.audit_path.clone();
    let key = ui.options.checkpoint_key.clone();
    let by = viewer.principal.clone();
    answer(move || {
        let mut report = api::verify_now(&db, key.as_ref())?;
        report["ran_by"] = json!(by);
        report["ran_at"] = json!(crate::audit::format_time(chrono::Utc::now()));
        Ok(report)
    })
    .await
}

async fn api_approvals(
    State(ui): State<Arc<Ui>>,
    headers: HeaderMap,
    request: Request,
) -> Response {
    viewer_or_refuse!(ui, headers);
    let all = form_urlencoded::parse(request.uri().query().unwrap_or("").as_bytes())
        .any(|(k, v)| k == "all" && v != "0");
    let path = ui.options.approvals_path.clone();
    answer(move || api::approvals(&path, all)).await
}

/// An operator answers a question; auditors may look but not answer.
async fn api_answer(
    State(ui): State<Arc<Ui>>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let viewer = viewer_or_refuse!(ui, headers);
    if !csrf_ok(&viewer, &headers) {
        return csrf_refusal();
    }
    if viewer.role != Role::Operator {
        return (
            StatusCode::FORBIDDEN,
            axum::Json(json!({
                "error": format!("{} is an auditor: only the principals [ui] operators names may answer questions", viewer.principal)
            })),
        )
            .into_response();
    }
    tracing::info!(principal = %viewer.principal, question = %id, "web view: answering an approval question");
    let path = ui.options.approvals_path.clone();
    answer(move || api::answer_question(&path, &id, &viewer.principal, &body)).await
}

/// The web view's routes, all under `/ui`. `identify` checks credentials as the MCP endpoint
/// does; `secure_cookie` marks the session cookie `Secure` (anywhere but plain HTTP on a
/// loopback address, where a TLS proxy must be in front).
pub fn router(options: UiOptions, identify: Identify, secure_cookie: bool) -> Router {
    let ui = Arc::new(Ui {
        options,
        identify,
        secure_cookie,
        sessions: Sessions::default(),
        verifying: tokio::sync::Mutex::new(()),
    });
    Router::new()
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/", get(page))
        .route("/ui/overview", get(page))
        .route("/ui/integrity", get(page))
        .route("/ui/approvals", get(page))
        .route("/ui/calls/{id}", get(story_page))
        .route("/ui/login", post(login))
        .route("/ui/logout", post(logout))
        .route(
            "/ui/assets/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/ui/assets/login.js",
            get(|| async { asset("text/javascript; charset=utf-8", LOGIN_JS) }),
        )
        .route(
            "/ui/assets/app.css",
            get(|| async { asset("text/css; charset=utf-8", APP_CSS) }),
        )
        .route("/ui/api/session", get(api_session))
        .route("/ui/api/calls", get(api_calls))
        .route("/ui/api/calls/{id}", get(api_story))
        .route("/ui/api/overview", get(api_overview))
        .route("/ui/api/integrity", get(api_integrity))
        .route("/ui/api/verify", post(api_verify))
        .route("/ui/api/approvals", get(api_approvals))
        .route("/ui/api/approvals/{id}", post(api_answer))
        .with_state(ui)
        .layer(middleware::from_fn(same_origin_posts))
        .layer(middleware::from_fn(protect))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_leaves_no_markup() {
        assert_eq!(
            escape_html("<script>alert(\"x\")</script> & 'y'"),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
        let page = FORBIDDEN_HTML.replace("{message}", &escape_html("<b>bob</b>"));
        assert!(page.contains("&lt;b&gt;bob&lt;/b&gt;") && !page.contains("<b>bob"));
    }

    #[test]
    fn only_posts_from_the_views_own_pages_or_scripts_pass() {
        let with = |site: &str| {
            let mut headers = HeaderMap::new();
            headers.insert("sec-fetch-site", HeaderValue::from_str(site).unwrap());
            headers
        };
        let post = http::Method::POST;
        assert!(cross_site_post(&post, &with("cross-site")));
        assert!(cross_site_post(&post, &with("same-site")));
        assert!(!cross_site_post(&post, &with("same-origin")));
        assert!(!cross_site_post(&post, &with("none")));
        assert!(!cross_site_post(&post, &HeaderMap::new()), "a script");
        assert!(!cross_site_post(&http::Method::GET, &with("cross-site")));
    }

    #[test]
    fn the_policy_allows_nothing_inline_or_foreign() {
        for part in [
            "default-src 'self'",
            "frame-ancestors 'none'",
            "script-src 'self'",
        ] {
            assert!(CSP.contains(part));
        }
        assert!(!CSP.contains("unsafe"));
        for page in [APP_HTML, LOGIN_HTML, FORBIDDEN_HTML] {
            assert!(
                !page.contains("<script>") && !page.contains("style="),
                "no inline code"
            );
            assert!(
                !page.contains("http://") && !page.contains("https://"),
                "nothing remote"
            );
        }
    }
}

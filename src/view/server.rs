//! The HTTP side of `restpg view`: an actix-web server with GET routes
//! only, rendering `pages.rs`'s contexts through minijinja templates
//! embedded in the binary.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, App, HttpResponse, HttpServer};
use anyhow::Context as _;
use minijinja::Environment;

use super::live::LiveRun;
use super::pages::{self, CompareQuery, Page, PageError};
use super::query::RawSampleQuery;

/// What `restpg view` serves and where.
#[derive(Clone, Debug)]
pub struct ViewOptions {
    /// The run directories, in command-line order (run `i` is
    /// `/runs/{i}`).
    pub runs: Vec<std::path::PathBuf>,
    /// The address to listen on (127.0.0.1 unless asked otherwise).
    pub bind: IpAddr,
    /// The port; 0 lets the system choose one.
    pub port: u16,
}

struct Shared {
    runs: Vec<Arc<LiveRun>>,
    env: Environment<'static>,
}

const TEMPLATES: [(&str, &str); 8] = [
    ("base.html", include_str!("templates/base.html")),
    ("index.html", include_str!("templates/index.html")),
    ("run.html", include_str!("templates/run.html")),
    ("iteration.html", include_str!("templates/iteration.html")),
    ("samples.html", include_str!("templates/samples.html")),
    ("sample.html", include_str!("templates/sample.html")),
    ("compare.html", include_str!("templates/compare.html")),
    ("error.html", include_str!("templates/error.html")),
];

/// The template environment: every page template, auto-escaping on (the
/// names end in `.html`), undefined values an error so that a misspelt
/// field fails the HTTP tests instead of showing nothing.
///
/// # Errors
/// A template that does not parse.
pub fn environment() -> anyhow::Result<Environment<'static>> {
    let mut env = Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Chainable);
    env.add_filter("num", num);
    env.add_filter("signed", signed);
    env.add_filter("pval", pval);
    for (name, source) in TEMPLATES {
        env.add_template(name, source).with_context(|| format!("view template {name}"))?;
    }
    Ok(env)
}

fn number(v: &minijinja::Value) -> Option<f64> {
    if v.is_none() || v.is_undefined() {
        return None;
    }
    f64::try_from(v.clone()).ok()
}

/// `x|num(d)`: a number with `d` decimals (3 by default), `-` for none.
fn num(v: minijinja::Value, digits: Option<usize>) -> String {
    match number(&v) {
        Some(x) if x.is_finite() => format!("{x:.*}", digits.unwrap_or(3)),
        Some(x) => x.to_string(),
        None => "-".to_owned(),
    }
}

/// `x|signed`: a difference with its sign, 3 decimals; `-` for none.
fn signed(v: minijinja::Value) -> String {
    match number(&v) {
        Some(x) if x.is_finite() => format!("{x:+.3}"),
        Some(x) => x.to_string(),
        None => "-".to_owned(),
    }
}

/// `p|pval`: a p-value, `<0.001` below that, `n/a` when undefined.
fn pval(v: minijinja::Value) -> String {
    match number(&v) {
        Some(p) if p < 0.001 => "<0.001".to_owned(),
        Some(p) if p.is_finite() => format!("{p:.3}"),
        _ => "n/a".to_owned(),
    }
}

fn render(shared: &Shared, page: Result<Page, PageError>) -> HttpResponse {
    let (status, name, ctx) = match page {
        Ok((name, ctx)) => (StatusCode::OK, name, ctx),
        Err(e) => (
            StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            "error.html",
            serde_json::json!({"title": "error", "status": e.status, "message": e.message}),
        ),
    };
    let html = shared.env.get_template(name).and_then(|t| t.render(minijinja::value::Serde(&ctx)));
    match html {
        Ok(html) => HttpResponse::build(status).content_type("text/html; charset=utf-8").body(html),
        Err(e) => HttpResponse::InternalServerError()
            .content_type("text/plain; charset=utf-8")
            .body(format!("rendering {name}: {e:#}")),
    }
}

async fn index(shared: web::Data<Shared>) -> HttpResponse {
    let page = pages::index(&shared.runs);
    render(&shared, Ok(page))
}

async fn run(shared: web::Data<Shared>, path: web::Path<usize>) -> HttpResponse {
    render(&shared, pages::run_page(&shared.runs, path.into_inner()))
}

async fn iteration(shared: web::Data<Shared>, path: web::Path<(usize, u32)>) -> HttpResponse {
    let (r, t) = path.into_inner();
    render(&shared, pages::iteration_page(&shared.runs, r, t))
}

async fn samples(
    shared: web::Data<Shared>,
    path: web::Path<(usize, u32)>,
    q: web::Query<RawSampleQuery>,
) -> HttpResponse {
    let (r, t) = path.into_inner();
    render(&shared, pages::samples_page(&shared.runs, r, t, &q))
}

async fn sample(shared: web::Data<Shared>, path: web::Path<(usize, u32, String, u32)>) -> HttpResponse {
    let (r, t, input, index) = path.into_inner();
    render(&shared, pages::sample_page(&shared.runs, r, t, &input, index))
}

async fn compare(shared: web::Data<Shared>, q: web::Query<CompareQuery>) -> HttpResponse {
    render(&shared, pages::compare_page(&shared.runs, &q))
}

async fn not_found(shared: web::Data<Shared>, req: actix_web::HttpRequest) -> HttpResponse {
    let message = if req.method() == actix_web::http::Method::GET {
        format!("no page at {}", req.path())
    } else {
        format!("{} {}: this view is read-only and answers GET only", req.method(), req.path())
    };
    let status = if req.method() == actix_web::http::Method::GET { 404 } else { 405 };
    render(&shared, Err(PageError { status, message }))
}

/// An error page for a request the extractors refused, in the view's own
/// layout (plain text when the app's data is somehow missing).
fn refused(req: &actix_web::HttpRequest, status: u16, message: String) -> HttpResponse {
    match req.app_data::<web::Data<Shared>>() {
        Some(shared) => render(shared, Err(PageError { status, message })),
        None => HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST))
            .content_type("text/plain; charset=utf-8")
            .body(message),
    }
}

/// A query string that does not parse (a repeated or malformed parameter)
/// as the view's own 400 page.
fn query_error(err: actix_web::error::QueryPayloadError, req: &actix_web::HttpRequest) -> actix_web::Error {
    let detail = err.to_string();
    let detail = detail.strip_prefix("Query deserialize error: ").unwrap_or(&detail).to_owned();
    let response = refused(req, 400, format!("bad query string: {detail} (give each parameter once)"));
    actix_web::error::InternalError::from_response(err, response).into()
}

/// A path whose run, iteration or sample index is no whole number, as the
/// view's own 404 page.
fn path_error(err: actix_web::error::PathError, req: &actix_web::HttpRequest) -> actix_web::Error {
    let message = format!(
        "no page at {}: runs, iterations and sample indices are whole numbers, as the links give them",
        req.path()
    );
    let response = refused(req, 404, message);
    actix_web::error::InternalError::from_response(err, response).into()
}

/// A view bound and ready: its address, and the future that serves it.
pub struct Bound {
    /// Where it listens (with the port the system chose when asked for 0).
    pub addr: SocketAddr,
    /// The server; await it (or hand it to an actix system) to serve. It
    /// stops on SIGINT, SIGTERM or SIGQUIT, or through its handle.
    pub server: actix_web::dev::Server,
    /// The runs it serves: call [`LiveRun::release`] on each once the
    /// server has stopped, so that no private copy of a log outlives it
    /// ([`Bound::serve`] does).
    pub runs: Vec<Arc<LiveRun>>,
}

impl Bound {
    /// Serves until the server stops (a signal, or its handle), then
    /// releases every run's log reader.
    ///
    /// # Errors
    /// The server's I/O error.
    pub async fn serve(self) -> std::io::Result<()> {
        let served = self.server.await;
        for run in &self.runs {
            run.release();
        }
        served
    }
}

/// Opens every run (refusing a directory that is not one, naming it),
/// binds the address and returns the server, not yet awaited.
///
/// # Errors
/// A run directory that is not one or whose log cannot be opened, a
/// template that does not parse, an address that cannot be bound.
pub fn bind(options: &ViewOptions) -> anyhow::Result<Bound> {
    anyhow::ensure!(!options.runs.is_empty(), "give at least one run directory");
    let mut seen: Vec<(std::path::PathBuf, &std::path::Path)> = Vec::new();
    for dir in &options.runs {
        if let Ok(real) = std::fs::canonicalize(dir) {
            if let Some((_, first)) = seen.iter().find(|(r, _)| *r == real) {
                anyhow::bail!("{} and {} are the same run directory; give it once", first.display(), dir.display());
            }
            seen.push((real, dir));
        }
    }
    let runs =
        options.runs.iter().enumerate().map(|(i, dir)| LiveRun::open(i, dir)).collect::<anyhow::Result<Vec<_>>>()?;
    let shared = web::Data::new(Shared { runs: runs.clone(), env: environment()? });
    let addr = SocketAddr::new(options.bind, options.port);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(shared.clone())
            .app_data(web::QueryConfig::default().error_handler(query_error))
            .app_data(web::PathConfig::default().error_handler(path_error))
            .route("/", web::get().to(index))
            .route("/runs/{r}", web::get().to(run))
            .route("/runs/{r}/iterations/{t}", web::get().to(iteration))
            .route("/runs/{r}/iterations/{t}/samples", web::get().to(samples))
            .route("/runs/{r}/samples/{t}/{input}/{index}", web::get().to(sample))
            .route("/compare", web::get().to(compare))
            .default_service(web::to(not_found))
    })
    .workers(2)
    .shutdown_timeout(5)
    .bind(addr)
    .with_context(|| format!("binding {addr}"))?;
    let addr = server.addrs().first().copied().context("the server bound no address")?;
    Ok(Bound { addr, server: server.run(), runs })
}

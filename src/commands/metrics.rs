//! `dmgr metrics [--textfile PATH | --serve ADDR]`: every daemon's state as Prometheus
//! text exposition, printed, written atomically for node_exporter's textfile
//! collector, or served at `GET /metrics` (see `crate::metrics`).

use std::net::TcpListener;

use super::Context;
use crate::cli::MetricsArgs;
use crate::{metrics, output, Error, Result};

/// Runs `dmgr metrics`.
pub(super) fn run(ctx: &Context, args: &MetricsArgs) -> Result<u8> {
    if let Some(addr) = &args.serve {
        let listener = TcpListener::bind(addr.as_str()).map_err(|source| {
            // A malformed address is a usage error (exit 2); an address in use or
            // not allowed is a failure (exit 1).
            if source.kind() == std::io::ErrorKind::InvalidInput {
                Error::Usage(format!(
                    "--serve: `{addr}` is not HOST:PORT, such as 127.0.0.1:9101"
                ))
            } else {
                Error::Io {
                    action: "listen on",
                    path: addr.into(),
                    source,
                }
            }
        })?;
        let shown = listener
            .local_addr()
            .map_or_else(|_| addr.clone(), |a| a.to_string());
        ctx.say(&format!("serving metrics on http://{shown}/metrics"));
        metrics::serve::serve(&listener, || metrics::render(&ctx.dirs));
        return Ok(0);
    }
    let text = metrics::render(&ctx.dirs)?;
    match &args.textfile {
        Some(path) => metrics::textfile::write(path, &text)?,
        None => output::print_raw(&text)?,
    }
    Ok(0)
}

//! A small HTTP/1.1 upstream connection pool on hyper's connection API.
//!
//! Why not `hyper_util`'s legacy client: on the proxy path it spawns an
//! idle-watch task and builds a connect future for every request, which the
//! load benchmark showed as a large share of corsgate's user CPU. Here a
//! checkout is a short scan under a mutex for a sender whose previous
//! exchange is finished (`is_ready`); a sender goes back to the pool as soon
//! as the response headers arrive and becomes ready again when the body has
//! been read. Connections that close are dropped on the next scan.
//!
//! Each upstream authority has one [`Idle`] holding both these connections
//! and those of corsgate's own exchange, and the rule's
//! `maxIdleConnections` bounds the two together.

use crate::upstream::exchange::Idle;
use crate::Body;
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Why a request could not be sent.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PoolError {
    /// Connecting failed or timed out.
    #[error("connect to {0}: {1}")]
    Connect(String, String),
    /// The exchange failed.
    #[error(transparent)]
    Http(#[from] hyper::Error),
}

/// HTTP/1.1 connections per upstream authority (`host:port`).
pub(crate) struct Http1Pool {
    connect_timeout: Duration,
    /// Connections kept per authority (`maxIdleConnections`).
    max_idle: usize,
    /// The kept connections, per authority; each list is shared with the
    /// exchange's response bodies that park their connection in it.
    idle: Mutex<HashMap<String, Arc<Idle>, foldhash::fast::RandomState>>,
}

impl Http1Pool {
    pub(crate) fn new(connect_timeout: Duration, max_idle: usize) -> Self {
        Http1Pool {
            connect_timeout,
            max_idle,
            idle: Mutex::default(),
        }
    }

    /// The connect timeout.
    pub(crate) fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// The kept connections to `authority`.
    pub(crate) fn idle(&self, authority: &str) -> Arc<Idle> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(list) = idle.get(authority) {
            return Arc::clone(list);
        }
        Arc::clone(
            idle.entry(authority.to_owned())
                .or_insert_with(|| Arc::new(Idle::new(self.max_idle))),
        )
    }

    async fn connect(&self, authority: &str) -> Result<SendRequest<Body>, PoolError> {
        let err = |e: String| PoolError::Connect(authority.to_owned(), e);
        let stream = tokio::time::timeout(
            self.connect_timeout,
            tokio::net::TcpStream::connect(authority),
        )
        .await
        .map_err(|_| err("timed out".into()))?
        .map_err(|e| err(e.to_string()))?;
        let _ = stream.set_nodelay(true);
        // The same response-head limit as corsgate's own exchange.
        let (sender, conn) = http1::Builder::new()
            .max_buf_size(crate::upstream::exchange::MAX_HEAD_BYTES)
            .handshake(TokioIo::new(stream))
            .await?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
        });
        Ok(sender)
    }

    /// Send `req` (origin-form URI, `Host` already set) to `authority`.
    pub(crate) async fn send(
        &self,
        authority: &str,
        req: http::Request<Body>,
    ) -> Result<http::Response<Incoming>, PoolError> {
        let idle = self.idle(authority);
        let (mut sender, pooled) = match idle.take_sender() {
            Some(s) => (s, true),
            None => (self.connect(authority).await?, false),
        };
        sender.ready().await?;
        let resp = match sender.try_send_request(req).await {
            Ok(resp) => resp,
            Err(mut e) => match e.take_message() {
                // The pooled connection closed before the request went out
                // (the upstream's keep-alive ended): retry once, fresh.
                Some(req) if pooled => {
                    sender = self.connect(authority).await?;
                    sender.ready().await?;
                    sender.send_request(req).await?
                }
                _ => return Err(PoolError::Http(e.into_error())),
            },
        };
        // Upgraded connections are consumed by the tunnel; never pool them.
        if resp.status() != http::StatusCode::SWITCHING_PROTOCOLS {
            idle.put_sender(sender);
        }
        Ok(resp)
    }
}

//! Query cancel for the Postgres front end.
//!
//! pgwire cancels a query by dropping the future that *plans* it, but DataFusion results are
//! streams: the work happens while rows are sent, after that future has finished. So each
//! query's row stream is tied to a cancellation token registered under the connection's
//! (pid, secret key); a CancelRequest fires the token and the stream ends with SQLSTATE 57014,
//! dropping the DataFusion stream and with it the running plan.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::StreamExt;
use pgwire::api::cancel::{CancelHandler, DefaultCancelHandler};
use pgwire::api::results::{QueryResponse, Response};
use pgwire::error::PgWireError;
use pgwire::messages::cancel::CancelRequest;
use tokio_util::sync::CancellationToken;

type ConnectionKey = (i32, Vec<u8>);

/// The cancellation token of the running query of each connection.
#[derive(Default)]
pub struct QueryCancels {
    /// Per connection: the id of its running query and that query's token.
    active: Mutex<HashMap<ConnectionKey, (u64, CancellationToken)>>,
    next_id: AtomicU64,
}

impl QueryCancels {
    /// Registers a new query on a connection, replacing its previous token.
    pub fn begin(self: &Arc<Self>, key: ConnectionKey) -> QueryGuard {
        let token = CancellationToken::new();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut active) = self.active.lock() {
            active.insert(key.clone(), (id, token.clone()));
        }
        QueryGuard {
            registry: self.clone(),
            key,
            id,
            token,
        }
    }

    fn cancel(&self, key: &ConnectionKey) {
        if let Ok(active) = self.active.lock()
            && let Some((_, token)) = active.get(key)
        {
            token.cancel();
        }
    }
}

/// Unregisters the query when its last row stream is dropped.
pub struct QueryGuard {
    registry: Arc<QueryCancels>,
    key: ConnectionKey,
    id: u64,
    token: CancellationToken,
}

impl Drop for QueryGuard {
    fn drop(&mut self) {
        // Only this query's own entry: a newer query on the connection may have replaced it.
        if let Ok(mut active) = self.registry.active.lock()
            && active.get(&self.key).is_some_and(|(id, _)| *id == self.id)
        {
            active.remove(&self.key);
        }
    }
}

impl QueryGuard {
    /// Makes the row stream of `response` stop with 57014 when the query is cancelled.
    pub fn wrap(self, response: Response) -> Response {
        match response {
            Response::Query(q) => Response::Query(cancellable(q, Arc::new(self))),
            other => other,
        }
    }

    /// [`Self::wrap`] for the responses of a multi-statement simple query.
    pub fn wrap_all(self, responses: Vec<Response>) -> Vec<Response> {
        let guard = Arc::new(self);
        responses
            .into_iter()
            .map(|r| match r {
                Response::Query(q) => Response::Query(cancellable(q, guard.clone())),
                other => other,
            })
            .collect()
    }
}

fn cancellable(mut q: QueryResponse, guard: Arc<QueryGuard>) -> QueryResponse {
    let rows = std::mem::replace(&mut q.data_rows, Box::pin(futures::stream::empty()));
    let token = guard.token.clone();
    q.data_rows = Box::pin(futures::stream::unfold(
        (rows, token, guard, false),
        |(mut rows, token, guard, done)| async move {
            if done {
                return None;
            }
            tokio::select! {
                biased;
                _ = token.cancelled() => Some((Err(PgWireError::QueryCanceled), (rows, token, guard, true))),
                item = rows.next() => item.map(|i| (i, (rows, token, guard, false))),
            }
        },
    ));
    q
}

/// Cancels both the planning future (pgwire's own mechanism) and the row stream.
pub struct PgCancel {
    pub pgwire: DefaultCancelHandler,
    pub queries: Arc<QueryCancels>,
}

#[async_trait]
impl CancelHandler for PgCancel {
    async fn on_cancel_request(&self, request: CancelRequest) {
        self.queries
            .cancel(&(request.pid, request.secret_key.to_bytes().to_vec()));
        self.pgwire.on_cancel_request(request).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pgwire::api::results::FieldInfo;

    #[tokio::test]
    async fn cancel_ends_stream_with_query_canceled() {
        let registry = Arc::new(QueryCancels::default());
        let key = (7, vec![1, 2, 3, 4]);
        let guard = registry.begin(key.clone());
        // A row stream that never ends, like a long aggregation.
        let q = QueryResponse::new(
            Arc::new(Vec::<FieldInfo>::new()),
            futures::stream::pending(),
        );
        let Response::Query(mut q) = guard.wrap(Response::Query(q)) else {
            panic!("query response expected")
        };
        registry.cancel(&key);
        let item = q.data_rows.next().await.expect("an item");
        assert!(matches!(item, Err(PgWireError::QueryCanceled)));
        assert!(q.data_rows.next().await.is_none());
        drop(q);
        assert!(
            registry.active.lock().unwrap().is_empty(),
            "entry removed with the stream"
        );
    }
}

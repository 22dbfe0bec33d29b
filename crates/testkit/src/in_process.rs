//! What the HTTP stand-ins (Voyage, the LLM) share: an axum app served by a task of this
//! process on a loopback listener, shut down gracefully when its handle drops.

use std::net::SocketAddr;

use axum::Router;

/// A served app; dropping it stops the server.
pub(crate) struct InProcessServer {
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl InProcessServer {
    /// Serves `app` on `listener` until dropped.
    pub(crate) fn serve(listener: tokio::net::TcpListener, app: Router) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(InProcessServer {
            addr,
            shutdown: Some(tx),
        })
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for InProcessServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

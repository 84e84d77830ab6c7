//! One shutdown signal shared by every task: the listeners stop accepting when it fires.

use tokio::sync::watch;

/// Fires the shutdown signal.
#[derive(Debug, Clone)]
pub struct ShutdownTrigger(watch::Sender<bool>);

/// Waits for the shutdown signal; cheap to clone, one per task.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

pub fn channel() -> (ShutdownTrigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (ShutdownTrigger(tx), Shutdown(rx))
}

impl ShutdownTrigger {
    pub fn trigger(&self) {
        let _ = self.0.send(true);
    }
}

impl Shutdown {
    /// Resolves once shutdown has been triggered (at once if it already was).
    pub async fn wait(&mut self) {
        let _ = self.0.wait_for(|stopped| *stopped).await;
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn wait_returns_after_trigger() {
        let (tx, mut rx) = super::channel();
        let mut rx2 = rx.clone();
        tx.trigger();
        rx.wait().await;
        rx2.wait().await;
    }
}

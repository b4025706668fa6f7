//! The streams of an h2 connection, driven by the connection's own task.
//!
//! hyper's h2 server hands each stream (the request's handling and the
//! writing of its response) to an executor. Given tokio's, every request
//! becomes a task of its own: an allocation, the whole request future
//! copied into the task and out again, and a wake-up from the connection's
//! task to the stream's and back for each frame either sends. Here the
//! executor is the connection's task itself: hyper's connection and the
//! streams it started are polled side by side, as HAProxy runs a
//! connection's streams on the thread that reads it. A connection's streams
//! then share one core, as its bytes do anyway.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures_util::stream::{FuturesUnordered, StreamExt};
use futures_util::task::AtomicWaker;

use crate::conn::park::Companion;
use crate::lock::lock;

type StreamFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The executor given to hyper's h2 connection: it queues each stream for
/// the connection's task.
#[derive(Clone)]
pub struct StreamExec {
    shared: Arc<Shared>,
}

struct Shared {
    queue: Mutex<Queue>,
    /// The connection's task, woken when a stream is queued from outside it.
    task: AtomicWaker,
}

#[derive(Default)]
struct Queue {
    started: Vec<StreamFuture>,
    /// The connection's task is polling hyper's connection, and takes what
    /// is queued right after: no wake-up needed.
    polling: bool,
    /// The connection is gone: a stream started now would never run.
    closed: bool,
}

impl<F> hyper::rt::Executor<F> for StreamExec
where
    F: Future<Output = ()> + Send + 'static,
{
    fn execute(&self, stream: F) {
        let Some(mut queue) = lock(&self.shared.queue) else {
            // Poisoned: dropping the stream resets it; the client sees an error, not a hang.
            return;
        };
        if queue.closed {
            return;
        }
        queue.started.push(Box::pin(stream));
        let polling = queue.polling;
        drop(queue);
        if !polling {
            self.shared.task.wake();
        }
    }
}

/// The streams a connection started and that have not finished.
pub struct Streams {
    shared: Arc<Shared>,
    running: FuturesUnordered<StreamFuture>,
}

impl Streams {
    /// The set, and the executor to build the h2 connection with.
    pub fn new() -> (Streams, StreamExec) {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            task: AtomicWaker::new(),
        });
        let exec = StreamExec { shared: shared.clone() };
        let streams = Streams {
            shared,
            running: FuturesUnordered::new(),
        };
        (streams, exec)
    }

    /// Polls `conn`, the streams it starts and `companion` until `conn`
    /// finishes. Streams still running then are dropped (reset): their
    /// connection is gone. May be called again after it was cancelled, to
    /// go on.
    pub fn run<'a, C: Future>(
        &'a mut self,
        mut conn: Pin<&'a mut C>,
        companion: &'a impl Companion,
    ) -> impl Future<Output = C::Output> + 'a {
        poll_fn(move |cx| {
            self.shared.task.register(cx.waker());
            companion.poll_beside(cx);
            self.set_polling(true);
            let served = conn.as_mut().poll(cx);
            self.set_polling(false);
            if served.is_ready() {
                return served;
            }
            self.poll_running(cx);
            // Requests the streams just sent upstream go out now. What they
            // gave the connection to send woke this task: the next poll
            // writes it.
            companion.poll_beside(cx);
            Poll::Pending
        })
    }

    fn set_polling(&mut self, polling: bool) {
        let started = match lock(&self.shared.queue) {
            Some(mut queue) => {
                queue.polling = polling;
                std::mem::take(&mut queue.started)
            }
            None => Vec::new(),
        };
        self.running.extend(started);
    }

    fn poll_running(&mut self, cx: &mut Context<'_>) {
        while let Poll::Ready(Some(())) = self.running.poll_next_unpin(cx) {}
    }
}

impl Drop for Streams {
    fn drop(&mut self) {
        // The queued streams hold the executor, and so the queue: break the cycle.
        let queued = lock(&self.shared.queue).map(|mut queue| {
            queue.closed = true;
            std::mem::take(&mut queue.started)
        });
        drop(queued);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use hyper::rt::Executor;

    use super::*;

    #[tokio::test]
    async fn streams_started_by_the_connection_run_in_its_task() {
        let (mut streams, exec) = Streams::new();
        let finished = Arc::new(AtomicUsize::new(0));
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let counted = finished.clone();
        let mut started = false;
        let mut released = Some(released);
        // A stand-in for hyper's connection: starts two streams, then ends
        // once both have finished.
        let conn = poll_fn(|cx| {
            if !started {
                started = true;
                for _ in 0..2 {
                    let counted = counted.clone();
                    let released = released.take();
                    exec.execute(async move {
                        if let Some(released) = released {
                            let _ = released.await;
                        }
                        counted.fetch_add(1, Ordering::SeqCst);
                    });
                }
            }
            if counted.load(Ordering::SeqCst) == 2 {
                Poll::Ready("done")
            } else {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        });
        let mut conn = std::pin::pin!(conn);
        let release_later = async {
            tokio::task::yield_now().await;
            let _ = release.send(());
        };
        let (out, ()) = tokio::join!(streams.run(conn.as_mut(), &()), release_later);
        assert_eq!(out, "done");
        assert_eq!(finished.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_stream_started_after_the_connection_ended_is_dropped_not_kept() {
        let (streams, exec) = Streams::new();
        drop(streams);
        let dropped = Arc::new(AtomicUsize::new(0));
        struct CountsDrop(Arc<AtomicUsize>);
        impl Drop for CountsDrop {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let guard = CountsDrop(dropped.clone());
        exec.execute(async move {
            let _guard = guard;
        });
        assert_eq!(dropped.load(Ordering::SeqCst), 1);
        assert_eq!(Arc::strong_count(&exec.shared), 1);
    }
}

//! A CRL distribution point on loopback: serves whatever list the test sets,
//! or is "down" (closes every connection unanswered), and counts its GETs.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

pub struct CrlServer {
    pub addr: SocketAddr,
    body: Arc<Mutex<Option<Vec<u8>>>>,
    hits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl CrlServer {
    pub async fn start() -> CrlServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let body: Arc<Mutex<Option<Vec<u8>>>> = Arc::default();
        let hits = Arc::new(AtomicUsize::new(0));
        let (serving, counting) = (body.clone(), hits.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut tcp, _)) = listener.accept().await else {
                    return;
                };
                let (serving, counting) = (serving.clone(), counting.clone());
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tcp.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    counting.fetch_add(1, Ordering::SeqCst);
                    let Some(body) = serving.lock().unwrap().clone() else {
                        return; // down: the connection closes unanswered
                    };
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/pkix-crl\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = tcp.write_all(head.as_bytes()).await;
                    let _ = tcp.write_all(&body).await;
                });
            }
        });
        CrlServer { addr, body, hits, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}/ca.crl", self.addr)
    }

    /// Serves `der` from now on.
    pub fn serve(&self, der: Vec<u8>) {
        *self.body.lock().unwrap() = Some(der);
    }

    /// Answers nothing from now on.
    pub fn down(&self) {
        *self.body.lock().unwrap() = None;
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for CrlServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

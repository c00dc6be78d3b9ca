//! The simulated network: one real WebSocket per connected client, with the simulation in the
//! middle. Frames a client sends wait in `outbound` and frames the server sends wait in
//! `inbound` until a plan step carries them, each with a fate: delivered, dropped, duplicated
//! or delayed behind later frames.
//!
//! To stay deterministic the simulation never lets the server race it: after a step that gave
//! the server work, [`Link::probe`] sends a `Ping` of its own on each connection and waits for
//! its `Pong` (or the close). The server answers a ping only after it has handled every earlier
//! frame of the connection and delivered every change committed before it (docs/protocol.md),
//! so once every probe is answered, everything the step caused is in the `inbound` queues.
//! Probe pongs are ordinary numbered frames: the client receives them too (and ignores them).

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use syncline_protocol::{ClientMessage, ServerMessage, decode_server_frame, encode};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

use super::SimError;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long a probe may take before the run fails (a server that stopped answering).
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

/// Something the server sent that the client has not received yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    Frame(Vec<u8>),
    /// The connection ended (close frame, reset or end of stream).
    Closed(String),
}

/// One client's connection to one server node.
#[derive(Debug)]
pub struct Link {
    pub node: usize,
    sink: SplitSink<Socket, Message>,
    arrivals: mpsc::UnboundedReceiver<Inbound>,
    reader: JoinHandle<()>,
    /// Server frames not yet carried to the client.
    pub inbound: VecDeque<Inbound>,
    /// Client frames not yet carried to the server.
    pub outbound: VecDeque<Vec<u8>>,
    /// Client frames carried to the server so far (a probe before the `Hello` would be taken
    /// for a bad handshake, so connections with none are not probed).
    pub carried_up: usize,
    /// The end of the connection has arrived (it may still wait in `inbound`).
    pub ended: bool,
}

impl Link {
    pub async fn connect(url: &str, node: usize) -> Result<Self, SimError> {
        let (socket, _) = connect_async(url)
            .await
            .map_err(|e| SimError::Harness(format!("connect to {url}: {e}")))?;
        let (sink, mut stream) = socket.split();
        let (tx, arrivals) = mpsc::unbounded_channel();
        let reader = tokio::spawn(async move {
            loop {
                let arrival = match stream.next().await {
                    Some(Ok(Message::Binary(bytes))) => Inbound::Frame(bytes.to_vec()),
                    Some(Ok(Message::Close(frame))) => {
                        Inbound::Closed(frame.map_or_else(String::new, |f| {
                            format!("{} {}", u16::from(f.code), f.reason)
                        }))
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => Inbound::Closed(format!("error: {e}")),
                    None => Inbound::Closed("end of stream".into()),
                };
                let last = matches!(arrival, Inbound::Closed(_));
                if tx.send(arrival).is_err() || last {
                    return;
                }
            }
        });
        Ok(Self {
            node,
            sink,
            arrivals,
            reader,
            inbound: VecDeque::new(),
            outbound: VecDeque::new(),
            carried_up: 0,
            ended: false,
        })
    }

    /// Carries one client frame to the server. A frame sent into a closed connection is lost,
    /// as on a real network.
    pub async fn carry_up(&mut self, frame: Vec<u8>) {
        self.carried_up += 1;
        let _ = self.sink.send(Message::Binary(frame.into())).await;
    }

    /// Moves whatever has arrived into `inbound`.
    pub fn collect(&mut self) {
        while let Ok(arrival) = self.arrivals.try_recv() {
            self.arrive(arrival);
        }
    }

    fn arrive(&mut self, arrival: Inbound) {
        if matches!(arrival, Inbound::Closed(_)) {
            self.ended = true;
        }
        self.inbound.push_back(arrival);
    }

    /// Whether this connection takes part in probes.
    pub fn probeable(&self) -> bool {
        self.carried_up > 0 && !self.ended
    }

    /// Sends the probe `Ping`.
    pub async fn send_probe(&mut self, nonce: u64) -> Result<(), SimError> {
        let ping = encode(&ClientMessage::Ping { nonce })
            .map_err(|e| SimError::Harness(format!("encode ping: {e}")))?;
        // A failed send means the connection is gone; its end arrives through the reader.
        let _ = self.sink.send(Message::Binary(ping.into())).await;
        Ok(())
    }

    /// Waits for the probe's `Pong`, or the end of the connection.
    pub async fn await_probe(&mut self, nonce: u64) -> Result<(), SimError> {
        loop {
            let arrival = tokio::time::timeout(PROBE_TIMEOUT, self.arrivals.recv())
                .await
                .map_err(|_| {
                    SimError::Harness(format!(
                        "node {} did not answer probe {nonce} within {PROBE_TIMEOUT:?}",
                        self.node
                    ))
                })?;
            let Some(arrival) = arrival else {
                // The reader ended without a close (it was aborted).
                self.ended = true;
                return Ok(());
            };
            let answered = match &arrival {
                Inbound::Frame(bytes) => matches!(
                    decode_server_frame(bytes),
                    Ok((_, ServerMessage::Pong { nonce: n })) if n == nonce
                ),
                Inbound::Closed(_) => true,
            };
            self.arrive(arrival);
            if answered {
                return Ok(());
            }
        }
    }

    /// Waits until the connection has ended (after a server restart).
    pub async fn await_end(&mut self) -> Result<(), SimError> {
        while !self.ended {
            let arrival = tokio::time::timeout(PROBE_TIMEOUT, self.arrivals.recv())
                .await
                .map_err(|_| SimError::Harness("connection did not end after a restart".into()))?;
            match arrival {
                Some(arrival) => self.arrive(arrival),
                None => self.ended = true,
            }
        }
        Ok(())
    }

    /// Ends the connection from the client side (a partition or a killed process).
    pub async fn close(mut self) {
        let _ = self.sink.close().await;
        self.reader.abort();
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

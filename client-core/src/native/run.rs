//! The sync loop: connect, handshake, then relay frames between the socket and the state
//! machine until the connection ends; then back off (with jitter) and reconnect, until stopped.
//!
//! The client mutex is held only while calling the state machine, never across an `.await`,
//! so the application can keep reading and writing while the loop waits on the network.

use std::time::Duration;

use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use syncline_protocol::{ClientMessage, encode};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async_with_config};

use super::backoff::Backoff;
use super::handle::{Control, Shared, SyncConfig};
use crate::sync::{LastError, Received, SyncEvent};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How one connection ended.
#[derive(Debug, Default)]
struct SessionEnd {
    /// The server welcomed the session (so the backoff starts over).
    welcomed: bool,
    /// The socket was open (a `Disconnected` event is due).
    connected: bool,
    error: Option<LastError>,
    close_code: Option<u16>,
}

pub(super) async fn run(
    shared: Shared,
    config: SyncConfig,
    mut control: watch::Receiver<Control>,
    mut token: watch::Receiver<String>,
) {
    let mut backoff = Backoff::new(config.min_backoff, config.max_backoff);
    loop {
        let now = *control.borrow_and_update();
        if now.stop {
            break;
        }
        if !now.online {
            if control.changed().await.is_err() {
                break;
            }
            continue;
        }
        let end = session(&shared, &config, &mut control, &mut token).await;
        {
            let mut client = shared.lock();
            client.on_disconnected();
            if let Some(error) = &end.error {
                client.set_last_error(error.clone());
            }
            shared.publish(&client);
        }
        if end.connected {
            let reason = end
                .error
                .as_ref()
                .map(|e| e.message.clone())
                .unwrap_or_default();
            shared.emit(vec![SyncEvent::Disconnected {
                close_code: end.close_code,
                reason,
            }]);
        }
        if end.welcomed {
            backoff.reset();
        }
        let now = *control.borrow();
        if now.stop {
            break;
        }
        if !now.online {
            continue;
        }
        let delay = backoff.next_delay();
        tracing::debug!(?delay, error = ?end.error, "reconnecting after a delay");
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            // Going offline, stopping, or a new token (which may fix an auth failure) cut
            // the wait short.
            _ = control.changed() => {}
            _ = token.changed() => backoff.reset(),
        }
    }
    let mut client = shared.lock();
    client.on_disconnected();
    shared.publish(&client);
    tracing::debug!("sync loop stopped");
}

/// One connection, from connecting to its end.
async fn session(
    shared: &Shared,
    config: &SyncConfig,
    control: &mut watch::Receiver<Control>,
    token: &mut watch::Receiver<String>,
) -> SessionEnd {
    {
        let mut client = shared.lock();
        client.on_connecting();
        shared.publish(&client);
    }
    // Nagle off: a push is one small frame and its ack should not wait for a delayed ACK.
    let connect = tokio::time::timeout(
        config.connect_timeout,
        connect_async_with_config(config.url.as_str(), None, true),
    );
    let socket = tokio::select! {
        result = connect => match result {
            Ok(Ok((socket, _response))) => socket,
            Ok(Err(e)) => return failed(format!("connect to {} failed: {e}", config.url)),
            Err(_) => return failed(format!("connect to {} timed out", config.url)),
        },
        // Going offline or stopping must not wait for a slow connect.
        () = until_offline(control) => return SessionEnd::default(),
    };
    let (mut sink, mut stream) = socket.split();
    let mut end = SessionEnd {
        connected: true,
        ..SessionEnd::default()
    };

    let hello = {
        let mut client = shared.lock();
        let current = token.borrow_and_update().clone();
        let messages = client.on_connected(&current);
        shared.publish(&client);
        messages
    };
    let result = match hello {
        Ok(messages) => send_all(&mut sink, &messages).await,
        Err(e) => Err(LastError::message(format!("local replica failed: {e}"))),
    };
    if let Err(e) = result {
        end.error = Some(e);
        return end;
    }

    let mut ping = config
        .ping_interval
        .map(|every| tokio::time::interval_at(tokio::time::Instant::now() + every, every));
    let mut nonce = 0u64;
    // Any frame proves the server alive; two ping intervals of silence mean it is not (a
    // half-open TCP connection never reports an error by itself).
    let mut last_seen = tokio::time::Instant::now();
    loop {
        let step = tokio::select! {
            changed = control.changed() => {
                let c = *control.borrow();
                if changed.is_err() || c.stop || !c.online {
                    close(&mut sink).await;
                    return end;
                }
                Ok(())
            }
            changed = token.changed() => match changed {
                Ok(()) => {
                    let token = token.borrow_and_update().clone();
                    send_all(&mut sink, &[ClientMessage::Reauth { token }]).await
                }
                // The handle is gone (and has asked the loop to stop).
                Err(_) => {
                    close(&mut sink).await;
                    return end;
                }
            },
            () = shared.notify.notified() => push_outgoing(shared, &mut sink).await,
            _ = tick(&mut ping) => match config.ping_interval {
                Some(every) if last_seen.elapsed() > every * 2 => {
                    Err(LastError::message(format!("no frame from the server for {:?}", last_seen.elapsed())))
                }
                _ => {
                    nonce += 1;
                    send_all(&mut sink, &[ClientMessage::Ping { nonce }]).await
                }
            },
            frame = stream.next() => {
                last_seen = tokio::time::Instant::now();
                on_socket_frame(shared, &mut sink, frame, &mut end).await
            }
        };
        if let Err(e) = step {
            end.error = Some(e);
            return end;
        }
    }
}

/// Resolves once the application asks to go offline or stop (or the handle is gone).
async fn until_offline(control: &mut watch::Receiver<Control>) {
    loop {
        if control.changed().await.is_err() {
            return;
        }
        let c = *control.borrow();
        if c.stop || !c.online {
            return;
        }
    }
}

fn failed(message: String) -> SessionEnd {
    tracing::debug!(%message, "connection attempt failed");
    SessionEnd {
        error: Some(LastError::message(message)),
        ..SessionEnd::default()
    }
}

async fn tick(ping: &mut Option<tokio::time::Interval>) {
    match ping {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Handles what the socket produced: a frame, an error, or its end.
async fn on_socket_frame(
    shared: &Shared,
    sink: &mut SplitSink<Socket, Message>,
    frame: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
    end: &mut SessionEnd,
) -> Result<(), LastError> {
    match frame {
        None => Err(LastError::message("connection closed")),
        Some(Err(e)) => Err(LastError::message(format!("connection failed: {e}"))),
        Some(Ok(Message::Binary(bytes))) => on_frame(shared, sink, &bytes, end).await,
        Some(Ok(Message::Close(frame))) => Err(closed_by_server(frame, end)),
        Some(Ok(Message::Text(_))) => {
            tracing::warn!("ignoring a text frame (the protocol is binary)");
            Ok(())
        }
        // tungstenite answers pings itself.
        Some(Ok(_)) => Ok(()),
    }
}

/// Handles one server frame and sends whatever it makes due.
async fn on_frame(
    shared: &Shared,
    sink: &mut SplitSink<Socket, Message>,
    bytes: &[u8],
    end: &mut SessionEnd,
) -> Result<(), LastError> {
    let (events, outgoing) = {
        let mut client = shared.lock();
        let events = match client.receive(bytes) {
            Ok(Received::Handled(events)) => events,
            Ok(Received::Duplicate { .. } | Received::Skipped { .. }) => Vec::new(),
            // Frames went missing: reconnecting resumes from the persisted cursor, which never
            // moves past a missing frame.
            Ok(broken @ (Received::Gap { .. } | Received::Malformed { .. } | Received::Resync)) => {
                return Err(LastError::message(format!(
                    "unusable server stream: {broken:?}"
                )));
            }
            // The transaction rolled back; reconnecting replays from the persisted cursor.
            Err(e) => {
                return Err(LastError {
                    code: Some(e.code()),
                    close_code: None,
                    message: e.to_string(),
                });
            }
        };
        let outgoing = client.take_outgoing();
        shared.publish(&client);
        (events, outgoing)
    };
    if events
        .iter()
        .any(|e| matches!(e, SyncEvent::Welcomed { .. }))
    {
        end.welcomed = true;
        shared.state.send_modify(|s| s.sessions += 1);
    }
    shared.emit(events);
    match outgoing {
        Ok(messages) => send_all(sink, &messages).await,
        Err(e) => Err(LastError::message(format!("local replica failed: {e}"))),
    }
}

async fn push_outgoing(
    shared: &Shared,
    sink: &mut SplitSink<Socket, Message>,
) -> Result<(), LastError> {
    let outgoing = {
        let mut client = shared.lock();
        let outgoing = client.take_outgoing();
        shared.publish(&client);
        outgoing
    };
    match outgoing {
        Ok(messages) => send_all(sink, &messages).await,
        Err(e) => Err(LastError::message(format!("local replica failed: {e}"))),
    }
}

async fn send_all(
    sink: &mut SplitSink<Socket, Message>,
    messages: &[ClientMessage],
) -> Result<(), LastError> {
    if messages.is_empty() {
        return Ok(());
    }
    for message in messages {
        let frame =
            encode(message).map_err(|e| LastError::message(format!("encode failed: {e}")))?;
        sink.feed(Message::Binary(frame.into()))
            .await
            .map_err(|e| LastError::message(format!("send failed: {e}")))?;
    }
    sink.flush()
        .await
        .map_err(|e| LastError::message(format!("send failed: {e}")))
}

fn closed_by_server(frame: Option<CloseFrame>, end: &mut SessionEnd) -> LastError {
    let (code, reason) = match frame {
        Some(f) => (Some(u16::from(f.code)), f.reason.to_string()),
        None => (None, String::new()),
    };
    end.close_code = code;
    tracing::info!(?code, %reason, "server closed the connection");
    let message = match code {
        Some(code) => format!("closed by server ({code}): {reason}"),
        None => "closed by server".to_owned(),
    };
    LastError {
        code: None,
        close_code: code,
        message,
    }
}

async fn close(sink: &mut SplitSink<Socket, Message>) {
    let frame = CloseFrame {
        code: WsCloseCode::Normal,
        reason: "client going offline".into(),
    };
    // Best effort: the connection is being abandoned either way.
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = sink.send(Message::Close(Some(frame))).await;
    })
    .await;
}

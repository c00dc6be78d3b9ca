//! Moves messages between a [`FakeServer`] and several in-process clients, like perfect
//! sockets that the test can open, close, and step through.

use std::collections::VecDeque;

use client_core::{Client, ClientMessage, ServerMessage, SyncEvent};

use super::server::FakeServer;

pub struct Sim {
    pub server: FakeServer,
    pub clients: Vec<Client>,
    /// Messages the server sent to each client, not yet delivered.
    pub inbox: Vec<VecDeque<ServerMessage>>,
    pub connected: Vec<bool>,
    /// Every event each client reported.
    pub events: Vec<Vec<SyncEvent>>,
}

impl Sim {
    pub fn new() -> Self {
        Self {
            server: FakeServer::default(),
            clients: Vec::new(),
            inbox: Vec::new(),
            connected: Vec::new(),
            events: Vec::new(),
        }
    }

    pub fn add(&mut self, client: Client) -> usize {
        self.clients.push(client);
        self.inbox.push(VecDeque::new());
        self.connected.push(false);
        self.events.push(Vec::new());
        self.clients.len() - 1
    }

    pub fn client(&mut self, i: usize) -> &mut Client {
        &mut self.clients[i]
    }

    /// Opens client `i`'s connection and delivers its handshake to the server.
    pub fn connect(&mut self, i: usize) {
        self.connected[i] = true;
        self.clients[i].on_connecting();
        let messages = self.clients[i].on_connected("token").expect("on_connected");
        for m in messages {
            self.send_to_server(i, m);
        }
    }

    /// Drops client `i`'s connection; undelivered server messages are lost.
    pub fn disconnect(&mut self, i: usize) {
        self.connected[i] = false;
        self.inbox[i].clear();
        self.clients[i].on_disconnected();
    }

    pub fn send_to_server(&mut self, from: usize, message: ClientMessage) {
        let out = self.server.receive(message);
        self.inbox[from].extend(out.replies);
        for (j, connected) in self.connected.iter().enumerate() {
            if *connected {
                self.inbox[j].extend(out.broadcast.iter().cloned());
                if j != from {
                    self.inbox[j].extend(out.others.iter().cloned());
                }
            }
        }
    }

    /// Sends client `i`'s unsent outbox entries.
    pub fn push(&mut self, i: usize) {
        if !self.connected[i] {
            return;
        }
        for m in self.clients[i].take_outgoing().expect("take_outgoing") {
            self.send_to_server(i, m);
        }
    }

    /// Delivers one queued message to client `i`; false when none was queued.
    pub fn deliver_one(&mut self, i: usize) -> bool {
        let Some(m) = self.inbox[i].pop_front() else {
            return false;
        };
        let events = self.clients[i].handle(m).expect("handle");
        self.events[i].extend(events);
        true
    }

    /// Runs until no connected client has anything to send or receive.
    pub fn settle(&mut self) {
        loop {
            let mut progressed = false;
            for i in 0..self.clients.len() {
                if !self.connected[i] {
                    continue;
                }
                let before: usize = self.inbox.iter().map(VecDeque::len).sum();
                self.push(i);
                let after: usize = self.inbox.iter().map(VecDeque::len).sum();
                progressed |= after != before;
                while self.deliver_one(i) {
                    progressed = true;
                }
            }
            if !progressed {
                return;
            }
        }
    }

    /// Events of client `i` reported since the last call.
    pub fn take_events(&mut self, i: usize) -> Vec<SyncEvent> {
        std::mem::take(&mut self.events[i])
    }
}

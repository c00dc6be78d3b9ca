//! # syncline-desktop
//!
//! The desktop client: `client-core` running natively (SQLite file, automerge documents,
//! outbox, tokio WebSocket transport). Today its front end is this command line; the web UI
//! shared with the browser build comes with the demo app. Every task command works offline
//! against the local replica; `sync` and `watch` exchange changes with the server.

// A command-line program: printing to stdout is its user interface.
#![allow(clippy::print_stdout)]

mod session;
mod tasks;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use client_core::native::{NativeClient, SyncConfig};
use client_core::{Client, SyncEvent};

#[derive(Parser)]
#[command(name = "syncline-desktop", about = "Syncline offline client (tasks)")]
struct Cli {
    /// The local replica (a SQLite file, created on first use).
    #[arg(
        long,
        env = "SYNCLINE_DB",
        default_value = "syncline-client.db",
        global = true
    )]
    db: PathBuf,
    /// The server's HTTP address (for register/login).
    #[arg(
        long,
        env = "SYNCLINE_SERVER",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    server: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create an account (and its workspace) and sign this replica in.
    Register { email: String, password: String },
    /// Sign this replica in.
    Login { email: String, password: String },
    /// Add a task (offline-capable).
    Add {
        title: String,
        #[arg(long, default_value = "todo")]
        status: String,
        #[arg(long)]
        priority: Option<String>,
    },
    /// Set a field of a task: title, status, description, priority, column, position,
    /// assignee_id (`-` clears).
    Set {
        id: String,
        field: String,
        value: String,
    },
    /// Mark a task done.
    Done { id: String },
    /// Delete a task (soft delete).
    Rm { id: String },
    /// List tasks.
    List {
        /// Include deleted tasks.
        #[arg(long)]
        all: bool,
    },
    /// Show the replica's sync state.
    Status,
    /// Connect, push pending changes, pull the server's, and exit.
    Sync,
    /// Stay connected and print every task change as it arrives (Ctrl-C to stop).
    Watch,
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Err(e) = run(Cli::parse()).await {
        eprintln!("syncline-desktop: error: {e:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let db = cli.db.as_path();
    match cli.command {
        Command::Register { email, password } => {
            let body =
                serde_json::json!({ "email": email, "password": password, "display_name": email });
            let s = session::call(&cli.server, "/auth/register", body).await?;
            session::save(db, &s)?;
            println!("registered {email}: user {} in org {}", s.user_id, s.org_id);
        }
        Command::Login { email, password } => {
            let body = serde_json::json!({ "email": email, "password": password });
            let s = session::call(&cli.server, "/auth/login", body).await?;
            session::save(db, &s)?;
            println!("signed in as {email} (org {})", s.org_id);
        }
        Command::Add {
            title,
            status,
            priority,
        } => {
            let id = tasks::add(&mut open(db)?, title, status, priority)?;
            println!("added {id}");
        }
        Command::Set { id, field, value } => {
            let mut client = open(db)?;
            let id = tasks::resolve(&client, &id)?;
            tasks::set(&mut client, id, &field, &value)?;
        }
        Command::Done { id } => {
            let mut client = open(db)?;
            let id = tasks::resolve(&client, &id)?;
            tasks::set(&mut client, id, "status", "done")?;
        }
        Command::Rm { id } => {
            let mut client = open(db)?;
            let id = tasks::resolve(&client, &id)?;
            client.delete_task(id)?;
        }
        Command::List { all } => {
            for task in tasks::list(&open(db)?, all)? {
                println!("{}", tasks::line(&task));
            }
        }
        Command::Status => {
            let client = open(db)?;
            println!("replica {} (client {})", db.display(), client.client_id());
            println!("pending changes: {}", client.pending_count());
            println!("tasks cursor: {:?}", client.cursor("tasks")?);
        }
        Command::Sync => {
            let native = connect(db).await?;
            native
                .wait_synced(Duration::from_secs(30))
                .await
                .map_err(|e| anyhow::anyhow!("{e:?}"))?;
            println!("in sync: {} pending", native.pending_count());
            native.stop().await;
        }
        Command::Watch => watch(db).await?,
    }
    Ok(())
}

fn open(db: &Path) -> anyhow::Result<Client> {
    Client::open(db).with_context(|| format!("opening replica {}", db.display()))
}

/// Refreshes the session and starts syncing the replica.
async fn connect(db: &Path) -> anyhow::Result<NativeClient> {
    let s = session::refresh(db, &session::load(db)?).await?;
    Ok(NativeClient::start(
        open(db)?,
        SyncConfig::new(session::sync_url(&s.server), s.access_token),
    ))
}

async fn watch(db: &Path) -> anyhow::Result<()> {
    let native = connect(db).await?;
    let mut events = native.events();
    native
        .wait_synced(Duration::from_secs(30))
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    println!("connected; watching tasks (Ctrl-C to stop)");
    for task in native.read(|c| tasks::list(c, false))? {
        println!("  {}", tasks::line(&task));
    }
    // Access tokens live 15 minutes by default: renew well before.
    let mut renew = tokio::time::interval(Duration::from_secs(600));
    renew.tick().await;
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(SyncEvent::DocumentChanged { doc_id, .. }) => {
                    if let Some(task) = native.get_task(doc_id)? {
                        println!("changed: {}", tasks::line(&task));
                    }
                }
                Ok(SyncEvent::Rejected { doc_id, code, message, .. }) => {
                    println!("rejected change to {doc_id}: {code}: {message}");
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            },
            _ = renew.tick() => {
                let s = session::refresh(db, &session::load(db)?).await?;
                native.set_token(s.access_token);
            }
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    native.stop().await;
    Ok(())
}

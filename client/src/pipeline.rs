//! Pipelines: many commands, one round trip per DataNode.

use crate::client::{target_of, Client};
use crate::error::{Error, Result};
use crate::routing::Target;
use crate::value::Value;

/// A batch of commands sent together: grouped per DataNode (by each command's first key),
/// written to every node at once, answered in the order the commands were added.
///
/// Commands to one node run in the order added; commands to different nodes run
/// concurrently. A command whose node moved it is retried after the others, within the retry
/// budget. Each command must keep its keys in one slot (multi-key commands across slots get
/// `CROSSSLOT`; use [`Client::mget`] and friends, which split them).
///
/// ```no_run
/// # async fn demo(client: chkv_client::Client) -> chkv_client::Result<()> {
/// let replies = client
///     .pipeline()
///     .set("a", "1")
///     .incr("counter")
///     .get("a")
///     .execute()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Pipeline {
    client: Client,
    commands: Vec<Vec<Vec<u8>>>,
}

impl Pipeline {
    pub(crate) fn new(client: Client) -> Pipeline {
        Pipeline {
            client,
            commands: Vec::new(),
        }
    }

    /// Adds any command.
    pub fn cmd<I, A>(&mut self, args: I) -> &mut Pipeline
    where
        I: IntoIterator<Item = A>,
        A: AsRef<[u8]>,
    {
        self.commands
            .push(args.into_iter().map(|a| a.as_ref().to_vec()).collect());
        self
    }

    /// Adds GET `key`.
    pub fn get(&mut self, key: impl AsRef<[u8]>) -> &mut Pipeline {
        self.cmd([&b"GET"[..], key.as_ref()])
    }

    /// Adds SET `key` `value`.
    pub fn set(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> &mut Pipeline {
        self.cmd([&b"SET"[..], key.as_ref(), value.as_ref()])
    }

    /// Adds DEL `key`.
    pub fn del(&mut self, key: impl AsRef<[u8]>) -> &mut Pipeline {
        self.cmd([&b"DEL"[..], key.as_ref()])
    }

    /// Adds INCR `key`.
    pub fn incr(&mut self, key: impl AsRef<[u8]>) -> &mut Pipeline {
        self.cmd([&b"INCR"[..], key.as_ref()])
    }

    /// Adds EXPIRE `key` `seconds`.
    pub fn expire(&mut self, key: impl AsRef<[u8]>, seconds: i64) -> &mut Pipeline {
        let n = seconds.to_string();
        self.cmd([&b"EXPIRE"[..], key.as_ref(), n.as_bytes()])
    }

    /// Commands added so far.
    pub fn len(&self) -> usize {
        self.commands.len()
    }

    pub fn is_empty(&self) -> bool {
        self.commands.is_empty()
    }

    /// Sends every command; each command's reply or error, in order.
    pub async fn execute_each(&self) -> Vec<Result<Value>> {
        let mut parts: Vec<(Target, Vec<&[u8]>)> = Vec::with_capacity(self.commands.len());
        let mut empty = Vec::new();
        for (i, command) in self.commands.iter().enumerate() {
            let args: Vec<&[u8]> = command.iter().map(Vec::as_slice).collect();
            if args.is_empty() {
                empty.push(i);
                continue;
            }
            parts.push((target_of(&args), args));
        }
        let mut replies = self.client.shared().run_many(&parts).await.into_iter();
        (0..self.commands.len())
            .map(|i| {
                if empty.contains(&i) {
                    Err(Error::Invalid("empty command".into()))
                } else {
                    replies
                        .next()
                        .unwrap_or_else(|| Err(Error::Invalid("command not sent".into())))
                }
            })
            .collect()
    }

    /// Sends every command; the replies in order, or the first command's error (every
    /// command is sent either way).
    pub async fn execute(&self) -> Result<Vec<Value>> {
        self.execute_each().await.into_iter().collect()
    }
}

impl Client {
    /// A new, empty pipeline on this client.
    pub fn pipeline(&self) -> Pipeline {
        Pipeline::new(self.clone())
    }
}

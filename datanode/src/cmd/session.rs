//! A connection's state that commands read and change: [`Session`], its reply mode and redirects.

use super::*;

/// Per-connection state that commands read and change.
pub struct Session {
    pub client: Arc<crate::client::ClientInfo>,
    pub proto: Protocol,
    pub authenticated: bool,
    /// Set by QUIT: the connection closes after this reply.
    pub quit: bool,
    /// How requests for other nodes' slots are handled on this connection.
    pub redirects: Redirects,
    /// The DataNode this connection proved to be (`CLUSTER PEERAUTH`): a peer session.
    pub peer: Option<Box<str>>,
    /// A `CLUSTER PEERHELLO` answered, waiting for `PEERAUTH`.
    pub peer_pending: Option<Box<crate::trust::PendingPeer>>,
    /// The connection came in on the TLS port (with `tls-cluster`, the only place peers
    /// are accepted).
    pub tls: bool,
    /// The batch a peer is handing over on this session (`CLUSTER IMPORT...` until its
    /// `HANDOFF`): whether that may flip.
    pub import: crate::handoff::Receiving,
    /// MULTI's queue and WATCH's keys.
    pub tx: multi::TxState,
    /// Set on the first subscription: where messages for this connection are queued.
    pub pubsub: Option<Arc<crate::pubsub::Subscriber>>,
    /// Set by a handler whose answer went to the outbox instead (SUBSCRIBE and friends).
    pub no_reply: bool,
    /// Set while an FCALL is planned again after asking the other nodes for their libraries
    /// ([`crate::exec`]'s `Pending::Pull`): a function still unknown is then not found.
    pub functions_pulled: bool,
    /// CLIENT REPLY: whether replies are sent.
    pub reply_mode: ReplyMode,
    /// The ACL user this connection runs as.
    pub user: Bytes,
    /// The user's rules when they restrict anything (`None`: everything is allowed, the
    /// fast path), as of ACL generation `acl_generation`.
    pub perms: Option<Arc<crate::acl::User>>,
    pub acl_generation: u64,
    /// A peer session running a request for a client of another node as that client's
    /// user (`CLUSTER ASUSER`): its permissions are checked here as on a client session.
    pub as_user: bool,
    /// Work a handler left to finish off the connection's thread of control (MIGRATE's
    /// round trips to another server): the connection awaits it and sends its reply in
    /// place of the handler's.
    pub deferred: Option<Deferred>,
    /// Set by a script whose error reply repeats an error already counted (INFO
    /// errorstats counts it once); consumed by the reply's count.
    pub error_counted: bool,
    /// Set while a Lua script's `redis.call` runs a command (SORT orders a set's output
    /// then, as Redis does for scripts).
    pub in_script: bool,
    /// Set when the last command was refused for want of an ownership lease (nothing was
    /// done): the caller may wait for one and run it again (see [`crate::lease`]).
    pub fenced: bool,
    /// Set when the last command ran but the lease ran out meanwhile: its reply and the
    /// lease's reset count before it ran, for the connection to send once a renewal proves
    /// the reply stands (see [`crate::lease::LOST_WAIT`]).
    pub lease_lost: Option<(Frame, u64)>,
    /// Set by a blocking command that found nothing to serve it: the connection awaits it
    /// (see [`crate::blocking`]).
    pub blocked: Option<crate::blocking::Blocked>,
    /// CLIENT TRACKING's mode while it is on (see [`crate::tracking`]).
    pub tracking: Option<Arc<crate::client::Tracker>>,
    /// CLIENT CACHING YES/NO, for the next command.
    pub track_caching: bool,
    /// A script of a tracking client called a read-only command.
    pub track_script_read: bool,
}

/// CLIENT REPLY's modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ReplyMode {
    #[default]
    On,
    Off,
    /// The next command's reply is dropped.
    Skip,
}

/// An asynchronous rest of a command, given the node; it yields the command's reply.
pub type Deferred = Box<
    dyn FnOnce(Arc<Node>) -> std::pin::Pin<Box<dyn std::future::Future<Output = Frame> + Send>>
        + Send,
>;

/// What a connection gets for keys this node does not own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Redirects {
    /// Plain clients: the node forwards (and splits multi-key commands) for them.
    #[default]
    Forward,
    /// Cluster-aware clients: `-MOVED` and `-CROSSSLOT`, exactly like Redis Cluster.
    Redirect,
    /// Another DataNode forwarding to us: run if every key is local, else `-MOVED`, so
    /// forwarding never takes more than one hop.
    Internal,
}

impl Session {
    pub fn new(client: Arc<crate::client::ClientInfo>, authenticated: bool) -> Session {
        Session {
            client,
            proto: Protocol::Resp2,
            authenticated,
            quit: false,
            redirects: Redirects::Forward,
            peer: None,
            peer_pending: None,
            tls: false,
            import: Default::default(),
            tx: multi::TxState::default(),
            pubsub: None,
            no_reply: false,
            functions_pulled: false,
            reply_mode: ReplyMode::On,
            user: Bytes::from_static(b"default"),
            perms: None,
            // Refreshed before the first command.
            acl_generation: u64::MAX,
            as_user: false,
            deferred: None,
            in_script: false,
            error_counted: false,
            fenced: false,
            lease_lost: None,
            blocked: None,
            tracking: None,
            track_caching: false,
            track_script_read: false,
        }
    }

    /// Whether requests are checked against this session's user: a client's, or a peer's
    /// running a request as a client's user. Other peer sessions run what they are sent
    /// (the node a request was forwarded from checked it).
    #[inline]
    pub fn checked(&self) -> bool {
        self.peer.is_none() || self.as_user
    }

    /// Runs as `name` (a peer session, for [`crate::exec`]'s `CLUSTER ASUSER`): returns
    /// what [`Session::leave_user`] puts back.
    pub fn enter_user(
        &mut self,
        name: Bytes,
        user: Arc<crate::acl::User>,
        generation: u64,
    ) -> UserState {
        UserState {
            user: std::mem::replace(&mut self.user, name),
            perms: std::mem::replace(&mut self.perms, (!user.unrestricted()).then_some(user)),
            acl_generation: std::mem::replace(&mut self.acl_generation, generation),
            as_user: std::mem::replace(&mut self.as_user, true),
            quit: self.quit,
        }
    }

    /// Back to the identity [`Session::enter_user`] saved (a deleted user ends the request,
    /// not the peer connection).
    pub fn leave_user(&mut self, saved: UserState) {
        self.user = saved.user;
        self.perms = saved.perms;
        self.acl_generation = saved.acl_generation;
        self.as_user = saved.as_user;
        self.quit = saved.quit;
    }

    /// Whether the reply of the command that just ran is withheld (it went to the outbox, or
    /// CLIENT REPLY OFF/SKIP); consumes a SKIP.
    pub fn withhold_reply(&mut self) -> bool {
        if std::mem::take(&mut self.no_reply) {
            return true;
        }
        match self.reply_mode {
            ReplyMode::On => false,
            ReplyMode::Off => true,
            ReplyMode::Skip => {
                self.reply_mode = ReplyMode::On;
                true
            }
        }
    }

    /// The connection's subscriber, created on first use.
    pub fn subscriber(&mut self) -> Arc<crate::pubsub::Subscriber> {
        let (client, proto) = (&self.client, self.proto);
        self.pubsub
            .get_or_insert_with(|| {
                client
                    .subscriber
                    .get_or_init(|| Arc::new(crate::pubsub::Subscriber::new(client.id, proto)))
                    .clone()
            })
            .clone()
    }

    /// Whether this is a RESP2 connection in Redis's subscribed mode.
    pub fn subscribed_resp2(&self) -> bool {
        self.proto == Protocol::Resp2 && self.pubsub.as_ref().is_some_and(|s| s.active())
    }
}

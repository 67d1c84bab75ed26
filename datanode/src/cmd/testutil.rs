use super::*;
use crate::config::Config;

pub const NOW: u64 = 1_700_000_000_000;

/// A node and a session for driving commands directly.
pub struct Harness {
    pub node: Node,
    pub session: Session,
    pub now: u64,
}

impl Harness {
    pub fn new() -> Harness {
        Harness::with_config(Config::default())
    }

    pub fn with_config(config: Config) -> Harness {
        let node = Node::new(config);
        let addr = "127.0.0.1:1".parse().expect("addr");
        let client = node.register_client(addr, addr);
        let authed = node.default_user_open();
        Harness {
            node,
            session: Session::new(client, authed),
            now: NOW,
        }
    }

    pub fn run(&mut self, args: &[&str]) -> Frame {
        let args: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
        self.run_bytes(&args)
    }

    /// [`Harness::run`] with binary arguments.
    pub fn run_bytes(&mut self, args: &[&[u8]]) -> Frame {
        let req = Request::from_args(args.iter().copied());
        let tracking = self.session.tracking.is_some() || self.node.tracking.batching();
        if tracking {
            crate::tracking::begin(self.session.client.id);
        }
        let mut ctx = Ctx {
            node: &self.node,
            session: &mut self.session,
            now: self.now,
        };
        let reply = dispatch(&mut ctx, &req);
        // As the connection does after each request.
        super::blocking::serve_ready(&self.node);
        if let Some(b) = crate::tracking::end().filter(|_| tracking) {
            self.node.tracking.flush(b);
        }
        // Tests look inside replies: a pre-encoded one is decoded as a script would see it.
        reply.decoded(self.session.proto)
    }

    /// What was pushed to `session`'s connection (RESP3 or RESP2 bytes), taken.
    pub fn pushed(session: &Session) -> String {
        let mut out = bytes::BytesMut::new();
        if let Some(s) = &session.pubsub {
            let _ = s.drain(&mut out);
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// A second connection's session.
    pub fn other_session(&self) -> Session {
        let addr = "127.0.0.1:2".parse().expect("addr");
        Session::new(self.node.register_client(addr, addr), true)
    }

    /// Runs a command on another connection's session.
    pub fn run_as(&mut self, session: &mut Session, args: &[&str]) -> Frame {
        let req = Request::from_args(args.iter().map(|s| s.as_bytes()));
        let tracking = session.tracking.is_some() || self.node.tracking.batching();
        if tracking {
            crate::tracking::begin(session.client.id);
        }
        let mut ctx = Ctx {
            node: &self.node,
            session,
            now: self.now,
        };
        let reply = dispatch(&mut ctx, &req);
        super::blocking::serve_ready(&self.node);
        if let Some(b) = crate::tracking::end().filter(|_| tracking) {
            self.node.tracking.flush(b);
        }
        reply
    }
}

pub fn bulk(s: &str) -> Frame {
    Frame::bulk(s)
}

pub fn int(i: i64) -> Frame {
    Frame::Integer(i)
}

pub fn err(s: &str) -> Frame {
    Frame::error(s.to_string())
}

/// Runs `args` on `session`, which must block; returns its wait.
pub fn block_on(h: &mut Harness, session: &mut Session, args: &[&str]) -> crate::blocking::Blocked {
    h.run_as(session, args);
    session.blocked.take().expect("the command blocked")
}

/// The reply of a wait that has ended (or ends by itself).
pub async fn reply(mut b: crate::blocking::Blocked) -> Frame {
    match b.wait().await {
        crate::blocking::Wake::Reply(f) => f,
        crate::blocking::Wake::Moved => panic!("moved"),
    }
}

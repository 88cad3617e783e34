//! The server loop: `receive -> handle -> reply`, with the reply and the next receive made as one
//! system call (the message boundary). Between two messages nothing lives on the stack: the
//! server's state is in its state arena (see [`crate::state`]), and the loop carries only the
//! message just received. A fault the kernel planned for a message is taken here, in the
//! server's own code ([`crate::inject::planned`]): first, or, an after-send fault
//! (`abi::fault::AFTER_SEND`), after the handler and before the reply, and only if the handler
//! sent a message (`send` or `call`: [`crate::ipc::sends`]).

use crate::ipc::{self, Received};
use abi::ipc::Message;
use abi::ipc::TaskId;

/// A server's message handler.
pub trait Server {
    /// Handles a request from `sender`; returns the reply, or `None` for no reply.
    fn handle(&mut self, sender: TaskId, msg: &Message) -> Option<Message>;

    /// Handles notification `bits` (timers, peers); nothing by default.
    fn notified(&mut self, bits: u64) {
        let _ = bits;
    }
}

/// Runs `server` forever.
pub fn serve<S: Server>(server: &mut S) -> ! {
    let mut incoming = ipc::recv();
    loop {
        incoming = step(server, &incoming);
    }
}

fn step<S: Server>(server: &mut S, incoming: &Received) -> Received {
    let (fault, after_send) = abi::fault::split(incoming.fault);
    if !after_send {
        crate::inject::planned(fault);
    }
    let sends = ipc::sends();
    let reply = match incoming.notification() {
        Some(bits) => {
            server.notified(bits);
            None
        }
        None => server.handle(incoming.sender, &incoming.msg),
    };
    if after_send && ipc::sends() != sends {
        crate::inject::planned(fault);
    }
    match reply {
        Some(reply) => ipc::reply_recv(incoming.sender, &reply),
        None => ipc::recv(),
    }
}

/// Runs a server whose state lives in `cell` (in its state arena): takes the state, prints
/// `<name>: ready` (not after a restart), then serves forever, replying with whatever `handle`
/// returns. A restart after a crash enters here again, with the state as it was at the last
/// boundary, and goes straight back to receiving.
pub fn run<S: zerocopy::FromZeros + Send + 'static>(
    cell: &'static crate::state::StaticCell<S>,
    name: &[u8],
    handle: impl FnMut(&mut S, TaskId, &Message) -> Option<Message>,
) -> ! {
    run_with(cell, name, |_| {}, handle)
}

/// [`run`], calling `init` on the state first, at every start and restart, before the first
/// receive: what it does (e.g. looking a peer up) belongs to the state as of the first
/// boundary, and a restarted server finds it done in a restored state (a fresh restart's state
/// is the boot image again).
pub fn run_with<S: zerocopy::FromZeros + Send + 'static>(
    cell: &'static crate::state::StaticCell<S>,
    name: &[u8],
    init: impl FnOnce(&mut S),
    handle: impl FnMut(&mut S, TaskId, &Message) -> Option<Message>,
) -> ! {
    let Some(state) = cell.take() else {
        crate::ipc::panic(b"server state taken twice")
    };
    init(state);
    if !crate::start::restarted() {
        let mut line = crate::console::Line::new();
        line.push(name).push(b": ready");
        line.print();
    }
    serve(&mut Handler { state, handle })
}

struct Handler<S: 'static, F> {
    state: &'static mut S,
    handle: F,
}

impl<S, F: FnMut(&mut S, TaskId, &Message) -> Option<Message>> Server for Handler<S, F> {
    fn handle(&mut self, sender: TaskId, msg: &Message) -> Option<Message> {
        (self.handle)(self.state, sender, msg)
    }
}

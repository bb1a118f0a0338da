//! How the ranks of a job meet: through a file (one machine, or a shared file system: the
//! run folder's `rendezvous`) or through rank 0's TCP socket at `host:port` (nodes that share
//! nothing, as SLURM and torchrun jobs give them `MASTER_ADDR` and `MASTER_PORT`).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{MASTER_VAR, RENDEZVOUS_VAR};
use crate::error::{Error, Result};

/// How long a rank waits for rank 0 to set the group up.
const TIMEOUT: Duration = Duration::from_secs(600);

/// Where the ranks meet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rendezvous {
    /// Rank 0 writes what the others need into this file (atomically).
    File(PathBuf),
    /// Rank 0 listens on this `host:port`; the others connect to it.
    Socket(String),
}

impl Rendezvous {
    /// The rendezvous `experiment launch` gave this process: `SLICER_MASTER` (`host:port`)
    /// when set, else `SLICER_RENDEZVOUS_FILE`.
    pub fn from_env() -> Result<Self> {
        if let Ok(master) = std::env::var(MASTER_VAR) {
            return Ok(Rendezvous::Socket(master));
        }
        std::env::var(RENDEZVOUS_VAR)
            .map(|f| Rendezvous::File(PathBuf::from(f)))
            .map_err(|_| {
                Error::Invalid(format!(
                    "neither {MASTER_VAR} nor {RENDEZVOUS_VAR} is set; start ranks with `experiment launch`"
                ))
            })
    }

    /// TCP links between the ranks: rank 0 gets one stream per other rank, in rank order;
    /// every other rank gets its stream to rank 0.
    pub fn links(&self, rank: usize, world: usize) -> Result<Vec<TcpStream>> {
        if rank == 0 {
            let listener = match self {
                Rendezvous::File(file) => {
                    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                        .map_err(|e| Error::io(file, e))?;
                    let port = listener
                        .local_addr()
                        .map_err(|e| Error::io(file, e))?
                        .port();
                    crate::atomic::write(file, port.to_string().as_bytes())?;
                    listener
                }
                Rendezvous::Socket(addr) => self.listen(addr)?,
            };
            let links = accept_ranks(&listener, world, self.name())?;
            if let Rendezvous::File(file) = self {
                // Everyone has joined: the file has served its purpose.
                let _ = std::fs::remove_file(file);
            }
            Ok(links)
        } else {
            let addr = match self {
                Rendezvous::File(file) => {
                    let port = wait_for_file(file, rank, |bytes| {
                        std::str::from_utf8(bytes).ok()?.parse::<u16>().ok()
                    })?;
                    format!("127.0.0.1:{port}")
                }
                Rendezvous::Socket(addr) => addr.clone(),
            };
            let mut stream = connect(&addr, rank)?;
            stream
                .write_all(&(rank as u64).to_le_bytes())
                .map_err(|e| Error::io(self.name(), e))?;
            Ok(vec![stream])
        }
    }

    /// `bytes` (made by rank 0 with `make`) on every rank: written to the file, or sent over
    /// the socket to each rank as it connects. `valid` says whether bytes read back are
    /// complete. Rank 0 removes the file with [`Rendezvous::done`] once every rank has joined.
    pub fn share(
        &self,
        rank: usize,
        world: usize,
        make: impl FnOnce() -> Result<Vec<u8>>,
        valid: impl Fn(&[u8]) -> bool,
    ) -> Result<Vec<u8>> {
        match (self, rank) {
            (Rendezvous::File(file), 0) => {
                let bytes = make()?;
                crate::atomic::write(file, &bytes)?;
                Ok(bytes)
            }
            (Rendezvous::File(file), _) => {
                wait_for_file(file, rank, |b| valid(b).then(|| b.to_vec()))
            }
            (Rendezvous::Socket(addr), 0) => {
                let bytes = make()?;
                let listener = self.listen(addr)?;
                for mut link in accept_ranks(&listener, world, self.name())? {
                    link.write_all(&(bytes.len() as u64).to_le_bytes())
                        .and_then(|()| link.write_all(&bytes))
                        .map_err(|e| Error::io(self.name(), e))?;
                }
                Ok(bytes)
            }
            (Rendezvous::Socket(addr), _) => {
                let mut stream = connect(addr, rank)?;
                let io = |e| Error::io(self.name(), e);
                stream.write_all(&(rank as u64).to_le_bytes()).map_err(io)?;
                let mut len = [0u8; 8];
                stream.read_exact(&mut len).map_err(io)?;
                let mut bytes = vec![0u8; u64::from_le_bytes(len) as usize];
                stream.read_exact(&mut bytes).map_err(io)?;
                if !valid(&bytes) {
                    return Err(Error::Invalid(format!(
                        "rank {rank}: rank 0 sent an incomplete rendezvous through {addr}"
                    )));
                }
                Ok(bytes)
            }
        }
    }

    /// Rank 0, once the group is complete: removes the rendezvous file (if any).
    pub fn done(&self) {
        if let Rendezvous::File(file) = self {
            let _ = std::fs::remove_file(file);
        }
    }

    /// What errors name: the file, or the socket address.
    fn name(&self) -> &Path {
        match self {
            Rendezvous::File(file) => file,
            Rendezvous::Socket(addr) => Path::new(addr.as_str()),
        }
    }

    /// Rank 0's listener on the port of `addr`, on every interface (the others may be on
    /// other nodes).
    fn listen(&self, addr: &str) -> Result<TcpListener> {
        let port = addr
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse::<u16>().ok())
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "{MASTER_VAR}={addr}: expected host:port (MASTER_ADDR and MASTER_PORT)"
                ))
            })?;
        TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).map_err(|e| Error::io(self.name(), e))
    }
}

/// Accepts the `world - 1` other ranks, each saying its rank first; the streams in rank order.
fn accept_ranks(listener: &TcpListener, world: usize, name: &Path) -> Result<Vec<TcpStream>> {
    let io = |e| Error::io(name, e);
    let mut by_rank: Vec<Option<TcpStream>> = (1..world).map(|_| None).collect();
    for _ in 1..world {
        let (mut stream, _) = listener.accept().map_err(io)?;
        let mut said = [0u8; 8];
        stream.read_exact(&mut said).map_err(io)?;
        let other = u64::from_le_bytes(said) as usize;
        match by_rank.get_mut(other.wrapping_sub(1)) {
            Some(slot @ None) => *slot = Some(stream),
            _ => {
                return Err(Error::Invalid(format!(
                    "rank 0: a process joined as rank {other} of {world}, which is taken or out of range"
                )))
            }
        }
    }
    Ok(by_rank.into_iter().flatten().collect())
}

/// A connection to rank 0 at `addr`, retried until rank 0 listens (up to 10 minutes).
fn connect(addr: &str, rank: usize) -> Result<TcpStream> {
    let start = Instant::now();
    loop {
        match TcpStream::connect(addr) {
            Ok(stream) => return Ok(stream),
            Err(e) if start.elapsed() > TIMEOUT => {
                return Err(Error::io(
                    addr,
                    std::io::Error::new(
                        e.kind(),
                        format!("rank {rank}: rank 0 did not listen within 10 minutes: {e}"),
                    ),
                ))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// The contents of the rendezvous file once rank 0 has written it (atomically) and `ready`
/// accepts them; waits up to 10 minutes.
fn wait_for_file<T>(file: &Path, rank: usize, ready: impl Fn(&[u8]) -> Option<T>) -> Result<T> {
    let start = Instant::now();
    loop {
        if let Some(found) = std::fs::read(file).ok().and_then(|b| ready(&b)) {
            return Ok(found);
        }
        if start.elapsed() > TIMEOUT {
            return Err(Error::Invalid(format!(
                "rank {rank}: rank 0 did not set the group up in {} in 10 minutes; did it fail?",
                file.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

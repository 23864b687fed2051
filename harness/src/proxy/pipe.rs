//! Zero-copy forwarding for streams with no toxic in effect: `splice(2)` moves bytes from one
//! socket into a pipe and from the pipe into the other socket without copying them through user
//! space. On two cores this is what lets a proxied stream keep most of loopback's throughput:
//! a user-space copy doubles the bytes the CPUs must move.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use tokio::io::Interest;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// Pipe capacity asked for (the kernel default is 64 KiB; 1 MiB is the usual unprivileged max).
const PIPE_SIZE: i32 = 1 << 20;

/// A non-blocking pipe and how many bytes it holds.
pub(crate) struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    /// Bytes in the pipe, not yet passed on.
    held: usize,
    capacity: usize,
}

impl Pipe {
    /// A new pipe; fails when the process is out of file descriptors.
    pub fn new() -> io::Result<Pipe> {
        let mut fds = [0 as RawFd; 2];
        // SAFETY: pipe2 writes two fds into the array we own.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: both fds were just created and are owned by nobody else.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: fcntl on a pipe fd we own; failure just leaves the default size.
        let size = unsafe { libc::fcntl(write.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_SIZE) };
        let capacity = if size > 0 { size as usize } else { 64 * 1024 };
        Ok(Pipe {
            read,
            write,
            held: 0,
            capacity,
        })
    }

    /// One step: takes bytes from `src` while the pipe has room and passes held bytes on to
    /// `dst`, whichever is ready first, so reading and writing overlap. Returns the bytes
    /// moved; `Ok(0)` means `src` reached EOF (held bytes still need a [`Pipe::flush`]).
    pub async fn step(&mut self, src: &OwnedReadHalf, dst: &OwnedWriteHalf) -> io::Result<usize> {
        let (src_fd, dst_fd) = (src.as_ref().as_raw_fd(), dst.as_ref().as_raw_fd());
        let (pipe_r, pipe_w) = (self.read.as_raw_fd(), self.write.as_raw_fd());
        let room = self.capacity - self.held;
        let held = self.held;
        tokio::select! {
            n = src.as_ref().async_io(Interest::READABLE, || splice(src_fd, pipe_w, room)), if room > 0 => {
                let n = n?;
                self.held += n;
                Ok(n)
            }
            n = dst.as_ref().async_io(Interest::WRITABLE, || splice(pipe_r, dst_fd, held)), if held > 0 => {
                let n = n?;
                if n == 0 {
                    return Err(io::ErrorKind::WriteZero.into());
                }
                self.held -= n;
                Ok(n.max(1))
            }
        }
    }

    /// Passes every held byte on to `dst`.
    pub async fn flush(&mut self, dst: &OwnedWriteHalf) -> io::Result<()> {
        while self.held > 0 {
            self.flush_some(dst).await?;
        }
        Ok(())
    }

    async fn flush_some(&mut self, dst: &OwnedWriteHalf) -> io::Result<usize> {
        let (from, to, len) = (self.read.as_raw_fd(), dst.as_ref().as_raw_fd(), self.held);
        let n = dst
            .as_ref()
            .async_io(Interest::WRITABLE, || splice(from, to, len))
            .await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        self.held -= n;
        Ok(n)
    }
}

fn splice(from: RawFd, to: RawFd, len: usize) -> io::Result<usize> {
    // SAFETY: splice between fds that stay open for the call; null offsets (streams).
    let n = unsafe {
        libc::splice(
            from,
            std::ptr::null_mut(),
            to,
            std::ptr::null_mut(),
            len,
            libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

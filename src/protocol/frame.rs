//! Length-prefixed frames: a 4-byte big-endian size, then that many bytes.
//!
//! The size is checked against `socket_request_max_bytes` before any buffer is reserved, and the
//! buffer then grows only as bytes actually arrive, so a peer that claims a large frame and sends
//! nothing costs nothing. Before the body is read, its size is taken from the broker's request
//! memory budget, so a reader waits (and stops reading its socket) while the budget is spent;
//! and a frame that has begun to arrive must arrive within a deadline.

use bytes::{Bytes, BytesMut};
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Most bytes reserved at once while a frame arrives.
const READ_CHUNK: usize = 256 * 1024;

#[derive(Debug, Error)]
pub enum FrameError {
    #[error("frame size {size} is negative")]
    Negative { size: i32 },
    #[error("frame size {size} exceeds socket_request_max_bytes {max}")]
    TooLarge { size: i32, max: usize },
    #[error("frame size {size} is too small to hold a request header")]
    TooSmall { size: i32 },
    #[error("connection closed in the middle of a frame ({got} of {size} bytes)")]
    Truncated { got: usize, size: usize },
    #[error("request not received within request_read_timeout_ms ({got} of {size} bytes)")]
    TimedOut { got: usize, size: usize },
    #[error("socket error: {0}")]
    Io(#[from] std::io::Error),
}

/// Smallest request: api key, api version, correlation id, client id length.
pub const MIN_REQUEST: usize = 10;

/// What bounds the reading of one frame.
#[derive(Clone)]
pub struct FrameLimits {
    /// Largest frame (`socket_request_max_bytes`).
    pub max_bytes: usize,
    /// Smallest frame: a request header ([`MIN_REQUEST`]), or 0 for bare SASL tokens.
    pub min_bytes: usize,
    /// Time for the size prefix to arrive once reading starts, and again for the body once its
    /// memory is granted (`request_read_timeout_ms`).
    pub read_timeout: Duration,
    /// Request bytes in memory across all connections (`queued_max_request_bytes`): a frame's
    /// size is taken from it before the body is read and given back when the frame is dropped.
    /// `None`: no bound.
    pub memory: Option<Arc<Semaphore>>,
}

/// One request frame and its share of the memory budget, held until the frame is dropped.
pub struct Frame {
    pub bytes: Bytes,
    pub memory: Option<OwnedSemaphorePermit>,
}

/// Reads one frame. `Ok(None)` on a clean end of stream between frames.
///
/// `buf` is the connection's read buffer, empty between calls: frames are split off it, and once
/// a frame is dropped its allocation is reused for later frames instead of fresh pages.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut BytesMut,
    limits: &FrameLimits,
) -> Result<Option<Frame>, FrameError> {
    let mut size_bytes = [0u8; 4];
    match tokio::time::timeout(limits.read_timeout, reader.read_exact(&mut size_bytes)).await {
        Err(_) => return Err(FrameError::TimedOut { got: 0, size: 4 }),
        Ok(Ok(_)) => {}
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Ok(Err(e)) => return Err(e.into()),
    }
    let size = i32::from_be_bytes(size_bytes);
    if size < 0 {
        return Err(FrameError::Negative { size });
    }
    if size as usize > limits.max_bytes {
        return Err(FrameError::TooLarge {
            size,
            max: limits.max_bytes,
        });
    }
    if (size as usize) < limits.min_bytes {
        return Err(FrameError::TooSmall { size });
    }
    let size = size as usize;
    let memory = match &limits.memory {
        Some(budget) => Some(
            budget
                .clone()
                .acquire_many_owned(size as u32)
                .await
                .expect("the request memory budget is never closed"),
        ),
        None => None,
    };
    debug_assert!(buf.is_empty());
    let body = async {
        // Within a budget the whole frame is granted, so it is reserved at once (pages are
        // touched only as bytes arrive) and never copied by growth; without one the buffer grows
        // with what arrives.
        buf.reserve(if memory.is_some() {
            size
        } else {
            size.min(READ_CHUNK)
        });
        while buf.len() < size {
            if buf.capacity() == buf.len() {
                buf.reserve((size - buf.len()).min(READ_CHUNK));
            }
            let want = (size - buf.len()) as u64;
            let n = reader.take(want).read_buf(buf).await?;
            if n == 0 {
                return Err(FrameError::Truncated {
                    got: buf.len(),
                    size,
                });
            }
        }
        Ok(())
    };
    match tokio::time::timeout(limits.read_timeout, body).await {
        Ok(result) => result?,
        Err(_) => {
            let got = buf.len();
            buf.clear();
            return Err(FrameError::TimedOut { got, size });
        }
    }
    Ok(Some(Frame {
        bytes: buf.split_to(size).freeze(),
        memory,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> FrameLimits {
        FrameLimits {
            max_bytes: 1024,
            min_bytes: MIN_REQUEST,
            read_timeout: Duration::from_secs(5),
            memory: None,
        }
    }

    #[tokio::test]
    async fn bounds_are_checked_before_reading_the_body() {
        let mut input: &[u8] = &[0x7f, 0xff, 0xff, 0xff];
        assert!(matches!(
            read_frame(&mut input, &mut BytesMut::new(), &limits()).await,
            Err(FrameError::TooLarge { .. })
        ));
        let mut input: &[u8] = &[0xff, 0xff, 0xff, 0xfe];
        assert!(matches!(
            read_frame(&mut input, &mut BytesMut::new(), &limits()).await,
            Err(FrameError::Negative { .. })
        ));
        let mut input: &[u8] = &[0, 0, 0, 2, 1, 2];
        assert!(matches!(
            read_frame(&mut input, &mut BytesMut::new(), &limits()).await,
            Err(FrameError::TooSmall { .. })
        ));
    }

    #[tokio::test]
    async fn truncated_and_whole_frames() {
        let mut input: &[u8] = &[0, 0, 0, 20, 1, 2, 3];
        assert!(matches!(
            read_frame(&mut input, &mut BytesMut::new(), &limits()).await,
            Err(FrameError::Truncated { got: 3, size: 20 })
        ));
        let mut frame = vec![0, 0, 0, 12];
        frame.extend(1..=12u8);
        frame.extend([0, 0]);
        let mut input: &[u8] = &frame;
        let got = read_frame(&mut input, &mut BytesMut::new(), &limits())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.bytes.len(), 12);
        assert!(
            read_frame(&mut input, &mut BytesMut::new(), &limits())
                .await
                .unwrap()
                .is_none(),
            "a torn size prefix ends the stream"
        );
        let mut empty: &[u8] = &[];
        assert!(read_frame(&mut empty, &mut BytesMut::new(), &limits())
            .await
            .unwrap()
            .is_none());
    }

    #[tokio::test]
    async fn the_memory_budget_is_held_while_a_frame_lives() {
        let budget = Arc::new(Semaphore::new(30));
        let limits = FrameLimits {
            memory: Some(budget.clone()),
            ..limits()
        };
        let mut frame = vec![0, 0, 0, 20];
        frame.extend([7u8; 20]);
        let mut input: &[u8] = &frame;
        let got = read_frame(&mut input, &mut BytesMut::new(), &limits)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(budget.available_permits(), 10);
        let mut second: &[u8] = &frame;
        let mut buf = BytesMut::new();
        let waiting = read_frame(&mut second, &mut buf, &limits);
        tokio::pin!(waiting);
        tokio::select! {
            biased;
            _ = &mut waiting => panic!("a frame that does not fit must wait for memory"),
            _ = tokio::task::yield_now() => {}
        }
        drop(got);
        assert_eq!(waiting.await.unwrap().unwrap().bytes.len(), 20);
        assert_eq!(budget.available_permits(), 30);
    }

    #[tokio::test]
    async fn a_trickling_frame_times_out() {
        let limits = || FrameLimits {
            read_timeout: Duration::from_millis(50),
            ..limits()
        };
        let (mut client, mut server) = tokio::io::duplex(64);
        use tokio::io::AsyncWriteExt;
        client.write_all(&[0, 0, 0, 20, 1, 2]).await.unwrap();
        let err = read_frame(&mut server, &mut BytesMut::new(), &limits())
            .await
            .err()
            .unwrap();
        assert!(
            matches!(err, FrameError::TimedOut { got: 2, size: 20 }),
            "{err}"
        );
        client.write_all(&[0, 0]).await.unwrap();
        let err = read_frame(&mut server, &mut BytesMut::new(), &limits())
            .await
            .err()
            .unwrap();
        assert!(
            matches!(err, FrameError::TimedOut { got: 0, size: 4 }),
            "{err}"
        );
    }
}

//! Length-prefixed frames: a 4-byte big-endian size, then that many bytes.
//!
//! The size is checked against `socket_request_max_bytes` before any buffer is reserved, and the
//! buffer then grows only as bytes actually arrive, so a peer that claims a large frame and sends
//! nothing costs nothing.

use bytes::{Bytes, BytesMut};
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt};

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
    #[error("socket error: {0}")]
    Io(#[from] std::io::Error),
}

/// Smallest request: api key, api version, correlation id, client id length.
const MIN_REQUEST: i32 = 10;

/// Reads one frame. `Ok(None)` on a clean end of stream between frames.
///
/// `buf` is the connection's read buffer, empty between calls: frames are split off it, and once
/// a frame is dropped its allocation is reused for later frames instead of fresh pages.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut BytesMut,
    max: usize,
) -> Result<Option<Bytes>, FrameError> {
    let mut size_bytes = [0u8; 4];
    match reader.read_exact(&mut size_bytes).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let size = i32::from_be_bytes(size_bytes);
    if size < 0 {
        return Err(FrameError::Negative { size });
    }
    if size as usize > max {
        return Err(FrameError::TooLarge { size, max });
    }
    if size < MIN_REQUEST {
        return Err(FrameError::TooSmall { size });
    }
    let size = size as usize;
    debug_assert!(buf.is_empty());
    buf.reserve(size.min(READ_CHUNK));
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
    Ok(Some(buf.split_to(size).freeze()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bounds_are_checked_before_reading_the_body() {
        let mut input: &[u8] = &[0x7f, 0xff, 0xff, 0xff];
        assert!(matches!(
            read_frame(&mut input, &mut BytesMut::new(), 1024).await,
            Err(FrameError::TooLarge { .. })
        ));
        let mut input: &[u8] = &[0xff, 0xff, 0xff, 0xfe];
        assert!(matches!(
            read_frame(&mut input, &mut BytesMut::new(), 1024).await,
            Err(FrameError::Negative { .. })
        ));
        let mut input: &[u8] = &[0, 0, 0, 2, 1, 2];
        assert!(matches!(
            read_frame(&mut input, &mut BytesMut::new(), 1024).await,
            Err(FrameError::TooSmall { .. })
        ));
    }

    #[tokio::test]
    async fn truncated_and_whole_frames() {
        let mut input: &[u8] = &[0, 0, 0, 20, 1, 2, 3];
        assert!(matches!(
            read_frame(&mut input, &mut BytesMut::new(), 1024).await,
            Err(FrameError::Truncated { got: 3, size: 20 })
        ));
        let mut frame = vec![0, 0, 0, 12];
        frame.extend(1..=12u8);
        frame.extend([0, 0]);
        let mut input: &[u8] = &frame;
        let got = read_frame(&mut input, &mut BytesMut::new(), 1024)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.len(), 12);
        assert!(
            read_frame(&mut input, &mut BytesMut::new(), 1024)
                .await
                .unwrap()
                .is_none(),
            "a torn size prefix ends the stream"
        );
        let mut empty: &[u8] = &[];
        assert!(read_frame(&mut empty, &mut BytesMut::new(), 1024)
            .await
            .unwrap()
            .is_none());
    }
}

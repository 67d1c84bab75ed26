//! Bounded line reading for the control plane's newline-delimited messages.
//!
//! Every reader of a control connection (the NameNode's ports, the DataNode's link to the
//! NameNode, the authentication handshake) goes through [`read_line`], so no peer can make a
//! process buffer more than the limit its caller chose, however long it talks without a
//! newline.

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// Reads one `\n`-terminated line (terminator included) into `buf`, refusing lines longer
/// than `max`. `Ok(false)` at end of stream; a last line without `\n` still counts as a line.
/// A line over the limit is an `InvalidData` error and nothing more is buffered for it.
pub async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<bool> {
    buf.clear();
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(!buf.is_empty());
        }
        let (take, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (available.len(), false),
        };
        if buf.len().saturating_add(take) > max {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("line longer than {max} bytes"),
            ));
        }
        buf.extend_from_slice(&available[..take]);
        reader.consume(take);
        if done {
            return Ok(true);
        }
    }
}

/// A bounded line reader that is safe to use in `tokio::select!`: a read cancelled half-way
/// through a line keeps what it had, and the next call continues the same line.
pub struct LineReader<R> {
    inner: R,
    buf: Vec<u8>,
    /// `buf` holds a line already returned; cleared at the next call.
    returned: bool,
    max: usize,
}

impl<R: AsyncBufRead + Unpin> LineReader<R> {
    /// Reads lines of at most `max` bytes from `inner`.
    pub fn new(inner: R, max: usize) -> LineReader<R> {
        LineReader {
            inner,
            buf: Vec::new(),
            returned: false,
            max,
        }
    }

    /// The next line, terminator included; `None` at end of stream. A line over the limit is
    /// an `InvalidData` error.
    pub async fn next_line(&mut self) -> std::io::Result<Option<&[u8]>> {
        if self.returned {
            self.buf.clear();
            self.returned = false;
        }
        loop {
            // The only await: nothing has changed yet if the future is dropped here.
            let available = self.inner.fill_buf().await?;
            if available.is_empty() {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                self.returned = true;
                return Ok(Some(&self.buf));
            }
            let (take, done) = match available.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (available.len(), false),
            };
            if self.buf.len().saturating_add(take) > self.max {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("line longer than {} bytes", self.max),
                ));
            }
            self.buf.extend_from_slice(&available[..take]);
            self.inner.consume(take);
            if done {
                self.returned = true;
                return Ok(Some(&self.buf));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn line_reader_survives_cancellation() {
        use tokio::io::AsyncWriteExt;
        let (mut w, r) = tokio::io::duplex(64);
        let mut lines = LineReader::new(tokio::io::BufReader::new(r), 32);
        w.write_all(b"half").await.expect("write");
        // Cancelled while waiting for the rest of the line.
        let cancelled =
            tokio::time::timeout(std::time::Duration::from_millis(20), lines.next_line()).await;
        assert!(cancelled.is_err());
        w.write_all(b"-line\nnext\n").await.expect("write");
        assert_eq!(
            lines.next_line().await.expect("ok"),
            Some(&b"half-line\n"[..])
        );
        assert_eq!(lines.next_line().await.expect("ok"), Some(&b"next\n"[..]));
        w.write_all(&[b'x'; 40]).await.expect("write");
        assert!(lines.next_line().await.is_err());
        drop(w);
    }

    #[tokio::test]
    async fn read_line_frames_and_limits() {
        let mut input: &[u8] = b"one\r\ntwo\nlast";
        let mut buf = Vec::new();
        assert!(read_line(&mut input, &mut buf, 16).await.expect("reads"));
        assert_eq!(buf, b"one\r\n");
        assert!(read_line(&mut input, &mut buf, 16).await.expect("reads"));
        assert_eq!(buf, b"two\n");
        assert!(read_line(&mut input, &mut buf, 16).await.expect("reads"));
        assert_eq!(buf, b"last");
        assert!(!read_line(&mut input, &mut buf, 16).await.expect("eof"));

        let mut long: &[u8] = b"0123456789abcdefXYZ\n";
        let err = read_line(&mut long, &mut buf, 16)
            .await
            .expect_err("too long");
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
        assert!(buf.len() <= 16);
    }
}

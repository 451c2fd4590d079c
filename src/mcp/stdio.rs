//! The stdio transport, with one addition to rmcp's: a line that is not JSON, or is too long,
//! is answered with a JSON-RPC error (`-32700` / `-32600`, id `null`) instead of being dropped
//! silently, so a client sees what went wrong. Valid lines pass to rmcp unchanged, and every
//! line written to stdout is whole (answers and errors never interleave mid-line).

use futures::StreamExt;
use tokio::io::{AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, LinesCodec, LinesCodecError};

use crate::mcp::jsonrpc;

/// Buffer between rmcp and the line pumps.
const PIPE_BYTES: usize = 64 << 10;

/// Returns the (reader, writer) pair to hand to rmcp; lines longer than `max_line_bytes` are
/// refused.
pub fn transport(max_line_bytes: usize) -> (DuplexStream, DuplexStream) {
    let (mut to_rmcp, rmcp_reads) = tokio::io::duplex(PIPE_BYTES);
    let (rmcp_writes, from_rmcp) = tokio::io::duplex(PIPE_BYTES);
    let (stdout_lines, mut stdout_queue) = mpsc::channel::<String>(64);

    let errors = stdout_lines.clone();
    tokio::spawn(async move {
        let mut stdin = FramedRead::new(
            tokio::io::stdin(),
            LinesCodec::new_with_max_length(max_line_bytes),
        );
        while let Some(line) = stdin.next().await {
            let refusal = match line {
                Ok(line) if line.trim().is_empty() => continue,
                // Only the syntax is checked here (no tree is built); rmcp parses the message.
                Ok(line) => match jsonrpc::check_syntax(&line) {
                    Ok(()) => {
                        if to_rmcp
                            .write_all(format!("{line}\n").as_bytes())
                            .await
                            .is_err()
                        {
                            break;
                        }
                        continue;
                    }
                    Err(refusal) => refusal.response().to_string(),
                },
                Err(LinesCodecError::MaxLineLengthExceeded) => jsonrpc::error_response(
                    jsonrpc::INVALID_REQUEST,
                    &format!("message is longer than {max_line_bytes} bytes"),
                )
                .to_string(),
                Err(LinesCodecError::Io(error)) => {
                    tracing::warn!(%error, "reading stdin failed");
                    break;
                }
            };
            tracing::warn!("refused a malformed JSON-RPC line on stdin");
            if errors.send(refusal).await.is_err() {
                break;
            }
        }
        // Dropping `to_rmcp` tells rmcp the client is gone.
    });

    tokio::spawn(async move {
        let mut answers = FramedRead::new(from_rmcp, LinesCodec::new());
        while let Some(Ok(line)) = answers.next().await {
            if stdout_lines.send(line).await.is_err() {
                break;
            }
        }
    });

    tokio::spawn(async move {
        let mut stdout = tokio::io::stdout();
        while let Some(line) = stdout_queue.recv().await {
            let written = async {
                stdout.write_all(line.as_bytes()).await?;
                stdout.write_all(b"\n").await?;
                stdout.flush().await
            };
            if written.await.is_err() {
                break;
            }
        }
    });

    (rmcp_reads, rmcp_writes)
}

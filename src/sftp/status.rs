//! Turning a request's outcome into its reply, and the one place where a [`VfsError`] becomes an
//! SFTP status code.
//!
//! Every failure the session reports to a client (backend errors, an invalid handle, too many
//! handles, an unsupported request) is a `VfsError` by the time it gets here, so the mapping below
//! is the only table of status codes. The status message is the error's own text: WinSCP, lftp
//! and FileZilla show it to the user (OpenSSH shows only the code's name).

use russh_sftp::protocol::{Packet, Status, StatusCode};

use crate::vfs::VfsError;

/// What a request handler produces: a reply packet, or an error to report as a status.
pub(super) type Outcome = Result<Packet, VfsError>;

/// The status code for an error. Keep in step with the variant docs in `crate::vfs`.
pub(super) fn status_code(error: &VfsError) -> StatusCode {
    match error {
        VfsError::NotFound(_) => StatusCode::NoSuchFile,
        VfsError::PermissionDenied(_) => StatusCode::PermissionDenied,
        VfsError::Unsupported(_) => StatusCode::OpUnsupported,
        VfsError::AlreadyExists(_)
        | VfsError::NotEmpty(_)
        | VfsError::InvalidPath(_)
        | VfsError::Failure(_) => StatusCode::Failure,
    }
}

/// The reply for an outcome: the packet itself, or a STATUS carrying the error.
pub(super) fn reply_for(id: u32, outcome: Outcome) -> Packet {
    match outcome {
        Ok(packet) => packet,
        Err(error) => {
            let code = status_code(&error);
            let mut message = error.to_string();
            if message.is_empty() {
                message = code.to_string();
            }
            status(id, code, message)
        }
    }
}

pub(super) fn ok(id: u32) -> Packet {
    status(id, StatusCode::Ok, "Success".to_string())
}

/// End of file (READ) or of a listing (READDIR): a status, never an empty DATA or NAME.
pub(super) fn eof(id: u32) -> Packet {
    status(id, StatusCode::Eof, "End of file".to_string())
}

fn status(id: u32, status_code: StatusCode, error_message: String) -> Packet {
    Packet::Status(Status {
        id,
        status_code,
        error_message,
        language_tag: "en".to_string(),
    })
}

/// A handle the client names that is not open (never was, or already closed). OpenSSH's
/// sftp-server answers these with a plain FAILURE too.
pub(super) fn invalid_handle() -> VfsError {
    VfsError::Failure("invalid handle".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_each_error_kind() {
        let cases = [
            (VfsError::NotFound("x".into()), StatusCode::NoSuchFile),
            (
                VfsError::PermissionDenied("x".into()),
                StatusCode::PermissionDenied,
            ),
            (VfsError::Unsupported("x".into()), StatusCode::OpUnsupported),
            (VfsError::AlreadyExists("x".into()), StatusCode::Failure),
            (VfsError::NotEmpty("x".into()), StatusCode::Failure),
            (VfsError::InvalidPath("x".into()), StatusCode::Failure),
            (VfsError::Failure("x".into()), StatusCode::Failure),
        ];
        for (error, code) in cases {
            assert_eq!(status_code(&error), code, "{error:?}");
        }
    }

    #[test]
    fn status_carries_the_error_text() {
        let reply = reply_for(7, Err(VfsError::Unsupported("no resume".into())));
        let Packet::Status(status) = reply else {
            panic!("expected a status, got {reply:?}");
        };
        assert_eq!(status.id, 7);
        assert_eq!(status.status_code, StatusCode::OpUnsupported);
        assert_eq!(status.error_message, "no resume");
    }
}
